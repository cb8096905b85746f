"""Stage a CSV bundle: read, type, check and map every row before anything is written (layer L3).

The result is a table of N-Triples terms with, for each triple, the file, line
and column it came from, so that any later check (references, conflicts with
the store, SHACL) can still point the user at the cell at fault.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from .. import terms as T
from .. import units
from ..errors import ConflictError, IngestError, PharmaKGWarning, UnitError, Where
from ._lookup import StoreLookup
from ._nt import encode_ids, iri_column, literal_column, member, mint
from ._read import LINE, read_table
from ._spec import KIND_CLASS, TABLES, Col, TableSpec
from ._triples import TripleParts, keep_rows, term_codes

__all__ = ["StagedBundle", "stage_bundle", "MULTI_VALUED", "TRIPLE_COLUMNS"]

TRIPLE_COLUMNS = ["s", "p", "o", "file", "line", "column"]
#: Predicates a subject may carry several times; every other one is single-valued,
#: so a second, different value is a conflict.
MULTI_VALUED = {
    f"<{p}>"
    for p in (
        T.type_,
        T.usedEquipment,
        T.consumed,
        T.produced,
        T.shippedIn,
        T.impacts,
        T.sublotOf,
        # BatchML / B2MML: a step precedes several, a recipe has several approvals, a lot several parents
        T.precedes,
        T.approvedBy,
        T.performedBy,
        T.assembledFrom,
    )
}

_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CANONICAL_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")


@dataclass
class StagedBundle:
    """Everything a load will write, not yet written."""

    triples: pd.DataFrame  # TRIPLE_COLUMNS (+ s_text, o_text); s/p/o are N-Triples terms, coded (see _triples)
    rows: dict[str, int] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    referenced: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["iri", "type"]))
    #: with ``feed``: the objects of the lines fed, in order (the same set of triples as ``triples``,
    #: repeats included), and which of those lines is the first of its kind
    fed_objects: pd.Series | None = None
    fed_first: np.ndarray | None = None


def _err(
    spec: TableSpec,
    frame: pd.DataFrame,
    mask: pd.Series,
    column: str,
    problem: str,
    cls: type[IngestError] = IngestError,
) -> IngestError:
    """An error for the first row where ``mask`` holds, counting the others."""
    bad = frame.loc[mask]
    first = bad.iloc[0]
    more = len(bad) - 1
    suffix = f" ({more} more row{'s' if more > 1 else ''} like it)" if more else ""
    value = first.get(column)
    shown = f" {value!r}" if isinstance(value, str) and value else ""
    label = frame.attrs.get("label") or spec.file
    return cls(Where(label, int(first[LINE]), column), f"{problem.replace('{value}', shown)}{suffix}", value=value)


class _Mapper:
    """Maps the frames of one bundle; holds what the files define, for reference checks."""

    def __init__(
        self,
        frames: dict[str, pd.DataFrame],
        *,
        base: str,
        lookup: StoreLookup,
        feed: Callable[[memoryview], None] | None = None,
    ) -> None:
        self.frames = frames
        self.base = base
        self.lookup = lookup
        self.parts = TripleParts(on_lines=feed)
        self.defined: dict[str, set[str]] = {}
        self.refs: list[tuple[TableSpec, pd.DataFrame, str, str, pd.Series]] = []  # spec, frame, col, kind, iris
        self.labels = {name: f.attrs["label"] for name, f in frames.items()}
        self._resolved: dict[tuple[str, str], pd.Series] = {}

    # -- helpers ---------------------------------------------------------------
    def emit(self, spec: TableSpec, frame: pd.DataFrame, s: pd.Series, p: str, o: pd.Series, column: str) -> None:
        mask = o.notna()
        if not mask.any():
            return
        if mask.all():
            self.parts.add(s, f"<{p}>", o, self.labels[spec.file], frame[LINE].to_numpy(), column)
        else:
            self.parts.add(s[mask], f"<{p}>", o[mask], self.labels[spec.file], frame.loc[mask, LINE].to_numpy(), column)

    def node_iris(self, spec: TableSpec, frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        """Row node IRIs and identifiers (composite keys joined by '/')."""
        if len(spec.key) == 1:
            ids = frame[spec.key[0]]
            return mint(self.base, spec.kind, ids), ids
        present = [k for k in spec.key if k in frame.columns]
        enc = [encode_ids(frame[k]) for k in present]
        raw = [frame[k] for k in present]
        joined_enc = enc[0]
        joined_raw = raw[0]
        for e, r in zip(enc[1:], raw[1:], strict=True):
            joined_enc = joined_enc.str.cat(e, sep="/").str.rstrip("/")
            joined_raw = joined_raw.str.cat(r, sep="/").str.rstrip("/")
        return self.base + spec.kind + "/" + joined_enc, joined_raw

    # -- per column ------------------------------------------------------------
    def map_table(self, spec: TableSpec, frame: pd.DataFrame) -> None:
        node, ident = self.node_iris(spec, frame)
        if spec.identifier:
            ident = frame[spec.identifier]
        s = iri_column(node)
        if spec.entity:
            self.defined.setdefault(spec.kind, set()).update(node.tolist())
        # class
        if spec.rdf_class is not None:
            self.emit(spec, frame, s, T.type_, pd.Series(f"<{spec.rdf_class}>", index=frame.index), spec.key[0])
        self.emit(spec, frame, s, T.identifier, literal_column(ident), spec.key[0])
        for col in spec.columns:
            if col.name not in frame.columns:
                continue
            cells = frame[col.name]
            filled = cells != ""
            if col.kind in ("id", "key", "unit", "qty"):
                if col.kind == "unit" and col.predicate:
                    self._check_units(spec, frame, col.name, filled)
                    self.emit(spec, frame, s, col.predicate, literal_column(cells).where(filled), col.name)
                continue
            if col.kind == "label":
                self.emit(spec, frame, s, T.label, literal_column(cells).where(filled), col.name)
            elif col.kind == "str":
                self.emit(spec, frame, s, col.predicate or "", literal_column(cells).where(filled), col.name)
            elif col.kind == "double":
                nums = self._numbers(spec, frame, col.name)
                self.emit(spec, frame, s, col.predicate or "", _double_terms(nums), col.name)
            elif col.kind == "int":
                nums = self._numbers(spec, frame, col.name)
                bad = nums.notna() & (nums != nums.round())
                if bad.any():
                    raise _err(spec, frame, bad, col.name, "expects a whole number, got{value}")
                if col.predicate == T.riskSeverity:
                    out = nums.notna() & ((nums < 1) | (nums > 10))
                    if out.any():
                        raise _err(spec, frame, out, col.name, "severity must be 1-10, got{value}")
                terms = nums.map(lambda v: None if pd.isna(v) else f'"{int(v)}"^^<{T.XSD}integer>')
                self.emit(spec, frame, s, col.predicate or "", terms, col.name)
            elif col.kind in ("datetime", "date"):
                self.emit(spec, frame, s, col.predicate or "", self._times(spec, frame, col), col.name)
            elif col.kind in ("concept", "class"):
                low = cells.str.lower()
                bad = filled & ~low.isin(list(col.values))
                if bad.any():
                    choices = ", ".join(sorted({k for k in col.values if " " not in k}))
                    raise _err(spec, frame, bad, col.name, f"unknown value{{value}}; expected one of {choices}")
                mapping = {k: f"<{v}>" for k, v in col.values.items()}
                terms = low.map(lambda v, m=mapping: m.get(v) if v else None)
                self.emit(spec, frame, s, col.predicate or T.type_, terms, col.name)
            elif col.kind == "ref":
                self._ref(spec, frame, s, col, filled)
            elif col.kind == "named":
                target = col.target or ""
                iris = mint(self.base, target, cells).where(filled)
                self.emit(spec, frame, s, col.predicate or "", iri_column(iris).where(filled), col.name)
                self._named(spec, frame, cells[filled], target, col.name)
        if spec.quantity is not None and spec.quantity.value in frame.columns:
            self._quantity(spec, frame, s)
        for pred, subj_col, obj_col in spec.shortcuts:
            subj = self._resolved.get((spec.file, subj_col))
            if subj is None:
                continue
            if not obj_col:  # subject -> the row node
                filled = frame[subj_col] != ""
                self.emit(spec, frame, iri_column(subj).where(filled), pred, s.where(filled), subj_col)
                continue
            both = (frame[subj_col] != "") & (frame[obj_col] != "")
            obj = self._resolved.get((spec.file, obj_col))
            if obj is not None:
                self.emit(spec, frame, iri_column(subj).where(both), pred, iri_column(obj).where(both), obj_col)
        extras = [c for c in frame.columns if c != LINE and c not in {k.name for k in spec.columns}]
        for extra in extras:
            filled = frame[extra] != ""
            prop = f"{self.base}property/{quote(extra, safe='')}"
            self.emit(spec, frame, s, prop, literal_column(frame[extra]).where(filled), extra)
        if spec.file == "results.csv":  # the sample carries its batch and lot too
            sample = iri_column(mint(self.base, "sample", frame["sample_id"]))
            for key, pred in (("batch_id", T.batch), ("lot_id", T.lot)):
                got = self._resolved.get((spec.file, key))
                if got is not None:
                    self.emit(spec, frame, sample, pred, iri_column(got).where(frame[key] != ""), key)

    def _named(self, spec: TableSpec, frame: pd.DataFrame, names: pd.Series, kind: str, column: str) -> None:
        """Nodes minted from a name (supplier, customer, analyst, sample): type, id, label."""
        sub = frame.loc[names.index, [column, LINE]].drop_duplicates(subset=[column])
        if sub.empty:
            return
        node = iri_column(mint(self.base, kind, sub[column]))
        self.emit(spec, sub, node, T.type_, pd.Series(f"<{KIND_CLASS[kind]}>", index=sub.index), column)
        self.emit(spec, sub, node, T.identifier, literal_column(sub[column]), column)
        if kind != "sample":
            self.emit(spec, sub, node, T.label, literal_column(sub[column]), column)

    def _numbers(self, spec: TableSpec, frame: pd.DataFrame, column: str) -> pd.Series:
        cells = frame[column]
        filled = cells != ""
        text = cells.where(~cells.str.match(_DECIMAL_COMMA), cells.str.replace(",", ".", regex=False))
        nums = pd.to_numeric(text.where(filled), errors="coerce")
        bad = filled & (nums.isna() | ~np.isfinite(nums.fillna(0)))
        if bad.any():
            raise _err(spec, frame, bad, column, "expects a number, got{value}")
        return nums

    def _times(self, spec: TableSpec, frame: pd.DataFrame, col: Col) -> pd.Series:
        cells = frame[col.name]
        filled = cells != ""
        is_date = cells.str.match(_DATE) if col.kind == "date" else pd.Series(False, index=cells.index)
        is_dt = cells.str.match(_DATETIME)
        bad = filled & ~is_date & ~is_dt
        if bad.any():
            want = (
                "an ISO 8601 date or date-time with offset"
                if col.kind == "date"
                else "an ISO 8601 date-time with offset, e.g. 2025-03-04T06:00:00+01:00"
            )
            raise _err(spec, frame, bad, col.name, f"expects {want}, got{{value}}")
        norm = cells.where(~is_dt, _normalise_datetime(cells.where(is_dt, "")))
        parsed = pd.to_datetime(norm.where(filled), format="ISO8601", utc=True, errors="coerce")
        bad = filled & parsed.isna()
        if bad.any():
            raise _err(spec, frame, bad, col.name, "is not a valid date/time:{value}")
        dt_terms = literal_column(norm, T.XSD + "dateTime")
        d_terms = literal_column(norm, T.XSD + "date")
        return dt_terms.where(is_dt, d_terms).where(filled)

    def _check_units(self, spec: TableSpec, frame: pd.DataFrame, column: str, filled: pd.Series) -> None:
        for u in pd.unique(frame.loc[filled, column]):
            try:
                units.parse_unit(u)
            except ValueError as exc:
                raise _err(spec, frame, frame[column] == u, column, str(exc), UnitError) from None

    # -- references ------------------------------------------------------------
    def _ref(self, spec: TableSpec, frame: pd.DataFrame, s: pd.Series, col: Col, filled: pd.Series) -> None:
        cells = frame[col.name]
        if col.target == "step":
            iris = self._step_iris(spec, frame, col.name)
        elif col.target == "parameter|attribute":
            as_param = mint(self.base, "parameter", cells)
            as_attr = mint(self.base, "attribute", cells)
            known_param = member(as_param, self.defined.get("parameter", set()))
            known_attr = member(as_attr, self.defined.get("attribute", set()))
            unknown = ~(known_param | known_attr) & filled
            if unknown.any():
                found = set(self.lookup.types(as_param[unknown].tolist() + as_attr[unknown].tolist())["iri"])
                known_param |= member(as_param, found)
            iris = as_param.where(known_param, as_attr)
        else:
            iris = mint(self.base, col.target or "", cells)
        iris = iris.where(filled)
        self._resolved[(spec.file, col.name)] = iris
        self.refs.append((spec, frame, col.name, col.target or "", iris))
        self.emit(spec, frame, s, col.predicate or "", iri_column(iris).where(filled), col.name)

    def _step_iris(self, spec: TableSpec, frame: pd.DataFrame, column: str) -> pd.Series:
        """Steps are numbered within a recipe: find each step in the recipe the row names or runs."""
        steps = self._known_steps(frame[column])
        cells = frame[column]
        if "recipe_id" in frame.columns:  # recipe_steps.csv, parameters.csv
            recipe = frame["recipe_id"]
        else:  # batch tables: the batch's recipe, else any recipe of the batch's product
            recipe = self._batch_attr(frame, "recipe_id")
        key = recipe.str.cat(cells, sep="\x00")
        table = dict(zip(steps["recipe_id"].str.cat(steps["step_id"], sep="\x00"), steps["iri"], strict=True))
        out = key.map(table)
        missing = out.isna() & (cells != "")
        if missing.any():  # fall back: a step id that is unique across known recipes
            by_id = steps.drop_duplicates("step_id", keep=False).set_index("step_id")["iri"]
            out = out.where(~missing, cells.map(by_id))
        if "recipe_id" in frame.columns:
            direct = (
                self.base
                + "step/"
                + recipe.map(lambda v: quote(v, safe=""))
                + "/"
                + cells.map(lambda v: quote(v, safe=""))
            )
            out = out.where(out.notna(), direct)
        return out.where(cells != "")

    def _known_steps(self, wanted: pd.Series) -> pd.DataFrame:
        frames = [self.lookup.steps(pd.unique(wanted[wanted != ""]).tolist())]
        bundle = self.frames.get("recipe_steps.csv")
        if bundle is not None and {"recipe_id", "step_id"} <= set(bundle.columns):
            node, _ = self.node_iris(_spec("recipe_steps.csv"), bundle)
            frames.append(pd.DataFrame({"recipe_id": bundle["recipe_id"], "step_id": bundle["step_id"], "iri": node}))
        return pd.concat(frames, ignore_index=True).drop_duplicates()

    def _batch_attr(self, frame: pd.DataFrame, what: str) -> pd.Series:
        batch_ids = frame["batch_id"]
        known = pd.DataFrame(columns=["batch_id", what])
        bundle = self.frames.get("batches.csv")
        parts = []
        if bundle is not None and what in bundle.columns:
            parts.append(pd.DataFrame({"batch_id": bundle["id"], what: bundle[what]}))
        missing = set(batch_ids) - set(parts[0]["batch_id"]) if parts else set(batch_ids)
        if missing:
            got = self.lookup.batches(mint(self.base, "batch", pd.Series(sorted(missing))).tolist())
            if not got.empty:
                got["batch_id"] = got["iri"].map(lambda v: _unquote_last(v))
                parts.append(got[["batch_id", what]].fillna(""))
        if parts:
            known = pd.concat(parts, ignore_index=True).drop_duplicates("batch_id")
        found = batch_ids.map(dict(zip(known["batch_id"], known[what], strict=True))).astype(object)
        return found.where(found.notna(), "")

    # -- quantities --------------------------------------------------------------
    def _quantity(self, spec: TableSpec, frame: pd.DataFrame, s: pd.Series) -> None:
        q = spec.quantity
        assert q is not None
        nums = self._numbers(spec, frame, q.value)
        given_unit = frame[q.unit] if q.unit in frame.columns else pd.Series("", index=frame.index)
        has = nums.notna()
        if q.unit_of is None:
            no_unit = has & (given_unit == "")
            if no_unit.any():
                raise _err(
                    spec, frame, no_unit, q.unit, "a quantity needs a unit (UCUM code such as kg, L, 1)", UnitError
                )
            target = pd.Series("", index=frame.index)
            for u in pd.unique(given_unit[has]):
                try:
                    target[given_unit == u] = units.canonical_unit(u)
                except ValueError as exc:
                    if q.any_dimension and _known(u):
                        target[given_unit == u] = u
                        continue
                    raise _err(spec, frame, has & (given_unit == u), q.unit, str(exc), UnitError) from None
        else:
            declared = self._declared_units(spec, frame, q.unit_of)
            target = declared.where(declared != "", given_unit)
        source = given_unit.where(given_unit != "", target)
        values = nums.copy()
        pairs = pd.DataFrame({"src": source[has], "dst": target[has]})
        groups: dict[Any, Any] = dict(pairs.groupby(["src", "dst"]).groups)
        for key, idx in groups.items():
            src, dst = key
            if not src or src == dst:
                continue
            try:
                values.loc[idx] = units.convert(nums.loc[idx].to_numpy(), str(src), str(dst))
            except ValueError as exc:
                mask = pd.Series(frame.index.isin(idx), index=frame.index)
                raise _err(spec, frame, mask, q.unit, str(exc), UnitError) from None
        if not (given_unit == "").all():
            self._check_units(spec, frame, q.unit, given_unit != "")
        converted = has & (source != target)
        self.emit(spec, frame, s, q.predicate, _double_terms(values), q.value)
        self.emit(spec, frame, s, T.unit, literal_column(target).where(has & (target != "")), q.unit)
        self.emit(spec, frame, s, T.valueAsGiven, literal_column(frame[q.value]).where(converted), q.value)
        self.emit(spec, frame, s, T.unitAsGiven, literal_column(source).where(converted), q.unit)

    def _declared_units(self, spec: TableSpec, frame: pd.DataFrame, ref_col: str) -> pd.Series:
        iris = self._resolved[(spec.file, ref_col)]
        table: dict[str, str] = {}
        for file, kind in (("parameters.csv", "parameter"), ("quality_attributes.csv", "attribute")):
            f = self.frames.get(file)
            if f is not None and "unit" in f.columns:
                table.update(zip(mint(self.base, kind, f["id"]), f["unit"], strict=True))
        unknown = set(pd.unique(iris.dropna())) - set(table)
        if unknown:
            got = self.lookup.units(unknown)
            table.update(zip(got["iri"], got["unit"], strict=True))
        return iris.map(table).fillna("")


def _known(unit: str) -> bool:
    try:
        units.parse_unit(unit)
    except ValueError:
        return False
    return True


def _unquote_last(iri: str) -> str:
    from urllib.parse import unquote

    return unquote(iri.rsplit("/", 1)[-1])


def _spec(file: str) -> TableSpec:
    return next(t for t in TABLES if t.file == file)


def _double_terms(nums: pd.Series) -> pd.Series:
    return nums.map(lambda v: None if pd.isna(v) else f'"{float(v)!r}"^^<{T.XSD}double>')


def _normalise_datetime(cells: pd.Series) -> pd.Series:
    """``2025-03-04 06:00+0100`` -> ``2025-03-04T06:00:00+01:00`` (xsd:dateTime lexical form)."""
    done = cells.str.match(_CANONICAL_DATETIME) | (cells == "")
    if done.all():
        return cells
    todo = cells[~done]
    fixed = todo.str.replace(" ", "T", n=1, regex=False)
    fixed = fixed.str.replace(r"T(\d{2}:\d{2})(Z|[+-])", r"T\1:00\2", regex=True)
    fixed = fixed.str.replace(r"([+-]\d{2})(\d{2})$", r"\1:\2", regex=True)
    out = cells.copy()
    out[~done] = fixed
    return out


def _check_required(spec: TableSpec, frame: pd.DataFrame) -> None:
    label = frame.attrs["label"]
    for col in spec.columns:
        if col.required or (col.name in spec.key and col.kind in ("id", "key")):
            if col.name not in frame.columns:
                raise IngestError(
                    Where(label, 1, col.name),
                    f"required column {col.name!r} is missing; the header has {', '.join(c for c in frame.columns if c != LINE)}",
                )
            empty = frame[col.name] == ""
            if empty.any():
                raise _err(spec, frame, empty, col.name, "required cell is empty")


def _dedupe_rows(spec: TableSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Drop exact duplicate rows; two different rows with the same key are a conflict."""
    key = [k for k in spec.key if k in frame.columns]
    if not frame.duplicated(subset=key).any():  # the common case: hash the key columns only
        return frame
    content = [c for c in frame.columns if c != LINE]
    frame = frame.drop_duplicates(subset=content)
    dup = frame.duplicated(subset=key, keep=False)
    if dup.any():
        rows = frame[dup].sort_values(LINE)
        first = rows.iloc[0]
        twin = rows[(rows[key] == first[key]).all(axis=1)].iloc[1]
        label = frame.attrs["label"]
        ident = "/".join(str(first[k]) for k in key)
        raise ConflictError(
            Where(label, int(twin[LINE]), key[0]),
            f"id {ident!r} appears again with different data (first at line {int(first[LINE])})",
            value=ident,
        )
    return frame


def stage_bundle(
    folder: Path,
    *,
    base: str,
    lookup: StoreLookup,
    progress: Callable[[str], None] | None = None,
    feed: Callable[[memoryview], None] | None = None,
) -> StagedBundle:
    """Read, check and map every file of a bundle folder; write nothing.

    ``feed`` receives the N-Triples of every triple as it is mapped (whole lines,
    repeats included), before references resolve and the rows are checked against
    each other: a load can write them to a copy of the store while that goes on,
    and drop the copy if a check fails. The triples staged in the end are exactly
    those (this function drops repeats, never a triple).
    """
    known = {t.file for t in TABLES}
    present = sorted(p.name for p in folder.glob("*.csv"))
    for name in present:
        if name not in known:
            warnings.warn(
                f"{folder / name}: not a file of the CSV bundle contract; skipped", PharmaKGWarning, stacklevel=3
            )
    frames: dict[str, pd.DataFrame] = {}
    rows: dict[str, int] = {}
    for spec in TABLES:
        path = folder / spec.file
        if not path.exists():
            continue
        if progress:
            progress(spec.file)
        frame = read_table(path, label=str(path))
        frame.attrs["label"] = str(path)
        rows[spec.file] = len(frame)
        _check_required(spec, frame)
        frame = _dedupe_rows(spec, frame)
        frame.attrs["label"] = str(path)
        frames[spec.file] = frame
    if not frames:
        raise IngestError(Where(str(folder)), f"holds none of the bundle files ({', '.join(sorted(known))})")
    mapper = _Mapper(frames, base=base, lookup=lookup, feed=feed)
    # production.csv defines the lots it produces (intermediates need no lots.csv row)
    prod = frames.get("production.csv")
    if prod is not None:
        mapper.defined.setdefault("lot", set()).update(mint(base, "lot", prod["lot_id"]).tolist())
    for spec in TABLES:
        if spec.file in frames:
            mapper.map_table(spec, frames[spec.file])
    if prod is not None:
        _produced_lots(mapper, prod)
    referenced = _check_references(mapper)
    triples = mapper.parts.frame() if mapper.parts else pd.DataFrame(columns=TRIPLE_COLUMNS)
    fed = triples["o"] if feed is not None else None
    first = ~triples.duplicated(subset=["s", "p", "o"]).to_numpy()
    triples = keep_rows(triples, first)
    _check_internal_conflicts(triples)
    return StagedBundle(
        triples=triples,
        rows=rows,
        files=[folder / f for f in frames],
        referenced=referenced,
        fed_objects=fed,
        fed_first=first if feed is not None else None,
    )


def _produced_lots(mapper: _Mapper, prod: pd.DataFrame) -> None:
    """A produced lot unknown elsewhere becomes a MaterialLot of the batch's product."""
    lots = mapper.frames.get("lots.csv")
    listed = set(lots["id"]) if lots is not None else set()
    new = prod[~prod["lot_id"].isin(listed)].drop_duplicates("lot_id")
    if new.empty:
        return
    iris = mint(mapper.base, "lot", new["lot_id"])
    existing = set(mapper.lookup.types(iris.tolist())["iri"])
    keep = ~member(iris, existing)
    new, iris = new[keep], iris[keep]
    if new.empty:
        return
    spec = _spec("production.csv")
    s = iri_column(iris)
    product = mapper._batch_attr(new, "product_id")
    mapper.emit(spec, new, s, T.type_, pd.Series(f"<{T.MaterialLot}>", index=new.index), "lot_id")
    mapper.emit(spec, new, s, T.identifier, literal_column(new["lot_id"]), "lot_id")
    material = iri_column(mint(mapper.base, "material", product)).where(product != "")
    mapper.emit(spec, new, s, T.material, material, "lot_id")


def _check_references(mapper: _Mapper) -> pd.DataFrame:
    """Every reference must name something the bundle defines or the store holds.

    Returns the rdf:types of the referenced nodes found in the store, which the
    SHACL check of the staged data needs for sh:class.
    """
    outside: set[str] = set()
    for _, _, _, kind, iris in mapper.refs:
        defined = (
            mapper.defined.get(kind, set())
            if "|" not in kind
            else set().union(*(mapper.defined.get(k, set()) for k in kind.split("|")))
        )
        outside.update(set(pd.unique(iris.dropna())) - defined)
    found = mapper.lookup.types(outside) if outside else pd.DataFrame(columns=["iri", "type"])
    in_store = set(found["iri"])
    for spec, frame, col, kind, iris in mapper.refs:
        defined = set().union(*(mapper.defined.get(k, set()) for k in kind.split("|")))
        missing = frame[col].ne("") & (iris.isna() | ~(member(iris, defined) | member(iris, in_store)))
        if missing.any():
            what = kind.replace("|", " or ")
            raise _err(
                spec,
                frame,
                missing,
                col,
                f"refers to {what}{{value}}, which is neither in this bundle nor in the store",
            )
    return found


def _check_internal_conflicts(triples: pd.DataFrame) -> None:
    single = ~triples["p"].isin(MULTI_VALUED).to_numpy()
    keys = pd.DataFrame({c: term_codes(triples[c])[0][single] for c in ("s", "p")})
    twice = keys.duplicated(keep=False).to_numpy()
    if not twice.any():
        return
    clash = triples[single][twice]
    first_key = clash.iloc[0][["s", "p"]]
    both = clash[(clash["s"] == first_key["s"]) & (clash["p"] == first_key["p"])].sort_values(["file", "line"])
    a, b = both.iloc[0], both.iloc[1]
    raise ConflictError(
        Where(b["file"], int(b["line"]), b["column"]),
        f"gives {b['s']} the value {b['o']} but {a['file']} line {int(a['line'])} gives it {a['o']}",
        value=b["o"],
    )
