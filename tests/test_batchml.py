"""BatchML / B2MML in and out (issue 8): every public example, V0700 fixtures, XSD validation, export round trip.

Public examples come from /work/shared/data/b2mml-batchml (see its README for the ground truth asserted
here); the V0700 fixtures in tests/data/batchml are ours, since no public V0700 instance exists. Every
refused document must leave the store's N-Quads byte-identical.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

import pharmakg
from pharmakg import IngestError
from pharmakg import terms as T
from pharmakg.ingest.batchml import SCHEMAS_ENV, export_batchml, is_batchml, validate_document
from pharmakg.trace import trace

from .conftest import DATA, MINI, SHARED

B2MML = SHARED / "b2mml-batchml"
EXAMPLES = B2MML / "examples"
V0700 = B2MML / "schema-V0700"
COUGH_SYRUP = EXAMPLES / "batchml-v02-cough-syrup" / "cough_syrup_pmw.xml"
BATCH_RECORD = EXAMPLES / "batchml-v0401-production-batch-record" / "ProductionBatchRecord_Example_v06.xml"
COURBON = EXAMPLES / "b2mml-v0401-courbon"
#: in the order a plant receives them: material master, lot, inventory, schedule, performance
COURBON_MESSAGES = [
    COURBON / "MAT-20121210170256-CRBN0001.xml",
    COURBON / "LOT-20121210170718-0001L0001.xml",
    COURBON / "INV-20121210175555-0001L0001_01.xml",
    COURBON / "PRO-20121210181416-27942.xml",
    COURBON / "PES-20121229115825-53107.xml",
]
WERDNAV = EXAMPLES / "werdnav_sample_XML_to_validate.xml"
ALL_EXAMPLES = [COUGH_SYRUP, BATCH_RECORD, *COURBON_MESSAGES, WERDNAV]

FIXTURES = DATA / "batchml"
MASTER = FIXTURES / "master_recipe_v0700.xml"
RECORD = FIXTURES / "batch_record_v0700.xml"
MATERIAL = FIXTURES / "material_v0700.xml"
SITE = FIXTURES / "site_recipe_v0700.xml"

needs_shared = pytest.mark.skipif(
    not B2MML.is_dir(), reason=f"shared BatchML/B2MML data not found at {B2MML} (examples and XSDs)"
)


def _count(kg: pharmakg.KnowledgeGraph, sparql: str) -> int:
    return int(kg.query(sparql)["n"].iloc[0])


def _recipe_subgraph(kg: pharmakg.KnowledgeGraph, recipe_id: str) -> set[tuple[str, str, str]]:
    """Every triple of a recipe, its elements, parameters and transitions (what BatchML carries)."""
    graph = kg.construct(
        f"""CONSTRUCT {{ ?s ?p ?o }} WHERE {{
  ?r dcterms:identifier '{recipe_id}' ; a ?c . FILTER(?c IN (pkg:MasterRecipe, pkg:ControlRecipe,
     pkg:GeneralRecipe, pkg:SiteRecipe))
  {{ ?r ?p ?o BIND(?r AS ?s) }} UNION {{ ?s pkg:recipe ?r . ?s ?p ?o }} UNION {{ ?s pkg:transitionOf ?r . ?s ?p ?o }}
  UNION {{ ?s pkg:transitionOf/pkg:recipe ?r . ?s ?p ?o }} }}"""
    )
    return {(str(s), str(p), o.n3()) for s, p, o in graph}


# --------------------------------------------------------------------------- public examples


@needs_shared
def test_cough_syrup_master_recipe_tree(kg: pharmakg.KnowledgeGraph) -> None:
    """README ground truth: 1 procedure, 2 unit procedures, 11 operations, 36 phases, on every backend."""
    (report,) = kg.load(COUGH_SYRUP, reason="cough syrup")
    assert report.triples_added > 900
    counts = kg.query(
        "SELECT ?level (COUNT(DISTINCT ?s) AS ?n) WHERE { ?r a pkg:MasterRecipe ; dcterms:identifier '1' . "
        "?s pkg:recipe ?r ; a ?c . VALUES (?c ?level) { (pkg:Procedure 'Procedure') "
        "(pkg:UnitProcedure 'UnitProcedure') (pkg:Operation 'Operation') (pkg:Phase 'Phase') } } GROUP BY ?level"
    )
    assert dict(zip(counts["level"], counts["n"], strict=True)) == {
        "Procedure": 1,
        "UnitProcedure": 2,
        "Operation": 11,
        "Phase": 36,
    }
    assert kg.ask(
        "ASK { ?ph a pkg:Phase ; rdfs:label 'Mix Slurry A1' ; pkg:partOf ?op . "
        "?op a pkg:Operation ; rdfs:label 'Mix Slurry 1' ; pkg:partOf ?up . "
        "?up a pkg:UnitProcedure ; rdfs:label 'Make Suspension' ; pkg:partOf ?proc . ?proc a pkg:Procedure }"
    )
    # Begin/End markers are not elements; the 58 transitions and the links between steps are kept
    assert _count(kg, "SELECT (COUNT(?t) AS ?n) WHERE { ?t a pkg:Transition }") == 58
    assert _count(kg, "SELECT (COUNT(*) AS ?n) WHERE { ?a pkg:precedes ?b }") == 112
    assert kg.ask(
        "ASK { ?t a pkg:Transition ; pkg:condition 'Mix Slurry A1 Complete = True' ; pkg:transitionOf ?op . "
        "?op rdfs:label 'Mix Slurry 1' }"
    )
    ops = kg.query(
        "SELECT ?l WHERE { ?o a pkg:Operation ; rdfs:label ?l ; pkg:sequence ?seq ; "
        "pkg:partOf/rdfs:label 'Make Suspension' } ORDER BY ?seq"
    )["l"].tolist()
    assert ops[:3] == ["Qualify Make", "Setup Make", "Mix Slurry 1"] and ops[-1] == "Close Slurry"
    assert _count(kg, "SELECT (COUNT(?p) AS ?n) WHERE { ?p a pkg:ProcessParameter }") == 51
    header = kg.query(
        "SELECT ?size ?min ?max ?unit ?given ?product WHERE { ?r a pkg:MasterRecipe ; pkg:batchSize ?size ; "
        "pkg:batchSizeMin ?min ; pkg:batchSizeMax ?max ; pkg:unit ?unit ; pkg:unitAsGiven ?given ; "
        "<https://example.org/pharmakg/property/ProductName> ?product }"
    ).iloc[0]
    assert header.tolist() == [5000.0, 1000.0, 10000.0, "kilolitres", "Kilolitres", "Cough Syrup Demo"]
    speed = kg.query(
        "SELECT ?t ?u ?given WHERE { ?p a pkg:ProcessParameter ; rdfs:label 'AGITATE SPEED' ; pkg:target ?t ; "
        "pkg:unit ?u ; pkg:unitAsGiven ?given ; pkg:step/rdfs:label 'Mix Slurry A1' }"
    ).iloc[0]
    assert speed.tolist() == [3600.0, "rpm", "RPM"]
    assert kg.ask(
        "ASK { ?p pkg:approvedBy 'Jake Sorofman' ; pkg:approvalDate '2008-03-25T13:15:45'^^xsd:dateTime ; "
        "a pkg:Procedure }"
    )


@needs_shared
def test_v0401_batch_production_record() -> None:
    """README ground truth: batch BX10 -> product 000399FG01, 15 runtime elements, 3 events on the batch."""
    with pharmakg.open() as kg:
        kg.load(BATCH_RECORD, reason="batch record")
        assert kg.ask(
            "ASK { ?b a pkg:Batch ; dcterms:identifier 'BX10' ; pkg:product/dcterms:identifier '000399FG01' ; "
            "pkg:recipe ?cr . ?cr a pkg:ControlRecipe ; dcterms:identifier '15631837' }"
        )
        assert kg.ask("ASK { ?m dcterms:identifier '000399FG01' ; rdfs:label '000399 Finish Good 01' }")
        assert (
            _count(
                kg,
                "SELECT (COUNT(?e) AS ?n) WHERE { ?e pkg:recipe/dcterms:identifier '15631837' ; "
                "a/rdfs:subClassOf pkg:ProceduralElement }",
            )
            == 15
        )
        assert _count(kg, "SELECT (COUNT(?e) AS ?n) WHERE { ?e a pkg:Phase ; pkg:endTime ?t }") == 12
        events = kg.query(
            "SELECT ?id ?type ?cat ?step WHERE { ?e a pkg:BatchEvent ; pkg:batch/dcterms:identifier 'BX10' ; "
            "dcterms:identifier ?id ; pkg:batchEventType ?type ; pkg:category ?cat ; "
            "pkg:step/dcterms:identifier ?step } ORDER BY ?id"
        )
        assert events["id"].tolist() == ["BX10/0124|Exception", "BX10/0125|Exception", "BX10/0126|Exception"]
        assert set(events["type"]) == {"Operator/Exception"}
        assert events["step"].iloc[0].endswith("LIB-PH-PAVStrWException-01")
        assert kg.ask("ASK { ?p pkg:performedBy/rdfs:label 'mkuehne' ; a pkg:Phase }")
        loop = kg.query(
            "SELECT ?v WHERE { ?e dcterms:identifier ?id ; <https://example.org/pharmakg/property/actualValue> ?v "
            "FILTER(STRENDS(?id, 'PAVStrWException-01[2]')) }"
        )
        assert loop["v"].tolist() == ["this time no exception"]


@needs_shared
def test_courbon_messages_trace_from_lot_to_production() -> None:
    """README ground truth: lot CRBN0001_LOT01 traces forward to request 258456 (product SO1215) and response 53107."""
    with pharmakg.open() as kg:
        for message in COURBON_MESSAGES:
            kg.load(message, reason="B2MML message")
        assert kg.ask(
            "ASK { ?l a pkg:MaterialLot ; dcterms:identifier 'CRBN0001_LOT01' ; pkg:material/dcterms:identifier "
            "'CRBN0001' ; pkg:expiryDate ?x }"
        )
        sublot = kg.query(
            "SELECT ?q ?u ?given ?gu WHERE { ?s dcterms:identifier 'CRBN0001_LOT01_01' ; "
            "pkg:sublotOf/dcterms:identifier 'CRBN0001_LOT01' ; pkg:material/dcterms:identifier 'CRBN0001' ; "
            "pkg:quantity ?q ; pkg:unit ?u ; pkg:valueAsGiven ?given ; pkg:unitAsGiven ?gu }"
        ).iloc[0]
        assert sublot.tolist() == [24.91, "kg", "24.910", "KG"]
        down = trace(kg, "CRBN0001_LOT01", direction="down").to_frame()
        batches = down[down["kind"] == "batch"]
        assert set(batches["id"]) == {"258456", "53107"}
        assert set(batches["distance"]) == {2}  # lot -> sublot -> batch
        assert kg.ask(
            "ASK { ?b dcterms:identifier '258456' ; pkg:product/dcterms:identifier 'SO1215' ; pkg:status 'scheduled' "
            "; pkg:batchSize ?size ; pkg:consumed/pkg:sublotOf/dcterms:identifier 'CRBN0001_LOT01' FILTER(?size = 1) }"
        )
        consumed = kg.query(
            "SELECT ?q WHERE { ?c a pkg:MaterialConsumption ; pkg:batch/dcterms:identifier '53107' ; "
            "pkg:lot/dcterms:identifier '430147330000056734' ; pkg:quantity ?q }"
        )
        assert consumed["q"].tolist() == [0.41]
        up = trace(kg, "53107", direction="up").to_frame()
        assert "CRBN0001_LOT01" in set(up["id"])


@needs_shared
def test_werdnav_lot() -> None:
    with pharmakg.open() as kg:
        kg.load(WERDNAV, reason="lot record")
        assert kg.ask(
            "ASK { ?l dcterms:identifier 'A0000' ; rdfs:label 'Lot 1' ; pkg:material/dcterms:identifier '5A' ; "
            "<https://example.org/pharmakg/property/Status> 'WIP' ; "
            "<https://example.org/pharmakg/property/StorageLocation> 'B10' }"
        )


@needs_shared
@pytest.mark.parametrize("document", ALL_EXAMPLES, ids=lambda p: p.name)
def test_every_example_loads_once_and_reloads_as_a_no_op(document: Path) -> None:
    with pharmakg.open() as kg:
        for earlier in COURBON_MESSAGES[: COURBON_MESSAGES.index(document)] if document in COURBON_MESSAGES else []:
            kg.load(earlier, reason="earlier message")
        (first,) = kg.load(document, reason="first")
        assert first.triples_added > 0
        before = kg.domain_nquads()
        (again,) = kg.load(document, reason="again")
        assert again.triples_added == 0
        assert kg.domain_nquads() == before


@needs_shared
def test_public_examples_against_their_xsds(tmp_path: Path) -> None:
    """With the schema folder, valid messages load; the two invalid examples are refused, naming the element."""
    with pharmakg.open(tmp_path / "store") as kg:
        for message in [*COURBON_MESSAGES[:4], WERDNAV]:
            kg.load(message, reason="validated", schemas=B2MML)
        before = kg.export(format="nq")
        with pytest.raises(IngestError) as err:
            kg.load(COURBON_MESSAGES[4], schemas=B2MML)
        assert err.value.line == 2 and err.value.column == "/SyncProductionPerformance"
        assert "B2MML-V0401-ProductionPerformance.xsd" in str(err.value)
        assert "'releaseID' is required but missing" in str(err.value)
        with pytest.raises(IngestError) as err:
            kg.load(BATCH_RECORD, schemas=B2MML)  # its vendor XSD includes the WBF set from schema-V0401
        assert err.value.line == 552
        assert err.value.column == "/BatchProductionRecord/Comments/Comment[2]/RecommendedEventRisk"
        assert "RABatchRecord.xsd" in str(err.value) and "not 'nillable'" in str(err.value)
        with pytest.raises(IngestError) as err:
            kg.load(COUGH_SYRUP, schemas=B2MML)  # no V02 XSD exists: refused rather than loaded unchecked
        assert "has the target namespace 'http://www.wbf.org/xml/BatchML-V02'" in str(err.value)
        assert kg.export(format="nq") == before


# --------------------------------------------------------------------------- our V0700 fixtures


@needs_shared
@pytest.mark.parametrize("fixture", [MASTER, RECORD, MATERIAL, SITE], ids=lambda p: p.name)
def test_v0700_fixtures_are_valid_against_the_v0700_xsd(fixture: Path) -> None:
    tree = etree.parse(str(fixture))
    assert validate_document(tree, file=str(fixture), folder=V0700).name == "AllSchemas.xsd"


def test_v0700_master_recipe_mapping() -> None:
    with pharmakg.open() as kg:
        kg.load(MASTER, reason="V0700 recipe")
        r = kg.query(
            "SELECT ?label ?version ?status ?size ?unit ?approved ?product ?name WHERE { ?r a pkg:MasterRecipe ; "
            "dcterms:identifier 'MR-SYRUP' ; rdfs:label ?label ; pkg:version ?version ; pkg:status ?status ; "
            "pkg:batchSize ?size ; pkg:unit ?unit ; pkg:approvalDate ?approved ; pkg:product ?p . "
            "?p dcterms:identifier ?product ; rdfs:label ?name }"
        ).iloc[0]
        assert r["label"] == "Paediatric syrup, 500 L master recipe"
        assert (r["version"], r["status"], r["size"], r["unit"]) == ("2", "approved", 500.0, "L")
        assert (r["product"], r["name"]) == ("SYRUP-100", "Paediatric syrup 100 mg/5 mL")
        approvers = kg.query("SELECT ?a WHERE { ?r dcterms:identifier 'MR-SYRUP' ; pkg:approvedBy ?a } ORDER BY ?a")
        assert approvers["a"].tolist() == ["A. Author", "Q. Approver"]
        params = kg.query(
            "SELECT ?id ?target ?nl ?nh ?pl ?ph ?unit ?crit WHERE { ?p a pkg:ProcessParameter ; dcterms:identifier ?id "
            "OPTIONAL { ?p pkg:target ?target } OPTIONAL { ?p pkg:norLow ?nl } OPTIONAL { ?p pkg:norHigh ?nh } "
            "OPTIONAL { ?p pkg:parLow ?pl } OPTIONAL { ?p pkg:parHigh ?ph } OPTIONAL { ?p pkg:unit ?unit } "
            "OPTIONAL { ?p pkg:criticality/skos:notation ?crit } }"
        ).set_index("id")
        temp = params.loc["MR-SYRUP/PH-HEAT/TEMP"]
        assert [temp[c] for c in ("target", "nl", "nh", "pl", "ph", "unit")] == [60.0, 55.0, 65.0, 50.0, 70.0, "Cel"]
        assert params.loc["MR-SYRUP/PH-HOMOG/SPEED", "unit"] == "rpm"
        assert params.loc["MR-SYRUP/PH-FILL/FILL-VOL", "nh"] == pytest.approx(102.0)  # 0.102 L in the parameter's mL
        assert params.loc["MR-SYRUP/API-CONC", "pl"] == 19.0  # a formula parameter (no step)
        assert kg.ask(
            "ASK { ?p dcterms:identifier 'MR-SYRUP/PH-CHARGE/WATER' ; pkg:textValue 'Purified water (Ph. Eur.)' ; "
            "pkg:parameterType 'ProcessInput' ; pkg:step/dcterms:identifier 'PH-CHARGE' FILTER NOT EXISTS "
            "{ ?p pkg:unit ?u } }"
        )
        ops = kg.query(
            "SELECT ?id WHERE { ?o a pkg:Operation ; dcterms:identifier ?id ; pkg:sequence ?s ; "
            "pkg:partOf/dcterms:identifier 'UP-MIX' } ORDER BY ?s"
        )
        assert ops["id"].tolist() == ["OP-CHARGE", "OP-HEAT", "OP-DISSOLVE", "OP-HOMOG"]  # logic order, not document
        edges = kg.query(
            "SELECT ?a ?b WHERE { ?x pkg:precedes ?y ; dcterms:identifier ?a . ?y dcterms:identifier ?b } ORDER BY ?a ?b"
        )
        assert list(zip(edges["a"], edges["b"], strict=True)) == [
            ("OP-CHARGE", "T-CHARGED"),
            ("OP-DISSOLVE", "T-READY"),
            ("OP-HEAT", "T-READY"),
            ("T-CHARGED", "OP-DISSOLVE"),  # the parallel divergence, walked through
            ("T-CHARGED", "OP-HEAT"),
            ("T-MIXED", "UP-FILL"),
            ("T-READY", "OP-HOMOG"),
            ("UP-MIX", "T-MIXED"),
        ]
        assert kg.ask(
            "ASK { ?up dcterms:identifier 'UP-MIX' ; pkg:equipmentClass 'MixingVessel-1000L' ; "
            "pkg:approvedBy 'P. Engineer' ; rdfs:comment 'Dissolve the API and excipients in warm water' ; "
            "<https://example.org/pharmakg/property/Version> '2.1' }"
        )
        assert kg.ask(
            "ASK { ?r dcterms:identifier 'MR-SYRUP' ; <https://example.org/pharmakg/property/Site> 'Riverside' }"
        )
        assert not kg.ask("ASK { ?e dcterms:identifier ?id FILTER(?id IN ('BEGIN', 'END', 'MIX-BEGIN', 'MIX-END')) }")


def test_v0700_site_recipe_from_grecipe() -> None:
    """A general/site recipe (GRecipe): process stages, operations and actions, ordered by directed links."""
    with pharmakg.open() as kg:
        kg.load(SITE, reason="site recipe")
        assert kg.ask(
            "ASK { ?r a pkg:SiteRecipe ; dcterms:identifier 'SR-SYRUP' ; pkg:status 'Approved' ; pkg:unit 'L' ; "
            "pkg:batchSize ?size ; pkg:product/dcterms:identifier 'SYRUP-100' FILTER(?size = 500) }"
        )
        stages = kg.query(
            "SELECT ?id WHERE { ?s a pkg:UnitProcedure ; dcterms:identifier ?id ; pkg:sequence ?seq ; "
            "pkg:partOf/dcterms:identifier 'SYRUP' } ORDER BY ?seq"
        )
        assert stages["id"].tolist() == ["PREPARE", "DEAERATE", "DISSOLVE"]
        edges = kg.query(
            "SELECT ?a ?b WHERE { ?x pkg:precedes ?y ; dcterms:identifier ?a . ?y dcterms:identifier ?b } ORDER BY ?b"
        )
        assert list(zip(edges["a"], edges["b"], strict=True)) == [("PREPARE", "DEAERATE"), ("PREPARE", "DISSOLVE")]
        assert kg.ask(
            "ASK { ?p dcterms:identifier 'SR-SYRUP/HEAT/TEMP' ; pkg:target ?t ; pkg:norLow ?lo ; pkg:norHigh ?hi ; "
            "pkg:step/a pkg:Phase FILTER(?t = 60 && ?lo = 55 && ?hi = 65) FILTER NOT EXISTS { ?p pkg:parameterType ?x } }"
        )


def test_v0700_batch_record_and_material_genealogy() -> None:
    with pharmakg.open() as kg:
        kg.load(MATERIAL, reason="material master and lots")
        kg.load(RECORD, reason="batch record")
        assert kg.ask(
            "ASK { ?b a pkg:Batch ; dcterms:identifier 'SY-0001' ; pkg:recipe/dcterms:identifier 'CR-SY-0001' ; "
            "pkg:product/dcterms:identifier 'SYRUP-100' ; pkg:usedEquipment/dcterms:identifier 'TANK-01' }"
        )
        use = kg.query(
            "SELECT ?step ?start ?end WHERE { ?u a pkg:EquipmentUse ; pkg:batch/dcterms:identifier 'SY-0001' ; "
            "pkg:step/dcterms:identifier ?step ; pkg:startTime ?start ; pkg:endTime ?end }"
        ).iloc[0]
        assert use["step"] == "UP-MIX" and str(use["start"]).startswith("2026-02-01")
        actual = kg.query(
            "SELECT ?v ?u ?p WHERE { ?x a pkg:ParameterValue ; pkg:batch/dcterms:identifier 'SY-0001' ; "
            "pkg:value ?v ; pkg:unit ?u ; pkg:parameter/dcterms:identifier ?p }"
        ).iloc[0]
        assert actual.tolist() == [61.2, "Cel", "CR-SY-0001/PH-HEAT/TEMP"]
        assert kg.ask(
            "ASK { ?e a pkg:BatchEvent ; dcterms:identifier 'SY-0001/EV-1' ; pkg:step/dcterms:identifier 'PH-HEAT' ; "
            "pkg:batchEventType 'Alarm/Process Data' ; pkg:category 'Process' ; pkg:performedBy/rdfs:label 'jdoe' ; "
            "pkg:time '2026-02-01T08:20:00+01:00'^^xsd:dateTime }"
        )
        assert kg.ask(
            "ASK { ?l dcterms:identifier 'LOT-API-7' ; pkg:lotStatus pkg:Released ; "
            "pkg:expiryDate '2028-06-30'^^xsd:date ; pkg:quantity ?q FILTER(?q = 25) }"
        )
        assert kg.ask(
            "ASK { ?s dcterms:identifier 'LOT-API-7-D1' ; pkg:sublotOf/dcterms:identifier 'LOT-API-7' ; "
            "pkg:quantity ?q ; pkg:unit 'kg' ; pkg:valueAsGiven '10200' ; pkg:unitAsGiven 'g' FILTER(ABS(?q - 10.2) < 1e-9) }"
        )
        assert kg.ask(
            "ASK { ?k dcterms:identifier 'KIT-0042' ; pkg:assembledFrom/dcterms:identifier 'LOT-API-7' , 'LOT-EXC-3' }"
        )
        down = trace(kg, "LOT-API-7", direction="down").to_frame()
        assert down[["id", "distance"]].values.tolist() == [
            ["LOT-API-7", 0],
            ["KIT-0042", 1],  # assembled from it (B2MML assembly relationship)
            ["LOT-API-7-D1", 1],
            ["SY-0001", 2],
            ["SY-0001-L1", 3],
        ]
        up = trace(kg, "KIT-0042", direction="up").to_frame()
        assert {"LOT-API-7", "LOT-EXC-3"} <= set(up[up["distance"] == 1]["id"])
        assert kg.validate(engine="pyshacl").conforms


# --------------------------------------------------------------------------- export


@needs_shared
@pytest.mark.parametrize(
    ("document", "recipe"),
    [(COUGH_SYRUP, "1"), (MASTER, "MR-SYRUP"), (SITE, "SR-SYRUP")],
    ids=["cough syrup (V02)", "master recipe (V0700)", "site recipe (V0700 GRecipe)"],
)
def test_import_export_import_is_lossless(document: Path, recipe: str, tmp_path: Path) -> None:
    with pharmakg.open() as kg:
        kg.load(document, reason="original")
        before = _recipe_subgraph(kg, recipe)
        exported = tmp_path / "exported.xml"
        exported.write_bytes(export_batchml(kg, recipe))
    validate_document(etree.parse(str(exported)), file=str(exported), folder=V0700)
    with pharmakg.open() as kg:
        kg.load(exported, reason="exported", schemas=V0700)
        after = _recipe_subgraph(kg, recipe)
    assert len(before) > 50
    assert after == before


@needs_shared
def test_csv_recipes_export_as_valid_v0700(tmp_path: Path) -> None:
    """Recipes of the demo plant and the mini bundle (made by the CSV bundle) export as valid V0700."""
    from pharmakg.demo import build_demo

    with pharmakg.open() as kg:
        build_demo(kg, batches=3, seed=1, out_dir=tmp_path / "demo")
        recipes = kg.query(
            "SELECT ?id ?c WHERE { ?r a ?c ; dcterms:identifier ?id . VALUES ?c { pkg:GeneralRecipe pkg:SiteRecipe "
            "pkg:MasterRecipe pkg:ControlRecipe } }"
        )
        assert {"GeneralRecipe", "SiteRecipe", "MasterRecipe", "ControlRecipe"} <= {
            c.rsplit("#")[-1] for c in recipes["c"]
        }
        for rid in [*recipes.drop_duplicates("c")["id"].tolist(), "MR-GRAN"]:
            export_batchml(kg, rid, schemas=V0700)  # raises if not valid
        master = etree.fromstring(export_batchml(kg, "MR-GRAN"))
    ns = {"b": "http://www.mesa.org/xml/B2MML"}
    impeller = master.xpath("//b:Parameter[b:ID='P-GRN-IMP']", namespaces=ns)[0]
    assert impeller.xpath("b:Value/b:ValueString/text()", namespaces=ns) == ["150.0"]
    limits = {
        p.xpath("b:ID/text()", namespaces=ns)[0]: p.xpath("b:Value/b:ValueString/text()", namespaces=ns)[0]
        for p in impeller.xpath("b:Parameter", namespaces=ns)
    }
    assert limits == {"NOR-Min": "140.0", "NOR-Max": "160.0", "PAR-Min": "120.0", "PAR-Max": "180.0"}
    assert impeller.xpath("b:ParameterSubType/text()", namespaces=ns) == ["CPP"]
    with pharmakg.open() as kg:
        kg.load(MINI, reason="mini")
        data = export_batchml(kg.store, "MR-TAB", base=kg.base, schemas=V0700)  # through the bare Store protocol
    with pharmakg.open() as kg:  # and back: the CSV recipe's parameters keep target, NOR, PAR, unit, criticality
        path = tmp_path / "mr-tab.xml"
        path.write_bytes(data)
        kg.load(path, reason="round trip of a CSV recipe")
        row = kg.query(
            "SELECT ?t ?nl ?nh ?pl ?ph ?u WHERE { ?p dcterms:identifier 'MR-TAB/OP-DRY/P-INLET' ; pkg:target ?t ; "
            "pkg:norLow ?nl ; pkg:norHigh ?nh ; pkg:parLow ?pl ; pkg:parHigh ?ph ; pkg:unit ?u ; pkg:criticality pkg:CPP }"
        ).iloc[0]
        assert row.tolist() == [60.0, 55.0, 65.0, 50.0, 70.0, "Cel"]


def test_export_of_unknown_recipe_is_a_key_error() -> None:
    with pharmakg.open() as kg:
        kg.load(MINI, reason="mini")
        with pytest.raises(KeyError, match="no recipe with id 'MR-NONE'"):
            export_batchml(kg, "MR-NONE")


@needs_shared
def test_cli_load_with_schemas_and_recipe_export(tmp_path: Path) -> None:
    from .test_cli import run

    store = str(tmp_path / "store")
    r = run("load", str(MASTER), "--schemas", str(V0700), "--store", store, "--reason", "cli", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out.xml"
    r = run("recipe", "export", "MR-SYRUP", "--out", str(out), "--store", store, "--schemas", str(V0700), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    validate_document(etree.parse(str(out)), file=str(out), folder=V0700)
    r = run("recipe", "export", "MR-SYRUP", "--store", store, cwd=tmp_path)
    assert r.stdout.startswith("<?xml") and "<ID>MR-SYRUP</ID>" in r.stdout
    bad = tmp_path / "bad.xml"
    bad.write_text("<BatchInformation xmlns='http://www.mesa.org/xml/B2MML'><MasterRecipe/></BatchInformation>")
    r = run("load", str(bad), "--store", store, cwd=tmp_path, env={SCHEMAS_ENV: str(V0700)})
    assert r.returncode == 1
    assert r.stderr.startswith("pharmakg load: error: ") and "bad.xml, line 1" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- bad input


def _copy_with(source: Path, old: str, new: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        text = source.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {source.name}"
        target = tmp / source.name
        target.write_text(text.replace(old, new, 1), encoding="utf-8")
        return target

    return make


def _write(name: str, text: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        target = tmp / name
        target.write_text(text, encoding="utf-8")
        return target

    return make


# (id, how to make the bad file, validate with the V0700 XSDs, error type, line, column contains, words)
BAD: list[tuple[str, Callable[[Path], Path], bool, type[Exception], int | None, str | None, str]] = [
    (
        "not XML",
        _write("notes.xml", "batch BX10 went fine\n"),
        False,
        IngestError,
        1,
        "character",
        "is not well-formed XML",
    ),
    (
        "truncated XML",
        _write("cut.xml", "<BatchInformation xmlns='http://www.mesa.org/xml/B2MML'>\n  <MasterRecipe>\n"),
        False,
        IngestError,
        3,
        "character",
        "is not well-formed XML: Premature end of data",
    ),
    (
        "unknown namespace",
        _write("other.xml", "<?xml version='1.0'?>\n<Recipe xmlns='http://example.org/recipes'><ID>1</ID></Recipe>\n"),
        False,
        IngestError,
        2,
        "/Recipe",
        "namespace 'http://example.org/recipes', not BatchML/B2MML",
    ),
    (
        "schema-invalid element",
        _copy_with(MASTER, "<RecipeElementType>Phase</RecipeElementType>", "<ElementType>Phase</ElementType>"),
        True,
        IngestError,
        153,
        "/BatchInformation/MasterRecipe/RecipeElement[2]/RecipeElement[2]/RecipeElement/RecipeElement/ElementType",
        "is not valid against AllSchemas.xsd: Element '{http://www.mesa.org/xml/B2MML}ElementType': This element "
        "is not expected. Expected is one of ( {http://www.mesa.org/xml/B2MML}Description, "
        "{http://www.mesa.org/xml/B2MML}RecipeElementType )",
    ),
    (
        "link to a missing step",
        _copy_with(MASTER, "<ToIDValue>T-READY</ToIDValue>", "<ToIDValue>T-NOWHERE</ToIDValue>"),
        True,
        IngestError,
        268,
        "/RecipeElement[3]/ProcedureLogic/Link[10]/ToID/ToIDValue",
        "Link 'M8': ToID 'T-NOWHERE' names no Step, Transition or Link of this procedure logic",
    ),
    (
        "step of a missing element",
        _copy_with(MASTER, "<RecipeElementID>OP-HEAT</RecipeElementID>", "<RecipeElementID>OP-BAKE</RecipeElementID>"),
        False,
        IngestError,
        288,
        "/ProcedureLogic/Step[3]/RecipeElementID",
        "Step 'S-HEAT' refers to recipe element 'OP-BAKE', which is not an element of this procedure",
    ),
    (
        "duplicate element id",
        _copy_with(MASTER, "<ID>OP-DISSOLVE</ID>", "<ID>OP-HEAT</ID>"),
        False,
        pharmakg.ConflictError,
        434,
        "/RecipeElement[3]/RecipeElement[5]/ID",
        "recipe element id 'OP-HEAT' appears twice in recipe 'MR-SYRUP'",
    ),
    (
        "unknown unit",
        _copy_with(MASTER, "<UnitOfMeasure>mg/mL</UnitOfMeasure>", "<UnitOfMeasure>smidgens</UnitOfMeasure>"),
        False,
        pharmakg.UnitError,
        44,
        "/Formula/Parameter/Value/UnitOfMeasure",
        "unknown unit 'smidgens'",
    ),
    (
        "limit that is not a number",
        _copy_with(MASTER, "<ValueString>19</ValueString>", "<ValueString>nineteen</ValueString>"),
        False,
        IngestError,
        50,
        "/Formula/Parameter/Parameter[1]/Value/ValueString",
        "limit 'PAR-Min' of parameter 'API-CONC' expects a number, got 'nineteen'",
    ),
    (
        "event in a missing element",
        _copy_with(RECORD, "<ProceduralElementReference>UP-MIX<", "<ProceduralElementReference>UP-GONE<"),
        True,
        IngestError,
        94,
        "/Events/Event[2]/ProceduralElementReference",
        "refers to procedural element 'UP-GONE', which is not an element of batch 'SY-0001'",
    ),
    (
        "bad date",
        _copy_with(RECORD, "2026-02-01T09:58:00+01:00", "yesterday"),
        False,
        IngestError,
        89,
        "/Events/Event[2]/TimeStamp",
        "expects an ISO 8601 date-time",
    ),
    (
        "lot without material",
        _write(
            "lot.xml",
            "<MaterialLot xmlns='http://www.mesa.org/xml/B2MML'>\n  <ID>L-ORPHAN</ID>\n</MaterialLot>\n",
        ),
        True,
        IngestError,
        1,
        "/MaterialLot",
        "lot 'L-ORPHAN' names no material",
    ),
]


@needs_shared
@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_document_is_refused_and_changes_nothing(case, tmp_path: Path) -> None:
    _, make, validate, error, line, column, words = case
    with pharmakg.open(tmp_path / "store") as kg:
        kg.load(MINI, reason="baseline")
        before = kg.export(format="nq")
        bad = make(tmp_path)
        with pytest.raises(error) as err:
            kg.load(bad, reason="should fail", schemas=V0700 if validate else None)
        assert err.value.where.file == str(bad)
        assert err.value.line == line
        assert (column is None and err.value.column is None) or (column is not None and column in err.value.column)
        assert words in str(err.value)
        assert kg.export(format="nq") == before


def test_store_unchanged_on_every_backend(kg: pharmakg.KnowledgeGraph, tmp_path: Path) -> None:
    kg.load(MINI, reason="baseline")
    before = kg.export(format="nq")
    bad = _copy_with(MASTER, "<ToIDValue>T-READY</ToIDValue>", "<ToIDValue>T-NOWHERE</ToIDValue>")(tmp_path)
    with pytest.raises(IngestError, match="T-NOWHERE"):
        kg.load(bad, reason="should fail")
    assert kg.export(format="nq") == before


def test_env_var_names_the_schema_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(SCHEMAS_ENV, str(tmp_path / "nowhere"))
    with (
        pharmakg.open() as kg,
        pytest.raises(IngestError, match=f"is not a folder of XSD files \\(\\${SCHEMAS_ENV}\\)"),
    ):
        kg.load(MASTER)


def test_rdf_xml_still_loads_as_rdf(tmp_path: Path) -> None:
    rdf = tmp_path / "lot.xml"
    rdf.write_text(
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:ex="http://example.org/">'
        '<rdf:Description rdf:about="http://example.org/a"><ex:b>c</ex:b></rdf:Description></rdf:RDF>'
    )
    assert not is_batchml(rdf) and is_batchml(MASTER)
    with pharmakg.open() as kg:
        (report,) = kg.load(rdf, reason="rdf/xml")
        assert report.triples_added == 1


def test_batchml_terms_are_declared_in_the_ontology() -> None:
    text = (Path(__file__).resolve().parents[1] / "ontology" / "pharmakg.ttl").read_text(encoding="utf-8")
    missing = [t for t in T.BATCHML_TERMS if f"\npkg:{t.rsplit('#', 1)[-1]}\n" not in text]
    assert not missing


def test_copy_of_fixture_folder_is_independent(tmp_path: Path) -> None:
    """Loading from another folder mints the same IRIs: ids, not paths, name the nodes."""
    copy = tmp_path / MASTER.name
    shutil.copy(MASTER, copy)
    with pharmakg.open() as a, pharmakg.open() as b:
        a.load(MASTER, reason="here")
        b.load(copy, reason="there")
        assert a.domain_nquads() == b.domain_nquads()


def test_external_entities_are_not_expanded(tmp_path: Path) -> None:
    """A DTD entity pointing at a local file is left unexpanded: an XML document cannot make pharmakg read files."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    doc = tmp_path / "lot.xml"
    doc.write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE MaterialLot [<!ENTITY s SYSTEM "{secret.as_uri()}">]>\n'
        "<MaterialLot xmlns='http://www.mesa.org/xml/B2MML'><ID>L-1</ID><Description>&s;</Description>"
        "<MaterialDefinitionID>M-1</MaterialDefinitionID></MaterialLot>\n"
    )
    with pharmakg.open() as kg:
        kg.load(doc, reason="entity")
        assert b"TOP-SECRET-VALUE" not in kg.export(format="nq")
        assert kg.ask("ASK { ?l dcterms:identifier 'L-1' ; pkg:material/dcterms:identifier 'M-1' }")
