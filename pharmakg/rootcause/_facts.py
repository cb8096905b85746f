"""The plant-wide tables a root-cause investigation compares against, and the lookups built on them.

``facts(kg)`` reads them with one set of bulk queries per store revision (kept
in ``kg.cache``). Investigations then index into them: every lookup an
investigation repeats (a parameter's history, a batch's start, the factors in a
batch's genealogy) is built once per set of facts here, because a scan of the
full tables per deviation cost seconds on the 100 000-batch plant (1.7 M
parameter actuals, 0.9 M consumption records).

String columns are plain Python objects rather than pandas' Arrow-backed
strings: the investigation walks them row by row, and iterating an Arrow
string array cost ~1 us per element (30 M elements, 35 s over ten
investigations at 100 000 batches).
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pathlib import Path

    from ..kg import KnowledgeGraph

log = logging.getLogger(__name__)


# -- plant facts (bulk tables, cached per store revision) ------------------------------------
@dataclass
class _Facts:
    ids: dict[str, str]  # iri -> business id
    labels: dict[str, str]
    params: pd.DataFrame  # iri, nor_low, nor_high, par_low, par_high, step_class, criticality
    attrs: pd.DataFrame  # iri, material, spec_low, spec_high, kind
    impacts: pd.DataFrame  # src, tgt, severity
    batches: pd.DataFrame  # iri, start, end, product, start_hour, end_hour (wall-clock hours as recorded)
    consumed: pd.DataFrame  # batch, lot
    produced: pd.DataFrame  # batch, lot
    lots: pd.DataFrame  # iri, material, supplier
    uses: pd.DataFrame  # batch, equipment
    equipment: pd.DataFrame  # iri, parent, level, cls
    pvalues: pd.DataFrame  # batch, parameter, value
    lotattr: pd.DataFrame  # lot, attribute, value
    results: pd.DataFrame  # batch, attribute, value, analyst
    events: pd.DataFrame  # iri, equipment, type, time, outcome, description
    deviations: pd.DataFrame  # iri, batch, equipment, attribute, opened, description
    operators: pd.DataFrame  # batch, person: who performed its recipe elements or took part in its events
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)  # per-attribute and per-batch lookups
    #: (table, column) -> (codes, uniques) of a key column, factorised while the kept tables were read
    #: as Arrow strings (``_keep._kept``): the grouping below then hashes no Python strings
    coded: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    #: the folder beside the store these tables were read from or kept in (its files can be linked, not rewritten)
    folder: Path | None = field(default=None, repr=False, compare=False)
    #: rdfs:label of the nodes shown by name (suppliers), as queried: ``labels`` lays them over ``ids``
    named: dict[str, str] = field(default_factory=dict, repr=False)

    def carry_lookups(self, earlier: _Facts, unchanged: set[str]) -> None:
        """Take over ``earlier``'s built lookups that rest only on ``unchanged`` tables (after a write)."""
        for name, tables in _LOOKUP_TABLES.items():
            if tables <= unchanged and name in earlier.__dict__:
                self.__dict__[name] = earlier.__dict__[name]

    def _groups(self, table: str, column: str) -> _Groups:
        return _Groups(getattr(self, table)[column], self.coded.get((table, column)))

    def _lookup(self, table: str, key: str, value: str) -> _Lookup:
        return _Lookup(self._groups(table, key), getattr(self, table)[value])

    # lookups every investigation walks, built once per set of facts
    @cached_property
    def batch_products(self) -> dict[str, str]:
        """batch -> the material of the lots it produced (its product)."""
        joined = self.produced.merge(self.lots[["iri", "material"]], left_on="lot", right_on="iri")
        return dict(zip(joined["batch"], joined["material"], strict=True))

    @cached_property
    def producers(self) -> _Lookup:
        """lot -> the batches that produced it."""
        return self._lookup("produced", "lot", "batch")

    @cached_property
    def inputs(self) -> _Lookup:
        """batch -> the lots it consumed."""
        return self._lookup("consumed", "batch", "lot")

    @cached_property
    def children(self) -> dict[str, set[str]]:
        return {
            str(k): v for k, v in self.equipment.dropna(subset=["parent"]).groupby("parent")["iri"].apply(set).items()
        }

    @cached_property
    def parents(self) -> dict[str, str]:
        return dict(self.equipment.dropna(subset=["parent"])[["iri", "parent"]].itertuples(index=False))

    @cached_property
    def by_id(self) -> dict[str, str]:
        """business id -> IRI."""
        return {v: k for k, v in self.ids.items()}

    @cached_property
    def lot_set(self) -> frozenset[str]:
        return frozenset(self.lots["iri"])

    @cached_property
    def lot_rows(self) -> _Lookup:
        """lot -> its (material, supplier) rows, in table order."""
        pairs = np.empty(len(self.lots), dtype=object)
        pairs[:] = list(zip(self.lots["material"], self.lots["supplier"], strict=True))
        return _Lookup(self._groups("lots", "iri"), pd.Series(pairs, dtype=object))

    @cached_property
    def equipment_of(self) -> _Lookup:
        """batch -> the equipment it ran on."""
        return self._lookup("uses", "batch", "equipment")

    @cached_property
    def operators_of(self) -> _Lookup:
        """batch -> the people who performed its recipe elements or took part in its events."""
        return self._lookup("operators", "batch", "person")

    @cached_property
    def operator_set(self) -> frozenset[str]:
        return frozenset(self.operators["person"])

    @cached_property
    def batch_table(self) -> pd.DataFrame:
        """The batches by IRI (the first row of a batch listed twice)."""
        return self.batches.drop_duplicates("iri").set_index("iri")

    @cached_property
    def start_series(self) -> pd.Series:
        """batch -> start time."""
        return self.batch_table["start"]

    @cached_property
    def start_of(self) -> dict[str, Any]:
        return {str(k): v for k, v in self.start_series.items()}

    @cached_property
    def end_of(self) -> dict[str, Any]:
        return {str(k): v for k, v in self.batch_table["end"].items()}

    @cached_property
    def param_table(self) -> pd.DataFrame:
        return self.params.drop_duplicates("iri").set_index("iri")

    @cached_property
    def attr_table(self) -> pd.DataFrame:
        return self.attrs.drop_duplicates("iri").set_index("iri")

    @cached_property
    def _param_rows(self) -> _Groups:
        return self._groups("pvalues", "parameter")

    def param_history(self, parameter: str) -> tuple[np.ndarray, np.ndarray]:
        """(batches, values) of every recorded actual of ``parameter``, in table order."""
        rows = self._param_rows.rows(parameter)
        return self.pvalues["batch"].to_numpy()[rows], self.pvalues["value"].to_numpy(dtype=float)[rows]

    @cached_property
    def _pvalue_rows(self) -> _Groups:
        return self._groups("pvalues", "batch")

    def params_of(self, batch: str) -> dict[str, float]:
        """parameter -> the batch's first recorded actual of it."""
        out: dict[str, float] = {}
        rows = self._pvalue_rows.rows(batch)
        params, values = self.pvalues["parameter"].to_numpy()[rows], self.pvalues["value"].to_numpy()[rows]
        for p, v in zip(params.tolist(), values.tolist(), strict=True):
            out.setdefault(p, v)
        return out

    @cached_property
    def product_deviation_rate(self) -> dict[str, tuple[int, int]]:
        """product -> (its batches, those with a deviation raised on them)."""
        raised = set(self.deviations["batch"].dropna())
        out: dict[str, tuple[int, int]] = {}
        for b, product in self.batch_products.items():
            n, k = out.get(product, (0, 0))
            out[product] = (n + 1, k + (b in raised))
        return out

    @cached_property
    def timed_events(self) -> pd.DataFrame:
        """Equipment events with a time, in time order (then by IRI), renumbered.

        A fixed order, not the store's: tables brought forward list re-read rows last,
        and which event an investigation shows first must not depend on that."""
        timed = self.events.dropna(subset=["time"])
        return timed.sort_values(["time", "iri"], kind="stable").reset_index(drop=True)

    @cached_property
    def _event_rows(self) -> _Groups:
        """equipment -> row numbers of its events in ``timed_events``."""
        return _Groups(self.timed_events["equipment"])

    def events_of(self, family: set[str]) -> pd.DataFrame:
        """The timed events of any of ``family``, in table order."""
        rows = np.concatenate([self._event_rows.rows(e) for e in family]) if family else _NO_ROWS
        return self.timed_events.iloc[np.sort(rows)]

    def coa(self, attribute: str) -> pd.DataFrame:
        """Lot attribute values of ``attribute`` with each lot's material and supplier (lot, value, material, supplier)."""
        key = ("coa", attribute)
        if key not in self.memo:
            self.memo[key] = self.lotattr[self.lotattr["attribute"] == attribute].merge(
                self.lots, left_on="lot", right_on="iri"
            )
        frame: pd.DataFrame = self.memo[key]
        return frame

    def tested(self, attribute: str) -> pd.DataFrame:
        """Test results of ``attribute`` (batch, attribute, value)."""
        key = ("tested", attribute)
        if key not in self.memo:
            self.memo[key] = self.results[self.results["attribute"] == attribute]
        frame: pd.DataFrame = self.memo[key]
        return frame

    @cached_property
    def start_hour(self) -> dict[str, float]:
        """batch -> the wall-clock hour it started (see ``_time``)."""
        hours = self.batch_table["start_hour"]
        return dict(zip(hours.index.tolist(), hours.tolist(), strict=True))

    @cached_property
    def recorded_product(self) -> dict[str, str]:
        """batch -> its ``pkg:product`` as recorded (a batch still running has produced no lot yet)."""
        products = self.batch_table["product"].dropna()
        return dict(zip(products.index.tolist(), products.tolist(), strict=True))

    def analysts(self, attribute: str) -> dict[str, set[str]]:
        """batch -> the analysts who tested ``attribute`` on it."""
        key = ("analysts", attribute)
        if key not in self.memo:
            out: dict[str, set[str]] = {}
            tested = self.tested(attribute)
            for b, who in zip(tested["batch"].tolist(), tested["analyst"].tolist(), strict=True):
                if isinstance(who, str):
                    out.setdefault(b, set()).add(who)
            self.memo[key] = out
        found: dict[str, set[str]] = self.memo[key]
        return found

    def shifts_of(self, batch: str, starts: tuple[int, ...]) -> frozenset[str]:
        """The shift each batch in the genealogy of ``batch`` started in, per product: ``shift_node`` names."""
        key = ("shifts", batch, starts)
        if key not in self.memo:
            found = set()
            for b in _upstream(self, batch):
                hour, product = self.start_hour.get(b), self.batch_products.get(b) or self.recorded_product.get(b)
                if hour is not None and not math.isnan(hour) and product is not None:
                    found.add(shift_node(product, shift_label(int(hour), starts)))
            self.memo[key] = frozenset(found)
        shifts: frozenset[str] = self.memo[key]
        return shifts

    def factors_of(self, batch: str) -> frozenset[str]:
        """Input lots, their suppliers, equipment and operators anywhere in the genealogy of ``batch`` (itself included)."""
        key = ("factors", batch)
        if key not in self.memo:
            found: set[str] = set()
            for b in _upstream(self, batch):
                for lot in self.inputs.get(b, ()):
                    found.add(lot)
                    found.update(s for _, s in self.lot_rows.get(lot, ()) if isinstance(s, str))
                found.update(self.equipment_of.get(b, ()))
                found.update(self.operators_of.get(b, ()))
            self.memo[key] = frozenset(found)
        factors: frozenset[str] = self.memo[key]
        return factors


#: each lookup ``_Facts`` builds -> the tables it rests on (the per-attribute and per-batch memo is
#: not carried over: it mixes several)
_LOOKUP_TABLES: dict[str, frozenset[str]] = {
    name: frozenset(tables.split())
    for name, tables in {
        "batch_products": "produced lots",
        "producers": "produced",
        "inputs": "consumed",
        "children": "equipment",
        "parents": "equipment",
        "by_id": "ids",
        "lot_set": "lots",
        "lot_rows": "lots",
        "equipment_of": "uses",
        "operators_of": "operators",
        "operator_set": "operators",
        "batch_table": "batches",
        "start_series": "batches",
        "start_of": "batches",
        "end_of": "batches",
        "start_hour": "batches",
        "recorded_product": "batches",
        "param_table": "params",
        "attr_table": "attrs",
        "_param_rows": "pvalues",
        "_pvalue_rows": "pvalues",
        "product_deviation_rate": "deviations produced lots",
        "timed_events": "events",
        "_event_rows": "events",
    }.items()
}


def _frame(kg: KnowledgeGraph, sparql: str, columns: list[str]) -> pd.DataFrame:
    rows = kg.rows(sparql)
    return pd.DataFrame([[r.get(c) for c in columns] for r in rows], columns=columns, dtype=object)


_NO_ROWS = np.empty(0, dtype=np.intp)
SHIFT_NS = "urn:pharmakg:shift:"


def shift_label(hour: int, starts: tuple[int, ...]) -> str:
    """The shift a wall-clock hour falls in, named by its hours ("22-06"); ``starts`` are the shifts' first hours."""
    ordered = sorted(starts)
    begin = max((h for h in ordered if h <= hour), default=ordered[-1])
    end = ordered[(ordered.index(begin) + 1) % len(ordered)]
    return f"{begin:02d}-{end:02d}"


def shift_node(product: str, label: str) -> str:
    """A shift as a node of its own: the batches of ``product`` started in that shift."""
    return f"{SHIFT_NS}{label}/{product}"


class _Groups:
    """Row numbers of a table grouped by one key column, built in one vectorised pass.

    ``pd.factorize`` and a stable argsort: a Python loop building a dict of lists
    over the 1.7 M parameter actuals of the 100 000-batch plant took seconds."""

    def __init__(self, keys: pd.Series, coded: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        # a missing key is -1: sorted first, never looked up
        codes, uniques = coded if coded is not None else pd.factorize(keys)
        self._code = dict(zip(uniques.tolist(), range(len(uniques)), strict=True))
        self._order = np.argsort(codes, kind="stable")
        self._bounds = np.searchsorted(codes[self._order], np.arange(len(uniques) + 1))

    def rows(self, key: str) -> np.ndarray:
        """The rows with ``key``, in table order."""
        c = self._code.get(key)
        return _NO_ROWS if c is None else self._order[self._bounds[c] : self._bounds[c + 1]]


class _Lookup:
    """key -> the values of another column on the rows with that key (a read-only multimap)."""

    def __init__(self, groups: _Groups, values: pd.Series) -> None:
        self._groups = groups
        self._values = values.to_numpy(dtype=object)

    def get(self, key: str, default: Any = ()) -> Any:
        rows = self._groups.rows(key)
        return self._values[rows] if len(rows) else default

    def pairs(self, keys: Iterable[str]) -> list[tuple[str, Any]]:
        """(key, value) for every row of any of ``keys``, in table order (as a pandas ``isin`` filter gives)."""
        found = [(self._groups.rows(k), k) for k in keys]
        if not found:
            return []
        rows = np.concatenate([r for r, _ in found])
        names = np.concatenate([np.full(len(r), k, dtype=object) for r, k in found])
        order = np.argsort(rows, kind="stable")
        return list(zip(names[order].tolist(), self._values[rows[order]].tolist(), strict=True))


def _num(frame: pd.DataFrame, *cols: str) -> pd.DataFrame:
    for c in cols:
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    return frame


def _time(frame: pd.DataFrame, *cols: str) -> pd.DataFrame:
    """Times as UTC timestamps, plus ``<col>_hour``: the hour on the clock where it was recorded.

    xsd:dateTime keeps the offset it was written with (ISO 8601 with offset, as the
    bundle contract asks), so its lexical hour is the plant's wall-clock hour: what
    a shift pattern is defined in. A time written in UTC (``Z``) gives the UTC hour."""
    for c in cols:
        text = frame[c].astype(object)
        frame[f"{c}_hour"] = pd.to_numeric(text.str.slice(11, 13), errors="coerce")
        frame[c] = pd.to_datetime(frame[c], utc=True, errors="coerce", format="ISO8601")
    return frame


#: name -> (SELECT, columns, columns to convert, "num" / "time" / ""): the tables of ``_Facts``
_TABLES: dict[str, tuple[str, list[str], tuple[str, ...], str]] = {
    "params": (
        (
            "SELECT ?iri ?nor_low ?nor_high ?par_low ?par_high ?step_class ?criticality WHERE { ?iri a "
            "pkg:ProcessParameter OPTIONAL { ?iri pkg:norLow ?nor_low } OPTIONAL { ?iri pkg:norHigh ?nor_high } "
            "OPTIONAL { ?iri pkg:parLow ?par_low } OPTIONAL { ?iri pkg:parHigh ?par_high } OPTIONAL { ?iri "
            "pkg:criticality ?criticality } OPTIONAL { ?iri pkg:step/pkg:partOf*/pkg:equipmentClass ?step_class }"
            " }"
        ),
        ["iri", "nor_low", "nor_high", "par_low", "par_high", "step_class", "criticality"],
        ("nor_low", "nor_high", "par_low", "par_high"),
        "num",
    ),
    "attrs": (
        (
            "SELECT ?iri ?material ?spec_low ?spec_high ?kind WHERE { ?iri a pkg:QualityAttribute OPTIONAL { ?iri"
            " pkg:material ?material } OPTIONAL { ?iri pkg:specLow ?spec_low } OPTIONAL { ?iri pkg:specHigh "
            "?spec_high } OPTIONAL { ?iri pkg:attributeKind ?kind } }"
        ),
        ["iri", "material", "spec_low", "spec_high", "kind"],
        ("spec_low", "spec_high"),
        "num",
    ),
    "impacts": (
        (
            "SELECT ?src ?tgt ?severity WHERE { ?i a pkg:Impact ; pkg:impactSource ?src ; pkg:impactTarget ?tgt "
            "OPTIONAL { ?i pkg:riskSeverity ?severity } }"
        ),
        ["src", "tgt", "severity"],
        ("severity",),
        "num",
    ),
    "batches": (
        (
            "SELECT ?iri ?start ?end ?product WHERE { ?iri a pkg:Batch OPTIONAL { ?iri pkg:startTime ?start } "
            "OPTIONAL { ?iri pkg:endTime ?end } OPTIONAL { ?iri pkg:product ?product } }"
        ),
        ["iri", "start", "end", "product"],
        ("start", "end"),
        "time",
    ),
    "consumed": (
        "SELECT ?batch ?lot WHERE { ?batch pkg:consumed ?lot }",
        ["batch", "lot"],
        (),
        "",
    ),
    "produced": (
        "SELECT ?batch ?lot WHERE { ?batch pkg:produced ?lot }",
        ["batch", "lot"],
        (),
        "",
    ),
    "lots": (
        (
            "SELECT ?iri ?material ?supplier WHERE { ?iri a pkg:MaterialLot OPTIONAL { ?iri pkg:material "
            "?material } OPTIONAL { ?iri pkg:supplier ?supplier } }"
        ),
        ["iri", "material", "supplier"],
        (),
        "",
    ),
    "uses": (
        "SELECT ?batch ?equipment WHERE { ?batch pkg:usedEquipment ?equipment }",
        ["batch", "equipment"],
        (),
        "",
    ),
    "equipment": (
        (
            "SELECT ?iri ?parent ?level ?cls WHERE { ?iri a ?level . VALUES ?level { pkg:Unit pkg:EquipmentModule"
            " pkg:ControlModule pkg:ProcessCell } OPTIONAL { ?iri pkg:partOf ?parent } OPTIONAL { ?iri "
            "pkg:equipmentClass ?cls } }"
        ),
        ["iri", "parent", "level", "cls"],
        (),
        "",
    ),
    "pvalues": (
        (
            "SELECT ?batch ?parameter ?value WHERE { ?v a pkg:ParameterValue ; pkg:batch ?batch ; pkg:parameter "
            "?parameter ; pkg:value ?value }"
        ),
        ["batch", "parameter", "value"],
        ("value",),
        "num",
    ),
    "lotattr": (
        (
            "SELECT ?lot ?attribute ?value WHERE { ?v a pkg:MaterialAttributeValue ; pkg:lot ?lot ; pkg:attribute"
            " ?attribute ; pkg:value ?value }"
        ),
        ["lot", "attribute", "value"],
        ("value",),
        "num",
    ),
    "results": (
        (
            "SELECT ?batch ?attribute ?value ?analyst WHERE { ?v a pkg:TestResult ; pkg:batch ?batch ; "
            "pkg:attribute ?attribute ; pkg:value ?value OPTIONAL { ?v pkg:analyst ?analyst } }"
        ),
        ["batch", "attribute", "value", "analyst"],
        ("value",),
        "num",
    ),
    "events": (
        (
            "SELECT ?iri ?equipment ?type ?time ?outcome ?description WHERE { ?iri a pkg:EquipmentEvent ; "
            "pkg:equipment ?equipment OPTIONAL { ?iri pkg:eventType ?type } OPTIONAL { ?iri pkg:time ?time } "
            "OPTIONAL { ?iri pkg:outcome ?outcome } OPTIONAL { ?iri pkg:description ?description } }"
        ),
        ["iri", "equipment", "type", "time", "outcome", "description"],
        ("time",),
        "time",
    ),
    "deviations": (
        (
            "SELECT ?iri ?batch ?equipment ?attribute ?opened ?description WHERE { ?iri a pkg:Deviation OPTIONAL "
            "{ ?iri pkg:batch ?batch } OPTIONAL { ?iri pkg:equipment ?equipment } OPTIONAL { ?iri pkg:attribute "
            "?attribute } OPTIONAL { ?iri pkg:opened ?opened } OPTIONAL { ?iri pkg:description ?description } }"
        ),
        ["iri", "batch", "equipment", "attribute", "opened", "description"],
        ("opened",),
        "time",
    ),
}
_TABLES["operators"] = (
    "SELECT DISTINCT ?batch ?person WHERE { { ?el pkg:performedBy ?person ; pkg:recipe ?r . ?batch a pkg:Batch ; "
    "pkg:recipe ?r } UNION { ?e pkg:performedBy ?person ; pkg:batch ?batch } }",
    ["batch", "person"],
    (),
    "",
)
_IDS = (
    "SELECT ?x ?id WHERE { VALUES ?c { pkg:ProcessParameter pkg:QualityAttribute pkg:Batch pkg:MaterialLot "
    "pkg:Supplier pkg:Equipment pkg:Unit pkg:EquipmentModule pkg:ControlModule pkg:EquipmentEvent pkg:Deviation "
    "pkg:Material pkg:Person } ?x a ?c ; dcterms:identifier ?id }"
)
#: only suppliers are shown by name (lots.csv names them); every other node by its business id
_LABELS = "SELECT ?x ?label WHERE { ?x a pkg:Supplier ; rdfs:label ?label }"


def _table(kg: KnowledgeGraph, name: str, sparql: str | None = None) -> pd.DataFrame:
    """Table ``name`` from the store; ``sparql`` in place of its own query (``_keep`` narrows it to some keys)."""
    own, columns, convert, kind = _TABLES[name]
    frame = _frame(kg, sparql or own, columns)
    return _num(frame, *convert) if kind == "num" else _time(frame, *convert) if kind == "time" else frame


def _read(kg: KnowledgeGraph) -> _Facts:
    """The tables, from the store.

    The queries run on a small thread pool: pyoxigraph releases the GIL while it
    evaluates and serialises, and a remote store answers requests in parallel."""
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        ids_rows = pool.submit(kg.rows, _IDS)
        label_rows = pool.submit(kg.rows, _LABELS)
        # the biggest tables first, so the pool does not end on one long query
        order = ["pvalues", "consumed", "uses", "results", "lots", "batches", "produced", "lotattr", "events"]
        order += [n for n in _TABLES if n not in order]
        tables = {n: pool.submit(_table, kg, n) for n in order}
        ids = {r["x"]: r["id"] for r in ids_rows.result()}
        named = {r["x"]: r["label"] for r in label_rows.result() if r.get("label")}
        frames: dict[str, Any] = {n: t.result() for n, t in tables.items()}
        return _Facts(ids=ids, labels=ids | named, named=named, **frames)


def _upstream(f: _Facts, batch: str) -> dict[str, int]:
    """Every batch upstream of ``batch`` (itself included) with its distance in batches."""
    producer, inputs = f.producers, f.inputs
    seen = {batch: 0}
    queue = deque([batch])
    while queue:
        b = queue.popleft()
        for lot in inputs.get(b, ()):
            for up in producer.get(lot, ()):
                if up not in seen:
                    seen[up] = seen[b] + 1
                    queue.append(up)
    return seen
