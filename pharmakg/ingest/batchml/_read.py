"""Stage a BatchML / B2MML document: every element mapped to triples before anything is written (layer L3).

The result is the same table the CSV bundle stages (N-Triples terms with the
file, line and element path each triple came from), so the shared commit path
(diff with the store, SHACL, one audited transaction) treats an XML document
exactly like a bundle, and every later error still points at an element.

What is read (docs/design.md, "BatchML / B2MML", has the full mapping table):

* recipes (``MasterRecipe``, ``ControlRecipe``, in ``BatchInformation`` or a
  batch production record): header, formula and element parameters, the
  element tree and its procedure logic (steps, transitions, links);
* batch production records: the executed control recipe with element times,
  equipment, performers and recorded parameter values; the record's events;
* B2MML material information (definitions, lots, sublots, assemblies) and
  production schedules / performance (material requirements and actuals),
  onto the same lot, batch, consumption and production nodes the bundle
  writes, so genealogy works across sources.

Structural checks run whether or not an XSD is given: required ids, known
element types, links and steps that resolve inside their procedure logic,
element ids unique within a recipe, numbers, dates and units that parse.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
from lxml import etree

from ... import terms as T
from ... import units
from ...errors import ConflictError, IngestError, UnitError, Where
from .._lookup import StoreLookup
from ..bundle import TRIPLE_COLUMNS, StagedBundle
from ._schemas import schema_folder, validate_document
from ._xml import KNOWN_NAMESPACES, element_path, local, parse_document

__all__ = ["stage_xml"]

ELEMENT_TYPES = {
    "Procedure": T.Procedure,
    "UnitProcedure": T.UnitProcedure,
    "UnitRecipe": T.UnitProcedure,
    "Operation": T.Operation,
    "Phase": T.Phase,
}
#: General/site recipe (BatchML GRecipe) process element types, ISA-88 part 3.
GRECIPE_TYPES = {
    "Process": T.Procedure,
    "Process Stage": T.UnitProcedure,
    "Process Operation": T.Operation,
    "Process Action": T.Phase,
}
MARKERS = {"Begin", "End"}
RECIPE_TYPES = {"general": T.GeneralRecipe, "site": T.SiteRecipe, "master": T.MasterRecipe, "control": T.ControlRecipe}
CRITICALITY = {"cpp": T.CPP, "kpp": T.KPP, "noncritical": T.NonCritical, "non-critical": T.NonCritical}
LOT_STATUS = {"quarantine": T.Quarantine, "quarantined": T.Quarantine, "released": T.Released, "rejected": T.Rejected}
#: Sub-parameters read as limits of their parent: optional NOR/PAR prefix, then Min/Max (or Low/High).
LIMIT_ID = re.compile(r"^(?:(NOR|PAR)[-_. ]?)?(MIN|MAX|LOW|HIGH|LO|HI)$", re.IGNORECASE)
NOMINAL_IDS = {"nominal", "target", "default", "setpoint"}
LIMIT_PREDICATE = {
    ("NOR", "low"): T.norLow,
    ("NOR", "high"): T.norHigh,
    ("PAR", "low"): T.parLow,
    ("PAR", "high"): T.parHigh,
}
#: MaterialUse values (V0401 and V0700) that make a lot an input or an output of the batch; other uses
#: (consumables, samples, inventory) are not genealogy and are not mapped.
CONSUMED = {"Consumed", "Material Consumed"}
PRODUCED = {"Produced", "Material Produced", "Yield Produced", "Co-product Produced", "By-product Produced"}
MAIN_PRODUCT = {"Produced", "Material Produced", "Yield Produced"}
#: OtherInformation ids read as the times of an executed element (V0700 has no element for them).
START_IDS = {"actualstarttime", "starttime"}
END_IDS = {"actualendtime", "endtime", "completiontime"}
#: Unit spellings meaning "no unit", and ERP count units (pint reads "pcs" as parsec and "unit" as a micronit).
NO_UNIT = {"", "null", "none", "n/a", "na", "-"}
COUNT_UNITS = {"ea", "each", "pc", "pcs", "pce", "piece", "pieces", "st", "stk", "unit", "units", "count"}
#: Predicates a subject may carry several times in one document.
MULTI = {
    f"<{p}>"
    for p in (
        T.type_,
        T.comment,
        T.precedes,
        T.approvedBy,
        T.performedBy,
        T.assembledFrom,
        T.consumed,
        T.produced,
        T.usedEquipment,
        T.sublotOf,
    )
}
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
_VERBS = ("Sync", "Process", "Show", "Get", "Acknowledge", "Change", "Respond", "Cancel", "Confirm")
_CONTAINERS = {
    "BatchInformation",
    "DataArea",
    "ProductionSchedule",
    "ProductionPerformance",
    "OperationsSchedule",
    "OperationsPerformance",
}


def stage_xml(
    path: Path,
    *,
    base: str,
    lookup: StoreLookup,
    graph: str,
    schemas: str | Path | None = None,
) -> StagedBundle:
    """Parse, (optionally) validate and map ``path``; write nothing.

    ``schemas`` is a folder of XSDs (else ``$PHARMAKG_XML_SCHEMAS``); without
    one only the structural checks of the mapping apply.
    """
    tree = parse_document(path)
    root = tree.getroot()
    namespace = etree.QName(root).namespace or ""
    if namespace not in KNOWN_NAMESPACES:
        known = "; ".join(f"{v}: {k}" for k, v in KNOWN_NAMESPACES.items())
        shown = f"namespace {namespace!r}" if namespace else "no namespace"
        raise IngestError(
            Where(str(path), root.sourceline, element_path(root)),
            f"root element {local(root)} is in {shown}, not BatchML/B2MML ({known})",
        )
    folder = schema_folder(schemas)
    if folder is not None:
        validate_document(tree, file=str(path), folder=folder)
    stager = _Stager(path, namespace, base=base, lookup=lookup)
    stager.dispatch(root)
    if stager.objects == 0:
        raise IngestError(
            Where(str(path), root.sourceline, element_path(root)),
            f"holds nothing pharmakg imports (root element {local(root)}); expected master or control recipes, "
            "a batch production record, material information, or production schedule / performance",
        )
    stager.finish()
    triples = stager.frame()
    triples["g"] = f"<{graph}>"
    referenced = stager.referenced(triples)
    return StagedBundle(triples=triples, rows={path.name: stager.objects}, files=[path], referenced=referenced)


# --------------------------------------------------------------------------- terms


def _iri(value: str) -> str:
    return f"<{value}>"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")


def _lit(value: str) -> str:
    return f'"{_escape(value)}"'


def _double(value: float) -> str:
    return f'"{float(value)!r}"^^<{T.XSD}double>'


def _integer(value: int) -> str:
    return f'"{int(value)}"^^<{T.XSD}integer>'


def _number(text: str | None) -> float | None:
    """A finite number from a value string (decimal comma accepted), else None."""
    if text is None:
        return None
    t = text.strip()
    if _DECIMAL_COMMA.match(t):
        t = t.replace(",", ".")
    try:
        v = float(t)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _key(*parts: str) -> str:
    """Percent-encoded key parts joined by '/', as the bundle mints record nodes."""
    return "/".join(quote(p, safe="") for p in parts if p != "")


@dataclass
class _Recipe:
    """What the walk of one recipe needs to know."""

    id: str
    iri: str
    batch: str | None  # batch id (control recipes)
    record: bool  # from a batch production record: parameter values are actuals
    child_tag: str  # RecipeElement, or RuntimeRecipeElement in the V0401 vendor record, or ProcessElement
    steps: dict[str, etree._Element] = field(default_factory=dict)
    general: bool = False  # a BatchML GRecipe (general or site recipe): process elements and directed links

    @property
    def type_tag(self) -> str:
        return "ProcessElementType" if self.general else "RecipeElementType"

    @property
    def parameter_tag(self) -> str:
        return "ProcessElementParameter" if self.general else "Parameter"


@dataclass
class _Flow:
    """One consumption or production record, summed over repeated actuals of one key."""

    cls: str
    batch: str
    lot: str
    ident: str
    el: etree._Element
    value: float | None = None
    unit: str | None = None
    given: tuple[str, str] | None = None
    repeated: bool = False


class _Stager:
    def __init__(self, path: Path, namespace: str, *, base: str, lookup: StoreLookup) -> None:
        self.path = path
        self.file = str(path)
        self.ns = namespace
        self.base = base
        self.lookup = lookup
        self.rows: list[tuple[str, str, str, int | None, str]] = []
        self.objects = 0
        self.lot_material: dict[str, str] = {}  # lot IRI -> material IRI written by this document
        self.lot_parent: dict[str, str] = {}  # sublot IRI -> parent lot IRI
        self.lot_pending: dict[
            str, tuple[etree._Element, str | None]
        ] = {}  # lot IRI -> (element, fallback material id)
        self.materials: set[str] = set()
        self.equipment: dict[str, etree._Element] = {}
        self.flows: dict[str, _Flow] = {}
        self.step_index: dict[str, dict[str, str]] = {}  # batch id -> element id -> step IRI

    # -- emitting -----------------------------------------------------------------
    def add(self, s: str, p: str, o: str | None, el: etree._Element) -> None:
        if o is None:
            return
        self.rows.append((_iri(s), _iri(p), o, el.sourceline, element_path(el)))

    def node(self, kind: str, *parts: str) -> str:
        return f"{self.base}{kind}/{_key(*parts)}"

    def where(self, el: etree._Element) -> Where:
        return Where(self.file, el.sourceline, element_path(el))

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.rows, columns=["s", "p", "o", "line", "column"])
        frame.insert(3, "file", self.file)
        frame = frame[TRIPLE_COLUMNS].drop_duplicates(subset=["s", "p", "o"]).reset_index(drop=True)
        self._check_conflicts(frame)
        return frame

    def _check_conflicts(self, frame: pd.DataFrame) -> None:
        single = frame[~frame["p"].isin(MULTI) & ~frame["p"].str.startswith(f"<{self.base}property/")]
        counts = single.groupby(["s", "p"], sort=False)["o"].transform("size")
        clash = single[counts > 1]
        if clash.empty:
            return
        first = clash.iloc[0]
        both = clash[(clash["s"] == first["s"]) & (clash["p"] == first["p"])].sort_values("line")
        a, b = both.iloc[0], both.iloc[1]
        raise ConflictError(
            Where(self.file, None if pd.isna(b["line"]) else int(b["line"]), b["column"]),
            f"gives {b['s'][1:-1]} {b['p'][1:-1].rsplit('#', 1)[-1]} = {b['o']} but line {a['line']} "
            f"({a['column']}) gives it {a['o']}",
            value=b["o"],
        )

    def referenced(self, triples: pd.DataFrame) -> pd.DataFrame:
        """Types, from the store, of nodes this document refers to without describing them (for sh:class)."""
        objects = set(triples.loc[triples["o"].str.startswith("<"), "o"].str.slice(1, -1))
        subjects = set(triples["s"].str.slice(1, -1))
        outside = objects - subjects
        if not outside:
            return pd.DataFrame(columns=["iri", "type"])
        return self.lookup.types(sorted(outside))

    # -- element access -------------------------------------------------------------
    def kids(self, el: etree._Element, name: str | None = None) -> list[etree._Element]:
        return [
            c
            for c in el
            if isinstance(c.tag, str)
            and etree.QName(c).namespace == self.ns
            and (name is None or etree.QName(c).localname == name)
        ]

    def kid(self, el: etree._Element, name: str) -> etree._Element | None:
        found = self.kids(el, name)
        return found[0] if found else None

    def at(self, el: etree._Element, name: str, default: etree._Element) -> etree._Element:
        """The child ``name`` of ``el`` if present, else ``default`` (for pointing errors at the closest element)."""
        found = self.kid(el, name)
        return found if found is not None else default

    @staticmethod
    def value(el: etree._Element | None) -> str | None:
        """Text of an element; an enumerated ``Other`` stands for its ``OtherValue``; empty is None."""
        if el is None:
            return None
        text = (el.text or "").strip()
        if text == "Other" and "OtherValue" in el.attrib:
            text = el.get("OtherValue", "").strip()  # an empty OtherValue: "other, unspecified"
        return text or None

    def text(self, el: etree._Element, name: str) -> str | None:
        return self.value(self.kid(el, name))

    def need(self, el: etree._Element, name: str) -> str:
        """A required child's text, or an error naming the element that lacks it."""
        found = self.text(el, name)
        if found is None:
            raise IngestError(self.where(el), f"{local(el)} has no {name}; every {local(el)} needs one")
        return found

    def datetime(self, el: etree._Element | None) -> str | None:
        """An xsd:dateTime literal (offset kept when given; a space separator is read as T)."""
        text = self.value(el)
        if text is None or el is None:
            return None
        try:
            parsed = datetime.fromisoformat(text.replace(" ", "T", 1) if " " in text else text)
        except ValueError:
            raise IngestError(
                self.where(el), f"expects an ISO 8601 date-time (e.g. 2025-03-04T06:00:00+01:00), got {text!r}"
            ) from None
        return f'"{parsed.isoformat()}"^^<{T.XSD}dateTime>'

    def unit(self, text: str | None, el: etree._Element) -> tuple[str | None, str | None]:
        """(unit pharmakg stores, unit as written when the spelling had to change); (None, None) for no unit."""
        if text is None or text.strip().lower() in NO_UNIT:
            return None, None
        t = text.strip()
        if t.lower() in COUNT_UNITS:
            return "1", t
        for candidate in (t, t.lower()):
            try:
                units.parse_unit(candidate)
            except ValueError:
                continue
            return candidate, (t if candidate != t else None)
        raise UnitError(
            self.where(el), f"unknown unit {t!r}: not a UCUM code nor a unit pint knows (e.g. kg, L, Cel, min, rpm)"
        )

    # -- generic content -------------------------------------------------------------
    def describe(self, s: str, el: etree._Element) -> None:
        """First non-empty Description is the name, the others comments."""
        texts = [(d, (d.text or "").strip()) for d in self.kids(el, "Description")]
        texts = [(d, t) for d, t in texts if t]
        if texts:
            self.add(s, T.label, _lit(texts[0][1]), texts[0][0])
        for d, t in texts[1:]:
            self.add(s, T.comment, _lit(t), d)

    def generic(self, s: str, name: str, value: str | None, el: etree._Element) -> None:
        """A value BatchML carries and the ontology has no term for: ``{base}property/{name}``, as the bundle keeps extra columns."""
        if value:
            self.add(s, f"{self.base}property/{quote(name, safe='')}", _lit(value), el)

    def other_information(self, s: str, el: etree._Element, *, skip: Iterable[str] = ()) -> None:
        skipped = {x.lower() for x in skip}
        for info in self.kids(el, "OtherInformation"):
            oid = self.text(info, "ID") or self.text(info, "OtherInfoID")
            if not oid or oid.lower() in skipped:
                continue
            for v in self.kids(info, "Value") + self.kids(info, "OtherValue"):
                for vs in self.kids(v, "ValueString"):
                    self.generic(s, oid, self.value(vs), vs)

    def person(self, name: str, el: etree._Element) -> str:
        p = self.node("person", name)
        self.add(p, T.type_, _iri(T.Person), el)
        self.add(p, T.identifier, _lit(name), el)
        self.add(p, T.label, _lit(name), el)
        return p

    def material(self, mid: str, el: etree._Element, *, label: str | None = None) -> str:
        m = self.node("material", mid)
        self.materials.add(m)
        self.add(m, T.type_, _iri(T.Material), el)
        self.add(m, T.identifier, _lit(mid), el)
        if label:
            self.add(m, T.label, _lit(label), el)
        return m

    def batch(self, bid: str, el: etree._Element) -> str:
        b = self.node("batch", bid)
        self.add(b, T.type_, _iri(T.Batch), el)
        self.add(b, T.identifier, _lit(bid), el)
        return b

    def equipment_ref(self, eid: str, el: etree._Element) -> str:
        e = self.node("equipment", eid)
        self.equipment.setdefault(e, el)
        return e

    # -- dispatch ----------------------------------------------------------------------
    def dispatch(self, el: etree._Element) -> None:
        name = local(el)
        handler = {
            "MasterRecipe": lambda e: self.recipe(e, T.MasterRecipe),
            "ControlRecipe": lambda e: self.recipe(e, T.ControlRecipe, batch=self.text(e, "BatchID")),
            "BatchProductionRecord": self.batch_record,
            "ProductionRequest": lambda e: self.production(e, planned=True),
            "OperationsRequest": lambda e: self.production(e, planned=True),
            "ProductionResponse": lambda e: self.production(e, planned=False),
            "OperationsResponse": lambda e: self.production(e, planned=False),
            "MaterialInformation": self.material_information,
            "MaterialDefinition": self.material_definition,
            "MaterialLot": lambda e: self.material_lot(e),
            "MaterialSubLot": lambda e: self.material_lot(e, sublot=True),
            "GRecipe": self.grecipe,
            "GRecipeInformation": self.grecipe_information,
        }.get(name)
        if handler is not None and etree.QName(el).namespace == self.ns:
            handler(el)
            return
        if name in _CONTAINERS or (el.getparent() is None and name.startswith(_VERBS)):
            for child in self.kids(el):
                self.dispatch(child)

    # -- recipes ------------------------------------------------------------------------
    def recipe(
        self,
        el: etree._Element,
        cls: str,
        *,
        batch: str | None = None,
        record: bool = False,
        child_tag: str = "RecipeElement",
    ) -> _Recipe:
        rid = self.need(el, "ID")
        ctx = _Recipe(rid, self.node("recipe", rid), batch, record, child_tag)
        self.objects += 1
        for info in self.kids(el, "OtherInformation"):
            if (self.text(info, "ID") or "").lower() == "recipetype":
                kind = (self.text(self.at(info, "Value", info), "ValueString") or "").lower()
                if kind not in RECIPE_TYPES:
                    raise IngestError(
                        self.where(info), f"RecipeType {kind!r} is not one of {', '.join(sorted(RECIPE_TYPES))}"
                    )
                cls = RECIPE_TYPES[kind]
        r = ctx.iri
        self.add(r, T.type_, _iri(cls), el)
        self.add(r, T.identifier, _lit(rid), self.at(el, "ID", el))
        self.describe(r, el)
        version = self.kid(el, "Version")
        if self.value(version) and version is not None:
            self.add(r, T.version, _lit(self.value(version) or ""), version)
        header = self.kid(el, "Header")
        if header is not None:
            self.header(r, header, recipe=True)
        for req in self.kids(el, "EquipmentRequirement"):
            self.generic(r, "EquipmentRequirement", self.requirement_class(req), req)
        self.other_information(r, el, skip=["RecipeType"])
        formula = self.kid(el, "Formula")
        if formula is not None:
            for p in self.kids(formula, "Parameter"):
                self.parameter(p, ctx, step_id=None, step=None, time=None)
        if batch:
            b = self.batch(batch, el)
            self.add(b, T.recipe, _iri(r), el)
            product = self.text(header, "ProductID") if header is not None else None
            if product:
                self.add(b, T.product, _iri(self.node("material", product)), header if header is not None else el)
            self.step_index.setdefault(batch, {})
        self.elements(el, ctx, owner=r, owner_id=None, parent=None)
        if batch:
            self.step_index[batch].update({eid: self.node("step", rid, eid) for eid in ctx.steps})
        return ctx

    def grecipe_information(self, el: etree._Element) -> None:
        for recipe in self.kids(el, "Recipe"):
            self.grecipe(recipe)

    def grecipe(self, el: etree._Element) -> None:
        """A BatchML general or site recipe (GRecipe): process elements instead of recipe elements."""
        rid = self.need(el, "ID")
        kind = (self.text(el, "GRecipeType") or "General").lower()
        cls = T.SiteRecipe if kind == "site" else T.GeneralRecipe
        ctx = _Recipe(rid, self.node("recipe", rid), None, False, "ProcessElement", general=True)
        self.objects += 1
        r = ctx.iri
        self.add(r, T.type_, _iri(cls), el)
        self.add(r, T.identifier, _lit(rid), self.at(el, "ID", el))
        self.describe(r, el)
        state = self.kid(el, "LifeCycleState")
        if self.value(state) and state is not None:
            self.add(r, T.status, _lit(self.value(state) or ""), state)
        header = self.kid(el, "Header")
        if header is not None:
            self.generic(
                r, "DerivedFromID", self.text(header, "DerivedFromID"), self.at(header, "DerivedFromID", header)
            )
            pid_el = self.kid(header, "ProductID")
            if self.value(pid_el) and pid_el is not None:
                m = self.material(self.value(pid_el) or "", pid_el, label=self.text(header, "ProductName"))
                self.add(r, T.product, _iri(m), pid_el)
            size = self.kid(header, "BatchSize")
            if size is not None:
                vs_el = self.kid(size, "ValueString")
                number = _number(self.value(vs_el))
                if self.value(vs_el) and number is None:
                    raise IngestError(self.where(self.at(size, "ValueString", size)), "expects a number")
                if number is not None:
                    self.add(r, T.batchSize, _double(number), size)
                    unit_el = self.kid(size, "UnitOfMeasure")
                    unit, given = self.unit(self.value(unit_el), unit_el if unit_el is not None else size)
                    if unit is not None:
                        self.add(r, T.unit, _lit(unit), size)
                        if given:
                            self.add(r, T.unitAsGiven, _lit(given), size)
        self.other_information(r, el)
        formula = self.kid(el, "Formula")
        if formula is not None:
            for p in self.kids(formula, "ProcessElementParameter"):
                self.parameter(p, ctx, step_id=None, step=None, time=None)
        procedure = self.kid(el, "ProcessProcedure")
        if procedure is not None:
            pid = self.need(procedure, "ID")
            ctx.steps[pid] = procedure
            self.element(procedure, ctx, seq=1, parent=None)

    def header(self, s: str, header: etree._Element, *, recipe: bool) -> None:
        final: tuple[str, etree._Element] | None = None
        last: tuple[str, etree._Element] | None = None
        for history in self.kids(header, "ApprovalHistory"):
            date_el = self.kid(history, "FinalApprovalDate")
            date = self.datetime(date_el)
            if date and date_el is not None:
                final = (date, date_el)
            for approval in self.kids(history, "IndividualApproval"):
                by = self.kid(approval, "ApprovedBy")
                if self.value(by) and by is not None:
                    self.add(s, T.approvedBy, _lit(self.value(by) or ""), by)
                when_el = self.kid(approval, "ApprovalDate")
                when = self.datetime(when_el)
                if when and when_el is not None:
                    last = (when, when_el)
        chosen = final or last
        if chosen:
            self.add(s, T.approvalDate, chosen[0], chosen[1])
        if not recipe:
            return
        pid_el, name_el = self.kid(header, "ProductID"), self.kid(header, "ProductName")
        pid, name = self.value(pid_el), self.value(name_el)
        if pid and pid_el is not None:
            m = self.material(pid, pid_el, label=name)
            self.add(s, T.product, _iri(m), pid_el)
        elif name and name_el is not None:
            self.generic(s, "ProductName", name, name_el)
        size = self.kid(header, "BatchSize")
        if size is not None:
            unit_el = self.kid(size, "UnitOfMeasure")
            unit, given = self.unit(self.value(unit_el), unit_el if unit_el is not None else size)
            wrote = False
            for tag, pred in (("Nominal", T.batchSize), ("Min", T.batchSizeMin), ("Max", T.batchSizeMax)):
                part = self.kid(size, tag)
                text = self.value(part)
                if text is None or part is None:
                    continue
                number = _number(text)
                if number is None:
                    raise IngestError(self.where(part), f"expects a number, got {text!r}")
                self.add(s, pred, _double(number), part)
                wrote = True
                if unit is None and part.get("unitCode"):
                    unit, given = self.unit(part.get("unitCode"), part)
            if wrote and unit is not None:
                self.add(s, T.unit, _lit(unit), unit_el if unit_el is not None else size)
                if given:
                    self.add(s, T.unitAsGiven, _lit(given), unit_el if unit_el is not None else size)
        status = self.kid(header, "Status")
        if self.value(status) and status is not None:
            self.add(s, T.status, _lit(self.value(status) or ""), status)

    def requirement_class(self, req: etree._Element) -> str | None:
        """The equipment class an EquipmentRequirement names: its EquipmentClass constraint, else its ID."""
        for constraint in self.kids(req, "Constraint"):
            if (self.text(constraint, "ID") or "").replace(" ", "").lower() in ("equipmentclass", "equipmentclassid"):
                return self.text(constraint, "Condition")
        return self.text(req, "ID")

    def elements(
        self, container: etree._Element, ctx: _Recipe, *, owner: str, owner_id: str | None, parent: str | None
    ) -> None:
        """The child elements of a recipe or element, ordered by their procedure logic."""
        real: dict[str, etree._Element] = {}
        markers: dict[str, etree._Element] = {}
        for child in self.kids(container, ctx.child_tag):
            eid = self.need(child, "ID")
            etype = self.text(child, ctx.type_tag) if ctx.general else self.need(child, ctx.type_tag)
            if etype in MARKERS and not ctx.general:
                markers[eid] = child
                continue
            if eid in ctx.steps:
                first = ctx.steps[eid]
                raise ConflictError(
                    self.where(self.at(child, "ID", child)),
                    f"recipe element id {eid!r} appears twice in recipe {ctx.id!r} (first at line {first.sourceline}); "
                    "ids must be unique within a recipe",
                    value=eid,
                )
            ctx.steps[eid] = child
            real[eid] = child
        logic = self.kid(container, "ProcedureLogic")
        edges: set[tuple[tuple[str, str], tuple[str, str]]] = set()
        transitions: dict[str, etree._Element] = {}
        if ctx.general:
            edges = self.directed_links(container, real)
        elif logic is not None:
            edges, transitions = self.logic(logic, real, markers)
        order = _order(list(real), edges, transitions)
        for seq, eid in enumerate(order, 1):
            self.element(real[eid], ctx, seq=seq, parent=parent)
        tpart = [owner_id] if owner_id else []

        def iri(key: tuple[str, str]) -> str:
            kind, ident = key
            return self.node("step", ctx.id, ident) if kind == "e" else self.node("transition", ctx.id, *tpart, ident)

        for tid, tel in transitions.items():
            t = iri(("t", tid))
            self.add(t, T.type_, _iri(T.Transition), tel)
            self.add(t, T.identifier, _lit(tid), self.at(tel, "ID", tel))
            self.add(t, T.transitionOf, _iri(owner), tel)
            self.describe(t, tel)
            cond = self.kid(tel, "Condition")
            if self.value(cond) and cond is not None:
                self.add(t, T.condition, _lit(self.value(cond) or ""), cond)
        for a, b in sorted(edges):
            source = real[a[1]] if a[0] == "e" else transitions[a[1]]
            self.add(iri(a), T.precedes, _iri(iri(b)), source)

    def logic(
        self, logic: etree._Element, real: dict[str, etree._Element], markers: dict[str, etree._Element]
    ) -> tuple[set[tuple[tuple[str, str], tuple[str, str]]], dict[str, etree._Element]]:
        """Precedence edges between elements and transitions of one ProcedureLogic.

        Links may point at other links (parallel junctions) and at Begin/End
        markers; junctions are walked through, markers end a path. A step,
        transition or link that does not resolve is an error.
        """
        steps: dict[str, str] = {}
        for st in self.kids(logic, "Step"):
            sid = self.need(st, "ID")
            rid_el = self.kid(st, "RecipeElementID")
            reid = self.value(rid_el)
            if reid is None:
                raise IngestError(self.where(st), f"Step {sid!r} has no RecipeElementID")
            if reid not in real and reid not in markers:
                raise IngestError(
                    self.where(rid_el if rid_el is not None else st),
                    f"Step {sid!r} refers to recipe element {reid!r}, which is not an element of this procedure "
                    f"(its elements: {', '.join(sorted(real)) or 'none'})",
                    value=reid,
                )
            steps[sid] = reid
        transitions = {self.need(t, "ID"): t for t in self.kids(logic, "Transition")}
        links = {self.need(lk, "ID"): lk for lk in self.kids(logic, "Link")}
        kinds: dict[str, dict[str, object]] = {
            "Step": dict(steps),
            "Transition": dict(transitions),
            "Link": dict(links),
        }
        out: dict[tuple[str, str], list[tuple[str, str]]] = {}

        def resolve(end: etree._Element, side: str, lid: str) -> tuple[str, str]:
            value_el = self.kid(end, f"{side}IDValue")
            value = self.value(value_el)
            if value is None:
                raise IngestError(self.where(end), f"Link {lid!r}: {side}ID has no {side}IDValue")
            said = self.text(end, f"{side}Type")
            order = [said] if said in kinds else []
            order += [k for k in ("Step", "Transition", "Link") if k not in order]
            for kind in order:
                if value in kinds[kind]:
                    return (kind[0].lower(), value)
            raise IngestError(
                self.where(value_el if value_el is not None else end),
                f"Link {lid!r}: {side}ID {value!r} names no Step, Transition or Link of this procedure logic",
                value=value,
            )

        for lid, lk in links.items():
            node = ("l", lid)
            for end in self.kids(lk, "FromID"):
                out.setdefault(resolve(end, "From", lid), []).append(node)
            for end in self.kids(lk, "ToID"):
                out.setdefault(node, []).append(resolve(end, "To", lid))

        def real_key(node: tuple[str, str]) -> tuple[str, str] | None:
            kind, ident = node
            if kind == "t":
                return ("t", ident)
            if kind == "s" and steps[ident] in real:
                return ("e", steps[ident])
            return None  # a Begin/End marker or a junction

        return _collapse(out, real_key), transitions

    def directed_links(
        self, container: etree._Element, real: dict[str, etree._Element]
    ) -> set[tuple[tuple[str, str], tuple[str, str]]]:
        """Precedence edges of a general recipe element: DirectedLinks between its process elements,
        walking through procedure chart elements (parallel indicators and the like)."""
        chart = {self.need(c, "ID") for c in self.kids(container, "ProcedureChartElement")}
        out: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for link in self.kids(container, "DirectedLink"):
            lid = self.text(link, "ID") or f"at line {link.sourceline}"
            ends: list[tuple[str, str]] = []
            for side in ("FromID", "ToID"):
                end_el = self.kid(link, side)
                value = self.value(end_el)
                if value is None or end_el is None:
                    raise IngestError(self.where(link), f"DirectedLink {lid!r} has no {side}")
                if value in real:
                    ends.append(("e", value))
                elif value in chart:
                    ends.append(("l", value))
                else:
                    raise IngestError(
                        self.where(end_el),
                        f"DirectedLink {lid!r}: {side} {value!r} names no ProcessElement or ProcedureChartElement "
                        f"of this element (its process elements: {', '.join(sorted(real)) or 'none'})",
                        value=value,
                    )
            out.setdefault(ends[0], []).append(ends[1])
        return _collapse(out, lambda node: node if node[0] == "e" else None)

    def element(self, el: etree._Element, ctx: _Recipe, *, seq: int, parent: str | None) -> None:
        eid = self.need(el, "ID")
        etype = (self.text(el, ctx.type_tag) or "") if ctx.general else self.need(el, ctx.type_tag)
        cls = (GRECIPE_TYPES if ctx.general else ELEMENT_TYPES).get(etype, T.ProceduralElement)
        s = self.node("step", ctx.id, eid)
        self.objects += 1
        self.add(s, T.type_, _iri(cls), el)
        if cls == T.ProceduralElement:
            self.generic(s, ctx.type_tag, etype, self.at(el, ctx.type_tag, el))
        if ctx.general:
            self.generic(s, "LifeCycleState", self.text(el, "LifeCycleState"), self.at(el, "LifeCycleState", el))
        self.add(s, T.identifier, _lit(eid), self.at(el, "ID", el))
        self.add(s, T.recipe, _iri(ctx.iri), el)
        if parent:
            self.add(s, T.partOf, _iri(parent), el)
        self.add(s, T.sequence, _integer(seq), el)
        self.describe(s, el)
        version = self.kid(el, "Version")
        if version is not None:
            self.generic(s, "Version", self.value(version), version)
        header = self.kid(el, "Header")
        if header is not None:
            self.header(s, header, recipe=False)
        requirements = [(r, self.requirement_class(r)) for r in self.kids(el, "EquipmentRequirement")]
        requirements = [(r, c) for r, c in requirements if c]
        if requirements:
            self.add(s, T.equipmentClass, _lit(requirements[0][1] or ""), requirements[0][0])
            for req_el, extra in requirements[1:]:
                self.generic(s, "EquipmentRequirement", extra, req_el)
        start = self.first_time(el, ("ActualStartTime", "StartTime"), START_IDS)
        end = self.first_time(el, ("ActualEndTime", "EndTime", "CompletionTime"), END_IDS)
        if start:
            self.add(s, T.startTime, start[0], start[1])
        if end:
            self.add(s, T.endTime, end[0], end[1])
        for performer in self.kids(el, "Performer"):
            name = self.value(performer)
            if name:
                self.add(s, T.performedBy, _iri(self.person(name, performer)), performer)
        if ctx.batch:
            for tag in ("ActualEquipmentID", "EquipmentID"):
                for eq_el in self.kids(el, tag):
                    eq_id = self.value(eq_el)
                    if eq_id:
                        self.equipment_use(ctx.batch, eid, s, eq_id, eq_el, start, end)
        for p in self.kids(el, ctx.parameter_tag):
            self.parameter(p, ctx, step_id=eid, step=s, time=end[0] if end else None)
        self.other_information(s, el, skip=START_IDS | END_IDS)
        self.elements(el, ctx, owner=s, owner_id=eid, parent=s)

    def first_time(
        self, el: etree._Element, tags: tuple[str, ...], info_ids: set[str]
    ) -> tuple[str, etree._Element] | None:
        """The first of ``tags`` that holds a date-time, else an OtherInformation with one of ``info_ids``."""
        for tag in tags:
            found = self.kid(el, tag)
            stamp = self.datetime(found)
            if stamp and found is not None:
                return stamp, found
        for info in self.kids(el, "OtherInformation"):
            if (self.text(info, "ID") or "").lower() in info_ids:
                value = self.kid(self.at(info, "Value", info), "ValueString")
                stamp = self.datetime(value)
                if stamp and value is not None:
                    return stamp, value
        return None

    def equipment_use(
        self,
        batch_id: str,
        step_id: str,
        step: str,
        eq_id: str,
        el: etree._Element,
        start: tuple[str, etree._Element] | None,
        end: tuple[str, etree._Element] | None,
    ) -> None:
        b = self.node("batch", batch_id)
        e = self.equipment_ref(eq_id, el)
        u = self.node("equipment-use", batch_id, step_id, eq_id)
        self.add(u, T.type_, _iri(T.EquipmentUse), el)
        self.add(u, T.identifier, _lit(f"{batch_id}/{step_id}/{eq_id}"), el)
        self.add(u, T.batch, _iri(b), el)
        self.add(u, T.step, _iri(step), el)
        self.add(u, T.equipment, _iri(e), el)
        if start:
            self.add(u, T.startTime, start[0], el)
        if end:
            self.add(u, T.endTime, end[0], el)
        self.add(b, T.usedEquipment, _iri(e), el)

    def parameter(
        self,
        p: etree._Element,
        ctx: _Recipe,
        *,
        step_id: str | None,
        step: str | None,
        time: str | None,
        prefix: str = "",
    ) -> None:
        pid = prefix + self.need(p, "ID")
        parts = [ctx.id, *([step_id] if step_id else []), pid]
        s = self.node("parameter", *parts)
        ident = "/".join(parts)
        self.objects += 1
        self.add(s, T.type_, _iri(T.ProcessParameter), p)
        self.add(s, T.identifier, _lit(ident), self.at(p, "ID", p))
        self.add(s, T.recipe, _iri(ctx.iri), p)
        if step:
            self.add(s, T.step, _iri(step), p)
        self.describe(s, p)
        types = self.kids(p, "ProcessElementParameterType" if ctx.general else "ParameterType")
        ptype = types[0] if types else None
        if self.value(ptype) not in (None, "ProcessParameter", "Input") and ptype is not None:  # set points: default
            self.add(s, T.parameterType, _lit(self.value(ptype) or ""), ptype)
        for sub in self.kids(p, "ParameterSubType") + types[1:]:
            v = self.value(sub)
            if not v:
                continue
            crit = CRITICALITY.get(v.lower().replace(" ", ""))
            if crit:
                self.add(s, T.criticality, _iri(crit), sub)
            else:
                self.generic(s, "ParameterSubType", v, sub)
        value_el = self.kid(p, "Value")
        number: float | None = None
        unit: str | None = None
        if value_el is not None:
            unit_el = self.kid(value_el, "UnitOfMeasure")
            unit, given = self.unit(self.value(unit_el), unit_el if unit_el is not None else value_el)
            text = " ".join(v for v in (self.value(x) for x in self.kids(value_el, "ValueString")) if v)
            number = _number(text) if text else None
            if number is not None:
                self.add(s, T.target, _double(number), value_el)
            elif text:
                self.add(s, T.textValue, _lit(text), value_el)
            if unit is not None:
                self.add(s, T.unit, _lit(unit), unit_el if unit_el is not None else value_el)
                if given:
                    self.add(s, T.unitAsGiven, _lit(given), unit_el if unit_el is not None else value_el)
        for sub in self.kids(p, ctx.parameter_tag):
            sid = self.need(sub, "ID")
            limit = LIMIT_ID.match(sid)
            if limit is None and sid.lower() not in NOMINAL_IDS:
                self.parameter(sub, ctx, step_id=step_id, step=step, time=time, prefix=f"{pid}.")
                continue
            sub_value = self.kid(sub, "Value")
            text = (
                " ".join(v for v in (self.value(x) for x in self.kids(sub_value, "ValueString")) if v)
                if sub_value is not None
                else ""
            )
            bound = _number(text)
            if bound is None:
                at = self.kid(sub_value, "ValueString") if sub_value is not None else None
                raise IngestError(
                    self.where(at if at is not None else sub),
                    f"limit {sid!r} of parameter {pid!r} expects a number, got {text!r}",
                )
            if sub_value is not None:
                sub_unit_el = self.kid(sub_value, "UnitOfMeasure")
                sub_unit, _ = self.unit(self.value(sub_unit_el), sub_unit_el if sub_unit_el is not None else sub_value)
                if sub_unit is not None and unit is not None and sub_unit != unit:
                    try:
                        bound = float(units.convert(np.array([bound]), sub_unit, unit)[0])
                    except ValueError as exc:
                        raise UnitError(self.where(sub_unit_el if sub_unit_el is not None else sub), str(exc)) from None
            if limit is None:
                if number is None:
                    self.add(s, T.target, _double(bound), sub)
                    number = bound
                continue
            subtypes = {(self.value(x) or "").upper() for x in self.kids(sub, "ParameterSubType")}
            span = (limit.group(1) or next((r for r in ("PAR", "NOR") if r in subtypes), "NOR")).upper()
            side = "low" if limit.group(2).upper() in ("MIN", "LOW", "LO") else "high"
            self.add(s, LIMIT_PREDICATE[(span, side)], _double(bound), sub)
        if ctx.record and ctx.batch and number is not None:
            self.parameter_value(ctx.batch, ident, s, number, unit, time, value_el if value_el is not None else p)

    def parameter_value(
        self,
        batch_id: str,
        param_id: str,
        param: str,
        value: float,
        unit: str | None,
        time: str | None,
        el: etree._Element,
    ) -> None:
        stamp = _plain_time(time)
        v = self.node("parameter-value", batch_id, param_id, stamp)
        self.add(v, T.type_, _iri(T.ParameterValue), el)
        self.add(v, T.identifier, _lit("/".join(x for x in (batch_id, param_id, stamp) if x)), el)
        self.add(v, T.batch, _iri(self.node("batch", batch_id)), el)
        self.add(v, T.parameter, _iri(param), el)
        self.add(v, T.value, _double(value), el)
        if unit is not None:
            self.add(v, T.unit, _lit(unit), el)
        if time:
            self.add(v, T.time, time, el)

    # -- batch production records ------------------------------------------------------
    def batch_record(self, rec: etree._Element) -> None:
        self.objects += 1
        rec_id = self.text(rec, "ID")
        batch_id = self.text(rec, "BatchID")
        batches: list[str] = []
        for container in self.kids(rec, "ExecutedControlRecipes"):  # the V0401 vendor record
            for ecr in self.kids(container, "ExecutedControlRecipe"):
                bid = self.text(ecr, "BatchID") or batch_id
                self.recipe(ecr, T.ControlRecipe, batch=bid, record=True, child_tag="RuntimeRecipeElement")
                if bid:
                    batches.append(bid)
        for container in self.kids(rec, "ControlRecipes"):  # V0700
            for wrapper in self.kids(container, "ControlRecipeRecord"):
                for cr in self.kids(wrapper, "ControlRecipe"):
                    bid = self.text(cr, "BatchID") or batch_id
                    self.recipe(cr, T.ControlRecipe, batch=bid, record=True)
                    if bid:
                        batches.append(bid)
        for container in self.kids(rec, "MasterRecipes"):
            for wrapper in self.kids(container, "MasterRecipeRecord"):
                for mr in self.kids(wrapper, "MasterRecipe"):
                    self.recipe(mr, T.MasterRecipe)
        if batch_id is None and len(set(batches)) == 1:
            batch_id = batches[0]
        if batch_id:
            b = self.batch(batch_id, rec)
            self.generic(b, "BatchProductionRecord", rec_id, self.at(rec, "ID", rec))
            product_el = self.kid(rec, "MaterialDefinitionID")
            if self.value(product_el) and product_el is not None:
                m = self.material(self.value(product_el) or "", product_el)
                self.add(b, T.product, _iri(m), product_el)
        for container in self.kids(rec, "Events"):
            for ev in self.kids(container, "Event"):
                if batch_id is None:
                    raise IngestError(
                        self.where(ev), "the record names no batch (BatchID), so its events cannot be attached to one"
                    )
                self.event(ev, batch_id)
        for container in self.kids(rec, "OperationsPerformances"):
            for wrapper in self.kids(container, "OperationsPerformanceRecord"):
                for perf in self.kids(wrapper, "OperationsPerformance"):
                    for response in self.kids(perf, "OperationsResponse"):
                        self.production(response, planned=False, batch_id=batch_id)

    def event(self, ev: etree._Element, batch_id: str) -> None:
        eid = self.text(ev, "ID") or self.text(ev, "EntryID")
        if eid is None:
            raise IngestError(self.where(ev), "Event has no ID (or EntryID); every Event needs one")
        self.objects += 1
        e = self.node("batch-event", batch_id, eid)
        self.add(e, T.type_, _iri(T.BatchEvent), ev)
        self.add(e, T.identifier, _lit(f"{batch_id}/{eid}"), ev)
        self.add(e, T.batch, _iri(self.node("batch", batch_id)), ev)
        self.add(e, T.time, self.datetime(self.kid(ev, "TimeStamp")), self.at(ev, "TimeStamp", ev))
        kind = "/".join(v for v in (self.text(ev, "EventType"), self.text(ev, "EventSubType")) if v)
        if kind:
            self.add(e, T.batchEventType, _lit(kind), self.at(ev, "EventType", ev))
        category = self.kid(ev, "Category")
        if self.value(category) and category is not None:
            self.add(e, T.category, _lit(self.value(category) or ""), category)
        messages = [m for m in (self.value(x) for x in self.kids(ev, "MessageText")) if m]
        if messages:
            self.add(e, T.description, _lit("\n".join(messages)), self.at(ev, "MessageText", ev))
        for person_el in self.kids(ev, "PersonID"):
            name = self.value(person_el)
            if name:
                self.add(e, T.performedBy, _iri(self.person(name, person_el)), person_el)
        ref_el = self.kid(ev, "ProceduralElementReference")
        ref = self.value(ref_el)
        if ref and ref_el is not None:
            step = self.step_index.get(batch_id, {}).get(ref)
            if step is None:
                raise IngestError(
                    self.where(ref_el),
                    f"Event {eid!r} refers to procedural element {ref!r}, which is not an element of batch "
                    f"{batch_id!r}'s control recipe in this record",
                    value=ref,
                )
            self.add(e, T.step, _iri(step), ref_el)
        for eq_el in self.kids(ev, "EquipmentID"):
            self.generic(e, "EquipmentID", self.value(eq_el), eq_el)

    # -- B2MML material information ------------------------------------------------------
    def material_information(self, info: etree._Element) -> None:
        info_id = self.text(info, "ID")
        for child in self.kids(info):
            name = local(child)
            if name == "MaterialDefinition":
                self.material_definition(child)
            elif name == "MaterialLot":
                self.material_lot(child, fallback=info_id)
            elif name == "MaterialSubLot":
                self.material_lot(child, sublot=True, fallback=info_id)

    def material_definition(self, el: etree._Element) -> None:
        mid = self.need(el, "ID")
        self.objects += 1
        m = self.material(mid, self.at(el, "ID", el))
        self.describe(m, el)
        for prop in self.kids(el, "MaterialDefinitionProperty"):
            self.properties(m, prop)
        for tag in ("MaterialClassID", "Version"):
            for x in self.kids(el, tag):
                self.generic(m, tag, self.value(x), x)

    def properties(self, s: str, prop: etree._Element, *, lot: bool = False) -> None:
        pid = self.text(prop, "ID")
        if not pid:
            return
        values = [v for v in self.kids(prop, "Value")]
        if lot and pid.replace(" ", "").lower() in ("expirydate", "expirationdate", "expiry", "shelflifeexpirydate"):
            for v in values:
                vs = self.kid(v, "ValueString")
                text = self.value(vs)
                if text and vs is not None:
                    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                        self.add(s, T.expiryDate, f'"{text}"^^<{T.XSD}date>', vs)
                    else:
                        self.add(s, T.expiryDate, self.datetime(vs), vs)
            return
        for v in values:
            for vs in self.kids(v, "ValueString"):
                self.generic(s, pid, self.value(vs), vs)
        for child in self.kids(prop, "MaterialLotPropertyChild") + self.kids(prop, "MaterialDefinitionPropertyChild"):
            self.properties(s, child, lot=lot)

    def material_lot(
        self, el: etree._Element, *, sublot: bool = False, parent: str | None = None, fallback: str | None = None
    ) -> str:
        lid = self.need(el, "ID")
        self.objects += 1
        s = self.node("lot", lid)
        self.add(s, T.type_, _iri(T.MaterialLot), el)
        self.add(s, T.identifier, _lit(lid), self.at(el, "ID", el))
        self.describe(s, el)
        if parent is None and sublot:
            parent_id = self.text(el, "MaterialLotID")
            if parent_id:
                parent = self.node("lot", parent_id)
        if parent:
            self.add(s, T.sublotOf, _iri(parent), el)
            self.lot_parent[s] = parent
        mid_el = self.kid(el, "MaterialDefinitionID")
        mid = self.value(mid_el)
        if mid and mid_el is not None:
            m = self.material(mid, mid_el)
            self.add(s, T.material, _iri(m), mid_el)
            self.lot_material[s] = m
        else:
            self.lot_pending[s] = (el, fallback)
        status_el = self.kid(el, "Status")
        status = self.value(status_el)
        if status and status_el is not None:
            concept = LOT_STATUS.get(status.lower())
            if concept:
                self.add(s, T.lotStatus, _iri(concept), status_el)
            else:
                self.generic(s, "Status", status, status_el)
        for tag in ("Disposition", "StorageLocation", "Location"):
            for x in self.kids(el, tag):
                self.generic(s, tag, self.value(x) or self.text(x, "EquipmentID"), x)
        for q in self.kids(el, "Quantity")[:1]:
            self.quantity(s, q)
        for tag in ("MaterialLotProperty", "MaterialSublotProperty"):
            for prop in self.kids(el, tag):
                self.properties(s, prop, lot=True)
        for tag in ("MaterialSubLot", "MaterialSubLotChild"):
            for child in self.kids(el, tag):
                self.material_lot(child, sublot=True, parent=s, fallback=fallback)
        for tag in ("AssemblyLot", "AssemblySubLot"):
            for child in self.kids(el, tag):
                component = self.material_lot(child, sublot=tag == "AssemblySubLot", fallback=fallback)
                self.add(s, T.assembledFrom, _iri(component), child)
        return s

    def quantity(self, s: str, q: etree._Element) -> tuple[float, str, tuple[str, str] | None] | None:
        """Write a lot quantity in the canonical unit of its dimension; returns (value, unit, as given)."""
        got = self.read_quantity(q)
        if got is None:
            return None
        value, unit, given = got
        self.add(s, T.quantity, _double(value), q)
        self.add(s, T.unit, _lit(unit), q)
        if given:
            self.add(s, T.valueAsGiven, _lit(given[0]), q)
            self.add(s, T.unitAsGiven, _lit(given[1]), q)
        return got

    def read_quantity(self, q: etree._Element) -> tuple[float, str, tuple[str, str] | None] | None:
        qs_el = self.kid(q, "QuantityString")
        text = self.value(qs_el)
        if text is None:
            return None
        number = _number(text)
        if number is None:
            raise IngestError(self.where(qs_el if qs_el is not None else q), f"expects a number, got {text!r}")
        unit_el = self.kid(q, "UnitOfMeasure")
        written = self.value(unit_el)
        unit, _ = self.unit(written, unit_el if unit_el is not None else q)
        if unit is None or written is None:
            raise UnitError(
                self.where(unit_el if unit_el is not None else q),
                "a quantity needs a unit (UCUM code such as kg, L, 1)",
            )
        try:
            canonical = units.canonical_unit(unit)
            value = float(units.convert(np.array([number]), unit, canonical)[0])
        except ValueError as exc:
            raise UnitError(self.where(unit_el if unit_el is not None else q), str(exc)) from None
        given = (text, written) if written != canonical else None
        return value, canonical, given

    # -- production schedules and performance -------------------------------------------
    def production(self, el: etree._Element, *, planned: bool, batch_id: str | None = None) -> None:
        """A production request (planned) or response (actual) as a batch with its material flows."""
        if batch_id is None:
            request = self.text(el, "ProductionRequestID") or self.text(el, "OperationsRequestID")
            batch_id = (None if planned else request) or self.need(el, "ID")
        self.objects += 1
        b = self.batch(batch_id, el)
        if planned:
            self.add(b, T.status, _lit("scheduled"), el)
        else:
            for tag, pred in (("StartTime", T.startTime), ("EndTime", T.endTime), ("Endtime", T.endTime)):
                x = self.kid(el, tag)
                if x is not None:
                    self.add(b, pred, self.datetime(x), x)
            state = self.kid(el, "ResponseState")
            self.generic(b, "ResponseState", self.value(state), state if state is not None else el)
        if self.text(el, "ID") and self.text(el, "ID") != batch_id:
            self.generic(b, local(el), self.text(el, "ID"), el)
        product_done = False
        entries = {"MaterialRequirement", "MaterialActual", "MaterialConsumedActual", "MaterialProducedActual"}
        for entry in el.iter():
            if not isinstance(entry.tag, str) or etree.QName(entry).namespace != self.ns or local(entry) not in entries:
                continue
            use = self.text(entry, "MaterialUse")
            if local(entry) == "MaterialConsumedActual":
                use = "Consumed"
            elif local(entry) == "MaterialProducedActual":
                use = "Produced"
            mid_el = self.kid(entry, "MaterialDefinitionID")
            mid = self.value(mid_el)
            m = self.material(mid, mid_el) if mid and mid_el is not None else None
            lot_el = self.kid(entry, "MaterialLotID")
            lot_id = self.value(lot_el)
            sub_el = self.kid(entry, "MaterialSubLotID")
            sub_id = self.value(sub_el)
            target: str | None = None
            target_id = ""
            if lot_id and lot_el is not None:
                target, target_id = self.lot_ref(lot_id, lot_el, m), lot_id
                if sub_id and sub_el is not None:
                    target, target_id = self.lot_ref(sub_id, sub_el, m, parent=target), sub_id
            if use in PRODUCED:
                if m and not product_done and use in MAIN_PRODUCT:
                    self.add(b, T.product, _iri(m), mid_el if mid_el is not None else entry)
                    product_done = True
                    if planned:
                        for q in self.kids(entry, "Quantity")[:1]:
                            self.planned_size(b, q)
                if target:
                    self.flow(T.MaterialProduction, batch_id, target, target_id, entry)
            elif target and (use is None or use in CONSUMED):
                # a requirement or actual naming a lot without a use is an input (produced output is always declared)
                self.flow(T.MaterialConsumption, batch_id, target, target_id, entry)

    def planned_size(self, b: str, q: etree._Element) -> None:
        qs_el = self.kid(q, "QuantityString")
        number = _number(self.value(qs_el))
        unit_el = self.kid(q, "UnitOfMeasure")
        unit, given = self.unit(self.value(unit_el), unit_el if unit_el is not None else q)
        if number is None or qs_el is None:
            return
        self.add(b, T.batchSize, _double(number), qs_el)
        if unit:
            self.add(b, T.unit, _lit(unit), unit_el if unit_el is not None else q)
            if given:
                self.add(b, T.unitAsGiven, _lit(given), unit_el if unit_el is not None else q)

    def lot_ref(self, lot_id: str, el: etree._Element, material: str | None, *, parent: str | None = None) -> str:
        """A lot (or sublot) named by a requirement or actual: written with what the message says of it."""
        s = self.node("lot", lot_id)
        self.add(s, T.type_, _iri(T.MaterialLot), el)
        self.add(s, T.identifier, _lit(lot_id), el)
        if parent:
            self.add(s, T.sublotOf, _iri(parent), el)
            self.lot_parent[s] = parent
        if material:
            self.add(s, T.material, _iri(material), el)
            self.lot_material[s] = material
        elif s not in self.lot_material:
            self.lot_pending.setdefault(s, (el, None))
        return s

    def flow(self, cls: str, batch_id: str, lot: str, lot_id: str, entry: etree._Element) -> None:
        kind = "consumption" if cls == T.MaterialConsumption else "production"
        segment = entry.getparent()
        segment_id = ""
        if segment is not None and local(segment) not in ("ProductionRequest", "ProductionResponse"):
            segment_id = self.text(segment, "ID") or self.text(segment, "ProcessSegmentID") or ""
        record = self.node(kind, batch_id, lot_id, segment_id)
        ident = "/".join(x for x in (batch_id, lot_id, segment_id) if x)
        got = None
        for q in self.kids(entry, "Quantity")[:1]:
            got = self.read_quantity(q)
        flow = self.flows.get(record)
        if flow is None:
            flow = self.flows[record] = _Flow(cls, batch_id, lot, ident, entry)
            if got:
                flow.value, flow.unit, flow.given = got
        elif got:
            flow.repeated = True
            if flow.value is None:
                flow.value, flow.unit = got[0], got[1]
            elif flow.unit == got[1]:
                flow.value += got[0]
            else:
                raise UnitError(
                    self.where(entry),
                    f"quantities of {ident!r} come in {flow.unit!r} and {got[1]!r}; they cannot be summed",
                )

    # -- after the walk ----------------------------------------------------------------------
    def finish(self) -> None:
        for record, flow in self.flows.items():
            b = self.node("batch", flow.batch)
            el = flow.el
            self.add(record, T.type_, _iri(flow.cls), el)
            self.add(record, T.identifier, _lit(flow.ident), el)
            self.add(record, T.batch, _iri(b), el)
            self.add(record, T.lot, _iri(flow.lot), el)
            if flow.value is not None and flow.unit is not None:
                self.add(record, T.quantity, _double(flow.value), el)
                self.add(record, T.unit, _lit(flow.unit), el)
                if flow.given and not flow.repeated:
                    self.add(record, T.valueAsGiven, _lit(flow.given[0]), el)
                    self.add(record, T.unitAsGiven, _lit(flow.given[1]), el)
            shortcut = T.consumed if flow.cls == T.MaterialConsumption else T.produced
            self.add(b, shortcut, _iri(flow.lot), el)
        self._resolve_lot_materials()
        self._type_equipment()

    def _resolve_lot_materials(self) -> None:
        """A lot the document names without a material takes the store's, its parent's, or its information set's."""
        pending = [lot for lot in self.lot_pending if lot not in self.lot_material]
        if not pending:
            return
        wanted = set(pending) | {self.lot_parent[x] for x in pending if x in self.lot_parent}
        known = self.lookup.triples_about(sorted(wanted))
        in_store: dict[str, str] = {
            str(s)[1:-1]: str(o)[1:-1]
            for s, p, o in zip(known["s"], known["p"], known["o"], strict=True)
            if p == f"<{T.material}>" and str(o).startswith("<")
        }
        for lot in pending:
            el, fallback = self.lot_pending[lot]
            if lot in in_store:
                self.lot_material[lot] = in_store[lot]
                continue
            parent = self.lot_parent.get(lot)
            material = self.lot_material.get(parent or "") or in_store.get(parent or "")
            if material is None and fallback:
                candidate = self.node("material", fallback)
                if candidate in self.materials or not self.lookup.types([candidate]).empty:
                    material = candidate
            if material is None:
                lot_id = self.text(el, "ID") or (el.text or "").strip()
                raise IngestError(
                    self.where(el),
                    f"lot {lot_id!r} names no material (MaterialDefinitionID) and neither the store nor this "
                    "document says which material it is",
                    value=lot_id,
                )
            self.add(lot, T.material, _iri(material), el)
            self.lot_material[lot] = material

    def _type_equipment(self) -> None:
        """Equipment named by id and unknown to the store is written as pkg:Equipment with its id."""
        if not self.equipment:
            return
        known = set(self.lookup.types(sorted(self.equipment))["iri"])
        for e, el in self.equipment.items():
            if e not in known:
                eid = self.value(el) or ""
                self.add(e, T.type_, _iri(T.Equipment), el)
                self.add(e, T.identifier, _lit(eid), el)


def _plain_time(literal: str | None) -> str:
    """The lexical form of an xsd:dateTime term, for record keys."""
    if not literal:
        return ""
    return literal.split('"')[1]


def _collapse(
    out: dict[tuple[str, str], list[tuple[str, str]]],
    key: Callable[[tuple[str, str]], tuple[str, str] | None],
) -> set[tuple[tuple[str, str], tuple[str, str]]]:
    """Edges between the nodes ``key`` keeps, walking through junctions (kind "l"); other nodes end a path."""
    edges: set[tuple[tuple[str, str], tuple[str, str]]] = set()
    for start in list(out):
        a = key(start)
        if a is None:
            continue
        stack, seen = list(out.get(start, [])), set()
        while stack:
            nxt = stack.pop()
            if nxt in seen:
                continue
            seen.add(nxt)
            if nxt[0] == "l":
                stack.extend(out.get(nxt, []))
                continue
            b = key(nxt)
            if b is not None and b != a:
                edges.add((a, b))
    return edges


def _order(
    ids: list[str], edges: set[tuple[tuple[str, str], tuple[str, str]]], transitions: dict[str, etree._Element]
) -> list[str]:
    """Elements in execution order: a topological order of the logic (loops broken), ties in document order.

    Transitions are taken as soon as they are free (by id) so only the
    elements' own document order decides ties; with that, exporting the
    elements in this order and reading them back gives the same order.
    """
    nodes: list[tuple[str, str]] = [("e", i) for i in ids] + [("t", t) for t in sorted(transitions)]
    rank = {("e", i): (1, n, "") for n, i in enumerate(ids)} | {("t", t): (0, 0, t) for t in transitions}
    succ: dict[tuple[str, str], list[tuple[str, str]]] = {n: [] for n in nodes}
    indeg = {n: 0 for n in nodes}
    for a, b in edges:
        if a in succ and b in indeg:
            succ[a].append(b)
            indeg[b] += 1
    remaining = set(nodes)
    out: list[str] = []
    while remaining:
        free = [n for n in remaining if indeg[n] == 0]
        pick = min(free or remaining, key=lambda n: rank[n])
        remaining.discard(pick)
        for b in succ[pick]:
            indeg[b] -= 1
        if pick[0] == "e":
            out.append(pick[1])
    return out
