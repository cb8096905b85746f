"""Checks of ontology/pharmakg.ttl, ontology/shapes.ttl and ontology/alignments/.

The vocabulary in docs/vocabulary.md is the contract: every term it names must be
declared (with labels a process scientist can read), every shape may only use
the small SHACL subset that the SHACL-to-SPARQL compiler understands, and a
hand-written instance graph must pass the shapes while small breakages fail on
exactly the expected property shape.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pyoxigraph
import pytest
from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.collection import Collection
from rdflib.namespace import DCTERMS, OWL, RDF, RDFS, SH, SKOS

ROOT = Path(__file__).resolve().parents[1]
ONTOLOGY = ROOT / "ontology" / "pharmakg.ttl"
SHAPES = ROOT / "ontology" / "shapes.ttl"
ALIGNMENTS = sorted((ROOT / "ontology" / "alignments").glob("*.ttl"))
VOCABULARY = ROOT / "docs" / "vocabulary.md"
EXTERNAL = Path(os.environ.get("PHARMAKG_EXTERNAL_ONTOLOGIES", "/work/shared/data/ontologies"))

# a plain Namespace: rdflib's closed XSD namespace warns when pytest inspects it
XSD = Namespace("http://www.w3.org/2001/XMLSchema#")
PKG = Namespace("https://w3id.org/pharmakg/ontology#")
PKGSH = Namespace("https://w3id.org/pharmakg/shapes#")
PROV = Namespace("http://www.w3.org/ns/prov#")
SOSA = Namespace("http://www.w3.org/ns/sosa/")
PREFIXES = {"pkg": PKG, "prov": PROV, "sosa": SOSA, "xsd": XSD, "rdf": RDF}

TTL_FILES = [ONTOLOGY, SHAPES, *ALIGNMENTS]

# The SHACL subset the compiler supports, per kind of shape.
NODE_SHAPE_PREDICATES = {RDF.type, SH.targetClass, SH.property}
PROPERTY_SHAPE_PREDICATES = {
    RDF.type,
    SH.path,
    SH.minCount,
    SH.maxCount,
    SH.datatype,
    SH["class"],
    SH["in"],
    SH.minInclusive,
    SH.maxInclusive,
    SH.nodeKind,
    SH.severity,
    SH.message,
}

# Required properties (sh:minCount 1) per class: identifier everywhere, plus the
# references the CSV contract requires.
STEP_CLASSES = ("Procedure", "UnitProcedure", "Operation", "Phase")
REQUIRED = {
    "MaterialLot": {"material"},
    **{cls: {"recipe"} for cls in STEP_CLASSES},
    "Impact": {"impactSource", "impactTarget"},
    "EquipmentUse": {"batch", "equipment"},
    "MaterialConsumption": {"batch", "lot"},
    "MaterialProduction": {"batch", "lot"},
    "ParameterValue": {"batch", "parameter", "value"},
    "MaterialAttributeValue": {"lot", "attribute", "value"},
    "TestResult": {"sample", "attribute"},
    "Shipment": {"lot", "customer"},
    "Twin": {"twinId", "twinVersion", "twinKind", "twinStatus", "input", "output"},
    "TwinPort": {"portName", "via", "unit"},
    "TwinParameter": {"parameterName", "estimate", "unit"},
    "TimeSeries": {"batch", "equipment", "parameter", "tag", "unit"}
    | {"seriesStart", "seriesEnd", "pointCount", "seriesFile", "sha256"},
}

# Alignments the brief fixes for properties (class alignments are read from the
# "notes / alignment" column of docs/vocabulary.md).
SUBPROPERTIES = [
    (PKG.consumed, PROV.used),
    (PKG.startTime, PROV.startedAtTime),
    (PKG.endTime, PROV.endedAtTime),
    (PKG.value, SOSA.hasSimpleResult),
    (PKG.time, SOSA.resultTime),
    (PKG.parameter, SOSA.observedProperty),
    (PKG.attribute, SOSA.observedProperty),
    (PKG.instrument, SOSA.madeBySensor),
]

TERM_TYPES = {
    OWL.Class,
    OWL.ObjectProperty,
    OWL.DatatypeProperty,
    OWL.AnnotationProperty,
    SKOS.Concept,
    SKOS.ConceptScheme,
}


# --------------------------------------------------------------------------- helpers


def _parse(path: Path) -> Graph:
    return Graph().parse(path, format="turtle")


@pytest.fixture(scope="module")
def ontology() -> Graph:
    return _parse(ONTOLOGY)


@pytest.fixture(scope="module")
def shapes() -> Graph:
    return _parse(SHAPES)


@pytest.fixture(scope="module")
def alignments() -> dict[str, Graph]:
    return {path.name: _parse(path) for path in ALIGNMENTS}


def _tables(markdown: str) -> dict[str, list[list[str]]]:
    """Rows (header and separator dropped) of each table, keyed by its '## ' section."""
    tables: dict[str, list[list[str]]] = {}
    section = ""
    header_seen = False
    for line in markdown.splitlines():
        if line.startswith("## "):
            section, header_seen = line[3:].strip(), False
            continue
        if not line.startswith("|"):
            header_seen = False
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not header_seen:
            header_seen = True
            continue
        if set("".join(cells)) <= set("-: "):
            continue
        tables.setdefault(section, []).append(cells)
    return tables


def _terms(text: str) -> list[URIRef]:
    return [PKG[name] for name in re.findall(r"\bpkg:([A-Za-z][A-Za-z0-9]*)", text)]


def _curie(token: str) -> URIRef:
    prefix, local = token.split(":")
    return PREFIXES[prefix][local]


@pytest.fixture(scope="module")
def vocab() -> dict[str, list[list[str]]]:
    tables = _tables(VOCABULARY.read_text(encoding="utf-8"))
    assert {"Classes", "Properties"} <= set(tables), "docs/vocabulary.md lost a table"
    assert any(name.startswith("Controlled vocabularies") for name in tables)
    return tables


def _section(vocab: dict[str, list[list[str]]], prefix: str) -> list[list[str]]:
    return next(rows for name, rows in vocab.items() if name.startswith(prefix))


def _class_rows(vocab):
    return _section(vocab, "Classes")


def _abstract_classes(vocab) -> set[URIRef]:
    return {t for row in _class_rows(vocab) if "abstract" in row[1] for t in _terms(row[0])}


def _concrete_classes(vocab) -> set[URIRef]:
    every = {t for row in _class_rows(vocab) for t in _terms(row[0])}
    return every - _abstract_classes(vocab)


def _subclass_closure(graph: Graph, cls: URIRef) -> set:
    return set(graph.transitive_objects(cls, RDFS.subClassOf))


def _union_members(graph: Graph, node) -> set:
    if isinstance(node, URIRef):
        return {node}
    members = graph.value(node, OWL.unionOf)
    assert members is not None, f"{node} is neither an IRI nor an owl:unionOf"
    return set(Collection(graph, members))


def _is_declared(graph: Graph, term: URIRef) -> bool:
    return any(t in TERM_TYPES for t in graph.objects(term, RDF.type))


def _en(graph: Graph, term: URIRef, prop: URIRef) -> list[Literal]:
    return [o for o in graph.objects(term, prop) if isinstance(o, Literal) and o.language == "en"]


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("path", TTL_FILES, ids=lambda p: p.name)
def test_parses_in_rdflib(path: Path) -> None:
    assert len(_parse(path)) > 0


@pytest.mark.parametrize("path", TTL_FILES, ids=lambda p: p.name)
def test_parses_in_pyoxigraph(path: Path) -> None:
    store = pyoxigraph.Store()
    store.load(path=str(path), format=pyoxigraph.RdfFormat.TURTLE)
    assert len(store) == len(_parse(path))


# --------------------------------------------------------------------------- ontology


def test_ontology_header(ontology: Graph) -> None:
    header = URIRef("https://w3id.org/pharmakg/ontology")
    assert (header, RDF.type, OWL.Ontology) in ontology
    assert _en(ontology, header, DCTERMS.title)
    assert _en(ontology, header, DCTERMS.description)
    assert ontology.value(header, OWL.versionInfo) is not None
    assert ontology.value(header, DCTERMS.license) == URIRef("https://creativecommons.org/licenses/by/4.0/")
    assert ontology.value(header, DCTERMS.created) == Literal("2026-11-22", datatype=XSD.date)


def test_every_vocabulary_term_is_declared_and_documented(ontology: Graph, vocab) -> None:
    terms = {t for rows in vocab.values() for row in rows for t in _terms(" ".join(row))}
    assert len(terms) > 120, "parsing docs/vocabulary.md found too few terms"
    problems = []
    for term in sorted(terms):
        if not _is_declared(ontology, term):
            problems.append(f"{term} is not declared")
        elif (term, RDF.type, SKOS.Concept) in ontology:
            if not (_en(ontology, term, SKOS.prefLabel) and _en(ontology, term, SKOS.definition)):
                problems.append(f"concept {term} lacks skos:prefLabel/skos:definition @en")
        elif not (_en(ontology, term, RDFS.label) and _en(ontology, term, RDFS.comment)):
            problems.append(f"{term} lacks rdfs:label/rdfs:comment @en")
    assert not problems, "\n".join(problems)


def test_only_vocabulary_terms_are_minted(ontology: Graph, vocab) -> None:
    listed = {t for rows in vocab.values() for row in rows for t in _terms(" ".join(row))}
    declared = {s for s in ontology.subjects(RDF.type, None) if str(s).startswith(str(PKG))}
    from pharmakg import terms

    provenance = {URIRef(t) for t in terms.PROV_TERMS}  # documented in docs/vocabulary.md prose
    assert declared - listed == {PKG.canonicalUnit} | provenance


def test_classes_and_their_superclasses(ontology: Graph, vocab) -> None:
    for row in _class_rows(vocab):
        supers = [_curie(tok) for tok in re.findall(r"⊑ ((?:pkg|prov|sosa):\w+)", row[2])]
        for cls in _terms(row[0]):
            assert (cls, RDF.type, OWL.Class) in ontology, cls
            for sup in supers:
                assert (cls, RDFS.subClassOf, sup) in ontology, f"{cls} ⊑ {sup}"


def test_property_kinds_domains_and_ranges(ontology: Graph, vocab) -> None:
    for row in _section(vocab, "Properties"):
        domain_text, _, range_text = row[1].partition("→")
        if "→" in range_text:  # pkg:partOf lists two domain/range pairs
            continue
        datatypes = [_curie(tok) for tok in re.findall(r"(?:xsd|rdf):\w+", range_text)]
        for prop in _terms(row[0]):
            kind = OWL.DatatypeProperty if datatypes else OWL.ObjectProperty
            assert (prop, RDF.type, kind) in ontology, f"{prop} should be a {kind}"
            domains = {PKG[d] for d in re.findall(r"[A-Z]\w+", domain_text)}
            declared = ontology.value(prop, RDFS.domain)
            if domains:
                assert declared is not None, f"{prop} has no rdfs:domain"
                assert _union_members(ontology, declared) == domains, prop
                assert isinstance(declared, URIRef) == (len(domains) == 1), prop
            else:
                assert declared is None, f"{prop} applies to any node: no rdfs:domain"
            rng = ontology.value(prop, RDFS.range)
            if datatypes:
                expected = set(datatypes)
            elif "concept" in range_text:
                expected = {SKOS.Concept}
            else:
                expected = {PKG[r] for r in re.findall(r"[A-Z]\w+", range_text)}
            assert rng is not None and _union_members(ontology, rng) == expected, prop


def test_concepts_and_schemes(ontology: Graph, vocab) -> None:
    for prop_cell, scheme_cell, concepts_cell in _section(vocab, "Controlled vocabularies"):
        (scheme,) = _terms(scheme_cell)
        assert (scheme, RDF.type, SKOS.ConceptScheme) in ontology
        concepts = _terms(concepts_cell)
        for concept in concepts:
            assert (concept, RDF.type, SKOS.Concept) in ontology
            assert (concept, SKOS.inScheme, scheme) in ontology
            assert (concept, SKOS.topConceptOf, scheme) in ontology
        assert set(ontology.objects(scheme, SKOS.hasTopConcept)) == set(concepts)
        (prop,) = _terms(prop_cell)
        assert ontology.value(prop, RDFS.range) == SKOS.Concept


def test_fixed_alignments(ontology: Graph) -> None:
    for sub, sup in SUBPROPERTIES:
        assert (sub, RDFS.subPropertyOf, sup) in ontology, f"{sub} ⊑ {sup}"
    assert (PKG.produced, OWL.inverseOf, PROV.wasGeneratedBy) in ontology
    assert (PKG.partOf, RDF.type, OWL.TransitiveProperty) in ontology
    assert set(ontology.objects(PKG.quantity, PKG.canonicalUnit)) == {Literal("kg"), Literal("L")}


# --------------------------------------------------------------------------- shapes


def _node_shapes(shapes: Graph) -> dict[URIRef, URIRef]:
    """Target class -> node shape."""
    result = {}
    for shape in shapes.subjects(RDF.type, SH.NodeShape):
        targets = list(shapes.objects(shape, SH.targetClass))
        assert len(targets) == 1, f"{shape} should target exactly one class"
        assert targets[0] not in result, f"two node shapes target {targets[0]}"
        result[targets[0]] = shape
    return result


def _property_shapes(shapes: Graph, node_shape: URIRef) -> dict[URIRef, URIRef]:
    """Path -> property shape of one node shape."""
    result = {}
    for prop_shape in shapes.objects(node_shape, SH.property):
        path = shapes.value(prop_shape, SH.path)
        assert path not in result, f"{node_shape} has two shapes for {path}"
        result[path] = prop_shape
    return result


def test_every_concrete_class_has_a_node_shape(shapes: Graph, vocab) -> None:
    targeted = set(_node_shapes(shapes))
    assert targeted == _concrete_classes(vocab)
    assert not targeted & _abstract_classes(vocab)


def test_shapes_use_only_the_supported_shacl_subset(shapes: Graph) -> None:
    node_shapes = set(shapes.subjects(RDF.type, SH.NodeShape))
    prop_shapes = set(shapes.objects(None, SH.property))
    assert prop_shapes, "no property shapes"
    assert set(shapes.subjects(RDF.type, SH.PropertyShape)) <= prop_shapes
    for s, p, o in shapes:
        if p in (RDF.first, RDF.rest):
            continue
        if s in node_shapes:
            assert p in NODE_SHAPE_PREDICATES, f"{s}: {p} is not supported on node shapes"
        elif s in prop_shapes:
            assert p in PROPERTY_SHAPE_PREDICATES, f"{s}: {p} is not supported on property shapes"
        else:  # the header and list nodes: no SHACL at all
            assert not str(p).startswith(str(SH)), f"{s} uses {p} outside a shape"
        if p == RDF.type and str(o).startswith(str(SH)):
            assert o in (SH.NodeShape, SH.PropertyShape), f"{s} a {o}"
    for prop_shape in prop_shapes:
        assert isinstance(prop_shape, URIRef), "property shapes are named, so results name them"
        paths = list(shapes.objects(prop_shape, SH.path))
        assert len(paths) == 1 and isinstance(paths[0], URIRef), f"{prop_shape}: path must be one IRI"
        assert _en(shapes, prop_shape, SH.message), f"{prop_shape} has no sh:message @en"
        for severity in shapes.objects(prop_shape, SH.severity):
            assert severity in (SH.Violation, SH.Warning, SH.Info)
        for kind in shapes.objects(prop_shape, SH.nodeKind):
            assert kind in (SH.IRI, SH.Literal), f"{prop_shape}: nodeKind {kind}"
        for values in shapes.objects(prop_shape, SH["in"]):
            members = list(Collection(shapes, values))
            assert members and all(isinstance(m, URIRef) for m in members), prop_shape
        for key in (SH.minCount, SH.maxCount, SH.minInclusive, SH.maxInclusive):
            for value in shapes.objects(prop_shape, key):
                assert isinstance(value, Literal) and value.datatype == XSD.integer, (prop_shape, key)


def test_required_properties(shapes: Graph) -> None:
    for cls, node_shape in _node_shapes(shapes).items():
        by_path = _property_shapes(shapes, node_shape)
        required = {path for path, ps in by_path.items() if int(shapes.value(ps, SH.minCount, default=Literal(0))) >= 1}
        expected = {DCTERMS.identifier} | {PKG[p] for p in REQUIRED.get(cls.fragment, ())}
        assert required == expected, cls
        ident = by_path[DCTERMS.identifier]
        assert shapes.value(ident, SH.minCount).toPython() == 1
        assert shapes.value(ident, SH.maxCount).toPython() == 1
        assert shapes.value(ident, SH.datatype) == XSD.string
        label = by_path[RDFS.label]
        assert shapes.value(label, SH.maxCount).toPython() == 1
        assert shapes.value(label, SH.datatype) == XSD.string


def test_property_shapes_agree_with_the_ontology(shapes: Graph, ontology: Graph, vocab) -> None:
    scheme_of = {_terms(row[0])[0]: set(_terms(row[2])) for row in _section(vocab, "Controlled vocabularies")}
    for cls, node_shape in _node_shapes(shapes).items():
        for path, ps in _property_shapes(shapes, node_shape).items():
            if path in (DCTERMS.identifier, RDFS.label):
                continue
            assert _is_declared(ontology, path), f"{ps}: {path} is not in the ontology"
            domain = ontology.value(path, RDFS.domain)
            if domain is not None:
                assert _union_members(ontology, domain) & _subclass_closure(ontology, cls), (
                    f"{ps}: {cls} is outside the domain of {path}"
                )
            rng = ontology.value(path, RDFS.range)
            datatype = shapes.value(ps, SH.datatype)
            if datatype is not None:
                assert (path, RDF.type, OWL.DatatypeProperty) in ontology, ps
                assert rng == datatype, f"{ps}: sh:datatype {datatype} but range {rng}"
            target = shapes.value(ps, SH["class"])
            if target is not None:
                assert (path, RDF.type, OWL.ObjectProperty) in ontology, ps
                assert rng in _subclass_closure(ontology, target), f"{ps}: {target} vs {rng}"
            concepts = shapes.value(ps, SH["in"])
            if concepts is not None:
                assert set(Collection(shapes, concepts)) == scheme_of[path], ps
                assert shapes.value(ps, SH.maxCount).toPython() == 1, ps
            if path in scheme_of:
                assert concepts is not None, f"{ps}: concept-valued property needs sh:in"
            if shapes.value(ps, SH.nodeKind) == SH.Literal:
                assert _union_members(ontology, rng) == {XSD.date, XSD.dateTime}, ps
            if path == PKG.riskSeverity:
                assert shapes.value(ps, SH.minInclusive).toPython() == 1
                assert shapes.value(ps, SH.maxInclusive).toPython() == 10


def _pkg_iris(graph: Graph) -> set[URIRef]:
    return {term for triple in graph for term in triple if isinstance(term, URIRef) and str(term).startswith(str(PKG))}


def test_shapes_and_alignments_use_only_declared_terms(
    shapes: Graph, alignments: dict[str, Graph], ontology: Graph
) -> None:
    for name, graph in [("shapes.ttl", shapes), *alignments.items()]:
        undeclared = sorted(t for t in _pkg_iris(graph) if not _is_declared(ontology, t))
        assert not undeclared, f"{name} uses undeclared terms: {undeclared}"


# --------------------------------------------------------------------------- SHACL on data

DATA = """
@prefix pkg: <https://w3id.org/pharmakg/ontology#> .
@prefix dcterms: <http://purl.org/dc/terms/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix eq: <https://example.org/pharmakg/equipment/> .
@prefix rcp: <https://example.org/pharmakg/recipe/> .
@prefix stp: <https://example.org/pharmakg/step/> .
@prefix mat: <https://example.org/pharmakg/material/> .
@prefix lot: <https://example.org/pharmakg/lot/> .
@prefix sup: <https://example.org/pharmakg/supplier/> .
@prefix par: <https://example.org/pharmakg/parameter/> .
@prefix qa: <https://example.org/pharmakg/attribute/> .
@prefix imp: <https://example.org/pharmakg/impact/> .
@prefix cs: <https://example.org/pharmakg/controlstrategy/> .
@prefix bat: <https://example.org/pharmakg/batch/> .
@prefix use: <https://example.org/pharmakg/equipmentuse/> .
@prefix con: <https://example.org/pharmakg/consumption/> .
@prefix prd: <https://example.org/pharmakg/production/> .
@prefix pv: <https://example.org/pharmakg/parametervalue/> .
@prefix mav: <https://example.org/pharmakg/lotattribute/> .
@prefix smp: <https://example.org/pharmakg/sample/> .
@prefix res: <https://example.org/pharmakg/result/> .
@prefix evt: <https://example.org/pharmakg/event/> .
@prefix dev: <https://example.org/pharmakg/deviation/> .
@prefix per: <https://example.org/pharmakg/person/> .
@prefix cus: <https://example.org/pharmakg/customer/> .
@prefix shp: <https://example.org/pharmakg/shipment/> .

eq:ACME a pkg:Enterprise ; dcterms:identifier "ACME" ; rdfs:label "Acme Pharma" .
eq:SITE-1 a pkg:Site ; dcterms:identifier "SITE-1" ; pkg:partOf eq:ACME .
eq:OSD a pkg:Area ; dcterms:identifier "OSD" ; pkg:partOf eq:SITE-1 .
eq:GRAN-CELL a pkg:ProcessCell ; dcterms:identifier "GRAN-CELL" ; pkg:partOf eq:OSD .
eq:GRAN-01 a pkg:Unit ; dcterms:identifier "GRAN-01" ; rdfs:label "High-shear granulator 1" ;
    pkg:partOf eq:GRAN-CELL ; pkg:equipmentClass "high-shear-granulator" ;
    pkg:capacity "300.0"^^xsd:double ; pkg:unit "L" ; pkg:valueAsGiven "0.3" ; pkg:unitAsGiven "m3" .
eq:SPRAY-01 a pkg:EquipmentModule ; dcterms:identifier "SPRAY-01" ; pkg:partOf eq:GRAN-01 .
eq:TT-01 a pkg:ControlModule ; dcterms:identifier "TT-01" ; pkg:partOf eq:SPRAY-01 .
eq:HPLC-07 a pkg:Unit ; dcterms:identifier "HPLC-07" ; pkg:equipmentClass "HPLC" .

rcp:GR-PARA a pkg:GeneralRecipe ; dcterms:identifier "GR-PARA" ; pkg:product mat:PARA-500 .
rcp:SR-PARA a pkg:SiteRecipe ; dcterms:identifier "SR-PARA" ; pkg:version "2" .
rcp:MR-PARA a pkg:MasterRecipe ; dcterms:identifier "MR-PARA" ; pkg:status "approved" .
rcp:CR-B1 a pkg:ControlRecipe ; dcterms:identifier "CR-B1" ; rdfs:label "Paracetamol 500 mg, B1" ;
    pkg:product mat:PARA-500 ; pkg:version "3" ; pkg:status "executed" .

stp:PROC a pkg:Procedure ; dcterms:identifier "PROC" ; pkg:recipe rcp:CR-B1 ;
    pkg:partOf rcp:CR-B1 ; pkg:sequence 1 .
stp:GRAN a pkg:UnitProcedure ; dcterms:identifier "GRAN" ; pkg:recipe rcp:CR-B1 ;
    pkg:partOf stp:PROC ; pkg:equipmentClass "high-shear-granulator" ; pkg:sequence 1 .
stp:WET a pkg:Operation ; dcterms:identifier "WET" ; pkg:recipe rcp:CR-B1 ; pkg:partOf stp:GRAN ;
    pkg:sequence 10 .
stp:SPRAY a pkg:Phase ; dcterms:identifier "SPRAY" ; rdfs:label "Spray binder" ;
    pkg:recipe rcp:CR-B1 ; pkg:partOf stp:WET ; pkg:sequence 20 .

mat:PARA-API a pkg:Material ; dcterms:identifier "PARA-API" ; pkg:materialKind pkg:DrugSubstance .
mat:PVP a pkg:Material ; dcterms:identifier "PVP" ; pkg:materialKind pkg:RawMaterial .
mat:GRANULE a pkg:Material ; dcterms:identifier "GRANULE" ; pkg:materialKind pkg:Intermediate .
mat:PARA-500 a pkg:Material ; dcterms:identifier "PARA-500" ; pkg:materialKind pkg:DrugProduct .
mat:BLISTER a pkg:Material ; dcterms:identifier "BLISTER" ; pkg:materialKind pkg:PackagingMaterial .

sup:Chemco a pkg:Supplier ; dcterms:identifier "Chemco" ; rdfs:label "Chemco" .
lot:API-L1 a pkg:MaterialLot ; dcterms:identifier "API-L1" ; pkg:material mat:PARA-API ;
    pkg:supplier sup:Chemco ; pkg:quantity "25.0"^^xsd:double ; pkg:unit "kg" ;
    pkg:receivedDate "2026-01-10"^^xsd:date ;
    pkg:expiryDate "2028-01-10T00:00:00+01:00"^^xsd:dateTime ; pkg:lotStatus pkg:Released .
lot:API-L1-01 a pkg:MaterialLot ; dcterms:identifier "API-L1-01" ; pkg:material mat:PARA-API ;
    pkg:sublotOf lot:API-L1 ; pkg:lotStatus pkg:Released .
lot:B1 a pkg:MaterialLot ; dcterms:identifier "B1" ; pkg:material mat:PARA-500 ;
    pkg:lotStatus pkg:Quarantine .

par:SPRAY-RATE a pkg:ProcessParameter ; dcterms:identifier "SPRAY-RATE" ; rdfs:label "Spray rate" ;
    pkg:recipe rcp:MR-PARA ; pkg:step stp:SPRAY ; pkg:criticality pkg:CPP ;
    pkg:target "120.0"^^xsd:double ; pkg:norLow "110.0"^^xsd:double ;
    pkg:norHigh "130.0"^^xsd:double ; pkg:parLow "100.0"^^xsd:double ;
    pkg:parHigh "140.0"^^xsd:double ; pkg:unit "g/min" ; pkg:impacts qa:DISSO .
par:IMPELLER a pkg:ProcessParameter ; dcterms:identifier "IMPELLER" ; pkg:criticality pkg:KPP .
qa:DISSO a pkg:QualityAttribute ; dcterms:identifier "DISSO" ; rdfs:label "Dissolution 30 min" ;
    pkg:material mat:PARA-500 ; pkg:attributeKind pkg:CQA ; pkg:specLow "80.0"^^xsd:double ;
    pkg:unit "%" ; pkg:method "USP <711>" .
qa:API-PSD a pkg:QualityAttribute ; dcterms:identifier "API-PSD" ; pkg:material mat:PARA-API ;
    pkg:attributeKind pkg:CMA ; pkg:specHigh "50.0"^^xsd:double ; pkg:unit "um" ;
    pkg:impacts qa:DISSO .
imp:SPRAY-RATE-DISSO a pkg:Impact ; dcterms:identifier "SPRAY-RATE->DISSO" ;
    pkg:impactSource par:SPRAY-RATE ; pkg:impactTarget qa:DISSO ; pkg:riskSeverity 8 ;
    pkg:rationale "Binder rate drives granule density and hence dissolution." .
imp:API-PSD-DISSO a pkg:Impact ; dcterms:identifier "API-PSD->DISSO" ;
    pkg:impactSource qa:API-PSD ; pkg:impactTarget qa:DISSO ; pkg:riskSeverity 5 .
cs:CS-PARA a pkg:ControlStrategy ; dcterms:identifier "CS-PARA" ;
    pkg:controls par:SPRAY-RATE , qa:DISSO .

bat:B1 a pkg:Batch ; dcterms:identifier "B1" ; pkg:recipe rcp:CR-B1 ; pkg:product mat:PARA-500 ;
    pkg:startTime "2026-02-01T06:00:00+01:00"^^xsd:dateTime ;
    pkg:endTime "2026-02-01T18:00:00+01:00"^^xsd:dateTime ; pkg:status "complete" ;
    pkg:usedEquipment eq:GRAN-01 ; pkg:consumed lot:API-L1-01 ; pkg:produced lot:B1 .
use:B1-GRAN-01 a pkg:EquipmentUse ; dcterms:identifier "B1/GRAN-01" ; pkg:batch bat:B1 ;
    pkg:equipment eq:GRAN-01 ; pkg:step stp:GRAN ;
    pkg:startTime "2026-02-01T07:00:00+01:00"^^xsd:dateTime .
con:B1-API a pkg:MaterialConsumption ; dcterms:identifier "B1/API-L1-01" ; pkg:batch bat:B1 ;
    pkg:lot lot:API-L1-01 ; pkg:step stp:WET ; pkg:quantity "12.5"^^xsd:double ; pkg:unit "kg" ;
    pkg:valueAsGiven "12500" ; pkg:unitAsGiven "g" .
prd:B1-B1 a pkg:MaterialProduction ; dcterms:identifier "B1/B1" ; pkg:batch bat:B1 ;
    pkg:lot lot:B1 ; pkg:quantity "30.0"^^xsd:double ; pkg:unit "kg" .
pv:B1-SPRAY-1 a pkg:ParameterValue ; dcterms:identifier "B1/SPRAY-RATE/1" ; pkg:batch bat:B1 ;
    pkg:parameter par:SPRAY-RATE ; pkg:value "121.5"^^xsd:double ; pkg:unit "g/min" ;
    pkg:time "2026-02-01T08:15:00+01:00"^^xsd:dateTime .
mav:API-L1-PSD a pkg:MaterialAttributeValue ; dcterms:identifier "API-L1/API-PSD" ;
    pkg:lot lot:API-L1 ; pkg:attribute qa:API-PSD ; pkg:value "42.0"^^xsd:double ; pkg:unit "um" .
smp:S-100 a pkg:Sample ; dcterms:identifier "S-100" ; pkg:batch bat:B1 ; pkg:lot lot:B1 .
res:S-100-DISSO a pkg:TestResult ; dcterms:identifier "S-100/DISSO" ; pkg:sample smp:S-100 ;
    pkg:attribute qa:DISSO ; pkg:batch bat:B1 ; pkg:value "92.0"^^xsd:double ; pkg:unit "%" ;
    pkg:time "2026-02-03T10:00:00+01:00"^^xsd:dateTime ; pkg:instrument eq:HPLC-07 ;
    pkg:analyst per:jdoe ; pkg:status "valid" .
per:jdoe a pkg:Person ; dcterms:identifier "jdoe" ; rdfs:label "J. Doe" .
evt:E-1 a pkg:EquipmentEvent ; dcterms:identifier "E-1" ; pkg:equipment eq:HPLC-07 ;
    pkg:eventType pkg:Calibration ; pkg:time "2026-01-15T09:00:00+01:00"^^xsd:dateTime ;
    pkg:description "Annual calibration" ; pkg:outcome "pass" .
dev:DEV-1 a pkg:Deviation ; dcterms:identifier "DEV-1" ; pkg:batch bat:B1 ;
    pkg:equipment eq:GRAN-01 ; pkg:attribute qa:DISSO ; pkg:category "process" ;
    pkg:deviationSeverity pkg:Minor ; pkg:opened "2026-02-01T09:00:00+01:00"^^xsd:dateTime ;
    pkg:closed "2026-02-10T12:00:00+01:00"^^xsd:dateTime ; pkg:description "Spray nozzle clogged" ;
    pkg:rootCause "Binder viscosity" ; pkg:capa "CAPA-17: filter binder" ;
    pkg:rootCauseEvidence "{\\"format\\": \\"pharmakg.rootcause-evidence/1\\"}"^^<http://www.w3.org/1999/02/22-rdf-syntax-ns#JSON> .
cus:Pharmadist a pkg:Customer ; dcterms:identifier "Pharmadist" .
shp:SH-1 a pkg:Shipment ; dcterms:identifier "SH-1" ; pkg:lot lot:B1 ; pkg:customer cus:Pharmadist ;
    pkg:market "EU" ; pkg:quantity "30.0"^^xsd:double ; pkg:unit "kg" ;
    pkg:shippedDate "2026-03-01"^^xsd:date .
<https://example.org/pharmakg/twin/TW-1/1> a pkg:Twin ; dcterms:identifier "TW-1/1" ; pkg:twinId "TW-1" ;
    pkg:twinVersion 1 ; pkg:twinKind "response-surface" ; pkg:twinStatus pkg:Validated ;
    pkg:equation "y = b0 + b1 x" ; pkg:settings "{}" ; pkg:trainingSize 1 ; pkg:describes stp:SPRAY ;
    pkg:equipmentClass "high-shear-granulator" ; pkg:fittedOn bat:B1 ;
    pkg:input <https://example.org/pharmakg/twin/TW-1/1/input/rate> ;
    pkg:output <https://example.org/pharmakg/twin/TW-1/1/output/diss> ;
    pkg:modelParameter <https://example.org/pharmakg/twin/TW-1/1/param/b0> .
<https://example.org/pharmakg/twin/TW-1/1/input/rate> a pkg:TwinPort ; dcterms:identifier "TW-1/1/input/rate" ;
    pkg:portName "rate" ; pkg:unit "g/min" ; pkg:via "parameter" ; pkg:boundTo par:SPRAY-RATE ; pkg:order 0 .
<https://example.org/pharmakg/twin/TW-1/1/output/diss> a pkg:TwinPort ; dcterms:identifier "TW-1/1/output/diss" ;
    pkg:portName "diss" ; pkg:unit "%" ; pkg:via "result" ; pkg:boundTo qa:DISSO .
<https://example.org/pharmakg/twin/TW-1/1/param/b0> a pkg:TwinParameter ; dcterms:identifier "TW-1/1/param/b0" ;
    pkg:parameterName "b0" ; pkg:estimate "91.5"^^xsd:double ; pkg:unit "%" ; pkg:standardError "0.4"^^xsd:double ;
    pkg:fixed false ; pkg:positive false ; pkg:order 0 .
<https://example.org/pharmakg/series/B1/TT-101> a pkg:TimeSeries ; dcterms:identifier "B1/TT-101" ;
    rdfs:label "TT-101 (B1)" ; pkg:batch bat:B1 ; pkg:equipment eq:TT-01 ; pkg:parameter par:SPRAY-RATE ;
    pkg:tag "TT-101" ; pkg:unit "g/min" ; pkg:unitAsGiven "kg/h" ;
    pkg:seriesStart "2026-02-01T07:00:00Z"^^xsd:dateTime ; pkg:seriesEnd "2026-02-01T09:00:00Z"^^xsd:dateTime ;
    pkg:pointCount 721 ; pkg:seriesFile "TT-101/B1.parquet" ;
    pkg:sha256 "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" .
<https://example.org/pharmakg/transition/CR-B1/WET/T1> a pkg:Transition ; dcterms:identifier "T1" ;
    pkg:transitionOf stp:WET ; pkg:condition "SPRAY complete" ; pkg:precedes stp:SPRAY .
<https://example.org/pharmakg/batch-event/B1/E1> a pkg:BatchEvent ; dcterms:identifier "B1/E1" ;
    pkg:batch bat:B1 ; pkg:step stp:SPRAY ; pkg:time "2026-02-01T08:00:00Z"^^xsd:dateTime ;
    pkg:batchEventType "Operator/Exception" ; pkg:category "Out of spec" ; pkg:description "spray rate high" ;
    pkg:performedBy per:jdoe .
"""

EX = Namespace("https://example.org/pharmakg/")


def _set(subject: URIRef, prop: URIRef, value) -> tuple:
    """A breakage: replace (or, with None, remove) the values of prop on subject."""
    return subject, prop, value


# Each breakage hits its own focus node, so that ONE pyshacl run (the RDFS
# closure is the slow part) checks them all; every case is still asserted alone.
BROKEN = {
    "missing identifier": (_set(EX["batch/B1"], DCTERMS.identifier, None), PKGSH["Batch-identifier"]),
    "lot without material": (_set(EX["lot/B1"], PKG.material, None), PKGSH["MaterialLot-material"]),
    "risk severity 11": (
        _set(EX["impact/SPRAY-RATE-DISSO"], PKG.riskSeverity, Literal(11)),
        PKGSH["Impact-riskSeverity"],
    ),
    "risk severity 0": (_set(EX["impact/API-PSD-DISSO"], PKG.riskSeverity, Literal(0)), PKGSH["Impact-riskSeverity"]),
    "deviation severity as lot status": (
        _set(EX["lot/API-L1-01"], PKG.lotStatus, PKG.Major),
        PKGSH["MaterialLot-lotStatus"],
    ),
    "root-cause evidence as plain text, not JSON": (
        _set(EX["deviation/DEV-1"], PKG.rootCauseEvidence, Literal('{"format": "pharmakg.rootcause-evidence/1"}')),
        PKGSH["Deviation-rootCauseEvidence"],
    ),
    "string where a number is required": (
        _set(EX["parametervalue/B1-SPRAY-1"], PKG.value, Literal("121.5")),
        PKGSH["ParameterValue-value"],
    ),
}


def _validate(data: Graph, shapes: Graph, ontology: Graph) -> set[tuple]:
    pyshacl = pytest.importorskip("pyshacl")
    conforms, report, _ = pyshacl.validate(
        data, shacl_graph=shapes, ont_graph=ontology, inference="rdfs", allow_warnings=False
    )
    results = {
        (report.value(r, SH.focusNode), report.value(r, SH.sourceShape))
        for r in report.subjects(RDF.type, SH.ValidationResult)
    }
    assert conforms == (not results)
    return results


@pytest.fixture(scope="module")
def data() -> Graph:
    return Graph().parse(data=DATA, format="turtle")


@pytest.fixture(scope="module")
def broken_results(data: Graph, shapes: Graph, ontology: Graph) -> set[tuple]:
    focus_nodes = [subject for (subject, _, _), _ in BROKEN.values()]
    assert len(set(focus_nodes)) == len(focus_nodes), "one breakage per focus node"
    broken = Graph()
    for triple in data:
        broken.add(triple)
    for (subject, prop, value), _ in BROKEN.values():
        assert (subject, prop, None) in data or value is not None, f"{subject} has no {prop}"
        broken.remove((subject, prop, None))
        if value is not None:
            broken.add((subject, prop, value))
    return _validate(broken, shapes, ontology)


def test_valid_instance_data_conforms(data: Graph, shapes: Graph, ontology: Graph, vocab) -> None:
    typed = set(data.objects(None, RDF.type))
    assert _concrete_classes(vocab) <= typed, "the sample should exercise every node shape"
    assert _validate(data, shapes, ontology) == set()


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_instance_data_fails_on_the_expected_shape(case: str, broken_results: set) -> None:
    (focus, _, _), shape = BROKEN[case]
    assert {r for r in broken_results if r[0] == focus} == {(focus, shape)}


def test_broken_instance_data_fails_nowhere_else(broken_results: set) -> None:
    assert broken_results == {(subject, shape) for (subject, _, _), shape in BROKEN.values()}


# --------------------------------------------------------------------------- alignments

STANDARD = (
    str(OWL),
    str(RDF),
    str(RDFS),
    str(XSD),
    str(SKOS),
    str(DCTERMS),
    str(PKG),
    "https://w3id.org/pharmakg/",
    "https://creativecommons.org/",
)


DECLARATIONS = {str(t) for t in (OWL.Class, OWL.ObjectProperty, OWL.DatatypeProperty, OWL.Ontology)}


def _namespace(iri: str) -> str:
    return re.sub(r"[^#/]*$", "", iri)


@pytest.fixture(scope="module")
def external() -> tuple[set[str], set[str]]:
    """(IRIs declared, namespaces occurring) in the stored source ontologies."""
    if not EXTERNAL.is_dir():
        pytest.skip(f"{EXTERNAL} is absent: cannot check alignment IRIs against the sources")
    declared: set[str] = set()
    namespaces: set[str] = set()
    for path in sorted(EXTERNAL.rglob("*")):
        if path.suffix not in (".rdf", ".owl"):
            continue
        for triple in pyoxigraph.parse(path=str(path), format=pyoxigraph.RdfFormat.RDF_XML):
            for term in (triple.subject, triple.predicate, triple.object):
                if isinstance(term, pyoxigraph.NamedNode):
                    namespaces.add(_namespace(term.value))
            if triple.predicate.value == str(RDF.type) and triple.object.value in DECLARATIONS:
                declared.add(triple.subject.value)
    assert declared, f"no OWL declarations found under {EXTERNAL}"
    return declared, namespaces


@pytest.mark.parametrize("name", [p.name for p in ALIGNMENTS])
def test_alignment_iris_exist_in_the_sources(
    name: str, alignments: dict[str, Graph], external: tuple[set[str], set[str]]
) -> None:
    declared, namespaces = external
    graph = alignments[name]
    iris = {
        str(term)
        for triple in graph
        for term in triple
        if isinstance(term, URIRef) and not str(term).startswith(STANDARD)
    }
    assert iris, f"{name} maps nothing"
    for iri in sorted(iris):
        assert _namespace(iri) in namespaces, f"{name}: {iri} is in no source namespace"
        assert iri in declared, f"{name}: {iri} is not declared in {EXTERNAL}"


def test_alignments_map_each_isa88_level_and_qbd_class(alignments: dict[str, Graph]) -> None:
    isa88 = Namespace("http://www.hsu-ifa.de/ontologies/ISA88.01#")
    iof = Namespace("https://spec.industrialontologies.org/ontology/construct/")
    g = alignments["isa88.ttl"]
    for ours, theirs in [
        ("Unit", "Unit"),
        ("ProcessCell", "ProcessCell"),
        ("Phase", "Phase"),
        ("UnitProcedure", "UnitProcedure"),
        ("Procedure", "RecipeProcedure"),
    ]:
        assert (PKG[ours], OWL.equivalentClass, isa88[theirs]) in g
    g = alignments["iof-biopharma.ttl"]
    assert (PKG.ProcessParameter, RDFS.subClassOf, iof.ProcessParameter) in g
    assert (PKG.QualityAttribute, RDFS.subClassOf, iof.QualityAttribute) in g
    assert (PKG.parLow, SKOS.relatedMatch, iof.ProvenAcceptableRangeValueExpression) in g
    gci = [s for s in g.subjects(RDFS.subClassOf, iof.CriticalProcessParameter) if isinstance(s, BNode)]
    assert len(gci) == 1
