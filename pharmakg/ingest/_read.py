"""Read one CSV file of a bundle into strings, with line numbers (layer L3).

The stdlib csv reader (C code) is used rather than ``pandas.read_csv``
because pandas pads short rows silently, and a ragged row must be an error
that names its line. Cells stay strings here; typing happens per column,
vectorised, in the mapping step, so that every conversion error can name the
line and column too.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ..errors import IngestError, Where

__all__ = ["read_table", "LINE"]

#: Name of the hidden column holding each row's 1-based line number in the file.
LINE = "__line__"


def _delimiter(header: str) -> str:
    return ";" if header.count(";") > header.count(",") else ","


#: what the fast reader leaves to the stdlib one: quotes (cells over several lines), line breaks
#: other than LF (``str.splitlines`` splits on them), whitespace that ``str.strip`` removes but
#: ASCII trimming would not, and blank lines (which shift the line numbers)
_NOT_PLAIN = re.compile(
    '["\r\x0b\x0c\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]|\n[ \t]*\n|\n[ \t]+$'
)


def _read_plain(text: str, name: str) -> pd.DataFrame | None:
    """The common case, read by Arrow's CSV reader (C++, 5-10x the stdlib's speed); None when not plain.

    Plain: no quotes, only LF line breaks, no blank line, a header without duplicate or
    empty names, and every row as wide as the header. Rows are then exactly lines 2, 3, ...
    Anything else (including every error) goes to the stdlib reader, which names the line.
    """
    if _NOT_PLAIN.search(text):
        return None
    first, _, body = text.partition("\n")
    header = [h.strip() for h in first.split(_delimiter(first))]
    if not first.strip() or len(set(header)) != len(header) or not all(header):
        return None
    try:
        table = pacsv.read_csv(
            io.BytesIO(body.encode("utf-8")),
            read_options=pacsv.ReadOptions(column_names=header, use_threads=True),
            parse_options=pacsv.ParseOptions(delimiter=_delimiter(first), quote_char=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, ValueError):
        return None
    columns = {h: pc.utf8_trim(table.column(h), " \t") for h in header}
    frame = pd.DataFrame({h: pd.array(c, dtype="str") for h, c in columns.items()})
    frame[LINE] = np.arange(2, len(frame) + 2, dtype=np.int64)
    if len(frame):  # a row of empty cells (",,,") is skipped, as by the stdlib reader
        empty = np.logical_and.reduce([(frame[h] == "").to_numpy(dtype=bool) for h in header])
        if empty.any():
            frame = frame[~empty].reset_index(drop=True)
    return frame


def read_table(path: Path, *, label: str | None = None) -> pd.DataFrame:
    """All rows of ``path`` as stripped strings plus a ``__line__`` column.

    UTF-8 with or without BOM; comma or semicolon separated (decided from
    the header); blank lines skipped; a row with more or fewer cells than the
    header raises IngestError naming the line.
    """
    name = label or str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(Where(name), f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    plain = _read_plain(text, name)
    if plain is not None:
        return plain
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise IngestError(Where(name, 1), "has no header row")
    delim = _delimiter(lines[0])
    reader = csv.reader(text.splitlines(keepends=True), delimiter=delim, strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as exc:
        raise IngestError(Where(name, 1), f"malformed header: {exc}") from exc
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise IngestError(Where(name, 1), f"duplicate column name(s) {', '.join(dup)}")
    if any(not h for h in header):
        raise IngestError(Where(name, 1), "a column has an empty name")
    rows: list[list[str]] = []
    numbers: list[int] = []
    width = len(header)
    try:
        for record in reader:
            if not record or all(not c.strip() for c in record):
                continue
            if len(record) != width:
                raise IngestError(
                    Where(name, reader.line_num),
                    f"has {len(record)} cells but the header has {width} "
                    f"(separator {delim!r}; quote cells that contain it)",
                )
            rows.append([c.strip() for c in record])
            numbers.append(reader.line_num)
    except csv.Error as exc:
        raise IngestError(Where(name, reader.line_num), f"malformed CSV: {exc}") from exc
    # Arrow strings: the mapping's string operations then run in C++ rather than per Python object
    frame = pd.DataFrame(rows, columns=header, dtype="str") if rows else pd.DataFrame(columns=header, dtype="str")
    frame[LINE] = pd.array(numbers, dtype="int64") if numbers else pd.Series([], dtype="int64")
    return frame
