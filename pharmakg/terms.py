"""Ontology terms as IRI strings (layer L1).

Every constant uses the exact local name of ontology/pharmakg.ttl; a test checks
that each one is declared there, so a typo cannot silently mint a new term.
Plain strings keep the hot ingest path free of object construction.
"""

from __future__ import annotations

PKG = "https://w3id.org/pharmakg/ontology#"
SH = "http://www.w3.org/ns/shacl#"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
OWL = "http://www.w3.org/2002/07/owl#"
XSD = "http://www.w3.org/2001/XMLSchema#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
PROV = "http://www.w3.org/ns/prov#"
SOSA = "http://www.w3.org/ns/sosa/"
DCTERMS = "http://purl.org/dc/terms/"
ONTOLOGY_GRAPH = "https://w3id.org/pharmakg/ontology"

type_ = RDF + "type"
JSON = RDF + "JSON"  # the datatype of a JSON literal (RDF 1.1 JSON-LD, rdf:JSON)
label = RDFS + "label"
comment = RDFS + "comment"
subClassOf = RDFS + "subClassOf"
identifier = DCTERMS + "identifier"

# classes and concepts
Alarm = PKG + "Alarm"
Area = PKG + "Area"
AttributeKindScheme = PKG + "AttributeKindScheme"
Batch = PKG + "Batch"
CMA = PKG + "CMA"
CPP = PKG + "CPP"
CQA = PKG + "CQA"
Calibration = PKG + "Calibration"
Cleaning = PKG + "Cleaning"
ControlModule = PKG + "ControlModule"
ControlRecipe = PKG + "ControlRecipe"
ControlStrategy = PKG + "ControlStrategy"
Critical = PKG + "Critical"
CriticalityScheme = PKG + "CriticalityScheme"
Customer = PKG + "Customer"
Deviation = PKG + "Deviation"
DeviationSeverityScheme = PKG + "DeviationSeverityScheme"
DrugProduct = PKG + "DrugProduct"
DrugSubstance = PKG + "DrugSubstance"
Enterprise = PKG + "Enterprise"
Equipment = PKG + "Equipment"
EquipmentEvent = PKG + "EquipmentEvent"
EquipmentModule = PKG + "EquipmentModule"
EquipmentUse = PKG + "EquipmentUse"
EventTypeScheme = PKG + "EventTypeScheme"
Failure = PKG + "Failure"
GeneralRecipe = PKG + "GeneralRecipe"
Impact = PKG + "Impact"
Intermediate = PKG + "Intermediate"
KPP = PKG + "KPP"
LotStatusScheme = PKG + "LotStatusScheme"
Maintenance = PKG + "Maintenance"
Major = PKG + "Major"
MasterRecipe = PKG + "MasterRecipe"
Material = PKG + "Material"
MaterialAttributeValue = PKG + "MaterialAttributeValue"
MaterialConsumption = PKG + "MaterialConsumption"
MaterialKindScheme = PKG + "MaterialKindScheme"
MaterialLot = PKG + "MaterialLot"
MaterialProduction = PKG + "MaterialProduction"
Minor = PKG + "Minor"
NonCritical = PKG + "NonCritical"
Operation = PKG + "Operation"
PackagingMaterial = PKG + "PackagingMaterial"
ParameterValue = PKG + "ParameterValue"
Person = PKG + "Person"
Phase = PKG + "Phase"
ProceduralElement = PKG + "ProceduralElement"
Procedure = PKG + "Procedure"
ProcessCell = PKG + "ProcessCell"
ProcessParameter = PKG + "ProcessParameter"
QualityAttribute = PKG + "QualityAttribute"
Quarantine = PKG + "Quarantine"
RawMaterial = PKG + "RawMaterial"
Recipe = PKG + "Recipe"
Rejected = PKG + "Rejected"
Released = PKG + "Released"
Sample = PKG + "Sample"
Shipment = PKG + "Shipment"
Site = PKG + "Site"
SiteRecipe = PKG + "SiteRecipe"
Supplier = PKG + "Supplier"
TestResult = PKG + "TestResult"
Unit = PKG + "Unit"
UnitProcedure = PKG + "UnitProcedure"

# properties
analyst = PKG + "analyst"
attribute = PKG + "attribute"
attributeKind = PKG + "attributeKind"
batch = PKG + "batch"
capa = PKG + "capa"
capacity = PKG + "capacity"
category = PKG + "category"
closed = PKG + "closed"
consumed = PKG + "consumed"
controls = PKG + "controls"
criticality = PKG + "criticality"
customer = PKG + "customer"
description = PKG + "description"
deviationSeverity = PKG + "deviationSeverity"
endTime = PKG + "endTime"
equipment = PKG + "equipment"
equipmentClass = PKG + "equipmentClass"
eventType = PKG + "eventType"
expiryDate = PKG + "expiryDate"
impactSource = PKG + "impactSource"
impactTarget = PKG + "impactTarget"
impacts = PKG + "impacts"
instrument = PKG + "instrument"
lot = PKG + "lot"
lotStatus = PKG + "lotStatus"
market = PKG + "market"
material = PKG + "material"
materialKind = PKG + "materialKind"
method = PKG + "method"
norHigh = PKG + "norHigh"
norLow = PKG + "norLow"
opened = PKG + "opened"
outcome = PKG + "outcome"
parHigh = PKG + "parHigh"
parLow = PKG + "parLow"
parameter = PKG + "parameter"
partOf = PKG + "partOf"
produced = PKG + "produced"
product = PKG + "product"
quantity = PKG + "quantity"
rationale = PKG + "rationale"
receivedDate = PKG + "receivedDate"
recipe = PKG + "recipe"
riskSeverity = PKG + "riskSeverity"
rootCause = PKG + "rootCause"
rootCauseEvidence = PKG + "rootCauseEvidence"
sample = PKG + "sample"
sequence = PKG + "sequence"
shippedDate = PKG + "shippedDate"
shippedIn = PKG + "shippedIn"
specHigh = PKG + "specHigh"
specLow = PKG + "specLow"
startTime = PKG + "startTime"
status = PKG + "status"
storageHumidity = PKG + "storageHumidity"
storageTemperature = PKG + "storageTemperature"
storageTime = PKG + "storageTime"
step = PKG + "step"
sublotOf = PKG + "sublotOf"
supplier = PKG + "supplier"
target = PKG + "target"
time = PKG + "time"
unit = PKG + "unit"
unitAsGiven = PKG + "unitAsGiven"
usedEquipment = PKG + "usedEquipment"
value = PKG + "value"
valueAsGiven = PKG + "valueAsGiven"
version = PKG + "version"

ALL_TERMS: tuple[str, ...] = (
    Alarm,
    Area,
    AttributeKindScheme,
    Batch,
    CMA,
    CPP,
    CQA,
    Calibration,
    Cleaning,
    ControlModule,
    ControlRecipe,
    ControlStrategy,
    Critical,
    CriticalityScheme,
    Customer,
    Deviation,
    DeviationSeverityScheme,
    DrugProduct,
    DrugSubstance,
    Enterprise,
    Equipment,
    EquipmentEvent,
    EquipmentModule,
    EquipmentUse,
    EventTypeScheme,
    Failure,
    GeneralRecipe,
    Impact,
    Intermediate,
    KPP,
    LotStatusScheme,
    Maintenance,
    Major,
    MasterRecipe,
    Material,
    MaterialAttributeValue,
    MaterialConsumption,
    MaterialKindScheme,
    MaterialLot,
    MaterialProduction,
    Minor,
    NonCritical,
    Operation,
    PackagingMaterial,
    ParameterValue,
    Person,
    Phase,
    ProceduralElement,
    Procedure,
    ProcessCell,
    ProcessParameter,
    QualityAttribute,
    Quarantine,
    RawMaterial,
    Recipe,
    Rejected,
    Released,
    Sample,
    Shipment,
    Site,
    SiteRecipe,
    Supplier,
    TestResult,
    Unit,
    UnitProcedure,
    analyst,
    attribute,
    attributeKind,
    batch,
    capa,
    capacity,
    category,
    closed,
    consumed,
    controls,
    criticality,
    customer,
    description,
    deviationSeverity,
    endTime,
    equipment,
    equipmentClass,
    eventType,
    expiryDate,
    impactSource,
    impactTarget,
    impacts,
    instrument,
    lot,
    lotStatus,
    market,
    material,
    materialKind,
    method,
    norHigh,
    norLow,
    opened,
    outcome,
    parHigh,
    parLow,
    parameter,
    partOf,
    produced,
    product,
    quantity,
    rationale,
    receivedDate,
    recipe,
    riskSeverity,
    rootCause,
    rootCauseEvidence,
    sample,
    sequence,
    shippedDate,
    shippedIn,
    specHigh,
    specLow,
    startTime,
    status,
    step,
    sublotOf,
    supplier,
    target,
    time,
    unit,
    unitAsGiven,
    usedEquipment,
    value,
    valueAsGiven,
    version,
)

# provenance and audit (graphs {base}graph/provenance and {base}graph/audit)
LoadActivity = PKG + "LoadActivity"
AuditRecord = PKG + "AuditRecord"
SourceFile = PKG + "SourceFile"
action = PKG + "action"
reason = PKG + "reason"
sha256 = PKG + "sha256"
rowCount = PKG + "rowCount"
tripleCount = PKG + "tripleCount"
targetGraph = PKG + "targetGraph"
user = PKG + "user"
# the hash chain of the audit trail
recordNumber = PKG + "recordNumber"
previousHash = PKG + "previousHash"
recordHash = PKG + "recordHash"
recordContent = PKG + "recordContent"
triplesRemoved = PKG + "triplesRemoved"
aboutRecord = PKG + "aboutRecord"
addedTriples = PKG + "addedTriples"
removedTriples = PKG + "removedTriples"
# tech-transfer packages (graph {base}graph/packages)
TransferPackage = PKG + "TransferPackage"
packageVersion = PKG + "packageVersion"
packageGraph = PKG + "packageGraph"
current = PKG + "current"
signer = PKG + "signer"
signatureMeaning = PKG + "signatureMeaning"
signedAt = PKG + "signedAt"
keyId = PKG + "keyId"
mappedTo = PKG + "mappedTo"
PROV_TERMS: tuple[str, ...] = (
    LoadActivity,
    AuditRecord,
    SourceFile,
    action,
    reason,
    sha256,
    rowCount,
    tripleCount,
    targetGraph,
    user,
    recordNumber,
    previousHash,
    recordHash,
    recordContent,
    triplesRemoved,
    aboutRecord,
    addedTriples,
    removedTriples,
    TransferPackage,
    packageVersion,
    packageGraph,
    current,
    signer,
    signatureMeaning,
    signedAt,
    keyId,
    mappedTo,
)

# historian series (pkg:TimeSeries nodes; the points live in Parquet beside the store)
TimeSeries = PKG + "TimeSeries"
tag = PKG + "tag"
seriesFile = PKG + "seriesFile"
seriesStart = PKG + "seriesStart"
seriesEnd = PKG + "seriesEnd"
pointCount = PKG + "pointCount"
featureOf = PKG + "featureOf"
feature = PKG + "feature"
SERIES_TERMS: tuple[str, ...] = (TimeSeries, tag, seriesFile, seriesStart, seriesEnd, pointCount, featureOf, feature)

# BatchML / B2MML (issue 8): procedure logic, batch events, recipe header, lot assembly
Transition = PKG + "Transition"
BatchEvent = PKG + "BatchEvent"
precedes = PKG + "precedes"
transitionOf = PKG + "transitionOf"
condition = PKG + "condition"
parameterType = PKG + "parameterType"
textValue = PKG + "textValue"
batchSize = PKG + "batchSize"
batchSizeMin = PKG + "batchSizeMin"
batchSizeMax = PKG + "batchSizeMax"
approvedBy = PKG + "approvedBy"
approvalDate = PKG + "approvalDate"
assembledFrom = PKG + "assembledFrom"
performedBy = PKG + "performedBy"
batchEventType = PKG + "batchEventType"
BATCHML_TERMS: tuple[str, ...] = (
    Transition,
    BatchEvent,
    precedes,
    transitionOf,
    condition,
    parameterType,
    textValue,
    batchSize,
    batchSizeMin,
    batchSizeMax,
    approvedBy,
    approvalDate,
    assembledFrom,
    performedBy,
    batchEventType,
)
