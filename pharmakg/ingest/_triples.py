"""The staged triple table: parts collected while mapping, assembled once, term-coded (layer L3).

A bundle of 10 000 batches stages about 4.4 million triples. Every later step
(duplicates, conflicts between rows, SHACL, the N-Triples handed to the store)
compares terms, and hashing long IRI strings again at each step cost more than
the store's own bulk load. So the table is assembled with ``s``, ``p`` and
``o`` as pandas Categoricals over *one* shared set of terms: each term is
hashed once, and the later steps group, join and deduplicate integer codes
(``_shacl_frame.shared_terms`` hands SHACL the codes). Columns are kept as Arrow strings
on the way (Python-object round trips were a third of the staging time), and the
subject and object text also rides along in row order (``s_text``, ``o_text``):
gathering 4 million strings back out of a million-term dictionary is random
access and cost more than the whole N-Triples serialisation it fed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ._nt import arrow_strings

__all__ = ["TripleParts", "keep_rows", "nt_lines", "term_codes"]

_STR = pa.large_string()


def _arrow(values: pd.Series) -> pa.Array | pa.ChunkedArray:
    """A column of strings as Arrow, without a Python-object round trip when it is Arrow already."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        cats = _arrow(pd.Series(values.cat.categories))
        taken = pc.take(cats, pa.array(values.cat.codes.to_numpy(), mask=values.isna().to_numpy()))
        return taken.cast(_STR)
    return arrow_strings(values)


@dataclass
class TripleParts:
    """Triples as they are mapped: one part per (table, column, predicate), with the cells they came from.

    ``on_lines``, if given, receives each part's N-Triples as it is added (whole lines,
    repeats included): a bulk load can read them while the rest is still being mapped.
    """

    on_lines: Callable[[memoryview], None] | None = None
    _s: list[pa.Array | pa.ChunkedArray] = field(default_factory=list)
    _o: list[pa.Array | pa.ChunkedArray] = field(default_factory=list)
    _p: list[str] = field(default_factory=list)
    _file: list[str] = field(default_factory=list)
    _column: list[str] = field(default_factory=list)
    _line: list[np.ndarray] = field(default_factory=list)

    def add(self, s: pd.Series, p: str, o: pd.Series, file: str, line: np.ndarray, column: str) -> None:
        """One part: ``s`` and ``o`` aligned, without missing values; ``p`` an N-Triples IRI."""
        subjects, objects = _arrow(s), _arrow(o)
        if subjects.null_count or objects.null_count:  # a missing term would take another's code
            raise ValueError(f"{file}, column {column}: a triple without its subject or object")
        self._s.append(subjects)
        self._o.append(objects)
        self._p.append(p)
        self._file.append(file)
        self._column.append(column)
        self._line.append(np.asarray(line, dtype=np.int64))
        if self.on_lines is not None:
            for view in _lines(subjects, pa.scalar(p, _STR), objects):
                self.on_lines(view)

    def __bool__(self) -> bool:
        return bool(self._s)

    def frame(self) -> pd.DataFrame:
        """All parts as one table: s, p, o (Categoricals over one set of terms), file, line, column."""
        lengths = np.array([len(a) for a in self._s], dtype=np.int64)
        n = int(lengths.sum())
        # one hash pass over every subject and object and the few distinct predicates (the last chunk)
        preds, pred_of_part = np.unique(np.array(self._p, dtype=object), return_inverse=True)
        subjects, objects = _chunks(self._s), _chunks(self._o)
        encoded = pc.dictionary_encode(pa.chunked_array([*subjects, *objects, pa.array(preds, _STR)], type=_STR))
        codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in encoded.chunks]).astype(np.int64)
        categories = pd.Index(pd.array(encoded.chunks[-1].dictionary, dtype="str"))
        p_codes = np.repeat(codes[2 * n :][pred_of_part], lengths)
        dtype = pd.CategoricalDtype(categories)
        return pd.DataFrame(
            {
                "s": pd.Categorical.from_codes(codes[:n], dtype=dtype, validate=False),
                "s_text": pd.array(pa.chunked_array(subjects, type=_STR), dtype="str"),
                "o_text": pd.array(pa.chunked_array(objects, type=_STR), dtype="str"),
                "p": pd.Categorical.from_codes(p_codes, dtype=dtype, validate=False),
                "o": pd.Categorical.from_codes(codes[n : 2 * n], dtype=dtype, validate=False),
                "file": _repeat(self._file, lengths),
                "line": np.concatenate(self._line) if self._line else np.zeros(0, dtype=np.int64),
                "column": _repeat(self._column, lengths),
            }
        )


def _chunks(parts: list[pa.Array | pa.ChunkedArray]) -> list[pa.Array]:
    """The parts' arrays, chunked parts opened up: a chunked array given chunked arrays copies them (2 s here)."""
    return [chunk for part in parts for chunk in (part.chunks if isinstance(part, pa.ChunkedArray) else [part])]


def _repeat(values: list[str], lengths: np.ndarray) -> pd.Categorical:
    cats, of_part = np.unique(np.array(values, dtype=object), return_inverse=True)
    return pd.Categorical.from_codes(np.repeat(of_part, lengths), categories=pd.Index(cats, dtype="str"))


def term_codes(column: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes of a term column and the terms they stand for: a Categorical's own, else factorised."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy(), pd.Index(column.cat.categories)
    codes, terms = pd.factorize(column)
    return codes, pd.Index(terms)


def keep_rows(frame: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    """``frame[mask]`` with a fresh index, column by column.

    A DataFrame's boolean indexing gathers Arrow string columns by position
    (4 s for 4 million rows here); each column's own boolean filter streams (0.2 s).
    """
    if mask.all():
        return frame.reset_index(drop=True)
    return pd.DataFrame({c: frame[c].array[mask] for c in frame.columns})


def nt_lines(frame: pd.DataFrame, columns: Sequence[str] = ("s", "p", "o")) -> bytes:
    """N-Triples (or, with a ``g`` column, N-Quads) lines, one per row, built in Arrow."""
    if frame.empty:
        return b""
    parts = [_arrow(frame[f"{c}_text"] if f"{c}_text" in frame.columns else frame[c]) for c in columns]
    return b"".join(_lines(*parts))


def _lines(*terms: pa.Array | pa.ChunkedArray | pa.Scalar) -> list[memoryview]:
    """The N-Triples (N-Quads) lines of these term columns, joined in Arrow: the bytes of each chunk."""
    joined = pc.binary_join_element_wise(*terms, pa.scalar(".\n", _STR), pa.scalar(" ", _STR))
    if joined.null_count:
        raise ValueError(f"{joined.null_count} triples with a missing term")
    chunks = joined.chunks if isinstance(joined, pa.ChunkedArray) else [joined]
    return [_data(c) for c in chunks if len(c)]


def _data(strings: pa.Array) -> memoryview:
    """The bytes of a large-string array's values, back to back (no copy)."""
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int64)[strings.offset : strings.offset + len(strings) + 1]
    start, end = int(offsets[0]), int(offsets[-1])
    return memoryview(strings.buffers()[2])[start:end]
