"""Write a recipe of the graph as a BatchML V0700 document (layer L3).

The inverse of the reader for what BatchML can carry: header (product, batch
size, version, status, approval), formula and element parameters (target as
the value, NOR/PAR as ``NOR-Min`` / ``NOR-Max`` / ``PAR-Min`` / ``PAR-Max``
sub-parameters, criticality as a ParameterSubType), the element tree, the
procedure logic (transitions and precedence links, with Begin/End markers
added), equipment classes as equipment requirements, and every
``{base}property/...`` value as OtherInformation. Reading the result back
gives the same recipe subgraph (tests/test_batchml.py checks it). A recipe
without procedure logic (as the CSV bundle makes them) is written without
one; its element order is the document order.

Everything is read through the small ``Store`` protocol, so a remote SPARQL
store exports as well as the embedded one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote

from lxml import etree

from ... import terms as T
from ...store.base import Store, sparql_string
from ._schemas import schema_folder, validate_document
from ._xml import MESA_V0700

__all__ = ["export_batchml"]

_NS = f"{{{MESA_V0700}}}"
ELEMENT_TYPE = {
    T.Procedure: "Procedure",
    T.UnitProcedure: "UnitProcedure",
    T.Operation: "Operation",
    T.Phase: "Phase",
    T.ProceduralElement: "Other",
}
#: RecipeElementType codes of the V0700 enumeration (anything else is written as Other with OtherValue).
ELEMENT_CODES = {"Procedure", "UnitRecipe", "UnitProcedure", "Operation", "Phase", "Allocation", "RecipeSegment"}
RECIPE_CLASSES = {
    T.GeneralRecipe: "General",
    T.SiteRecipe: "Site",
    T.MasterRecipe: "Master",
    T.ControlRecipe: "Control",
}
BATCH_STATUS = {
    "Idle",
    "Running",
    "Complete",
    "Pausing",
    "Paused",
    "Holding",
    "Held",
    "Restarting",
    "Stopping",
    "Stopped",
    "Aborting",
    "Aborted",
}
PARAMETER_TYPES = {"ProcessInput", "ProcessOutput", "ProcessParameter"}
CRITICALITY_CODE = {T.CPP: "CPP", T.KPP: "KPP", T.NonCritical: "NonCritical"}
LIMITS = ((T.norLow, "NOR", "Min"), (T.norHigh, "NOR", "Max"), (T.parLow, "PAR", "Min"), (T.parHigh, "PAR", "Max"))
#: Generic properties the exporter writes as BatchML elements of their own (not as OtherInformation).
_AS_ELEMENTS = {"Version", "RecipeElementType", "EquipmentRequirement", "ProductName", "ParameterSubType"}


class _HasStore(Protocol):
    store: Store
    base: str


Values = dict[str, list[str]]


def export_batchml(
    source: Store | _HasStore,
    recipe: str,
    *,
    base: str | None = None,
    schemas: str | Path | None = None,
) -> bytes:
    """The recipe ``recipe`` (business id or IRI) as a BatchML V0700 ``BatchInformation`` document.

    ``source`` is a :class:`~pharmakg.KnowledgeGraph` (its base is used) or a
    bare :class:`~pharmakg.store.base.Store` with ``base``. With ``schemas``
    (a folder of XSDs; else ``$PHARMAKG_XML_SCHEMAS`` if set) the document is
    validated before it is returned. Raises ``KeyError`` for an unknown recipe.
    """
    store: Store = source.store if hasattr(source, "store") else source
    base = base or getattr(source, "base", None)
    if base is None:
        raise ValueError("export_batchml needs base= when given a bare store")
    writer = _Writer(store, base)
    data = writer.document(writer.resolve(recipe))
    folder = schema_folder(schemas)
    if folder is not None:
        tree = etree.ElementTree(etree.fromstring(data))
        validate_document(tree, file=f"(BatchML export of {recipe})", folder=folder)
    return data


def _select(store: Store, sparql: str) -> list[dict[str, dict[str, str]]]:
    rows: list[dict[str, dict[str, str]]] = json.loads(store.query(sparql).body)["results"]["bindings"]
    return rows


def _decimal(value: str) -> str:
    """An xsd:decimal lexical form (no exponent) of a stored double."""
    return format(Decimal(value).normalize(), "f") if "e" in value.lower() else value


def _double_text(value: str) -> str:
    """The number as written back: Python's repr of the double, which reads back to the same double."""
    return repr(float(value))


class _Writer:
    def __init__(self, store: Store, base: str) -> None:
        self.store = store
        self.base = base
        self.prop = f"{base}property/"
        self.marker_n = 0

    # -- reading the graph ------------------------------------------------------------
    def resolve(self, recipe: str) -> str:
        if recipe.startswith(("http://", "https://", "urn:")):
            return recipe
        classes = " ".join(f"<{c}>" for c in RECIPE_CLASSES)
        rows = _select(
            self.store,
            f"SELECT DISTINCT ?r WHERE {{ ?r <{T.identifier}> {sparql_string(recipe)} ; a ?c . "
            f"VALUES ?c {{ {classes} }} }}",
        )
        if not rows:
            raise KeyError(f"no recipe with id {recipe!r} in {self.store.location}")
        if len(rows) > 1:
            raise KeyError(f"recipe id {recipe!r} names several recipes; pass the IRI")
        return rows[0]["r"]["value"]

    def describe_all(self, r: str) -> dict[str, Values]:
        """Every triple of the recipe, its steps, parameters and transitions: subject -> predicate -> values."""
        rows = _select(
            self.store,
            f"""SELECT DISTINCT ?s ?p ?o WHERE {{
  {{ BIND(<{r}> AS ?s) }} UNION {{ ?s <{T.recipe}> <{r}> }} UNION {{ ?s <{T.transitionOf}> <{r}> }}
  UNION {{ ?s <{T.transitionOf}> ?x . ?x <{T.recipe}> <{r}> }}
  ?s ?p ?o }}""",
        )
        out: dict[str, Values] = defaultdict(lambda: defaultdict(list))
        for row in rows:
            out[row["s"]["value"]][row["p"]["value"]].append(row["o"]["value"])
        keep = {T.Procedure, T.UnitProcedure, T.Operation, T.Phase, T.ProceduralElement, T.ProcessParameter}
        keep |= {T.Transition}
        return {
            s: {p: sorted(v) for p, v in props.items()}
            for s, props in out.items()
            if s == r or keep & set(props.get(T.type_, []))
        }

    def product(self, iri: str) -> tuple[str | None, str | None]:
        rows = _select(
            self.store,
            f"SELECT ?id ?label WHERE {{ OPTIONAL {{ <{iri}> <{T.identifier}> ?id }} "
            f"OPTIONAL {{ <{iri}> <{T.label}> ?label }} }} LIMIT 1",
        )
        if not rows:
            return None, None
        row = rows[0]
        return row.get("id", {}).get("value"), row.get("label", {}).get("value")

    def batch_of(self, r: str) -> str | None:
        rows = _select(
            self.store,
            f"SELECT DISTINCT ?id WHERE {{ ?b <{T.recipe}> <{r}> ; a <{T.Batch}> ; <{T.identifier}> ?id }}",
        )
        return rows[0]["id"]["value"] if len(rows) == 1 else None

    # -- writing ---------------------------------------------------------------------------
    def document(self, r: str) -> bytes:
        nodes = self.describe_all(r)
        if r not in nodes:
            raise KeyError(f"recipe {r} has no triples in {self.store.location}")
        rec = nodes[r]
        cls = next((c for c in rec.get(T.type_, []) if c in RECIPE_CLASSES), T.MasterRecipe)
        rid = _one(rec, T.identifier) or unquote(r.rsplit("/", 1)[-1])
        self.recipe_id = rid
        steps = {s: v for s, v in nodes.items() if s != r and T.ProcessParameter not in v.get(T.type_, [])}
        steps = {s: v for s, v in steps.items() if T.Transition not in v.get(T.type_, [])}
        self.steps = steps
        self.transitions = {s: v for s, v in nodes.items() if T.Transition in v.get(T.type_, [])}
        self.params: dict[str | None, list[tuple[str, Values]]] = defaultdict(list)
        for s, v in nodes.items():
            if T.ProcessParameter in v.get(T.type_, []):
                self.params[_one(v, T.step)].append((s, v))
        self.children: dict[str | None, list[str]] = defaultdict(list)
        for s, v in steps.items():
            parents = [p for p in v.get(T.partOf, []) if p in steps]
            self.children[parents[0] if parents else None].append(s)
        for kids in self.children.values():
            kids.sort(key=lambda s: (int(_one(steps[s], T.sequence) or 0), _one(steps[s], T.identifier) or s))
        self.all_ids = {_one(v, T.identifier) or "" for v in steps.values()}

        root = etree.Element(f"{_NS}BatchInformation", nsmap={None: MESA_V0700})
        tag = "ControlRecipe" if cls == T.ControlRecipe else "MasterRecipe"
        el = etree.SubElement(root, f"{_NS}{tag}")
        _sub(el, "ID", rid)
        if _one(rec, T.version):
            _sub(el, "Version", _one(rec, T.version))
        self.descriptions(el, rec)
        if cls == T.ControlRecipe:
            batch = self.batch_of(r)
            if batch:
                _sub(el, "BatchID", batch)
        self.header(el, rec, recipe=True)
        for req in self.generic(rec, "EquipmentRequirement"):
            self.requirement(el, req)
        formula = self.params.get(None, [])
        if formula:
            f = etree.SubElement(el, f"{_NS}Formula")
            for _, v in sorted(formula, key=lambda sv: _one(sv[1], T.identifier) or sv[0]):
                self.parameter(f, v, prefix=f"{rid}/")
        self.logic_and_elements(el, r, None)
        extra = [] if cls in (T.MasterRecipe, T.ControlRecipe) else [("RecipeType", RECIPE_CLASSES[cls])]
        self.other_information(el, rec, extra=extra)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)

    def descriptions(self, el: etree._Element, v: Values) -> None:
        for text in v.get(T.label, [])[:1] + v.get(T.comment, []):
            _sub(el, "Description", text)

    def generic(self, v: Values, name: str) -> list[str]:
        return v.get(self.prop + name, [])

    def header(self, el: etree._Element, v: Values, *, recipe: bool) -> None:
        approvers, approved = v.get(T.approvedBy, []), _one(v, T.approvalDate)
        product = _one(v, T.product) if recipe else None
        name = product and self.product(product)
        sizes = [
            (tag, _one(v, pred))
            for tag, pred in (("Nominal", T.batchSize), ("Min", T.batchSizeMin), ("Max", T.batchSizeMax))
        ]
        status = _one(v, T.status) if recipe else None
        product_name = self.generic(v, "ProductName")[:1] if recipe else []
        if not (approvers or approved or product or product_name or any(x for _, x in sizes) or status):
            return
        h = etree.SubElement(el, f"{_NS}Header")
        if approvers or approved:
            history = etree.SubElement(h, f"{_NS}ApprovalHistory")
            if approved:
                _sub(history, "FinalApprovalDate", approved)
            for who in approvers:
                ind = etree.SubElement(history, f"{_NS}IndividualApproval")
                _sub(ind, "ApprovedBy", who)
        if name:
            pid, plabel = name
            if pid:
                _sub(h, "ProductID", pid)
            if plabel:
                _sub(h, "ProductName", plabel)
        elif product_name:
            _sub(h, "ProductName", product_name[0])
        if any(x for _, x in sizes):
            size = etree.SubElement(h, f"{_NS}BatchSize")
            for tag, x in sizes:
                if x:
                    _sub(size, tag, _decimal(x))
            unit = _one(v, T.unitAsGiven) or _one(v, T.unit)
            if unit:
                _sub(size, "UnitOfMeasure", unit)
        if status:
            _code(h, "Status", status, BATCH_STATUS)

    def requirement(self, el: etree._Element, equipment_class: str) -> None:
        req = etree.SubElement(el, f"{_NS}EquipmentRequirement")
        _sub(req, "ID", equipment_class)
        constraint = etree.SubElement(req, f"{_NS}Constraint")
        _sub(constraint, "ID", "EquipmentClass")
        _sub(constraint, "Condition", equipment_class)

    def other_information(self, el: etree._Element, v: Values, *, extra: list[tuple[str, str]] | None = None) -> None:
        items = list(extra or [])
        for p, values in sorted(v.items()):
            if p.startswith(self.prop):
                name = unquote(p[len(self.prop) :])
                if name not in _AS_ELEMENTS:
                    items += [(name, x) for x in values]
        if T.ProceduralElement in v.get(T.type_, []) or any(
            c in v.get(T.type_, []) for c in (T.Procedure, T.UnitProcedure, T.Operation, T.Phase)
        ):
            if _one(v, T.startTime):
                items.append(("ActualStartTime", _one(v, T.startTime) or ""))
            if _one(v, T.endTime):
                items.append(("ActualEndTime", _one(v, T.endTime) or ""))
        for name, value in items:
            info = etree.SubElement(el, f"{_NS}OtherInformation")
            _sub(info, "ID", name)
            self.value(info, value, "string", None)

    def value(self, el: etree._Element, text: str, data_type: str, unit: str | None) -> None:
        val = etree.SubElement(el, f"{_NS}Value")
        _sub(val, "ValueString", text)
        _sub(val, "DataInterpretation", "Constant")
        _sub(val, "DataType", data_type)
        _sub(val, "UnitOfMeasure", unit or "")

    def parameter(self, el: etree._Element, v: Values, *, prefix: str) -> None:
        ident = _one(v, T.identifier) or ""
        pid = ident[len(prefix) :] if ident.startswith(prefix) else ident
        p = etree.SubElement(el, f"{_NS}Parameter")
        _sub(p, "ID", pid)
        if _one(v, T.label):
            _sub(p, "Description", _one(v, T.label))
        ptype = _one(v, T.parameterType) or "ProcessParameter"  # no type: a set point, as the CSV bundle's are
        _code(p, "ParameterType", ptype, PARAMETER_TYPES)
        for crit in v.get(T.criticality, []):
            if crit in CRITICALITY_CODE:
                _sub(p, "ParameterSubType", CRITICALITY_CODE[crit])
        for sub in self.generic(v, "ParameterSubType"):
            _sub(p, "ParameterSubType", sub)
        unit = _one(v, T.unitAsGiven) or _one(v, T.unit)
        target, text = _one(v, T.target), _one(v, T.textValue)
        if target is not None:
            self.value(p, _double_text(target), "double", unit)
        elif text is not None:
            self.value(p, text, "string", unit)
        elif unit:
            self.value(p, "", "string", unit)
        for pred, span, side in LIMITS:
            bound = _one(v, pred)
            if bound is None:
                continue
            limit = etree.SubElement(p, f"{_NS}Parameter")
            _sub(limit, "ID", f"{span}-{side}")
            _code(limit, "ParameterType", ptype, PARAMETER_TYPES)
            _sub(limit, "ParameterSubType", span)
            self.value(limit, _double_text(bound), "double", unit)

    def element(self, el: etree._Element, s: str) -> None:
        v = self.steps[s]
        eid = _one(v, T.identifier) or unquote(s.rsplit("/", 1)[-1])
        r = etree.SubElement(el, f"{_NS}RecipeElement")
        _sub(r, "ID", eid)
        for version in self.generic(v, "Version")[:1]:
            _sub(r, "Version", version)
        self.descriptions(r, v)
        cls = next((c for c in v.get(T.type_, []) if c in ELEMENT_TYPE and c != T.ProceduralElement), None)
        etype = ELEMENT_TYPE[cls] if cls else (self.generic(v, "RecipeElementType")[:1] or ["Other"])[0]
        _code(r, "RecipeElementType", etype, ELEMENT_CODES)
        self.header(r, v, recipe=False)
        for cls_name in v.get(T.equipmentClass, [])[:1] + self.generic(v, "EquipmentRequirement"):
            self.requirement(r, cls_name)
        for _, pv in sorted(self.params.get(s, []), key=lambda sv: _one(sv[1], T.identifier) or sv[0]):
            self.parameter(r, pv, prefix=f"{self.recipe_id}/{eid}/")
        self.logic_and_elements(r, s, s)
        self.other_information(r, v)

    def logic_and_elements(self, el: etree._Element, owner: str, parent: str | None) -> None:
        """The ProcedureLogic of ``owner`` (if it has one) and its child elements, in sequence."""
        kids = self.children.get(parent, [])
        transitions = sorted(t for t, v in self.transitions.items() if owner in v.get(T.transitionOf, []))
        nodes = set(kids) | set(transitions)
        edges = sorted(
            (a, b)
            for a in nodes
            for b in (self.steps.get(a) or self.transitions.get(a) or {}).get(T.precedes, [])
            if b in nodes
        )
        markers: tuple[str, str] | None = None
        if edges or transitions:
            markers = (self.marker("Begin"), self.marker("End"))
            self.logic(el, kids, transitions, edges, markers)
        if markers:
            self.marker_element(el, markers[0], "Begin")
        for kid in kids:
            self.element(el, kid)
        if markers:
            self.marker_element(el, markers[1], "End")

    def marker(self, kind: str) -> str:
        self.marker_n += 1
        name = f"{kind}-{self.marker_n}"
        while name in self.all_ids:
            name += "_"
        return name

    def marker_element(self, el: etree._Element, mid: str, kind: str) -> None:
        m = etree.SubElement(el, f"{_NS}RecipeElement")
        _sub(m, "ID", mid)
        _sub(m, "RecipeElementType", kind)

    def logic(
        self,
        el: etree._Element,
        kids: list[str],
        transitions: list[str],
        edges: list[tuple[str, str]],
        markers: tuple[str, str],
    ) -> None:
        logic = etree.SubElement(el, f"{_NS}ProcedureLogic")
        step_id = {s: f"S-{_one(self.steps[s], T.identifier)}" for s in kids}
        trans_id = {t: _one(self.transitions[t], T.identifier) or t for t in transitions}
        begin, end = f"S-{markers[0]}", f"S-{markers[1]}"

        def ref(node: str) -> tuple[str, str]:
            return (step_id[node], "Step") if node in step_id else (trans_id[node], "Transition")

        has_in = {b for _, b in edges}
        has_out = {a for a, _ in edges}
        ordered = kids + transitions
        links = [((begin, "Step"), ref(n)) for n in ordered if n not in has_in]
        links += [(ref(a), ref(b)) for a, b in edges]
        links += [(ref(n), (end, "Step")) for n in ordered if n not in has_out]
        for n, ((fid, ftype), (tid, ttype)) in enumerate(links, 1):
            link = etree.SubElement(logic, f"{_NS}Link")
            _sub(link, "ID", f"L{n}")
            f = etree.SubElement(link, f"{_NS}FromID")
            _sub(f, "FromIDValue", fid)
            _sub(f, "FromType", ftype)
            _sub(f, "IDScope", "Internal")
            t = etree.SubElement(link, f"{_NS}ToID")
            _sub(t, "ToIDValue", tid)
            _sub(t, "ToType", ttype)
            _sub(t, "IDScope", "Internal")
            _sub(link, "LinkType", "ControlLink")
            _sub(link, "Depiction", "LineAndArrow")
        for sid, element_id in (
            [(begin, markers[0])]
            + [(step_id[k], _one(self.steps[k], T.identifier) or "") for k in kids]
            + [(end, markers[1])]
        ):
            step = etree.SubElement(logic, f"{_NS}Step")
            _sub(step, "ID", sid)
            _sub(step, "RecipeElementID", element_id)
            _sub(step, "RecipeElementVersion", "")
        for t in transitions:
            v = self.transitions[t]
            tr = etree.SubElement(logic, f"{_NS}Transition")
            _sub(tr, "ID", trans_id[t])
            _sub(tr, "Condition", _one(v, T.condition) or "")
            self.descriptions(tr, v)


def _one(v: Values, p: str) -> str | None:
    values = v.get(p)
    return values[0] if values else None


def _sub(parent: etree._Element, name: str, text: str | None) -> etree._Element:
    el = etree.SubElement(parent, f"{_NS}{name}")
    el.text = text
    return el


def _code(parent: etree._Element, name: str, value: str, allowed: set[str]) -> etree._Element:
    """An enumerated BatchML code: the value itself if allowed, else ``Other`` with ``OtherValue``."""
    if value in allowed:
        return _sub(parent, name, value)
    el = _sub(parent, name, "Other")
    el.set("OtherValue", value)
    return el
