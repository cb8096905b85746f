"""Historian time series: Parquet beside the store, one graph node per batch x tag (layer L3).

A process historian records a tag every second or so; a year of one tag is
31.5 million points, far too many for triples and useless as triples anyway.
So the points go to Parquet files (one per batch x tag, sorted by time, with
row-group statistics for windowed reads; see :mod:`._series_store`) and the
graph gets what the rest of pharmakg reasons with:

- one ``pkg:TimeSeries`` node (a ``sosa:ObservationCollection``) per batch x
  tag: tag, unit, first/last point time, point count, file and its sha256,
  linked to the batch, the equipment and the process parameter it measures;
- **batch features** as ordinary parameter actuals, so that root cause, twins
  and trace use them like any other ``pkg:ParameterValue``: for a mapped
  parameter ``P`` (its business id), derived process parameters ``P:mean``,
  ``P:min``, ``P:max``, ``P:time_above_nor``, ``P:time_below_nor`` and
  ``P:slope`` (``pkg:featureOf`` P, ``pkg:feature`` the statistic), each with
  one value per batch. A qualifier on ``P``'s own values was the alternative;
  it was not chosen because every consumer of actuals (root cause's history,
  the twins' ``via="parameter"`` ports) reads "the value of P in batch B" and
  would silently mix the mean with the max. Derived parameters copy P's
  recipe, step and criticality (and, for mean/min/max, its unit, target, NOR
  and PAR) and P's risk-assessment links (``pkg:Impact`` to the same CQAs,
  rationale saying where they come from), so root cause follows the same
  knowledge paths to them. These are snapshots taken at import time.

Which batch a point belongs to comes from the graph: the batch's equipment
use on the tag's equipment (or a unit it is part of), else the batch's own
start/end. A ``batch`` column in the file, when present, is only checked
against that. Everything the import writes to the graph is one atomic,
audited ``Store.add``; the Parquet files are staged first and moved into
place only after that commit succeeded (and removed if it failed).
"""

from __future__ import annotations

import functools
import json
import math
import re
import time as _time
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa

from .. import audit, units
from .. import terms as T
from ..errors import ConflictError, IngestError, StoreError, UnitError, Where
from ..store.base import Store, sparql_string
from ..validate import check_triples
from . import _diff_with_store, _has_ontology, _ontology_nquads, _raise_for_violations, source_graph
from ._lookup import StoreLookup
from ._read import LINE, read_table
from ._series_read import Points, read_points
from ._series_store import Staging, empty_frame, file_sha256, read_window, recover, relative_file, series_table
from ._triples import nt_lines

__all__ = [
    "FEATURES",
    "SeriesReport",
    "TagMap",
    "default_series_dir",
    "load_series",
    "read_mapping",
    "read_series",
    "recover_series",
    "series_catalog",
    "verify_series",
]

#: The batch features derived on import, in the order they are written.
FEATURES: tuple[str, ...] = ("mean", "min", "max", "time_above_nor", "time_below_nor", "slope")
_FEATURE_LABELS = {
    "mean": "batch mean",
    "min": "batch minimum",
    "max": "batch maximum",
    "time_above_nor": "minutes above NOR",
    "time_below_nor": "minutes below NOR",
    "slope": "slope per hour",
}
_SAME_UNIT = ("mean", "min", "max")  # features in the parameter's own unit, which inherit its limits
_EQUIPMENT_CLASSES = (
    T.Equipment,
    T.Enterprise,
    T.Site,
    T.Area,
    T.ProcessCell,
    T.Unit,
    T.EquipmentModule,
    T.ControlModule,
)
_END_OF_TIME = np.iinfo(np.int64).max
_PREFIXES = f"PREFIX pkg: <{T.PKG}>\nPREFIX dcterms: <{T.DCTERMS}>\nPREFIX rdfs: <{T.RDFS}>\nPREFIX xsd: <{T.XSD}>\n"
_XSD_DOUBLE = f"<{T.XSD}double>"
_XSD_INTEGER = f"<{T.XSD}integer>"
_XSD_DATETIME = f"<{T.XSD}dateTime>"
_DERIVED_FROM = T.PROV + "wasDerivedFrom"
_UNSAFE = re.compile(r"[^A-Za-z0-9._~-]")  # as in ._nt.encode_ids: ids are IRI path segments


# -- the mapping ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TagMap:
    """Which process parameter a historian tag measures, on which equipment, in which unit.

    ``unit`` is the unit of the numbers in the historian file (UCUM or pint);
    it may be empty when a long file carries a ``unit`` column.
    """

    tag: str
    parameter_id: str
    equipment_id: str
    unit: str = ""


@dataclass(frozen=True)
class _MapRow:
    entry: TagMap
    where: Where  # the mapping row (file, line), for errors


MappingLike = str | Path | pd.DataFrame | Mapping[str, TagMap | Mapping[str, str]] | Iterable[TagMap]


def read_mapping(mapping: MappingLike) -> list[_MapRow]:
    """The tag mapping from a CSV file (``tag, parameter_id, equipment_id, unit``), a DataFrame, a dict or TagMaps."""
    if isinstance(mapping, str | Path):
        path = Path(mapping)
        if not path.is_file():
            raise IngestError(
                Where(str(path)), "does not exist (the tag mapping: tag, parameter_id, equipment_id, unit)"
            )
        frame = read_table(path, label=str(path))
        return _mapping_rows(frame, str(path))
    if isinstance(mapping, pd.DataFrame):
        frame = mapping.astype(str).apply(lambda c: c.str.strip()).replace({"nan": "", "None": ""})
        frame[LINE] = np.arange(2, len(frame) + 2)
        return _mapping_rows(frame, "mapping (DataFrame)")
    entries: list[TagMap] = []
    if isinstance(mapping, Mapping):
        for tag, spec in mapping.items():
            if isinstance(spec, TagMap):
                entries.append(
                    spec if spec.tag == tag else TagMap(tag, spec.parameter_id, spec.equipment_id, spec.unit)
                )
            else:
                entries.append(
                    TagMap(
                        str(tag),
                        str(spec.get("parameter_id", "")),
                        str(spec.get("equipment_id", "")),
                        str(spec.get("unit", "") or ""),
                    )
                )
    else:
        entries = list(mapping)
    frame = pd.DataFrame(
        [(e.tag, e.parameter_id, e.equipment_id, e.unit) for e in entries],
        columns=["tag", "parameter_id", "equipment_id", "unit"],
        dtype=object,
    )
    frame[LINE] = np.arange(2, len(frame) + 2)
    return _mapping_rows(frame, "mapping")


def _mapping_rows(frame: pd.DataFrame, label: str) -> list[_MapRow]:
    in_file = not label.startswith("mapping")
    for column in ("tag", "parameter_id", "equipment_id"):
        if column not in frame.columns:
            head = ", ".join(c for c in frame.columns if c != LINE)
            raise IngestError(Where(label, 1, column), f"required column {column!r} is missing; the header has {head}")
    rows: dict[str, _MapRow] = {}
    for record in frame.to_dict("records"):
        line = int(record[LINE]) if in_file else None
        tag = str(record["tag"]).strip()
        entry = TagMap(
            tag,
            str(record["parameter_id"]).strip(),
            str(record["equipment_id"]).strip(),
            str(record.get("unit", "") or "").strip(),
        )
        where = Where(label if in_file else f"{label}[{tag!r}]", line)
        for column in ("tag", "parameter_id", "equipment_id"):
            if not getattr(entry, column):
                raise IngestError(Where(where.file, line, column), "required cell is empty")
        known = rows.get(tag)
        if known is not None and known.entry != entry:
            first = f" (first at line {known.where.line})" if known.where.line else ""
            raise ConflictError(Where(where.file, line, "tag"), f"maps tag {tag!r} a second time, differently{first}")
        rows.setdefault(tag, _MapRow(entry, where))
    if not rows:
        raise IngestError(Where(label), "maps no tag")
    return list(rows.values())


# -- what the store knows -------------------------------------------------------------------------
@dataclass
class _Param:
    iri: str
    id: str
    label: str | None = None
    unit: str | None = None
    limits: dict[str, float] = field(default_factory=dict)  # target, norLow, norHigh, parLow, parHigh
    criticality: str | None = None
    recipe: str | None = None
    step: str | None = None
    derived: bool = False
    impacts: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)  # cqa, cqa id, severity, why

    @property
    def nor_low(self) -> float | None:
        return self.limits.get("norLow")

    @property
    def nor_high(self) -> float | None:
        return self.limits.get("norHigh")


@dataclass
class _Tag:
    name: str
    row: _MapRow
    param: _Param
    equipment: str  # IRI
    equipment_id: str


def _select(store: Store, sparql: str) -> list[dict[str, str]]:
    raw = store.query(_PREFIXES + sparql)
    return [{k: v["value"] for k, v in b.items()} for b in json.loads(raw.body)["results"]["bindings"]]


def _is_iri(text: str) -> bool:
    return text.startswith(("http://", "https://", "urn:"))


@functools.lru_cache(maxsize=65536)
def _enc(ident: str) -> str:
    """One id as an IRI path segment, encoded exactly as the CSV bundle's ``encode_ids`` encodes it."""
    return quote(ident, safe="") if _UNSAFE.search(ident) else ident


def _mint(base: str, kind: str, ident: str) -> str:
    return ident if _is_iri(ident) else f"{base}{kind}/{_enc(ident)}"


def _values(iris: Iterable[str]) -> str:
    return " ".join(f"<{i}>" for i in sorted(set(iris)))


def _resolve(store: Store, rows: list[_MapRow], base: str) -> dict[str, _Tag]:
    """Parameters and equipment of the mapping, from the store; errors name the mapping row."""
    param_iris = {r.entry.tag: _mint(base, "parameter", r.entry.parameter_id) for r in rows}
    equip_iris = {r.entry.tag: _mint(base, "equipment", r.entry.equipment_id) for r in rows}
    params: dict[str, _Param] = {}
    for r in _select(
        store,
        f"""SELECT ?p ?id ?label ?unit ?target ?norLow ?norHigh ?parLow ?parHigh ?crit ?recipe ?step ?of WHERE {{
  VALUES ?p {{ {_values(param_iris.values())} }} ?p a pkg:ProcessParameter ; dcterms:identifier ?id .
  OPTIONAL {{ ?p rdfs:label ?label }} OPTIONAL {{ ?p pkg:unit ?unit }} OPTIONAL {{ ?p pkg:target ?target }}
  OPTIONAL {{ ?p pkg:norLow ?norLow }} OPTIONAL {{ ?p pkg:norHigh ?norHigh }}
  OPTIONAL {{ ?p pkg:parLow ?parLow }} OPTIONAL {{ ?p pkg:parHigh ?parHigh }}
  OPTIONAL {{ ?p pkg:criticality ?crit }} OPTIONAL {{ ?p pkg:recipe ?recipe }} OPTIONAL {{ ?p pkg:step ?step }}
  OPTIONAL {{ ?p pkg:featureOf ?of }} }}""",
    ):
        if r["p"] in params:
            continue
        limits: dict[str, float] = {
            k: float(r[k]) for k in ("target", "norLow", "norHigh", "parLow", "parHigh") if k in r
        }
        params[r["p"]] = _Param(
            r["p"],
            r["id"],
            r.get("label"),
            r.get("unit"),
            limits,
            r.get("crit"),
            r.get("recipe"),
            r.get("step"),
            "of" in r,
        )
    for r in _select(
        store,
        f"""SELECT ?p ?cqa ?cid ?sev ?why WHERE {{ VALUES ?p {{ {_values(params)} }}
  ?i a pkg:Impact ; pkg:impactSource ?p ; pkg:impactTarget ?cqa . ?cqa dcterms:identifier ?cid .
  OPTIONAL {{ ?i pkg:riskSeverity ?sev }} OPTIONAL {{ ?i pkg:rationale ?why }} }} ORDER BY ?p ?cid""",
    ):
        params[r["p"]].impacts.append((r["cqa"], r["cid"], r.get("sev"), r.get("why")))
    equipment = {
        r["e"]: r["id"]
        for r in _select(
            store,
            f"""SELECT ?e ?id WHERE {{ VALUES ?e {{ {_values(equip_iris.values())} }}
  VALUES ?c {{ {_values(_EQUIPMENT_CLASSES)} }} ?e a ?c ; dcterms:identifier ?id }}""",
        )
    }
    tags: dict[str, _Tag] = {}
    for row in rows:
        e = row.entry
        param = params.get(param_iris[e.tag])
        if param is None:
            raise IngestError(
                Where(row.where.file, row.where.line, "parameter_id"),
                f"refers to parameter {e.parameter_id!r}, which is not in the store (load its parameters.csv first)",
                value=e.parameter_id,
            )
        if param.derived:
            raise IngestError(
                Where(row.where.file, row.where.line, "parameter_id"),
                f"{e.parameter_id!r} is a batch feature derived by a series import; map the measured parameter",
                value=e.parameter_id,
            )
        eq = equip_iris[e.tag]
        if eq not in equipment:
            raise IngestError(
                Where(row.where.file, row.where.line, "equipment_id"),
                f"refers to equipment {e.equipment_id!r}, which is not in the store (load its equipment.csv first)",
                value=e.equipment_id,
            )
        if e.unit:
            _check_unit(e.unit, Where(row.where.file, row.where.line, "unit"))
        tags[e.tag] = _Tag(e.tag, row, param, eq, equipment[eq])
    return tags


def _check_unit(unit: str, where: Where) -> None:
    try:
        units.parse_unit(unit)
    except ValueError as exc:
        raise UnitError(where, str(exc), value=unit) from None


_NO_TIME = np.iinfo(np.int64).min


def _to_us(times: pd.Series) -> np.ndarray:
    """Microseconds since the epoch of xsd:dateTime strings; _NO_TIME where missing."""
    parsed = pd.to_datetime(times, format="ISO8601", utc=True, errors="coerce")
    ok = parsed.notna().to_numpy()
    out = np.full(len(parsed), _NO_TIME, dtype=np.int64)
    if ok.any():
        out[ok] = parsed[ok].dt.as_unit("us").astype("int64").to_numpy()
    return out


@dataclass
class _Windows:
    """The batch runs on one equipment item, as sorted, per-batch-merged intervals [start, end] in us."""

    starts: np.ndarray
    ends: np.ndarray
    batch: np.ndarray  # index into the batch table
    overlaps: list[tuple[int, int, int, int]]  # (from, to, batch a, batch b): two batches at once


def _windows(store: Store, equipment: Iterable[str]) -> tuple[dict[str, _Windows], list[tuple[str, str]]]:
    """Batch runs per equipment item (a use of it or of a unit it is part of; else the batch's own times)."""
    rows = _select(
        store,
        f"""SELECT ?eq ?b ?id ?how ?s ?e ?bs ?be WHERE {{
  VALUES ?eq {{ {_values(equipment)} }} ?eq pkg:partOf* ?u .
  {{ ?use a pkg:EquipmentUse ; pkg:equipment ?u ; pkg:batch ?b . BIND("use" AS ?how)
     OPTIONAL {{ ?use pkg:startTime ?s }} OPTIONAL {{ ?use pkg:endTime ?e }} }}
  UNION {{ ?b pkg:usedEquipment ?u . BIND("batch" AS ?how) }}
  ?b a pkg:Batch ; dcterms:identifier ?id .
  OPTIONAL {{ ?b pkg:startTime ?bs }} OPTIONAL {{ ?b pkg:endTime ?be }} }}""",
    )
    frame = pd.DataFrame(rows, columns=["eq", "b", "id", "how", "s", "e", "bs", "be"])
    batches: list[tuple[str, str]] = []
    out: dict[str, _Windows] = {}
    if frame.empty:
        return out, batches
    frame["start"] = _to_us(frame["s"].astype(object).where(frame["s"].notna(), frame["bs"]))
    frame["end"] = _to_us(frame["e"].astype(object).where(frame["e"].notna(), frame["be"]))
    frame.loc[frame["end"] == _NO_TIME, "end"] = _END_OF_TIME  # still running: open-ended
    has_use = frame[frame["how"] == "use"].groupby("eq")["b"].agg(set).to_dict()
    frame = frame[(frame["how"] == "use") | ~frame.apply(lambda r: r["b"] in has_use.get(r["eq"], set()), axis=1)]
    frame = frame[frame["start"] != _NO_TIME].drop_duplicates(["eq", "b", "start", "end"])
    index = {iri: i for i, iri in enumerate(sorted(set(frame["b"])))}
    ids = dict(zip(frame["b"], frame["id"], strict=False))
    batches = [(iri, ids[iri]) for iri in sorted(index)]
    for eq, group in frame.groupby("eq"):
        merged: list[list[int]] = []  # start, end, batch
        for b, runs in group.sort_values("start").groupby("b", sort=False):
            current: list[int] | None = None
            for s, e in zip(runs["start"], runs["end"], strict=True):
                if current is not None and s <= current[1]:
                    current[1] = max(current[1], int(e))
                else:
                    current = [int(s), int(e), index[str(b)]]
                    merged.append(current)
        merged.sort()
        overlaps = []
        reach, owner = np.iinfo(np.int64).min, -1
        for s, e, b in merged:
            if s < reach and owner != b:
                overlaps.append((s, min(e, reach), owner, b))
            if e > reach:
                reach, owner = e, b
        arr = np.asarray(merged, dtype=np.int64).reshape(-1, 3)
        out[str(eq)] = _Windows(arr[:, 0], arr[:, 1], arr[:, 2].astype(np.int32), overlaps)
    return out, batches


def _existing_batches(store: Store, ids: Iterable[str]) -> set[str]:
    wanted = sorted({i for i in ids if i})
    found: set[str] = set()
    for k in range(0, len(wanted), 2000):
        chunk = " ".join(sparql_string(i) for i in wanted[k : k + 2000])
        found |= {
            r["id"]
            for r in _select(
                store, f"SELECT ?id WHERE {{ VALUES ?id {{ {chunk} }} ?b a pkg:Batch ; dcterms:identifier ?id }}"
            )
        }
    return found


def _existing_series(store: Store, tags: Iterable[str]) -> dict[tuple[str, str], dict[str, str]]:
    """The series nodes already in the store for these tags: (batch IRI, tag) -> facts."""
    values = " ".join(sparql_string(t) for t in sorted(set(tags)))
    rows = _select(
        store,
        f"""SELECT ?b ?tag ?sha ?n ?s ?e WHERE {{ VALUES ?tag {{ {values} }}
  ?x a pkg:TimeSeries ; pkg:tag ?tag ; pkg:batch ?b ; pkg:sha256 ?sha ; pkg:pointCount ?n ;
     pkg:seriesStart ?s ; pkg:seriesEnd ?e }}""",
    )
    return {(r["b"], r["tag"]): r for r in rows}


# -- the report -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeriesReport:
    """What one series import wrote: per batch x tag one row of ``series``, and the batch features."""

    source: str
    graph: str
    series_dir: str
    points: int
    series: pd.DataFrame = field(
        repr=False
    )  # batch, tag, parameter, equipment, unit, start, end, points, file, sha256, status
    features: pd.DataFrame = field(repr=False)  # batch, tag, parameter, feature, value, unit
    triples_added: int = 0
    triples_already_present: int = 0
    empty_cells: int = 0
    dropped_outside: int = 0
    duplicates: int = 0
    ignored_columns: tuple[str, ...] = ()
    seconds: float = 0.0

    def to_frame(self) -> pd.DataFrame:
        return self.series.copy()

    def __str__(self) -> str:
        new = int((self.series["status"] == "new").sum()) if len(self.series) else 0
        extra = []
        if self.dropped_outside:
            extra.append(f"{self.dropped_outside} outside batch runs dropped")
        if self.duplicates:
            extra.append(f"{self.duplicates} repeated points dropped")
        if self.empty_cells:
            extra.append(f"{self.empty_cells} empty cells")
        note = f" ({'; '.join(extra)})" if extra else ""
        return (
            f"loaded {self.source}: {self.points} points{note} -> {len(self.series)} series "
            f"({new} new) of {self.series['tag'].nunique() if len(self.series) else 0} tag(s) in "
            f"{self.series['batch'].nunique() if len(self.series) else 0} batch(es), {len(self.features)} batch "
            f"features; {self.triples_added} triples added to <{self.graph}>, {self.seconds:.1f} s"
        )

    def _repr_html_(self) -> str:
        import html

        return f"<p>{html.escape(str(self))}</p>" + self.series.to_html(index=False)


# -- N-Triples terms ------------------------------------------------------------------------------
def _lit(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'


def _dbl(value: float) -> str:
    return f'"{float(value)!r}"^^{_XSD_DOUBLE}'


def _iso(us: int) -> str:
    return pd.Timestamp(int(us), unit="us", tz="UTC").isoformat().replace("+00:00", "Z")


def _dt(us: int) -> str:
    return f'"{_iso(us)}"^^{_XSD_DATETIME}'


@functools.lru_cache(maxsize=256)
def _slope_unit(unit: str) -> tuple[str, float]:
    """Unit of a slope per hour, and the factor from (unit)/h into it (a temperature slope is a difference: K/h)."""
    try:
        if str(units.parse_unit(unit).dimensionality) == "[temperature]":
            one, zero = units.convert(np.array([1.0, 0.0]), unit, "K")
            return "K/h", float(one - zero)
        units.parse_unit(f"{unit}/h")
        return f"{unit}/h", 1.0
    except ValueError:
        return f"({unit})/h", 1.0


# -- the import -----------------------------------------------------------------------------------
def load_series(
    store: Store,
    path: str | Path,
    *,
    mapping: MappingLike,
    series_dir: str | Path,
    base: str,
    user: str,
    reason: str,
    timezone: str | None = None,
    outside: Literal["error", "drop"] = "error",
    graph: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> SeriesReport:
    """Import one historian file: Parquet per batch x tag into ``series_dir``, nodes and features into the graph.

    Nothing is written unless everything checks out, and then the graph side is
    one transaction with its audit record. ``timezone`` is the zone of times
    written without a UTC offset (refused otherwise); ``outside="drop"`` keeps
    only the points that fall inside a batch run instead of refusing the file.
    """
    started_wall = audit.utc_now()
    t0 = _time.perf_counter()
    path = Path(path)
    if not path.is_file():
        raise IngestError(Where(str(path)), "does not exist" if not path.exists() else "is not a file")
    if outside not in ("error", "drop"):
        raise ValueError(f"outside must be 'error' or 'drop', not {outside!r}")
    if timezone is not None:
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {timezone!r} (an IANA name such as 'Europe/Ljubljana')") from None
    step = progress or (lambda _what: None)
    root = Path(series_dir)
    recover_series(store, root)
    step("mapping")
    rows = read_mapping(mapping)
    tags = _resolve(store, rows, base)
    target = graph or source_graph(base, path)
    step(f"reading {path.name}")
    pts = read_points(path, mapped=set(tags), timezone=timezone)
    if pts.tag_column is not None:
        for code, name in enumerate(pts.tag_names):
            if name not in tags:
                i = int(np.argmax(pts.tags == code))
                raise IngestError(
                    pts.where(i, pts.tag_column),
                    f"tag {name!r} has no mapping (add a row 'tag, parameter_id, equipment_id, unit' for it)",
                    value=name,
                )
    if len(pts.values) == 0:
        raise IngestError(Where(pts.file), "holds no values (every value cell is empty)")
    step("checking points")
    duplicates = _sort_and_dedupe(pts)
    stored_units, given_units = _convert_units(pts, tags)
    windows, batches = _windows(store, {t.equipment for t in tags.values()})
    bcode = _assign(store, pts, tags, windows, batches, outside)
    keep = bcode >= 0
    dropped = int((~keep).sum())
    if dropped:
        _take(pts, keep)
        bcode = bcode[keep]
    if len(pts.values) == 0:
        raise IngestError(Where(pts.file), "no point falls inside a batch run on its equipment")
    starts = _groups(pts, bcode, len(batches))
    existing = _existing_series(store, pts.tag_names)
    lookup = StoreLookup(store, exclude_graphs=(audit.audit_graph(base), audit.provenance_graph(base)))
    step("writing Parquet")
    staging = Staging(root)
    committing = False
    try:
        built = _build(pts, tags, (stored_units, given_units), batches, bcode, starts, staging, existing, base, root)
        step("checking against the store")
        staged = pd.DataFrame(built.triples, columns=["s", "p", "o", "file", "line", "column"])
        staged = staged.drop_duplicates(subset=["s", "p", "o"]).reset_index(drop=True)
        staged["g"] = f"<{target}>"
        new, present = _diff_with_store(staged, lookup)
        found = lookup.types(built.referenced)
        refs = pd.DataFrame({"s": "<" + found["iri"] + ">", "p": f"<{T.type_}>", "o": "<" + found["type"] + ">"})
        step("SHACL")
        report = check_triples(new, present, refs)
        if not report.conforms:
            _raise_for_violations(report, new)
        ntriples = nt_lines(new)
        payload = b"" if _has_ontology(store) else _ontology_nquads()
        sources = [audit.SourceRecord.of_file(path, pts.rows_read)]
        if isinstance(mapping, str | Path):
            sources.append(audit.SourceRecord.of_file(mapping, len(rows)))
        record = audit.load_record(
            user=user,
            reason=reason,
            target_graph=target,
            triples_added=len(new),
            written=ntriples + payload,
            sources=tuple(sources),
            started=started_wall,
        )
        staging.seal()
        step("commit")
        committing = True
        # the same commit as every load: data, ontology (first write) and the chained audit record together
        graphs = {target} | ({T.ONTOLOGY_GRAPH} if payload else set())
        audit.commit_add(store, base, record, payload, ntriples=ntriples, graph=target, graphs=graphs)
    except BaseException:
        if committing:
            _settle(store, staging)
        else:
            staging.discard()
        raise
    staging.publish()
    return SeriesReport(
        source=str(path),
        graph=target,
        series_dir=str(root),
        points=len(pts.values),
        series=pd.DataFrame(built.series, columns=_SERIES_COLUMNS),
        features=pd.DataFrame(built.features, columns=["batch", "tag", "parameter", "feature", "value", "unit"]),
        triples_added=len(new),
        triples_already_present=len(staged) - len(new),
        empty_cells=pts.empty,
        dropped_outside=dropped,
        duplicates=duplicates,
        ignored_columns=pts.ignored,
        seconds=_time.perf_counter() - t0,
    )


_SERIES_COLUMNS = [
    "batch",
    "tag",
    "parameter",
    "equipment",
    "unit",
    "start",
    "end",
    "points",
    "file",
    "sha256",
    "status",
]


def _settle(store: Store, staging: Staging) -> None:
    """The commit raised: publish if it happened after all (a remote store may time out late), else discard."""
    try:
        known = _committed(store, sorted(staging.files.items()))
    except Exception:
        staging.abandon()  # cannot tell: the next import or read decides (recover)
        return
    if staging.files and len(known) == len(staging.files):
        staging.publish()
    else:
        staging.discard()


def _take(pts: Points, mask: np.ndarray) -> None:
    pts.rows = pts.row_array()[mask]
    pts.tags, pts.ts, pts.values = pts.tags[mask], pts.ts[mask], pts.values[mask]
    if pts.units is not None:
        pts.units = pts.units[mask]
    if pts.batches is not None:
        pts.batches = pts.batches[mask]


def _sort_and_dedupe(pts: Points) -> int:
    """Order points by (tag, time); drop exact repeats, refuse two different values at one time."""
    tags, ts = pts.tags, pts.ts
    if len(ts) > 1:
        dtag = np.diff(tags)
        ordered = bool(np.all((dtag > 0) | ((dtag == 0) & (np.diff(ts) >= 0))))
        del dtag
        if not ordered:
            order = np.lexsort((pts.row_array(), ts, tags))
            _take(pts, order)
    same = (np.diff(pts.ts) == 0) & (np.diff(pts.tags) == 0)
    if not same.any():
        return 0
    later = np.flatnonzero(same) + 1
    differs = pts.values[later] != pts.values[later - 1]
    if differs.any():
        i = int(later[np.argmax(differs)])
        column = pts.value_columns[int(pts.tags[i])]
        raise ConflictError(
            pts.where(i, column),
            f"gives tag {pts.tag_names[int(pts.tags[i])]!r} a second value at {_iso(int(pts.ts[i]))} "
            f"({pts.values[i]!r}; {pts.row_word} {pts.line(pts.row(i - 1))} gives {pts.values[i - 1]!r})",
            value=float(pts.values[i]),
        )
    mask = np.ones(len(pts.ts), dtype=bool)
    mask[later] = False
    _take(pts, mask)
    return len(later)


def _tag_slices(pts: Points) -> list[tuple[int, int, int]]:
    """(tag code, begin, end) of each tag's points (points are sorted by tag)."""
    if len(pts.tags) == 0:
        return []
    cuts = np.flatnonzero(np.diff(pts.tags)) + 1
    begins = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [len(pts.tags)]])
    return [(int(pts.tags[b]), int(b), int(e)) for b, e in zip(begins, ends, strict=True)]


def _convert_units(pts: Points, tags: dict[str, _Tag]) -> tuple[dict[int, str], dict[int, set[str]]]:
    """Values into the parameter's unit (or the series' own unit when the parameter has none), in place.

    Returns, per tag code, the unit of the stored values and the units they were converted from.
    """
    pts_units: dict[int, str] = {}  # tag code -> unit of the stored values
    given: dict[int, set[str]] = {}
    for code, begin, end in _tag_slices(pts):
        tag = tags[pts.tag_names[code]]
        mapped_unit = tag.row.entry.unit
        parts: list[tuple[str, np.ndarray | slice, Where]] = []
        if pts.units is not None and (pts.units[begin:end] >= 0).any():
            codes = pts.units[begin:end]
            for u in np.unique(codes):
                sel = np.flatnonzero(codes == u)
                first = begin + int(sel[0])
                if u < 0:
                    if not mapped_unit:
                        raise UnitError(
                            pts.where(first, pts.unit_column or "unit"),
                            f"no unit for tag {tag.name!r}: give one in this cell or in the mapping's unit column",
                        )
                    parts.append((mapped_unit, sel + begin, Where(tag.row.where.file, tag.row.where.line, "unit")))
                else:
                    text = pts.unit_names[int(u)]
                    where = pts.where(first, pts.unit_column or "unit")
                    _check_unit(text, where)
                    parts.append((text, sel + begin, where))
        else:
            if not mapped_unit:
                raise UnitError(
                    Where(tag.row.where.file, tag.row.where.line, "unit"),
                    f"no unit for tag {tag.name!r}: the mapping's unit cell is empty and the file has no unit column",
                )
            parts.append((mapped_unit, slice(begin, end), Where(tag.row.where.file, tag.row.where.line, "unit")))
        wanted = tag.param.unit or parts[0][0]
        pts_units[code] = wanted
        given[code] = set()
        for unit, chosen, where in parts:
            if unit == wanted:
                continue
            if not pts.values.flags.writeable:  # a zero-copy view of the file's column
                pts.values = pts.values.copy()
            try:
                pts.values[chosen] = units.convert(pts.values[chosen], unit, wanted)
            except ValueError as exc:
                raise UnitError(where, f"{exc} (the unit of parameter {tag.param.id!r})", value=unit) from None
            given[code].add(unit)
    return pts_units, given


def _assign(
    store: Store,
    pts: Points,
    tags: dict[str, _Tag],
    windows: dict[str, _Windows],
    batches: list[tuple[str, str]],
    outside: str,
) -> np.ndarray:
    """Batch index of each point (-1: outside every run, dropped when allowed); checks a batch column."""
    out = np.full(len(pts.ts), -1, dtype=np.int32)
    label_to_batch = None
    if pts.batches is not None:
        known = _existing_batches(store, pts.batch_names)
        unknown = np.asarray([n not in known for n in pts.batch_names] + [False], dtype=bool)  # [-1] -> False
        bad = unknown[pts.batches]
        if bad.any():
            i = int(np.argmax(bad))
            name = pts.batch_names[int(pts.batches[i])]
            raise IngestError(
                pts.where(i, pts.batch_column or "batch"),
                f"refers to batch {name!r}, which is not in the store (load its batches.csv first)",
                value=name,
            )
        by_id = {bid: k for k, (_iri, bid) in enumerate(batches)}
        label_to_batch = np.asarray([by_id.get(n, -2) for n in pts.batch_names] + [-1], dtype=np.int32)
    for code, begin, end in _tag_slices(pts):
        tag = tags[pts.tag_names[code]]
        ts = pts.ts[begin:end]
        w = windows.get(tag.equipment)
        if w is None or len(w.starts) == 0:
            if outside == "drop":
                continue
            raise IngestError(
                pts.where(begin, pts.time_column),
                f"no batch ran on equipment {tag.equipment_id!r} (tag {tag.name!r}) according to the store: "
                "load the batches with their start/end and batch_equipment.csv rows first",
            )
        for start, stop, a, b in w.overlaps:
            lo, hi = np.searchsorted(ts, [start, stop], side="left")
            if hi > lo:
                raise IngestError(
                    pts.where(begin + int(lo), pts.time_column),
                    f"at {_iso(int(ts[lo]))} equipment {tag.equipment_id!r} was running both batch "
                    f"{batches[a][1]!r} and batch {batches[b][1]!r} (their runs overlap in the store); "
                    "correct the batch or equipment-use times with an audited update",
                )
        idx = np.searchsorted(w.starts, ts, side="right") - 1
        safe = np.maximum(idx, 0)
        inside = (idx >= 0) & (ts <= w.ends[safe])
        assigned = np.where(inside, w.batch[safe], -1).astype(np.int32)
        if not inside.all() and outside == "error":
            i = int(np.argmax(~inside))
            label = ""
            if pts.batches is not None and pts.batches[begin + i] >= 0:
                label = f" (the row says batch {pts.batch_names[int(pts.batches[begin + i])]!r})"
            raise IngestError(
                pts.where(begin + i, pts.time_column),
                f"{_iso(int(ts[i]))} is outside every batch run on equipment {tag.equipment_id!r} in the store{label}; "
                "pass outside='drop' (CLI --drop-outside) to keep only the points inside batch runs",
                value=_iso(int(ts[i])),
            )
        if label_to_batch is not None and pts.batches is not None:
            said = label_to_batch[pts.batches[begin:end]]
            wrong = inside & (said != -1) & (said != assigned)
            if wrong.any():
                i = int(np.argmax(wrong))
                name = pts.batch_names[int(pts.batches[begin + i])]
                raise IngestError(
                    pts.where(begin + i, pts.batch_column or "batch"),
                    f"says batch {name!r}, but at {_iso(int(ts[i]))} equipment {tag.equipment_id!r} was running batch "
                    f"{batches[int(assigned[i])][1]!r} according to the store (batch and equipment-use start/end)",
                    value=name,
                )
        out[begin:end] = assigned
    return out


def _groups(pts: Points, bcode: np.ndarray, n_batches: int) -> np.ndarray:
    """Start index of each (tag, batch) run; reorders points if a batch's points are not contiguous."""
    key = pts.tags.astype(np.int64) * (n_batches + 1) + bcode
    cuts = np.flatnonzero(np.diff(key)) + 1
    runs = key[np.concatenate([[0], cuts])]
    if len(np.unique(runs)) != len(runs):  # a batch ran twice on the unit with another in between
        order = np.argsort(key, kind="stable")
        _take(pts, order)
        bcode[:] = bcode[order]
        key = key[order]
        cuts = np.flatnonzero(np.diff(key)) + 1
    return np.concatenate([[0], cuts]).astype(np.int64)


@dataclass
class _Built:
    triples: list[tuple[str, str, str, str, int, str]] = field(default_factory=list)
    series: list[tuple[Any, ...]] = field(default_factory=list)
    features: list[tuple[Any, ...]] = field(default_factory=list)
    referenced: set[str] = field(default_factory=set)


def _build(
    pts: Points,
    tags: dict[str, _Tag],
    unit_info: tuple[dict[int, str], dict[int, set[str]]],
    batches: list[tuple[str, str]],
    bcode: np.ndarray,
    starts: np.ndarray,
    staging: Staging,
    existing: dict[tuple[str, str], dict[str, str]],
    base: str,
    root: Path,
) -> _Built:
    """Write each batch x tag file into staging; the triples of its node, its features and the derived parameters."""
    out = _Built()
    emit = out.triples.append
    stored_units, given_units = unit_info
    bounds = list(zip(starts.tolist(), [*starts[1:].tolist(), len(pts.ts)], strict=True))

    def group(begin: int) -> tuple[_Tag, str, str, str]:
        tag = tags[pts.tag_names[int(pts.tags[begin])]]
        batch_iri, batch_id = batches[int(bcode[begin])]
        return tag, batch_iri, batch_id, relative_file(tag.name, batch_id)

    def files() -> Iterable[tuple[str, pa.Table]]:
        for begin, end in bounds:
            tag, _, batch_id, relative = group(begin)
            meta = {"tag": tag.name, "batch": batch_id, "unit": stored_units[int(pts.tags[begin])]}
            meta |= {"parameter": tag.param.iri, "equipment": tag.equipment}
            yield relative, series_table(pts.ts[begin:end], pts.values[begin:end], meta)

    shas = staging.write_all(files())  # encoded, hashed and fsync-ed on a few threads
    intervals: dict[int, float] = {}
    derived_done: set[tuple[str, str]] = set()
    for (begin, end), sha in zip(bounds, shas, strict=True):
        code = int(pts.tags[begin])
        tag, batch_iri, batch_id, relative = group(begin)
        unit = stored_units[code]
        ts, values = pts.ts[begin:end], pts.values[begin:end]
        status = "new"
        known = existing.get((batch_iri, tag.name))
        if known is not None:
            if known["sha"] != sha:
                raise ConflictError(
                    pts.where(begin, pts.value_columns[code]),
                    f"the store already holds the series of tag {tag.name!r} for batch {batch_id!r} "
                    f"({known['n']} points, {known['s']} to {known['e']}) and this file gives different points "
                    f"({end - begin} points, {_iso(int(ts[0]))} to {_iso(int(ts[-1]))}); a batch's series is written "
                    "once: remove the old pkg:TimeSeries node with an audited update first",
                )
            status = "unchanged"
            if (root / relative).is_file():
                staging.drop(relative)
        file, line = pts.file, pts.line(pts.row(begin))
        vcol, tcol = pts.value_columns[code], pts.time_column
        node = f"<{base}series/{_enc(batch_id)}/{_enc(tag.name)}>"
        first, last = int(ts[0]), int(ts[-1])
        for p, o, col in (
            (T.type_, f"<{T.TimeSeries}>", vcol),
            (T.identifier, _lit(f"{batch_id}/{tag.name}"), vcol),
            (T.label, _lit(f"{tag.name} ({batch_id})"), vcol),
            (T.batch, f"<{batch_iri}>", tcol),
            (T.equipment, f"<{tag.equipment}>", vcol),
            (T.parameter, f"<{tag.param.iri}>", vcol),
            (T.tag, _lit(tag.name), vcol),
            (T.unit, _lit(unit), vcol),
            (T.seriesStart, _dt(first), tcol),
            (T.seriesEnd, _dt(last), tcol),
            (T.pointCount, f'"{end - begin}"^^{_XSD_INTEGER}', vcol),
            (T.seriesFile, _lit(relative), vcol),
            (T.sha256, _lit(sha), vcol),
        ):
            emit((node, f"<{p}>", o, file, line, col))
        if given_units[code]:
            emit((node, f"<{T.unitAsGiven}>", _lit(", ".join(sorted(given_units[code]))), file, line, vcol))
        out.referenced.update((batch_iri, tag.equipment, tag.param.iri))
        out.series.append(
            (
                batch_id,
                tag.name,
                tag.param.id,
                tag.equipment_id,
                unit,
                pd.Timestamp(first, unit="us", tz="UTC"),
                pd.Timestamp(last, unit="us", tz="UTC"),
                end - begin,
                relative,
                sha,
                status,
            )
        )
        if len(ts) < 2 and code not in intervals:  # one point: it stands for the tag's usual interval
            intervals[code] = _tag_interval(pts, code)
        for feature, (value, feature_unit) in _features(ts, values, tag.param, unit, intervals.get(code, 0.0)).items():
            derived = f"{tag.param.id}:{feature}"
            d_iri = f"{base}parameter/{_enc(derived)}"
            pv = f"<{base}parameter-value/{_enc(batch_id)}/{_enc(derived)}>"
            for p, o in (
                (T.type_, f"<{T.ParameterValue}>"),
                (T.identifier, _lit(f"{batch_id}/{derived}")),
                (T.batch, f"<{batch_iri}>"),
                (T.parameter, f"<{d_iri}>"),
                (T.value, _dbl(value)),
                (T.unit, _lit(feature_unit)),
                (T.time, _dt(last)),
                (_DERIVED_FROM, node),
            ):
                emit((pv, f"<{p}>", o, file, line, vcol))
            out.features.append((batch_id, tag.name, derived, feature, value, feature_unit))
            if (d_iri, feature) not in derived_done:
                derived_done.add((d_iri, feature))
                _derived_parameter(
                    emit, out.referenced, tag.param, d_iri, derived, feature, feature_unit, base, file, line, vcol
                )
    return out


def _tag_interval(pts: Points, code: int) -> float:
    """Median sampling interval (us) of one tag over the whole file."""
    ts = pts.ts[pts.tags == code]
    gaps = np.diff(ts)
    gaps = gaps[gaps > 0]
    return float(np.median(gaps)) if len(gaps) else 0.0


def _features(
    ts: np.ndarray, values: np.ndarray, param: _Param, unit: str, fallback_interval: float
) -> dict[str, tuple[float, str]]:
    """The batch features of one series (each with its unit); a feature that does not apply is left out.

    Mean, min and max are over the points (the historian samples at a fixed
    rate). Time above/below the NOR counts the points outside it times the
    median sampling interval of the batch, in minutes (no NOR side: no
    feature). The slope is the least-squares slope against time in hours.
    """
    n = len(values)
    mean = float(values.mean())
    out: dict[str, tuple[float, str]] = {
        "mean": (mean, unit),
        "min": (float(values.min()), unit),
        "max": (float(values.max()), unit),
    }
    interval = float(np.median(np.diff(ts))) if n >= 2 else fallback_interval  # times are distinct and sorted
    if interval > 0:
        minutes = interval / 60e6
        if param.nor_high is not None:
            out["time_above_nor"] = (float(np.count_nonzero(values > param.nor_high)) * minutes, "min")
        if param.nor_low is not None:
            out["time_below_nor"] = (float(np.count_nonzero(values < param.nor_low)) * minutes, "min")
    if n >= 2:
        hours = (ts - ts[0]) / 3.6e9
        centred = hours - hours.mean()
        spread = float(np.square(centred).sum())  # plain sums, not BLAS: steady under a busy CPU
        if spread > 0:
            slope_unit, factor = _slope_unit(unit)
            out["slope"] = (float((centred * (values - mean)).sum()) / spread * factor, slope_unit)
    return {k: out[k] for k in FEATURES if k in out and math.isfinite(out[k][0])}


def _derived_parameter(
    emit: Callable[[tuple[str, str, str, str, int, str]], None],
    referenced: set[str],
    param: _Param,
    iri: str,
    ident: str,
    feature: str,
    unit: str,
    base: str,
    file: str,
    line: int,
    column: str,
) -> None:
    """The process parameter ``P:feature``: what it summarises, P's context, and P's risk-assessment links."""
    s = f"<{iri}>"
    name = f"{param.label or param.id} ({_FEATURE_LABELS[feature]})"
    triples: list[tuple[str, str]] = [
        (T.type_, f"<{T.ProcessParameter}>"),
        (T.identifier, _lit(ident)),
        (T.label, _lit(name)),
        (T.featureOf, f"<{param.iri}>"),
        (T.feature, _lit(feature)),
        (T.unit, _lit(unit)),
    ]
    for pred, value in ((T.criticality, param.criticality), (T.recipe, param.recipe), (T.step, param.step)):
        if value:
            triples.append((pred, f"<{value}>"))
            if pred != T.criticality:
                referenced.add(value)
    if feature in _SAME_UNIT:
        for key, pred in (
            ("target", T.target),
            ("norLow", T.norLow),
            ("norHigh", T.norHigh),
            ("parLow", T.parLow),
            ("parHigh", T.parHigh),
        ):
            if key in param.limits:
                triples.append((pred, _dbl(param.limits[key])))
    for p, o in triples:
        emit((s, f"<{p}>", o, file, line, column))
    for cqa, cqa_id, severity, why in param.impacts:
        referenced.add(cqa)
        impact = f"<{base}impact/{_enc(ident)}/{_enc(cqa_id)}>"
        rationale = f"{_FEATURE_LABELS[feature]} of {param.id}, which impacts {cqa_id} in the risk assessment"
        if why:
            rationale += f": {why}"
        rows = [
            (T.type_, f"<{T.Impact}>"),
            (T.identifier, _lit(f"{ident}/{cqa_id}")),
            (T.impactSource, s),
            (T.impactTarget, f"<{cqa}>"),
            (T.rationale, _lit(rationale)),
        ]
        if severity is not None:
            rows.append((T.riskSeverity, f'"{int(float(severity))}"^^{_XSD_INTEGER}'))
        for p, o in rows:
            emit((impact, f"<{p}>", o, file, line, column))
        emit((s, f"<{T.impacts}>", f"<{cqa}>", file, line, column))


# -- reading, checking, recovering ----------------------------------------------------------------
def default_series_dir(store: Store) -> Path | None:
    """``<store folder>/series`` for an on-disk embedded store; None for an in-memory or remote one."""
    from ..store.oxigraph import EmbeddedStore

    if isinstance(store, EmbeddedStore) and store.path is not None:
        return store.path / "series"
    return None


def _committed(store: Store, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for k in range(0, len(pairs), 1000):
        chunk = " ".join(f"({sparql_string(f)} {sparql_string(h)})" for f, h in pairs[k : k + 1000])
        found |= {
            (r["f"], r["h"])
            for r in _select(
                store,
                f"SELECT ?f ?h WHERE {{ VALUES (?f ?h) {{ {chunk} }} ?x a pkg:TimeSeries ; pkg:seriesFile ?f ; pkg:sha256 ?h }}",
            )
        }
    return found


def recover_series(store: Store, series_dir: str | Path) -> int:
    """Finish (the graph has the nodes) or undo (it has not) imports that died before moving their files.

    Runs at the start of every import and read; returns the number of interrupted imports handled.
    """
    return recover(Path(series_dir), lambda pairs: _committed(store, pairs))


@dataclass(frozen=True)
class _Node:
    """One pkg:TimeSeries node, as read back for a window read."""

    iri: str
    batch: str
    tag: str
    parameter: str
    equipment: str
    unit: str
    start_us: int
    end_us: int
    points: int
    file: str
    sha256: str


def _nodes(store: Store, batch: str | None, tag: str | None) -> list[_Node]:
    """The series nodes (of one batch, by business id or IRI, and/or one tag), one SELECT, no DataFrame."""
    # the batch first when there is one: oxigraph joins in the order written, and a tag spans every batch
    where = []
    if batch is not None:
        where.append(
            f"VALUES ?b {{ <{batch}> }}" if _is_iri(batch) else f"?b dcterms:identifier {sparql_string(batch)} ."
        )
        where.append("?node pkg:batch ?b .")
    if tag is not None:
        where.append(f"?node pkg:tag {sparql_string(tag)} .")
    rows = _select(
        store,
        f"""SELECT ?node ?bid ?tag ?pid ?eid ?unit ?start ?end ?points ?file ?sha ?b ?p ?e WHERE {{ {" ".join(where)}
  ?node a pkg:TimeSeries ; pkg:batch ?b ; pkg:tag ?tag ; pkg:parameter ?p ; pkg:equipment ?e ; pkg:unit ?unit ;
        pkg:seriesStart ?start ; pkg:seriesEnd ?end ; pkg:pointCount ?points ; pkg:seriesFile ?file ; pkg:sha256 ?sha .
  ?b dcterms:identifier ?bid . OPTIONAL {{ ?p dcterms:identifier ?pid }} OPTIONAL {{ ?e dcterms:identifier ?eid }}
}} ORDER BY ?tag ?start""",
    )
    out: dict[str, _Node] = {}
    for r in rows:
        out.setdefault(
            r["node"],
            _Node(
                r["node"],
                r["bid"],
                r["tag"],
                r.get("pid", r["p"]),
                r.get("eid", r["e"]),
                r["unit"],
                _stamp_us(r["start"]),
                _stamp_us(r["end"]),
                int(r["points"]),
                r["file"],
                r["sha"],
            ),
        )
    return list(out.values())


def _stamp_us(text: str) -> int:
    stamp = pd.Timestamp(text)
    return int(np.datetime64(stamp.tz_convert("UTC").tz_localize(None), "us").astype(np.int64))


def series_catalog(store: Store, *, batch: str | None = None, tag: str | None = None) -> pd.DataFrame:
    """The series nodes of the graph (optionally of one batch, business id or IRI, and/or one tag)."""
    nodes = _nodes(store, batch, tag)
    frame = pd.DataFrame(
        [
            (n.batch, n.tag, n.parameter, n.equipment, n.unit, n.start_us, n.end_us, n.points, n.file, n.sha256, n.iri)
            for n in nodes
        ],
        columns=["batch", "tag", "parameter", "equipment", "unit", "start", "end", "points", "file", "sha256", "iri"],
    )
    for c in ("start", "end"):
        frame[c] = pd.to_datetime(frame[c].astype("int64"), unit="us", utc=True)
    return frame


def _instant(value: object, name: str) -> int | None:
    """Microseconds since the epoch of a window bound; naive times are refused (which zone would they be in?)."""
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        raise ValueError(
            f"{name} {value!r} is not a date-time (ISO 8601 with offset, e.g. 2025-03-04T06:00:00+01:00)"
        ) from None
    if stamp.tzinfo is None:
        raise ValueError(f"{name} {value!r} has no UTC offset; give one (e.g. 2025-03-04T06:00:00+01:00 or ...Z)")
    return int(np.datetime64(stamp.tz_convert("UTC").tz_localize(None), "us").astype(np.int64))


def read_series(
    store: Store,
    series_dir: str | Path,
    batch: str | None,
    tag: str,
    *,
    start: object = None,
    end: object = None,
    verify: bool = False,
) -> pd.DataFrame:
    """The points of ``tag`` in ``batch`` (or in every batch when None) with start <= time <= end.

    Columns ``timestamp`` (UTC) and ``value`` (in ``frame.attrs["unit"]``), plus
    ``batch`` when reading across batches. Only the files of the batches asked
    for are opened, and in them only the row groups whose time range meets the
    window. ``verify`` first checks each file against the sha256 in the graph.
    """
    root = Path(series_dir)
    recover_series(store, root)
    lo, hi = _instant(start, "start"), _instant(end, "end")
    nodes = _nodes(store, batch, tag)
    if not nodes:
        raise KeyError(_missing(store, batch, tag))
    if batch is None:
        nodes = [n for n in nodes if (lo is None or n.end_us >= lo) and (hi is None or n.start_us <= hi)]
    frames = []
    for node in nodes:
        path = root / node.file
        if not path.is_file():
            raise StoreError(
                f"series file {path} is missing (the graph lists it for tag {node.tag!r}, batch {node.batch!r}); "
                "restore the series folder from the backup made with the store"
            )
        if verify and file_sha256(path) != node.sha256:
            raise StoreError(f"series file {path} does not match the sha256 recorded in the graph: it was changed")
        try:
            frame = read_window([path], lo, hi).to_pandas()
        except (pa.ArrowException, OSError) as exc:
            raise StoreError(f"series file {path} cannot be read ({exc}); check it with verify_series") from exc
        if batch is None:
            frame.insert(0, "batch", node.batch)
        frames.append(frame)
    if frames:
        out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    else:
        out = empty_frame()
    if batch is None and len(frames) > 1:
        out = out.sort_values("timestamp", kind="stable").reset_index(drop=True)
    first = nodes[0] if nodes else None
    out.attrs.update(
        {
            "tag": tag,
            "batch": batch,
            "unit": first.unit if first else None,
            "parameter": first.parameter if first else None,
            "equipment": first.equipment if first else None,
        }
    )
    return out


def _missing(store: Store, batch: str | None, tag: str) -> str:
    if batch is None:
        return f"no series of tag {tag!r} in the graph"
    others = series_catalog(store, batch=batch)
    if others.empty:
        return f"no series for batch {batch!r} in the graph"
    return f"no series of tag {tag!r} for batch {batch!r}; its tags: {', '.join(sorted(set(others['tag'])))}"


def verify_series(store: Store, series_dir: str | Path) -> pd.DataFrame:
    """Every series file checked against the graph: batch, tag, file, status (ok, missing, changed)."""
    root = Path(series_dir)
    nodes = series_catalog(store)
    status = []
    for node in nodes.itertuples(index=False):
        path = root / str(node.file)
        status.append("missing" if not path.is_file() else ("ok" if file_sha256(path) == node.sha256 else "changed"))
    return pd.DataFrame({"batch": nodes["batch"], "tag": nodes["tag"], "file": nodes["file"], "status": status})
