"""Embedded pyoxigraph backend: in memory, or on disk with atomic big loads (layer L2).

On disk a pharmakg store is a folder::

    store/
      pharmakg-store.json      marker: format version (absent = not ours)
      current -> data-000003   symlink to the live RocksDB directory
      data-000003/             the live pyoxigraph database
      revision                 replaced after every committed write

Small additions go through ``Store.load`` (one RocksDB transaction). Big ones
would be 4-5x slower that way, so they take the checkpoint path: flush,
``Store.backup`` into a new directory (hard links, cheap), ``bulk_load`` into
the copy, then switch ``current`` with one atomic ``rename``. A crash before the
rename leaves the old directory live; ``open`` removes any leftover directory
that ``current`` does not point to. Either way the store is as before or as
after, never between. A caller that must still check the data (ingest's SHACL)
can start that bulk load early with :meth:`EmbeddedStore.prepare_add`: it runs
on a second thread (the bulk load releases the GIL) into a copy nobody
reads, and the ``add`` that follows with the same bytes only adds the small rest
and switches; a failed check discards the copy, so nothing changed. A caller that
is still producing the N-Triples can :meth:`EmbeddedStore.feed_add` them in chunks:
the bulk load reads them through a named pipe as they come (ingest maps a bundle
into it, so loading and mapping share the two cores instead of taking turns).

One process writes (the RocksDB lock); others may open the store read-only.
pyoxigraph's read-only handle is a snapshot taken when it opens, so the writer
replaces ``revision`` (a new inode) after every commit and a read-only store
``stat``-s it before each query (a few microseconds) and reopens when it moved.
That is how a notebook kernel's writes reach a ``pharmakg serve`` worker or the
Jupyter server extension on the very next query.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import pyoxigraph as ox

from ..errors import NotAStoreError, ReadOnlyStoreError, StoreError, StoreLockedError
from .base import Functions, RawResult, SelectFormat, as_nquads, query_error

__all__ = ["BULK_THRESHOLD_BYTES", "BulkFeed", "EmbeddedStore", "canonical_ntriples", "canonical_terms"]

log = logging.getLogger(__name__)

MARKER = "pharmakg-store.json"
REVISION_FILE = "revision"
FORMAT_VERSION = 1
#: N-Quads payloads above this size take the checkpoint + bulk_load path.
BULK_THRESHOLD_BYTES = 8 * 1024 * 1024
#: A read-only open that meets the writer mid-flush is tried this many times (0.02 s, 0.04 s, ... apart):
#: it runs on a server's request path, so a lasting fault must cost little (0.2 s) before it is an error.
_REOPEN_TRIES = 5

_FORMATS = {
    "nq": ox.RdfFormat.N_QUADS,
    "trig": ox.RdfFormat.TRIG,
    "ttl": ox.RdfFormat.TURTLE,
    "nt": ox.RdfFormat.N_TRIPLES,
}


def canonical_ntriples(data: bytes, *, chunk_bytes: int = 64 * 1024 * 1024) -> bytes:
    """``data`` (N-Triples without blank nodes) as an embedded store will hold and serialise it.

    The store keeps typed literals by value (``"5.0"^^xsd:double`` comes back as
    ``"5"``, a dateTime in UTC as ``Z``), so lines written by Python are not the
    lines a checkpoint reads back. Passing them through an in-memory store gives
    the exact lines, at a fraction of the cost of reading a fresh graph back from
    disk (which looks every term up in RocksDB). Chunked to bound memory; a value
    repeated across chunks appears twice, which a set of lines (and the store) folds.
    """
    out: list[bytes] = []
    start = 0
    while start < len(data):
        end = data.find(b"\n", min(start + chunk_bytes, len(data) - 1))
        end = len(data) if end < 0 else end + 1
        memory = ox.Store()
        memory.bulk_load(data[start:end], format=ox.RdfFormat.N_TRIPLES)
        out.append(memory.dump(format=ox.RdfFormat.N_TRIPLES, from_graph=ox.DefaultGraph()) or b"")
        start = end
    return b"".join(out)


_TERM_SUBJECT = b"<urn:pharmakg:term:%d> <urn:pharmakg:term> %s .\n"


def canonical_terms(terms: Sequence[str]) -> list[str]:
    """Each object term (N-Triples syntax) as an embedded store serialises it (see :func:`canonical_ntriples`).

    One line per distinct term rather than per triple: a staged graph repeats its
    values (a process parameter's set point on every batch) far more than it has them.
    """
    data = b"".join(_TERM_SUBJECT % (i, t.encode("utf-8")) for i, t in enumerate(terms))
    out = list(terms)
    for line in canonical_ntriples(data).splitlines():
        subject, _, rest = line.partition(b" ")
        out[int(subject[len(b"<urn:pharmakg:term:") : -1])] = rest.partition(b" ")[2][:-2].decode("utf-8")
    return out


class BulkFeed(Protocol):
    """N-Triples handed over in chunks of whole lines (:meth:`EmbeddedStore.feed_add`)."""

    def write(self, chunk: bytes | memoryview) -> None: ...

    def close(self) -> bytes: ...


class _Pipe:
    """A named pipe a bulk load reads (in Rust, without the GIL) and a thread that writes chunks into it.

    Handing pyoxigraph a Python file object instead would take the GIL for every 2 KB
    it reads, and the GIL is busy with the mapping that produces the chunks.
    """

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="pharmakg-feed-"))
        self.path = self._dir / "ntriples.nt"
        os.mkfifo(self.path, 0o600)
        self.reader_done = threading.Event()  # the load returned (or failed): nobody will open the pipe now
        self.error: BaseException | None = None  # what stopped the writing thread, if anything did
        self._queue: queue.SimpleQueue[bytes | memoryview | None] = queue.SimpleQueue()
        threading.Thread(target=self._pump, name="pharmakg-feed", daemon=True).start()

    def put(self, chunk: bytes | memoryview) -> None:
        self._queue.put(chunk)

    def end(self) -> None:
        """No more chunks: the load reads to the end of what it was given and stops."""
        self._queue.put(None)

    def _pump(self) -> None:
        fd = None
        try:
            fd = self._open()
            while (chunk := self._queue.get()) is not None:
                if fd is None:
                    continue  # the load is gone (it reports why): the rest is only drained
                try:
                    view = memoryview(chunk)
                    while view:  # a pipe takes what fits; the call waits, without the GIL, for the load to read
                        view = view[os.write(fd, view) :]
                except BrokenPipeError as exc:  # the load stopped reading: its own error says why
                    self.error = exc
                    os.close(fd)
                    fd = None
        except BaseException as exc:  # reported by the load's result, which must not take the copy
            self.error = exc  # set before the pipe closes: the load then reads an end that is not the end
            if fd is None:
                self._release_reader()
        finally:
            if fd is not None:
                os.close(fd)
            self.remove()

    def remove(self) -> None:
        """Remove the pipe's folder (the open ends keep working)."""
        shutil.rmtree(self._dir, ignore_errors=True)

    def _release_reader(self) -> None:
        """Let the load see the end at once: the pipe could not be opened for writing.

        Until the load has returned, the pipe is opened and closed again every few ms: a load
        waiting in its own open for a writer is let through, and then reads the end."""
        while not self.reader_done.is_set():
            try:
                os.close(os.open(self.path, os.O_RDWR | os.O_NONBLOCK))
            except OSError:
                log.debug("could not open %s to end the bulk load's input", self.path, exc_info=True)
            self.reader_done.wait(0.01)

    def _open(self) -> int | None:
        """The writing end, once the load has opened the reading end; None if the load ended before it did."""
        while not self.reader_done.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO until there is a reader
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
                self.reader_done.wait(0.002)
                continue
            os.set_blocking(fd, True)
            return fd
        return None


class _PreparedLoad:
    """A bulk load into a copy of the store, running on a second thread until its ``add`` comes.

    pyoxigraph's bulk load releases the GIL, so the caller keeps working (checking
    the same data) meanwhile. Nothing is visible before the ``add`` switches to the
    copy, so dropping it changes nothing. Given its N-Triples whole, the load starts
    at once; fed them in chunks (:meth:`write`), it starts once they pass
    ``BULK_THRESHOLD_BYTES`` and reads the rest as it comes, through a named pipe,
    so that it runs while the caller is still producing them.
    """

    def __init__(self, new_copy: Callable[[], Path], graph: str, revision: int | None, ntriples: bytes | None) -> None:
        self._new_copy = new_copy
        self.graph = graph
        self.revision = revision
        self.ntriples = ntriples  # every byte loaded; None while they are still being fed
        self.directory: Path | None = None
        self.loaded: Future[None] | None = None  # None until the load starts
        self._store: ox.Store | None = None  # held here alone, so that dropping it closes the database
        self._chunks: list[bytes | memoryview] = []
        self._fed = 0
        self._pipe: _Pipe | None = None
        if ntriples is not None:
            self._start(ntriples)

    def write(self, chunk: bytes | memoryview) -> None:
        """More N-Triples (whole lines) for the copy."""
        if self.ntriples is not None:
            raise ValueError("this feed is closed")
        self._chunks.append(chunk)
        self._fed += memoryview(chunk).nbytes
        if self._pipe is not None:
            self._pipe.put(chunk)
        elif self._fed >= BULK_THRESHOLD_BYTES and hasattr(os, "mkfifo"):
            pipe = self._pipe = _Pipe()  # before the load starts: a load that fails at once must find it
            try:
                self._start(pipe.path)
            except BaseException:
                pipe.reader_done.set()  # no load will open it: the pipe's thread ends and removes it
                pipe.end()
                raise
            for fed in self._chunks:
                pipe.put(fed)

    def close(self) -> bytes:
        """The end of the feed: every byte written, as one object (an ``add`` of it takes this copy)."""
        if self.ntriples is None:
            self.ntriples = b"".join(self._chunks)
            self._chunks = []
            if self._pipe is not None:
                self._pipe.end()
            elif len(self.ntriples) >= BULK_THRESHOLD_BYTES:
                self._start(self.ntriples)
        return self.ntriples

    def _start(self, source: bytes | Path) -> None:
        self.directory = self._new_copy()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pharmakg-bulk-load")
        self.loaded = pool.submit(self._load, self.directory, source)
        pool.shutdown(wait=False)

    def _load(self, directory: Path, source: bytes | Path) -> None:
        try:
            self._store = ox.Store(str(directory))
            graph = ox.NamedNode(self.graph)
            if isinstance(source, Path):
                self._store.bulk_load(path=str(source), format=ox.RdfFormat.N_TRIPLES, to_graph=graph)
            else:
                self._store.bulk_load(source, format=ox.RdfFormat.N_TRIPLES, to_graph=graph)
        finally:
            if self._pipe is not None:
                self._pipe.reader_done.set()
                # here too, not only on the pipe's (daemon) thread, which the interpreter may stop at exit
                # before it gets to it; this thread is one the interpreter waits for
                self._pipe.remove()

    def matches(self, ntriples: bytes, graph: str | None, revision: int | None) -> bool:
        """Whether this copy is being filled with these very bytes (identity: comparing them would cost a pass) for this graph and revision."""
        return (
            self.loaded is not None and self.ntriples is ntriples and self.graph == graph and self.revision == revision
        )

    def result(self) -> ox.Store:
        """The filled copy, once the load is done (raises what the bulk load raised)."""
        assert self.loaded is not None
        try:
            self.loaded.result()
        except BaseException as exc:
            failed = self._pipe.error if self._pipe is not None else None  # set before the load saw the end
            if failed is None or isinstance(failed, BrokenPipeError):  # the load's own failure
                raise
            raise StoreError(f"feeding the bulk load failed: {failed}") from exc  # it read a cut-off line
        failed = self._pipe.error if self._pipe is not None else None
        if failed is not None:  # the load saw an end before the last chunk
            raise StoreError(f"feeding the bulk load failed: {failed}") from failed
        assert self._store is not None
        store, self._store = self._store, None
        return store

    def drop(self) -> None:
        """Abandon the copy; it is removed once its bulk load stops (a running one cannot be interrupted)."""
        if self.ntriples is None:
            self.ntriples, self._chunks = b"", []
            if self._pipe is not None:
                self._pipe.end()  # the load stops at the end of what it was given
        if self.loaded is None:
            return
        directory = self.directory
        assert directory is not None

        def remove(_: Future[None]) -> None:
            self._store = None  # closes the copy (RocksDB stops its background work) before its files go
            shutil.rmtree(directory, ignore_errors=True)

        self.loaded.add_done_callback(remove)


class EmbeddedStore:
    """A pyoxigraph store owned by this process."""

    def __init__(self, path: str | Path | None = None, *, read_only: bool = False) -> None:
        self.read_only = read_only
        self.path = Path(path) if path is not None else None
        self.location = str(self.path) if self.path else "memory"
        self.revision: int | None = 0  # moves on our own writes, and on reopening when another writer committed
        self._seen: tuple[int, int] | None = None
        self._prepared: _PreparedLoad | None = None
        if self.path is None:
            self._store = ox.Store()
            return
        self._revision_file = os.fspath(self.path / REVISION_FILE)  # a str: stat-ed before every read-only query
        self._seen = self._stamp()
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
        if self.read_only:
            return self._open_snapshot()
        live = self._live_dir()
        try:
            store = ox.Store(str(live))
        except OSError as exc:
            if "lock" in str(exc).lower():
                raise StoreLockedError(path) from exc
            raise NotAStoreError(path, str(exc)) from exc
        self._recover(live)  # only once we hold the lock: another writer's load may be in flight before that
        return store

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._revision_file)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    def _signal_commit(self) -> None:
        """Tell read-only openers of this folder that a write committed (a fresh inode each time)."""
        if self.path is None:
            return
        tmp = self.path / f"{REVISION_FILE}.tmp"
        tmp.write_text(f"{self.revision}\n")
        os.replace(tmp, self.path / REVISION_FILE)

    def refresh(self, *, force: bool = False) -> bool:
        """Reopen a read-only store if a writer committed since it opened; True when it did.

        ``force`` reopens anyway: the writer's compactions delete files an old
        read-only snapshot may still need, which surfaces as an I/O error."""
        if not self.read_only or self.path is None:
            return False
        stamp = self._stamp()
        if stamp == self._seen and not force:
            return False
        self._store = self._open_disk(self.path)
        self._seen = stamp
        self.revision = (self.revision or 0) + 1
        return True

    def _open_snapshot(self) -> ox.Store:
        """A read-only snapshot of the live folder, tried again while the writer's flush moves files.

        RocksDB reads the MANIFEST, then the files it lists; a compaction of the writer in
        between gives "IO error" (an OSError) or "Corruption: ... IO error" (a RuntimeError)
        for a file that was there a moment ago. Read again, it lists the files that are."""
        assert self.path is not None
        for attempt in range(1, _REOPEN_TRIES + 1):
            try:
                return ox.Store.read_only(str(self._live_dir()))  # a big load may have switched it meanwhile
            except (OSError, RuntimeError) as exc:
                if "IO error" in str(exc) and attempt < _REOPEN_TRIES:
                    time.sleep(0.02 * attempt)
                    continue
                if isinstance(exc, RuntimeError):
                    raise
                raise NotAStoreError(self.path, str(exc)) from exc
        raise AssertionError("unreachable")

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
    def execute(
        self,
        sparql: str,
        *,
        default_graph: list[str] | None = None,
        named_graphs: list[str] | None = None,
        functions: Functions | None = None,
        refresh: bool = True,
    ) -> ox.QuerySolutions | ox.QueryBoolean | ox.QueryTriples:
        """Run a query and hand back pyoxigraph's own result, for callers that serialise natively.

        The default graph is the union of all graphs unless ``default_graph``
        names graphs (the SPARQL protocol's ``default-graph-uri``). Evaluation is
        lazy: errors can also surface while the result is consumed. ``refresh=False``
        skips the check for a newer commit, for a caller that has just made it
        (the endpoint checks once per request, before it decides how to answer).
        """
        if self.read_only and refresh:
            self.refresh()
        kwargs: dict[str, object] = {}
        if default_graph is not None:
            kwargs["default_graph"] = [ox.NamedNode(g) for g in default_graph]
        else:
            kwargs["use_default_graph_as_union"] = True
        if named_graphs is not None:
            kwargs["named_graphs"] = [ox.NamedNode(g) for g in named_graphs]
        if functions:
            kwargs["custom_functions"] = {ox.NamedNode(k): f for k, f in functions.items()}
        try:
            return self._store.query(sparql, **kwargs)  # type: ignore[arg-type]
        except SyntaxError as exc:
            raise query_error(str(exc), sparql) from exc
        except (OSError, ValueError, RuntimeError) as exc:
            raise query_error(str(exc), sparql) from exc

    def query(
        self, sparql: str, *, select_format: SelectFormat = "json", functions: Functions | None = None
    ) -> RawResult:
        result = self.execute(sparql, functions=functions)
        if isinstance(result, ox.QuerySolutions):
            if select_format == "csv":
                return RawResult("csv", result.serialize(format=ox.QueryResultsFormat.CSV) or b"")
            return RawResult("json", result.serialize(format=ox.QueryResultsFormat.JSON) or b"")
        if isinstance(result, ox.QueryBoolean):
            return RawResult("json", b'{"head":{},"boolean":%s}' % (b"true" if bool(result) else b"false"))
        return RawResult("graph", result.serialize(format=ox.RdfFormat.N_TRIPLES) or b"")

    def update(self, sparql: str) -> None:
        self._check_writable()
        self.discard_prepared()
        self.revision = (self.revision or 0) + 1
        try:
            self._store.update(sparql)
        except SyntaxError as exc:
            raise query_error(str(exc), sparql) from exc
        except (OSError, ValueError, RuntimeError) as exc:
            raise query_error(str(exc), sparql) from exc
        self._signal_commit()

    def prepare_add(self, ntriples: bytes, graph: str) -> None:
        """Start bulk-loading ``ntriples`` into ``graph`` of a copy, for an :meth:`add` of the same bytes to come.

        Any other write first, or :meth:`discard_prepared`, drops it. Only on disk and
        for payloads big enough for the checkpoint path; otherwise it does nothing.
        """
        self._check_writable()
        prepared = self._prepared
        if prepared is not None and prepared.matches(ntriples, graph, self.revision):
            return  # already under way
        self.discard_prepared()
        if self.path is None or len(ntriples) < BULK_THRESHOLD_BYTES:
            return
        self._prepared = _PreparedLoad(self._new_copy, graph, self.revision, ntriples)

    def feed_add(self, graph: str) -> BulkFeed | None:
        """A bulk load into ``graph`` of a copy that reads its N-Triples while they are produced.

        ``write`` them in chunks of whole lines, then ``close()``: it returns them as one
        ``bytes``, and an :meth:`add` of that object switches to the copy. The load
        starts once the chunks pass ``BULK_THRESHOLD_BYTES`` (smaller adds take the
        transactional path); as with :meth:`prepare_add`, any other write or
        :meth:`discard_prepared` drops it. None in memory, where no copy is made.
        """
        self._check_writable()
        self.discard_prepared()
        if self.path is None:
            return None
        self._prepared = _PreparedLoad(self._new_copy, graph, self.revision, None)
        return self._prepared

    def discard_prepared(self) -> None:
        """Drop a prepared copy (removed once its bulk load stops)."""
        prepared, self._prepared = self._prepared, None
        if prepared is not None:
            prepared.drop()

    def _take_prepared(self, ntriples: bytes, graph: str | None) -> _PreparedLoad | None:
        prepared = self._prepared
        if prepared is None:
            return None
        if prepared.matches(ntriples, graph, self.revision):
            self._prepared = None
            return prepared
        self.discard_prepared()
        return None

    def add(self, nquads: bytes = b"", *, ntriples: bytes = b"", graph: str | None = None) -> None:
        self._check_writable()
        if ntriples and graph is None:
            raise ValueError("N-Triples need a target graph")
        prepared = self._take_prepared(ntriples, graph)
        if not nquads and not ntriples:
            return
        self.revision = (self.revision or 0) + 1
        try:
            if prepared is not None:
                self._finish_prepared(prepared, nquads)
            elif self.path is None or len(nquads) + len(ntriples) < BULK_THRESHOLD_BYTES:
                data = nquads + (as_nquads(ntriples, graph) if graph else b"")
                self._store.load(data, format=ox.RdfFormat.N_QUADS)
            else:
                self._bulk_add(nquads, ntriples, graph)
        except SyntaxError as exc:  # our own serialiser produced bad N-Quads: a bug
            raise StoreError(f"internal N-Quads could not be parsed: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"writing to {self.location} failed: {exc}") from exc
        self._signal_commit()

    def _new_copy(self) -> Path:
        """A checkpoint of the live database in the next free ``data-NNNNNN`` (hard links: cheap)."""
        assert self.path is not None
        number = int(self._live_dir().name.split("-")[1]) + 1
        while (self.path / f"data-{number:06d}").exists():  # an abandoned copy whose load still runs
            number += 1
        directory = self.path / f"data-{number:06d}"
        self._store.flush()
        self._store.backup(str(directory))
        return directory

    def _bulk_add(self, nquads: bytes, ntriples: bytes, graph: str | None) -> None:
        """Checkpoint, bulk-load into the copy, switch atomically (see module docstring)."""
        directory = self._new_copy()
        new = ox.Store(str(directory))
        if ntriples and graph:
            new.bulk_load(ntriples, format=ox.RdfFormat.N_TRIPLES, to_graph=ox.NamedNode(graph))
        self._switch(new, directory, nquads)

    def _finish_prepared(self, prepared: _PreparedLoad, nquads: bytes) -> None:
        try:
            new = prepared.result()
        except BaseException:
            prepared.drop()
            raise
        assert prepared.directory is not None
        self._switch(new, prepared.directory, nquads)

    def _switch(self, new: ox.Store, directory: Path, nquads: bytes) -> None:
        """Add the rest to the filled copy, then make it the live database with one atomic rename."""
        assert self.path is not None
        live = self._live_dir()
        if nquads:
            new.bulk_load(nquads, format=ox.RdfFormat.N_QUADS)
        new.flush()
        tmp = self.path / "current.tmp"
        os.symlink(directory.name, tmp)
        os.replace(tmp, self.path / "current")  # the commit point
        _fsync_dir(self.path)
        old = self._store
        self._store = new
        del old
        shutil.rmtree(live, ignore_errors=True)

    def dump(self, *, format: str = "nq", graph: str | None = None) -> bytes:
        fmt = _FORMATS[format]
        if self.read_only:
            self.refresh()
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
        if not self.read_only:  # a read-only store has nothing to flush (and RocksDB refuses to)
            self._store.flush()
        self._store.backup(str(target / "data-000001"))
        os.symlink("data-000001", target / "current")
        (target / MARKER).write_text(json.dumps({"format": FORMAT_VERSION}) + "\n")

    def size_bytes(self) -> int | None:
        if self.path is None:
            return None
        return sum(f.stat().st_size for f in self._live_dir().rglob("*") if f.is_file())

    def close(self) -> None:
        if getattr(self, "_prepared", None) is not None:
            self.discard_prepared()
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
