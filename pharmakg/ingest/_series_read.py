"""Read a historian export (CSV or Parquet, long or wide) into flat point arrays (layer L3).

A historian export is big (a year of one tag at 1 s is 31.5 million rows), so
nothing here builds a Python object per point: pyarrow reads and converts
whole columns, and the points travel on as numpy arrays (tag code, time in
microseconds since the epoch in UTC, value, row in the file). pandas is used
only on the error path, to find and name the first bad cell: the fast path
(pyarrow's strict casts) either succeeds for the whole column or tells us that
some cell is bad, and the slow path then says which.

Two layouts are accepted:

- long: columns ``tag, timestamp, value`` and optionally ``unit`` and ``batch``;
- wide: a ``timestamp`` column and one column per tag (only columns named in
  the mapping are read; the others are reported as ignored), optionally ``batch``.

Times must carry a UTC offset (ISO 8601, or a Parquet timestamp with a time
zone) unless ``timezone`` names the zone a historian wrote local times in.
Empty value cells are not points (a wide file has gaps); a cell that is not a
number is an error that names its line and column.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import IngestError, Where

__all__ = ["BATCH_COLUMNS", "TIME_COLUMNS", "Points", "read_points"]

TIME_COLUMNS = ("timestamp", "time")
BATCH_COLUMNS = ("batch", "batch_id")
_OFFSET = re.compile(r"(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
_US = pa.timestamp("us", tz="UTC")
#: Builds the Where of a 0-based data row.
WhereOf = Callable[[int], Where]


@dataclass
class Points:
    """Every point of one file, as parallel arrays (one entry per point, in file order)."""

    file: str
    parquet: bool
    tag_names: list[str]
    tags: np.ndarray  # int32: index into tag_names
    ts: np.ndarray  # int64: microseconds since 1970-01-01T00:00:00Z
    values: np.ndarray  # float64, finite
    rows: np.ndarray | None  # int64: 0-based data row of each point in the file; None: point i is row i
    value_columns: list[str]  # per tag: the column its values came from
    unit_names: list[str] = field(default_factory=list)
    units: np.ndarray | None = None  # int32 index into unit_names, -1 = empty cell (long files)
    batch_names: list[str] = field(default_factory=list)
    batches: np.ndarray | None = None  # int32 index into batch_names, -1 = empty cell
    batch_column: str | None = None
    time_column: str = "timestamp"
    tag_column: str | None = None  # long files
    unit_column: str | None = None
    ignored: tuple[str, ...] = ()
    rows_read: int = 0
    empty: int = 0  # value cells without a number (not points)
    _lines: np.ndarray | None = field(default=None, repr=False)

    def line(self, row: int) -> int:
        """1-based line of a data row: CSV lines count the header and blank lines; Parquet rows count from 1."""
        if self.parquet:
            return int(row) + 1
        if self._lines is None:
            self._lines = _physical_lines(Path(self.file))
        if self._lines.size == 0:
            return int(row) + 2
        return int(self._lines[row]) if row < len(self._lines) else int(row) + 2

    def row(self, index: int) -> int:
        """0-based data row of point ``index`` (a position in the arrays)."""
        return int(index) if self.rows is None else int(self.rows[index])

    def row_array(self) -> np.ndarray:
        """The data row of every point (materialised when points are reordered or dropped)."""
        return np.arange(len(self.ts), dtype=np.int64) if self.rows is None else self.rows

    def where(self, index: int, column: str) -> Where:
        """Where point ``index`` came from."""
        return Where(self.file, self.line(self.row(index)), column)

    def where_row(self, row: int, column: str) -> Where:
        return Where(self.file, self.line(row), column)

    @property
    def row_word(self) -> str:
        return "row" if self.parquet else "line"


def _physical_lines(path: Path) -> np.ndarray:
    """Line number of each data row when the file has blank lines (pyarrow skips them); empty otherwise."""
    data = path.read_bytes()
    if b"\n\n" not in data and b"\n\r\n" not in data and not data.startswith((b"\n", b"\r\n")):
        return np.empty(0, dtype=np.int64)
    numbers: list[int] = []
    header_seen = False
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip(b"\r\n"):
            continue
        if not header_seen:
            header_seen = True
            continue
        numbers.append(number)
    return np.asarray(numbers, dtype=np.int64)


def _fail(where: Where, problem: str, value: object = None) -> IngestError:
    return IngestError(where, problem, value=value)


# -- reading the file ---------------------------------------------------------------------------
def _read_csv(path: Path, label: str) -> pa.Table:
    """Every column as strings (empty cells null), so each cell can be checked and named."""
    header_line, skip = "", 0
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            for skip, line in enumerate(f, start=1):  # noqa: B007 - skip counts the lines up to the header
                if line.strip():
                    header_line = line
                    break
    except UnicodeDecodeError as exc:
        raise _fail(Where(label), f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not header_line.strip():
        raise _fail(Where(label, 1), "has no header row")
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    names = [h.strip() for h in next(csv.reader([header_line], delimiter=delimiter))]
    if any(not n for n in names):
        raise _fail(Where(label, 1), "a column has an empty name")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise _fail(Where(label, 1), f"duplicate column name(s) {', '.join(dup)}")
    ragged: list[object] = []

    def on_invalid(row: object) -> str:
        ragged.append(row)
        return "skip"

    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=skip),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=True
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise _fail(Where(label), f"is not a readable CSV file: {_first_line(exc)}") from None
    if ragged:
        _raise_ragged(path, label, delimiter, len(names))
    return table


def _raise_ragged(path: Path, label: str, delimiter: str, width: int) -> None:
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        for record in reader:
            if record and any(c.strip() for c in record) and len(record) != width:
                raise _fail(
                    Where(label, reader.line_num),
                    f"has {len(record)} cells but the header has {width} "
                    f"(separator {delimiter!r}; quote cells that contain it)",
                )
    raise _fail(Where(label), f"has rows whose number of cells differs from the header's {width}")


def _read_parquet(path: Path, label: str, wanted: list[str] | None) -> pa.Table:
    try:
        return pq.read_table(path, columns=wanted)
    except (pa.ArrowException, OSError) as exc:
        raise _fail(Where(label), f"is not a readable Parquet file: {_first_line(exc)}") from None


def _schema_names(path: Path, label: str, parquet: bool) -> list[str] | None:
    if not parquet:
        return None
    try:
        return list(pq.read_schema(path).names)
    except (pa.ArrowException, OSError) as exc:
        raise _fail(Where(label), f"is not a readable Parquet file: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# -- columns ------------------------------------------------------------------------------------
def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _as_strings(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return pc.utf8_trim_whitespace(col)
    return pc.cast(col, pa.string())


def _codes(col: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """Codes (int32, -1 for an empty cell) into the distinct labels of a column (tags, units, batches).

    Works on the dictionary, not on the rows: a tag column of 31.5 million rows
    holds one distinct value, and trimming it once is what matters.
    """
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    encoded = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    raw = [("" if v is None else str(v).strip()) for v in encoded.dictionary.to_pylist()]
    names: list[str] = []
    position: dict[str, int] = {}
    remap = np.empty(len(raw) + 1, dtype=np.int32)  # the last slot: null cells
    for k, label in enumerate(raw):
        if not label:
            remap[k] = -1
            continue
        remap[k] = position.setdefault(label, len(names))
        if remap[k] == len(names):
            names.append(label)
    remap[-1] = -1
    indices = encoded.indices.fill_null(len(raw)).to_numpy(zero_copy_only=False)
    return remap[indices], names


def parse_times(col: pa.ChunkedArray, timezone: str | None, where: WhereOf) -> np.ndarray:
    """Microseconds since the epoch (UTC) for a column of times; raises naming the first bad cell."""
    kind = col.type
    if pa.types.is_dictionary(kind):
        col = col.cast(kind.value_type)
        kind = col.type
    nulls = col.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_timestamp(kind):
        if nulls.any():
            raise _fail(where(_first(nulls)), "empty time: every point needs one")
        if kind.tz is None:
            if timezone is None:
                raise _fail(
                    where(0),
                    "holds times without a time zone (a Parquet timestamp without tz); pass timezone= "
                    "(CLI --timezone) with the zone the historian recorded in, e.g. 'Europe/Ljubljana'",
                )
            try:
                col = pc.assume_timezone(col, timezone=timezone, ambiguous="raise", nonexistent="raise")
            except pa.ArrowInvalid:
                local = pd.Series(col.to_pandas()).dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
                i = _first(local.isna().to_numpy())
                raise _fail(
                    where(i),
                    f"local time {col[i].as_py()} does not exist or is ambiguous in {timezone} "
                    "(a daylight-saving change); export times with their UTC offset",
                ) from None
        return col.cast(_US).cast(pa.int64()).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise _fail(
            where(0),
            f"holds {kind} values, not times: give ISO 8601 date-times with a UTC offset "
            "(2025-03-04T06:00:00+01:00) or a Parquet timestamp column",
        )
    if nulls.any():
        raise _fail(where(_first(nulls)), "empty time: every point needs one")
    text = pc.utf8_trim_whitespace(col)
    try:  # fast path: ISO 8601 with offsets throughout
        return text.cast(_US).cast(pa.int64()).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    except pa.ArrowInvalid:
        pass
    if timezone is not None:  # fast path: local times throughout
        try:
            naive = text.cast(pa.timestamp("us"))
            aware = pc.assume_timezone(naive, timezone=timezone, ambiguous="raise", nonexistent="raise")
            return aware.cast(pa.int64()).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        except pa.ArrowInvalid:
            pass
    return _parse_times_slowly(pd.Series(text.to_pandas(), dtype=object), timezone, where)


def _parse_times_slowly(s: pd.Series, timezone: str | None, where: WhereOf) -> np.ndarray:
    """The mixed or faulty case, row by row semantics but vectorised: name the first bad cell."""
    has_offset = s.str.contains(_OFFSET).fillna(False).to_numpy(dtype=bool)
    if not has_offset.all() and timezone is None:
        i = _first(~has_offset)
        raise _fail(
            where(i),
            f"time {s.iloc[i]!r} has no UTC offset; write it as ISO 8601 with offset "
            "(2025-03-04T06:00:00+01:00 or ...Z), or pass timezone= (CLI --timezone) with the zone "
            "the historian recorded local times in",
            value=s.iloc[i],
        )
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[us, UTC]")
    if has_offset.any():
        aware = pd.to_datetime(s[has_offset], format="ISO8601", utc=True, errors="coerce")
        out[has_offset] = aware.dt.as_unit("us")
    local_ok = np.zeros(len(s), dtype=bool)
    if (~has_offset).any():
        naive = pd.to_datetime(s[~has_offset], format="ISO8601", errors="coerce")
        local_ok[~has_offset] = naive.notna().to_numpy()
        localised = naive.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
        out[~has_offset] = localised.dt.tz_convert("UTC").dt.as_unit("us")
    bad = out.isna().to_numpy()
    if bad.any():
        i = _first(bad)
        if local_ok[i]:
            problem = (
                f"local time {s.iloc[i]!r} does not exist or is ambiguous in {timezone} "
                "(a daylight-saving change); export times with their UTC offset"
            )
        else:
            problem = f"{s.iloc[i]!r} is not an ISO 8601 date-time (expected e.g. 2025-03-04T06:00:00+01:00)"
        raise _fail(where(i), problem, value=s.iloc[i])
    return out.to_numpy(dtype="datetime64[us]").astype(np.int64)


def parse_values(col: pa.ChunkedArray, where: WhereOf) -> np.ndarray:
    """float64 per row, NaN for an empty cell; raises naming the first cell that is not a finite number."""
    kind = col.type
    if pa.types.is_dictionary(kind):
        col = col.cast(kind.value_type)
        kind = col.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        values = col.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
        try:
            values = pc.utf8_trim_whitespace(col).cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            values = _parse_values_slowly(pd.Series(col.to_pandas(), dtype=object), where)
    else:
        raise _fail(where(0), f"holds {kind} values, not numbers")
    values = np.asarray(values, dtype=np.float64)
    infinite = np.isinf(values)
    if infinite.any():
        raise _fail(where(_first(infinite)), "expects a finite number, got an infinity")
    return values


def _parse_values_slowly(s: pd.Series, where: WhereOf) -> np.ndarray:
    text = s.str.strip()
    text = text.where(~text.str.match(_DECIMAL_COMMA).fillna(False), text.str.replace(",", ".", regex=False))
    nums = pd.to_numeric(text, errors="coerce")
    bad = (s.notna() & (text != "") & nums.isna()).to_numpy(dtype=bool)
    if bad.any():
        i = _first(bad)
        raise _fail(where(i), f"expects a number, got {s.iloc[i]!r}", value=s.iloc[i])
    return nums.to_numpy(dtype=np.float64, na_value=np.nan)


# -- the two layouts ----------------------------------------------------------------------------
def read_points(path: Path, *, mapped: set[str], timezone: str | None) -> Points:
    """Read ``path`` (``.parquet``/``.pq``: Parquet; anything else: CSV) into points.

    ``mapped`` names the tags the mapping knows: in a wide file these are the
    columns read (the others are ignored and reported); in a long file a tag
    outside it is an error raised by the caller, which knows the mapping file.
    """
    label = str(path)
    parquet = path.suffix.lower() in (".parquet", ".pq")
    names = _schema_names(path, label, parquet)
    table = None
    if names is None:
        table = _read_csv(path, label)
        names = table.column_names
    lower = {n.strip().lower(): n for n in names}
    time_col = next((lower[c] for c in TIME_COLUMNS if c in lower), None)
    batch_col = next((lower[c] for c in BATCH_COLUMNS if c in lower), None)
    if time_col is None:
        raise _fail(
            Where(label, 1),
            "needs a 'timestamp' column: a long file has columns tag, timestamp, value (and optionally unit, batch), "
            f"a wide file a timestamp column and one column per tag; the header has {', '.join(names)}",
        )
    long = "tag" in lower and "value" in lower
    if long:
        wanted = [lower["tag"], time_col, lower["value"]]
        unit_col = lower.get("unit")
        wanted += [c for c in (unit_col, batch_col) if c]
        ignored = tuple(n for n in names if n not in wanted)
    else:
        tag_cols = [n for n in names if n in mapped and n not in (time_col, batch_col)]
        if not tag_cols:
            raise _fail(
                Where(label, 1),
                f"no column is a mapped tag (columns: {', '.join(names)}; mapped tags: {', '.join(sorted(mapped))}); "
                "a long file needs columns tag, timestamp, value",
            )
        wanted = [time_col, *tag_cols] + ([batch_col] if batch_col else [])
        ignored = tuple(n for n in names if n not in wanted)
    if table is None:
        table = _read_parquet(path, label, wanted)
    points = Points(
        file=label,
        parquet=parquet,
        tag_names=[],
        tags=np.empty(0, np.int32),
        ts=np.empty(0, np.int64),
        values=np.empty(0, np.float64),
        rows=np.empty(0, np.int64),
        value_columns=[],
        batch_column=batch_col,
        time_column=time_col,
        ignored=ignored,
        rows_read=table.num_rows,
    )
    if table.num_rows == 0:
        raise _fail(Where(label, 2 if not parquet else 1), "holds no rows")

    def at(column: str) -> WhereOf:
        return lambda row: points.where_row(int(row), column)

    ts = parse_times(table[time_col], timezone, at(time_col))
    batch_codes = None
    if batch_col:
        batch_codes, points.batch_names = _codes(table[batch_col])
    if long:
        tag_col, value_col = lower["tag"], lower["value"]
        points.tag_column = tag_col
        tag_codes, tag_names = _codes(table[tag_col])
        missing = tag_codes < 0
        if missing.any():
            raise _fail(points.where_row(_first(missing), tag_col), "empty tag: every point needs one")
        values = parse_values(table[value_col], at(value_col))
        unit_codes = None
        if unit_col:
            unit_codes, points.unit_names = _codes(table[unit_col])
            points.unit_column = unit_col
        del table  # the arrays below are all that is kept of a file that may be millions of rows long
        keep = ~np.isnan(values)
        points.tag_names = tag_names
        points.value_columns = [value_col] * len(tag_names)
        points.empty = int((~keep).sum())
        if points.empty == 0:  # the usual case: no copies
            points.tags, points.ts, points.values, points.rows = tag_codes, ts, values, None
            points.units, points.batches = unit_codes, batch_codes
            return points
        points.tags, points.ts, points.values = tag_codes[keep], ts[keep], values[keep]
        points.rows = np.flatnonzero(keep).astype(np.int64)
        points.units = None if unit_codes is None else unit_codes[keep]
        points.batches = None if batch_codes is None else batch_codes[keep]
        return points
    parts_tags, parts_ts, parts_values, parts_rows = [], [], [], []
    empty = 0
    for code, column in enumerate(tag_cols):
        values = parse_values(table[column], at(column))
        keep = ~np.isnan(values)
        empty += int((~keep).sum())
        rows = np.flatnonzero(keep)
        parts_tags.append(np.full(len(rows), code, dtype=np.int32))
        parts_ts.append(ts[rows])
        parts_values.append(values[rows])
        parts_rows.append(rows.astype(np.int64))
    points.tag_names = list(tag_cols)
    points.value_columns = list(tag_cols)
    points.tags = np.concatenate(parts_tags)
    points.ts = np.concatenate(parts_ts)
    points.values = np.concatenate(parts_values)
    points.rows = np.concatenate(parts_rows)
    points.empty = empty
    if batch_codes is not None:
        points.batches = batch_codes[points.rows]
    return points
