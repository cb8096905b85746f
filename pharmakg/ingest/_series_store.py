"""The Parquet side of historian series: layout, staged writes, crash recovery, windowed reads (layer L3).

Layout (``root`` is the series folder, ``<store>/series`` for an on-disk store)::

    series/
      main_comp/              one folder per tag (percent-encoded)
        19.parquet            one file per batch: columns timestamp (UTC, us), value (float64)
        20.parquet
      .staging-k3j2/          an import in flight (or interrupted): lock, manifest.json, files

A file is sorted by time and written in row groups of ``ROW_GROUP_ROWS`` rows
with min/max statistics, so a window inside a batch reads only the row groups
that overlap it (pyarrow dataset predicate pushdown), and a one-batch read
never touches another batch's file.

Atomicity with the graph: an import writes its files into a staging folder
(each fsync-ed), then writes ``manifest.json`` (what goes where, with each
file's sha256), then commits the graph, then renames the files into place.
If anything fails before the commit, the staging folder is removed and the
series folder is as before. If the process dies, the next import or read
runs :func:`recover`: a staged file whose node (path and sha256) is in the
graph is moved into place (the commit happened), anything else is deleted.
The staging folder holds an ``flock`` while its import runs, so recovery in
another process never touches an import in flight (POSIX; on systems
without ``fcntl`` recovery trusts that one process writes at a time).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "ROW_GROUP_ROWS",
    "STAGING_PREFIX",
    "Staging",
    "file_sha256",
    "read_window",
    "recover",
    "relative_file",
    "series_table",
]

#: Rows per Parquet row group: ~68 min of 1 s data, so a window reads a few groups of a batch's file.
ROW_GROUP_ROWS = 4096
STAGING_PREFIX = ".staging-"
MANIFEST = "manifest.json"
LOCK = "lock"
_TIME = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema([pa.field("timestamp", _TIME, nullable=False), pa.field("value", pa.float64(), nullable=False)])


def _segment(text: str) -> str:
    """One safe path segment: percent-encoded, and never '.', '..' or a hidden name."""
    out = quote(text, safe="")
    return "%2E" + out[1:] if out.startswith(".") else out


def relative_file(tag: str, batch_id: str) -> str:
    """``{tag}/{batch}.parquet``, each part percent-encoded (the value of pkg:seriesFile)."""
    return f"{_segment(tag)}/{_segment(batch_id)}.parquet"


def series_table(ts_us: np.ndarray, values: np.ndarray, metadata: dict[str, str]) -> pa.Table:
    """The table of one batch x tag file (times must be sorted)."""
    return pa.Table.from_arrays(
        [pa.array(ts_us, type=_TIME), pa.array(values, type=pa.float64())],
        schema=SCHEMA.with_metadata({f"pharmakg.{k}": v for k, v in metadata.items()}),
    )


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        row_group_size=ROW_GROUP_ROWS,
        compression="zstd",
        write_statistics=True,
        sorting_columns=[pq.SortingColumn(0)],
        use_dictionary=False,
    )
    return bytes(sink.getvalue())


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _lock(folder: Path, *, wait: bool) -> IO[str] | None:
    """Hold an exclusive flock on ``folder/lock``; None when another process holds it and ``wait`` is False."""
    handle = (folder / LOCK).open("a+")
    if fcntl is None:
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":  # pragma: no cover
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Staging:
    """Files of one import, kept out of the series folder until the graph commit succeeded."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.created_root = not root.exists()
        root.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
        self._handle = _lock(self.dir, wait=True)
        self.files: dict[str, str] = {}  # relative path -> sha256
        self.bytes = 0
        self._mutex = threading.Lock()

    def write(self, relative: str, table: pa.Table) -> str:
        """Write one file (fsync-ed) into the staging folder; its sha256."""
        data = _parquet_bytes(table)
        sha = hashlib.sha256(data).hexdigest()
        path = self.dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        with self._mutex:
            self.files[relative] = sha
            self.bytes += len(data)
        return sha

    def write_all(self, files: Iterable[tuple[str, pa.Table]], *, workers: int = 4) -> list[str]:
        """Write many files, in order, on a few threads (Parquet encoding and fsync release the GIL)."""
        from concurrent.futures import ThreadPoolExecutor

        items = list(files)
        for relative in {str(Path(rel).parent) for rel, _ in items}:
            (self.dir / relative).mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda item: self.write(*item), items))

    def drop(self, relative: str) -> None:
        """Forget a staged file (its identical twin is already in place)."""
        self.files.pop(relative, None)
        (self.dir / relative).unlink(missing_ok=True)

    def seal(self) -> None:
        """Write the manifest: from here on, recovery decides by asking the graph."""
        manifest = self.dir / MANIFEST
        tmp = manifest.with_suffix(".tmp")
        tmp.write_text(json.dumps({"files": sorted(self.files.items())}))
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, manifest)
        _fsync_dir(self.dir)

    def publish(self) -> None:
        """After the commit: move every staged file into place, then remove the staging folder."""
        _move_into_place(self.root, self.dir, self.files)
        self._remove()

    def discard(self) -> None:
        """The commit did not happen: remove the staging folder (and the series folder if this made it)."""
        self._remove()
        if self.created_root:
            try:
                self.root.rmdir()  # only if empty: another import may have filled it meanwhile
            except OSError:
                pass

    def abandon(self) -> None:
        """The commit's outcome is unknown (the store did not answer): leave the folder to :func:`recover`."""
        self._release()

    def _remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self._release()

    def _release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _move_into_place(root: Path, staged: Path, files: dict[str, str]) -> None:
    parents: set[Path] = set()
    for relative in sorted(files):
        source = staged / relative
        if not source.exists():
            continue
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        parents.add(target.parent)
    for parent in sorted(parents):
        _fsync_dir(parent)
    if parents:
        _fsync_dir(root)


def recover(root: Path, committed: Callable[[list[tuple[str, str]]], set[tuple[str, str]]]) -> int:
    """Finish or undo imports that died between staging and publishing; the number of folders handled.

    ``committed(pairs)`` answers which (relative path, sha256) pairs the graph holds.
    """
    if not root.is_dir():
        return 0
    done = 0
    for folder in sorted(root.glob(STAGING_PREFIX + "*")):
        if not folder.is_dir() or not (folder / LOCK).exists():
            continue
        handle = _lock(folder, wait=False)
        if handle is None:  # an import in flight
            continue
        try:
            files = _manifest(folder)
            if files:
                known = committed(sorted(files.items()))
                _move_into_place(root, folder, {rel: sha for rel, sha in files.items() if (rel, sha) in known})
            shutil.rmtree(folder, ignore_errors=True)
            done += 1
        finally:
            handle.close()
    return done


def _manifest(folder: Path) -> dict[str, str]:
    try:
        doc = json.loads((folder / MANIFEST).read_text())
        return {str(rel): str(sha) for rel, sha in doc["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # no (complete) manifest: the import died before its commit


def read_window(paths: Iterable[Path], start_us: int | None, end_us: int | None) -> pa.Table:
    """Rows with start <= timestamp <= end from the files, reading only the row groups that can hold them."""
    dataset = ds.dataset([str(p) for p in paths], format="parquet", schema=SCHEMA)
    field = ds.field("timestamp")
    condition: Any = None
    if start_us is not None:
        condition = field >= pa.scalar(start_us, type=_TIME)
    if end_us is not None:
        upper = field <= pa.scalar(end_us, type=_TIME)
        condition = upper if condition is None else condition & upper
    return dataset.to_table(filter=condition)


def empty_frame() -> pd.DataFrame:
    return SCHEMA.empty_table().to_pandas()
