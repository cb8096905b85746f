"""Embedded pyoxigraph backend: in memory, or on disk with atomic big loads (layer L2).

On disk a pharmakg store is a folder::

    store/
      pharmakg-store.json      marker: format version (absent = not ours)
      current -> data-000003   symlink to the live RocksDB directory
      data-000003/             the live pyoxigraph database

Small additions go through ``Store.load`` (one RocksDB transaction). Big ones
would be 4-5x slower that way, so they take the checkpoint path: flush,
``Store.backup`` into a new directory (hard links, cheap), ``bulk_load`` into
the copy, then switch ``current`` with one atomic ``rename``. A crash before the
rename leaves the old directory live; ``open`` removes any leftover directory
that ``current`` does not point to. Either way the store is as before or as
after, never between.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pyoxigraph as ox

from ..errors import NotAStoreError, ReadOnlyStoreError, StoreError, StoreLockedError
from .base import RawResult, SelectFormat, as_nquads, query_error

__all__ = ["EmbeddedStore", "BULK_THRESHOLD_BYTES"]

log = logging.getLogger(__name__)

MARKER = "pharmakg-store.json"
FORMAT_VERSION = 1
#: N-Quads payloads above this size take the checkpoint + bulk_load path.
BULK_THRESHOLD_BYTES = 8 * 1024 * 1024

_FORMATS = {
    "nq": ox.RdfFormat.N_QUADS,
    "trig": ox.RdfFormat.TRIG,
    "ttl": ox.RdfFormat.TURTLE,
    "nt": ox.RdfFormat.N_TRIPLES,
}


class EmbeddedStore:
    """A pyoxigraph store owned by this process."""

    def __init__(self, path: str | Path | None = None, *, read_only: bool = False) -> None:
        self.read_only = read_only
        self.path = Path(path) if path is not None else None
        self.location = str(self.path) if self.path else "memory"
        self.revision: int | None = 0  # this process owns the store (RocksDB lock): every write goes through us
        if self.path is None:
            self._store = ox.Store()
            return
        self._store = self._open_disk(self.path)

    # -- opening ---------------------------------------------------------
    def _open_disk(self, path: Path) -> ox.Store:
        marker = path / MARKER
        if path.exists() and not path.is_dir():
            raise NotAStoreError(path, "it is a file, not a folder")
        if path.is_dir() and any(path.iterdir()) and not marker.exists():
            raise NotAStoreError(path, f"the folder is not empty and has no {MARKER}")
        if not marker.exists():
            if self.read_only:
                raise NotAStoreError(path, "no store here to open read-only")
            path.mkdir(parents=True, exist_ok=True)
            (path / "data-000001").mkdir()
            os.symlink("data-000001", path / "current")
            marker.write_text(json.dumps({"format": FORMAT_VERSION}) + "\n")
        try:
            meta = json.loads(marker.read_text())
        except ValueError as exc:
            raise NotAStoreError(path, f"{MARKER} is not valid JSON") from exc
        if meta.get("format") != FORMAT_VERSION:
            raise NotAStoreError(path, f"store format {meta.get('format')!r}, this pharmakg reads {FORMAT_VERSION}")
        live = self._live_dir()
        if not self.read_only:
            self._recover(live)
        try:
            if self.read_only:
                return ox.Store.read_only(str(live))
            return ox.Store(str(live))
        except OSError as exc:
            if "lock" in str(exc).lower():
                raise StoreLockedError(path) from exc
            raise NotAStoreError(path, str(exc)) from exc

    def _live_dir(self) -> Path:
        assert self.path is not None
        target = os.readlink(self.path / "current")
        return self.path / target

    def _recover(self, live: Path) -> None:
        """Remove what a crashed big load or switch left behind."""
        assert self.path is not None
        for child in self.path.iterdir():
            if child.name.startswith("data-") and child.resolve() != live.resolve():
                log.warning("removing %s left by an interrupted load", child)
                shutil.rmtree(child, ignore_errors=True)
        stale = self.path / "current.tmp"
        if stale.is_symlink() or stale.exists():
            stale.unlink()

    # -- the protocol ----------------------------------------------------
    def query(self, sparql: str, *, select_format: SelectFormat = "json") -> RawResult:
        try:
            result = self._store.query(sparql, use_default_graph_as_union=True)
        except SyntaxError as exc:
            raise query_error(str(exc), sparql) from exc
        except (OSError, ValueError, RuntimeError) as exc:
            raise query_error(str(exc), sparql) from exc
        if isinstance(result, ox.QuerySolutions):
            if select_format == "csv":
                return RawResult("csv", result.serialize(format=ox.QueryResultsFormat.CSV) or b"")
            return RawResult("json", result.serialize(format=ox.QueryResultsFormat.JSON) or b"")
        if isinstance(result, ox.QueryBoolean):
            return RawResult("json", b'{"head":{},"boolean":%s}' % (b"true" if bool(result) else b"false"))
        return RawResult("graph", result.serialize(format=ox.RdfFormat.N_TRIPLES) or b"")

    def update(self, sparql: str) -> None:
        self._check_writable()
        self.revision = (self.revision or 0) + 1
        try:
            self._store.update(sparql)
        except SyntaxError as exc:
            raise query_error(str(exc), sparql) from exc
        except (OSError, ValueError, RuntimeError) as exc:
            raise query_error(str(exc), sparql) from exc

    def add(self, nquads: bytes = b"", *, ntriples: bytes = b"", graph: str | None = None) -> None:
        self._check_writable()
        if ntriples and graph is None:
            raise ValueError("N-Triples need a target graph")
        if not nquads and not ntriples:
            return
        self.revision = (self.revision or 0) + 1
        try:
            if self.path is None or len(nquads) + len(ntriples) < BULK_THRESHOLD_BYTES:
                data = nquads + (as_nquads(ntriples, graph) if graph else b"")
                self._store.load(data, format=ox.RdfFormat.N_QUADS)
            else:
                self._bulk_add(nquads, ntriples, graph)
        except SyntaxError as exc:  # our own serialiser produced bad N-Quads: a bug
            raise StoreError(f"internal N-Quads could not be parsed: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"writing to {self.location} failed: {exc}") from exc

    def _bulk_add(self, nquads: bytes, ntriples: bytes, graph: str | None) -> None:
        """Checkpoint, bulk-load into the copy, switch atomically (see module docstring)."""
        assert self.path is not None
        live = self._live_dir()
        number = int(live.name.split("-")[1]) + 1
        fresh = self.path / f"data-{number:06d}"
        self._store.flush()
        self._store.backup(str(fresh))
        new = ox.Store(str(fresh))
        if ntriples and graph:
            new.bulk_load(ntriples, format=ox.RdfFormat.N_TRIPLES, to_graph=ox.NamedNode(graph))
        if nquads:
            new.bulk_load(nquads, format=ox.RdfFormat.N_QUADS)
        new.flush()
        tmp = self.path / "current.tmp"
        os.symlink(fresh.name, tmp)
        os.replace(tmp, self.path / "current")  # the commit point
        _fsync_dir(self.path)
        old = self._store
        self._store = new
        del old
        shutil.rmtree(live, ignore_errors=True)

    def dump(self, *, format: str = "nq", graph: str | None = None) -> bytes:
        fmt = _FORMATS[format]
        try:
            if graph is not None:
                return self._store.dump(format=fmt, from_graph=ox.NamedNode(graph)) or b""
            return self._store.dump(format=fmt) or b""
        except (OSError, ValueError) as exc:
            raise StoreError(f"export failed: {exc}") from exc

    def optimize(self) -> None:
        """Compact the database; makes later queries several times faster after big loads."""
        self._check_writable()
        self._store.optimize()

    def backup(self, target: str | Path) -> None:
        """Write a consistent, independently openable copy of this store to ``target``."""
        if self.path is None:
            raise StoreError("an in-memory store has no backup; export it instead")
        target = Path(target)
        if target.exists():
            raise StoreError(f"backup target {target} already exists")
        target.mkdir(parents=True)
        self._store.flush()
        self._store.backup(str(target / "data-000001"))
        os.symlink("data-000001", target / "current")
        (target / MARKER).write_text(json.dumps({"format": FORMAT_VERSION}) + "\n")

    def size_bytes(self) -> int | None:
        if self.path is None:
            return None
        return sum(f.stat().st_size for f in self._live_dir().rglob("*") if f.is_file())

    def close(self) -> None:
        store = getattr(self, "_store", None)
        if store is not None and not self.read_only:
            try:
                store.flush()
            except OSError:
                pass
        self._store = None  # type: ignore[assignment]

    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyStoreError(f"store {self.location} is open read-only")
        if self._store is None:
            raise StoreError("the store is closed")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
