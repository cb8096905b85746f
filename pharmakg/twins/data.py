"""Batch history for a twin, read from the graph by SPARQL: one row per batch, one column per port.

Why here and not in each kind: every kind reads its ports the same four ways
(see :class:`~pharmakg.twins.model.Port`), and the values must arrive in the
port's unit whatever unit the plant recorded them in (pint converts; a wrong
dimension is a TwinUnitError naming the port). One query per port keeps each
one small and lets the store do the joins; pandas only aligns the columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..store.base import sparql_string
from .model import STORAGE_VIAS, Port, Twin, TwinError, convert_port

if TYPE_CHECKING:
    from ..kg import KnowledgeGraph

__all__ = ["history", "stability_history"]

_BATCHES = """
SELECT ?b ?batch ?start ?deviations ?unit WHERE {{
  {{ SELECT ?b (COUNT(DISTINCT ?d) AS ?deviations) WHERE {{
      ?b a pkg:Batch . OPTIONAL {{ ?d a pkg:Deviation ; pkg:batch ?b }} }} GROUP BY ?b }}
  ?b dcterms:identifier ?batch .
  OPTIONAL {{ ?b pkg:startTime ?start }}
  {unit}
}}"""
_UNIT = """OPTIONAL { ?b pkg:usedEquipment ?e . ?e pkg:equipmentClass %s ; dcterms:identifier ?unit }"""

# GMP impact assessment of a failed calibration: every batch that ran on the unit (or a unit
# holding the failed module) since the module's last passing calibration is suspect data.
# Three small queries and a pandas interval join: one SPARQL query with NOT EXISTS over
# every calibration was ~30x slower on a year of history.
_CALIBRATIONS = """SELECT ?m ?t ?o WHERE {
  ?ev a pkg:EquipmentEvent ; pkg:eventType pkg:Calibration ; pkg:equipment ?m ; pkg:time ?t ; pkg:outcome ?o .
  FILTER EXISTS { ?bad pkg:eventType pkg:Calibration ; pkg:equipment ?m ; pkg:outcome ?f . FILTER(LCASE(STR(?f)) = "fail") } }"""
_HOLDERS = (
    """SELECT ?m ?b ?s WHERE { VALUES ?m { %s } ?m pkg:partOf* ?e . ?b pkg:usedEquipment ?e ; pkg:startTime ?s }"""
)


def _suspect(kg: KnowledgeGraph) -> set[str]:
    cal = kg.query(_CALIBRATIONS)
    if cal.empty:
        return set()
    cal["fail"] = cal["o"].astype(str).str.lower() == "fail"
    cal = cal.sort_values("t")
    windows = []  # (module, from, to]: since the last pass before a failure, up to the failure
    for m, g in cal.groupby("m", sort=False):
        last_pass = None
        for t, fail in zip(g["t"], g["fail"], strict=True):
            if fail:
                windows.append((m, last_pass, t))
            else:
                last_pass = t
    if not windows:
        return set()
    modules = sorted({str(w[0]) for w in windows})
    used = kg.query(_HOLDERS % " ".join(f"<{m}>" for m in modules))
    hits: set[str] = set()
    for m, lo, hi in windows:
        u = used[used["m"] == m]
        inside = u["s"] <= hi
        if lo is not None:
            inside &= u["s"] >= lo
        hits.update(u.loc[inside, "b"])
    return hits


_QUERIES = {
    "parameter": """SELECT ?b ?v ?u WHERE {{
  ?x pkg:parameter <{src}> ; pkg:batch ?b ; pkg:value ?v . OPTIONAL {{ <{src}> pkg:unit ?u }} }}""",
    "result": """SELECT ?b ?v ?u WHERE {{
  ?x a pkg:TestResult ; pkg:attribute <{src}> ; pkg:batch ?b ; pkg:value ?v . OPTIONAL {{ <{src}> pkg:unit ?u }} }}""",
    # the attribute's values first (a few per lot), then who consumed those lots: starting from
    # the consumptions was 100x slower. A CoA value and a LIMS result on a lot both qualify.
    "consumed": """SELECT ?b ?lot ?q ?v ?u WHERE {{
  ?x pkg:attribute <{src}> ; pkg:lot ?lot ; pkg:value ?v .
  ?c pkg:lot ?lot ; a pkg:MaterialConsumption ; pkg:batch ?b . OPTIONAL {{ ?c pkg:quantity ?q }}
  OPTIONAL {{ <{src}> pkg:unit ?u }} }}""",
    "capacity": """SELECT ?b ?v ?u WHERE {{
  ?b pkg:usedEquipment ?e . ?e pkg:equipmentClass {cls} ; pkg:capacity ?v . OPTIONAL {{ ?e pkg:unit ?u }} }}""",
}


_STABILITY = """SELECT ?r ?lot ?b ?time ?v ?temp ?rh ?months ?u WHERE {{
  ?r a pkg:TestResult ; pkg:attribute <{src}> ; pkg:value ?v ; pkg:storageTime ?months .
  OPTIONAL {{ ?r pkg:storageTemperature ?temp }} OPTIONAL {{ ?r pkg:storageHumidity ?rh }}
  OPTIONAL {{ ?r pkg:lot/dcterms:identifier ?lot }} OPTIONAL {{ ?r pkg:batch ?b }} OPTIONAL {{ ?r pkg:time ?time }}
  OPTIONAL {{ <{src}> pkg:unit ?u }} }}"""
_STORED = {"storage_temperature": ("temp", "Cel"), "storage_humidity": ("rh", "%"), "storage_time": ("months", "mo")}


def stability_history(kg: KnowledgeGraph, twin: Twin) -> pd.DataFrame:
    """One row per stability result of the twin's output: the storage condition and pull point as inputs.

    Same columns as :func:`history` (``batch`` holds the lot tested, ``iri``
    the result), so fitting and scoring work unchanged; stability results carry
    no deviations or calibration suspicion of their own."""
    outputs = [p for p in twin.outputs if p.via == "result"]
    if len(outputs) != 1:
        raise TwinError("a stability twin needs exactly one output read from results (via='result')")
    out = outputs[0]
    rows = kg.query(_STABILITY.format(src=_source(kg, out)))
    if rows.empty:
        raise TwinError(f"the graph holds no stability results (storage_months) for {out.source}")
    recorded = next((str(u) for u in rows.get("u", pd.Series(dtype=object)).dropna()), out.unit)
    frame = pd.DataFrame(
        {
            "iri": rows["r"],
            "batch": rows["lot"] if "lot" in rows else rows["r"],
            "start": rows["time"] if "time" in rows else pd.NaT,
            "deviations": 0,
            "unit": None,
            "suspect": False,
        }
    )
    for port in twin.inputs:
        if port.via not in _STORED:
            raise TwinError(f"twin port {port.name!r}: a stability twin reads only storage_* inputs, not {port.via}")
        column, unit = _STORED[port.via]
        values = rows[column].to_numpy(dtype=float) if column in rows else np.full(len(rows), np.nan)
        frame[port.name] = convert_port(values, unit, port)
    frame[out.name] = convert_port(rows["v"].to_numpy(dtype=float), recorded, out)
    return frame.sort_values(["batch", out.name], kind="stable").reset_index(drop=True)


def history(kg: KnowledgeGraph, twin: Twin, *, batches: list[str] | None = None) -> pd.DataFrame:
    """Every batch with a value for at least one of the twin's ports, in start-time order.

    Columns: ``batch`` (business id), ``iri``, ``start``, ``deviations`` (how
    many deviations were raised on the batch), ``unit`` (the unit of the
    twin's equipment class it ran on, if the twin names one), ``suspect``
    (it ran on equipment whose module later failed calibration, with no
    passing calibration in between: its recorded values may be wrong), then one column
    per input and output port in the port's unit (NaN where the graph holds
    no value). ``batches`` (ids or IRIs) restricts the rows.
    """
    if any(p.via in STORAGE_VIAS for p in twin.inputs):
        return stability_history(kg, twin)
    unit = _UNIT % sparql_string(twin.equipment_class) if twin.equipment_class else ""
    meta = kg.query(_BATCHES.format(unit=unit))
    if meta.empty:
        raise TwinError(f"the graph at {kg.store.location} holds no batches")
    meta = meta.rename(columns={"b": "iri"}).drop_duplicates("iri").set_index("iri")
    frame = meta.reindex(columns=["batch", "start", "deviations", "unit"])
    for port in (*twin.inputs, *twin.outputs):
        frame[port.name] = _port_values(kg, twin, port).reindex(frame.index)
    ports = [p.name for p in (*twin.inputs, *twin.outputs)]
    frame = frame[frame[ports].notna().any(axis=1)]
    if batches is not None:
        wanted = set()
        for b in batches:
            try:
                wanted.add(kg.resolve(b))
            except KeyError as exc:
                raise TwinError(f"batch {b!r}: {exc.args[0]}") from None
        frame = frame[frame.index.isin(wanted)]
    frame["deviations"] = frame["deviations"].fillna(0).astype(int)
    suspect = _suspect(kg)
    frame.insert(list(frame.columns).index("unit") + 1, "suspect", frame.index.isin(suspect))
    frame = frame.sort_values(["start", "batch"], kind="stable")
    frame.index.name = "iri"
    return frame.reset_index()


def _source(kg: KnowledgeGraph, port: Port) -> str:
    try:
        return kg.resolve(port.source)
    except KeyError as exc:
        raise TwinError(f"twin port {port.name!r} is bound to {port.source!r}: {exc.args[0]}") from None


def _port_values(kg: KnowledgeGraph, twin: Twin, port: Port) -> pd.Series:
    if port.via == "capacity":
        sparql = _QUERIES["capacity"].format(cls=sparql_string(twin.equipment_class or ""))
    else:
        sparql = _QUERIES[port.via].format(src=_source(kg, port))
    rows = kg.query(sparql)
    if rows.empty:
        raise TwinError(
            f"twin port {port.name!r}: the graph holds no {port.via} values for {port.source or twin.equipment_class}"
        )
    units: list[str] = [str(u) for u in rows["u"].dropna().unique()] if "u" in rows.columns else []
    recorded = str(units[0]) if len(units) else port.unit
    values = convert_port(rows["v"].to_numpy(dtype=float), recorded, port)
    rows = rows.assign(v=values)
    if port.via == "consumed":
        per_lot = rows.groupby(["b", "lot"], sort=False).agg(v=("v", "mean"), q=("q", "first"))
        w = per_lot["q"].astype(float).fillna(1.0).to_numpy()
        per_lot = per_lot.assign(w=w, wv=w * per_lot["v"].to_numpy())
        g = per_lot.groupby(level="b", sort=False)[["w", "wv"]].sum()
        return pd.Series(g["wv"].to_numpy() / np.where(g["w"] > 0, g["w"], np.nan), index=g.index)
    return rows.groupby("b", sort=False)["v"].mean()
