"""The CSV bundle contract v1 as data: one TableSpec per file (layer L3).

docs/vocabulary.md is the human form of this module; DESIGN.md's table is
the column contract. Keeping the mapping declarative means one code path
types, checks and maps every file, so every file gets the same error
messages and the same empty-cell rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .. import terms as T

__all__ = ["Col", "Quantity", "TableSpec", "TABLES", "KIND_CLASS"]

ColKind = Literal[
    "id", "label", "str", "double", "int", "datetime", "date", "concept", "class", "ref", "named", "unit", "qty", "key"
]


@dataclass(frozen=True)
class Col:
    """One column: how it is typed and which predicate it feeds."""

    name: str
    kind: ColKind
    predicate: str | None = None
    target: str | None = None  # ref/named: the IRI kind of the referenced node
    required: bool = False
    values: dict[str, str] = field(default_factory=dict)  # concept/class: cell (lower case) -> IRI


@dataclass(frozen=True)
class Quantity:
    """A value + unit pair stored in a canonical unit.

    ``unit_of`` None: the canonical unit of the dimension (kg, L, 1, ...).
    ``unit_of`` set: the unit declared by the referenced parameter or attribute
    in that column, so actuals compare directly with NOR/PAR and spec limits.
    """

    value: str
    unit: str
    predicate: str
    unit_of: str | None = None
    #: any dimension is fine (capacity may be a throughput); units without a
    #: canonical one are stored as given
    any_dimension: bool = False


@dataclass(frozen=True)
class TableSpec:
    file: str
    kind: str  # IRI segment of the row node
    key: tuple[str, ...]  # columns whose values (joined by '/') make the row node's id
    columns: tuple[Col, ...]
    rdf_class: str | None = None  # fixed class; else a 'class' column decides
    quantity: Quantity | None = None
    #: direct links written next to the reified row node: (predicate, subject column, object column);
    #: an empty object column links the subject to the row node itself
    shortcuts: tuple[tuple[str, str, str], ...] = ()
    #: the row node is itself a business entity (its id is the key) rather than a composite record
    entity: bool = True
    #: column whose value is the dcterms:identifier, when not the joined key (steps: the step id)
    identifier: str | None = None

    def col(self, name: str) -> Col:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _vals(**pairs: str) -> dict[str, str]:
    return {k.replace("_", " ").lower(): v for k, v in pairs.items()}


LEVELS = {
    "enterprise": T.Enterprise,
    "site": T.Site,
    "area": T.Area,
    "processcell": T.ProcessCell,
    "process cell": T.ProcessCell,
    "unit": T.Unit,
    "equipmentmodule": T.EquipmentModule,
    "equipment module": T.EquipmentModule,
    "controlmodule": T.ControlModule,
    "control module": T.ControlModule,
}
STEP_LEVELS = {
    "procedure": T.Procedure,
    "unitprocedure": T.UnitProcedure,
    "unit procedure": T.UnitProcedure,
    "operation": T.Operation,
    "phase": T.Phase,
}
RECIPE_TYPES = {
    "general": T.GeneralRecipe,
    "site": T.SiteRecipe,
    "master": T.MasterRecipe,
    "control": T.ControlRecipe,
}
MATERIAL_KINDS = {
    "raw": T.RawMaterial,
    "intermediate": T.Intermediate,
    "drug_substance": T.DrugSubstance,
    "drug substance": T.DrugSubstance,
    "drug_product": T.DrugProduct,
    "drug product": T.DrugProduct,
    "packaging": T.PackagingMaterial,
}
LOT_STATUS = {"quarantine": T.Quarantine, "released": T.Released, "rejected": T.Rejected}
CRITICALITY = {
    "cpp": T.CPP,
    "kpp": T.KPP,
    "non-critical": T.NonCritical,
    "noncritical": T.NonCritical,
    "non critical": T.NonCritical,
}
ATTRIBUTE_KINDS = {"cqa": T.CQA, "cma": T.CMA}
SEVERITY = {"minor": T.Minor, "major": T.Major, "critical": T.Critical}
EVENT_TYPES = {
    "calibration": T.Calibration,
    "maintenance": T.Maintenance,
    "cleaning": T.Cleaning,
    "alarm": T.Alarm,
    "failure": T.Failure,
}

#: Class written for nodes minted from a name or a reference-only column.
KIND_CLASS = {
    "supplier": T.Supplier,
    "customer": T.Customer,
    "person": T.Person,
    "sample": T.Sample,
}

TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "equipment.csv",
        "equipment",
        ("id",),
        (
            Col("id", "id", required=True),
            Col("name", "label"),
            Col("level", "class", required=True, values=LEVELS),
            Col("parent_id", "ref", T.partOf, target="equipment"),
            Col("equipment_class", "str", T.equipmentClass),
            Col("capacity", "qty"),
            Col("unit", "unit"),
        ),
        quantity=Quantity("capacity", "unit", T.capacity, any_dimension=True),
    ),
    TableSpec(
        "materials.csv",
        "material",
        ("id",),
        (
            Col("id", "id", required=True),
            Col("name", "label"),
            Col("kind", "concept", T.materialKind, values=MATERIAL_KINDS),
        ),
        rdf_class=T.Material,
    ),
    TableSpec(
        "lots.csv",
        "lot",
        ("id",),
        (
            Col("id", "id", required=True),
            Col("material_id", "ref", T.material, target="material", required=True),
            Col("supplier", "named", T.supplier, target="supplier"),
            Col("quantity", "qty"),
            Col("unit", "unit"),
            Col("received", "date", T.receivedDate),
            Col("expiry", "date", T.expiryDate),
            Col("status", "concept", T.lotStatus, values=LOT_STATUS),
            Col("parent_lot_id", "ref", T.sublotOf, target="lot"),
        ),
        rdf_class=T.MaterialLot,
        quantity=Quantity("quantity", "unit", T.quantity),
    ),
    TableSpec(
        "recipes.csv",
        "recipe",
        ("id",),
        (
            Col("id", "id", required=True),
            Col("name", "label"),
            Col("type", "class", required=True, values=RECIPE_TYPES),
            Col("product_id", "ref", T.product, target="material"),
            Col("version", "str", T.version),
            Col("status", "str", T.status),
        ),
    ),
    TableSpec(
        "recipe_steps.csv",
        "step",
        ("recipe_id", "step_id"),
        (
            Col("recipe_id", "ref", T.recipe, target="recipe", required=True),
            Col("step_id", "key", required=True),
            Col("parent_step_id", "ref", T.partOf, target="step"),
            Col("level", "class", required=True, values=STEP_LEVELS),
            Col("name", "label"),
            Col("equipment_class", "str", T.equipmentClass),
            Col("seq", "int", T.sequence),
        ),
        identifier="step_id",
    ),
    TableSpec(
        "parameters.csv",
        "parameter",
        ("id",),
        (
            Col("id", "id", required=True),
            Col("recipe_id", "ref", T.recipe, target="recipe"),
            Col("step_id", "ref", T.step, target="step"),
            Col("name", "label"),
            Col("criticality", "concept", T.criticality, values=CRITICALITY),
            Col("target", "double", T.target),
            Col("nor_low", "double", T.norLow),
            Col("nor_high", "double", T.norHigh),
            Col("par_low", "double", T.parLow),
            Col("par_high", "double", T.parHigh),
            Col("unit", "unit", T.unit),
        ),
        rdf_class=T.ProcessParameter,
    ),
    TableSpec(
        "quality_attributes.csv",
        "attribute",
        ("id",),
        (
            Col("id", "id", required=True),
            Col("material_id", "ref", T.material, target="material"),
            Col("name", "label"),
            Col("kind", "concept", T.attributeKind, values=ATTRIBUTE_KINDS),
            Col("spec_low", "double", T.specLow),
            Col("spec_high", "double", T.specHigh),
            Col("unit", "unit", T.unit),
            Col("method", "str", T.method),
        ),
        rdf_class=T.QualityAttribute,
    ),
    TableSpec(
        "impacts.csv",
        "impact",
        ("source_id", "cqa_id"),
        (
            Col("source_id", "ref", T.impactSource, target="parameter|attribute", required=True),
            Col("cqa_id", "ref", T.impactTarget, target="attribute", required=True),
            Col("severity", "int", T.riskSeverity),
            Col("rationale", "str", T.rationale),
        ),
        rdf_class=T.Impact,
        shortcuts=((T.impacts, "source_id", "cqa_id"),),
        entity=False,
    ),
    TableSpec(
        "batches.csv",
        "batch",
        ("id",),
        (
            Col("id", "id", required=True),
            Col("recipe_id", "ref", T.recipe, target="recipe"),
            Col("product_id", "ref", T.product, target="material"),
            Col("start", "datetime", T.startTime),
            Col("end", "datetime", T.endTime),
            Col("status", "str", T.status),
        ),
        rdf_class=T.Batch,
    ),
    TableSpec(
        "batch_equipment.csv",
        "equipment-use",
        ("batch_id", "step_id", "equipment_id"),
        (
            Col("batch_id", "ref", T.batch, target="batch", required=True),
            Col("step_id", "ref", T.step, target="step"),
            Col("equipment_id", "ref", T.equipment, target="equipment", required=True),
            Col("start", "datetime", T.startTime),
            Col("end", "datetime", T.endTime),
        ),
        rdf_class=T.EquipmentUse,
        shortcuts=((T.usedEquipment, "batch_id", "equipment_id"),),
        entity=False,
    ),
    TableSpec(
        "consumption.csv",
        "consumption",
        ("batch_id", "lot_id", "step_id"),
        (
            Col("batch_id", "ref", T.batch, target="batch", required=True),
            Col("lot_id", "ref", T.lot, target="lot", required=True),
            Col("step_id", "ref", T.step, target="step"),
            Col("quantity", "qty"),
            Col("unit", "unit"),
        ),
        rdf_class=T.MaterialConsumption,
        quantity=Quantity("quantity", "unit", T.quantity),
        shortcuts=((T.consumed, "batch_id", "lot_id"),),
        entity=False,
    ),
    TableSpec(
        "production.csv",
        "production",
        ("batch_id", "lot_id"),
        (
            Col("batch_id", "ref", T.batch, target="batch", required=True),
            Col("lot_id", "ref", T.lot, target="lot", required=True),
            Col("quantity", "qty"),
            Col("unit", "unit"),
        ),
        rdf_class=T.MaterialProduction,
        quantity=Quantity("quantity", "unit", T.quantity),
        shortcuts=((T.produced, "batch_id", "lot_id"),),
        entity=False,
    ),
    TableSpec(
        "parameter_values.csv",
        "parameter-value",
        ("batch_id", "parameter_id", "time"),
        (
            Col("batch_id", "ref", T.batch, target="batch", required=True),
            Col("parameter_id", "ref", T.parameter, target="parameter", required=True),
            Col("value", "qty", required=True),
            Col("unit", "unit"),
            Col("time", "datetime", T.time),
        ),
        rdf_class=T.ParameterValue,
        quantity=Quantity("value", "unit", T.value, unit_of="parameter_id"),
        entity=False,
    ),
    TableSpec(
        "lot_attributes.csv",
        "attribute-value",
        ("lot_id", "attribute_id"),
        (
            Col("lot_id", "ref", T.lot, target="lot", required=True),
            Col("attribute_id", "ref", T.attribute, target="attribute", required=True),
            Col("value", "qty", required=True),
            Col("unit", "unit"),
        ),
        rdf_class=T.MaterialAttributeValue,
        quantity=Quantity("value", "unit", T.value, unit_of="attribute_id"),
        entity=False,
    ),
    TableSpec(
        "results.csv",
        "result",
        ("sample_id", "attribute_id"),
        (
            Col("sample_id", "named", T.sample, target="sample", required=True),
            Col("batch_id", "ref", T.batch, target="batch"),
            Col("lot_id", "ref", T.lot, target="lot"),
            Col("attribute_id", "ref", T.attribute, target="attribute", required=True),
            Col("value", "qty"),
            Col("unit", "unit"),
            Col("time", "datetime", T.time),
            Col("instrument_id", "ref", T.instrument, target="equipment"),
            Col("analyst", "named", T.analyst, target="person"),
            Col("status", "str", T.status),
            # stability samples (ICH Q1A): the storage condition and pull point of the sample tested
            Col("storage_temperature", "double", T.storageTemperature),
            Col("storage_humidity", "double", T.storageHumidity),
            Col("storage_months", "double", T.storageTime),
        ),
        rdf_class=T.TestResult,
        quantity=Quantity("value", "unit", T.value, unit_of="attribute_id"),
        entity=False,
    ),
    TableSpec(
        "deviations.csv",
        "deviation",
        ("id",),
        (
            Col("id", "id", required=True),
            Col("batch_id", "ref", T.batch, target="batch"),
            Col("equipment_id", "ref", T.equipment, target="equipment"),
            Col("attribute_id", "ref", T.attribute, target="attribute"),
            Col("category", "str", T.category),
            Col("severity", "concept", T.deviationSeverity, values=SEVERITY),
            Col("opened", "datetime", T.opened),
            Col("closed", "datetime", T.closed),
            Col("description", "str", T.description),
            Col("root_cause", "str", T.rootCause),
            Col("capa", "str", T.capa),
        ),
        rdf_class=T.Deviation,
    ),
    TableSpec(
        "equipment_events.csv",
        "event",
        ("id",),
        (
            Col("id", "id", required=True),
            Col("equipment_id", "ref", T.equipment, target="equipment", required=True),
            Col("type", "concept", T.eventType, values=EVENT_TYPES),
            Col("time", "datetime", T.time),
            Col("description", "str", T.description),
            Col("outcome", "str", T.outcome),
        ),
        rdf_class=T.EquipmentEvent,
    ),
    TableSpec(
        "shipments.csv",
        "shipment",
        ("lot_id", "customer", "shipped"),
        (
            Col("lot_id", "ref", T.lot, target="lot", required=True),
            Col("customer", "named", T.customer, target="customer", required=True),
            Col("market", "str", T.market),
            Col("quantity", "qty"),
            Col("unit", "unit"),
            Col("shipped", "date", T.shippedDate),
        ),
        rdf_class=T.Shipment,
        quantity=Quantity("quantity", "unit", T.quantity),
        shortcuts=((T.shippedIn, "lot_id", ""),),
        entity=False,
    ),
)


@dataclass(frozen=True)
class ShortcutCheck:
    """Records of one class whose direct link (a table's ``shortcuts`` entry) is missing.

    Ingest writes each link with its record (``pkg:consumed`` with a consumption
    row, ``pkg:shippedIn`` with a shipment...), and walks and recalls follow the
    links, not the records: a record whose link is missing (an update moved a
    shipment to another lot, RDF loaded from elsewhere) is left out of every
    genealogy without a word. ``validate`` runs these checks."""

    record_class: str
    predicate: str  # the link: subject -> object
    subject: str  # record -> the link's subject
    object: str | None  # record -> the link's object; None: the record itself

    def sparql(self, limit: int) -> str:
        """``?r`` the record, ``?s`` and ``?o`` the link it should have."""
        obj = f"?r <{self.object}> ?o ." if self.object else "BIND(?r AS ?o)"
        return (
            f"SELECT ?r ?s ?o WHERE {{ ?r a <{self.record_class}> ; <{self.subject}> ?s . {obj} "
            f"FILTER NOT EXISTS {{ ?s <{self.predicate}> ?o }} }} LIMIT {limit}"
        )


SHORTCUT_CHECKS = tuple(
    ShortcutCheck(spec.rdf_class, link, spec.col(s).predicate or "", spec.col(o).predicate if o else None)
    for spec in TABLES
    if spec.rdf_class is not None
    for link, s, o in spec.shortcuts
)
