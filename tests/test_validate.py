"""The compiled SHACL engine agrees with pyshacl, on good data and on broken data."""

from __future__ import annotations

import pyoxigraph as ox
import pytest

import pharmakg
from pharmakg.validate import check_triples, compile_shapes, ntriples_frame, run_pyshacl

from .conftest import MINI

BROKEN = """
@prefix pkg: <https://w3id.org/pharmakg/ontology#> .
@prefix dcterms: <http://purl.org/dc/terms/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
<urn:x:lot1> a pkg:MaterialLot ; dcterms:identifier "L1" .
<urn:x:lot2> a pkg:MaterialLot ; dcterms:identifier "L2" ; pkg:material <urn:x:lot1> ; pkg:lotStatus pkg:CPP .
<urn:x:imp> a pkg:Impact ; dcterms:identifier "I" ; pkg:impactSource <urn:x:lot1> ; pkg:impactTarget <urn:x:lot1> ; pkg:riskSeverity 11 .
<urn:x:pv> a pkg:ParameterValue ; dcterms:identifier "PV" ; pkg:batch <urn:x:lot1> ; pkg:parameter <urn:x:lot1> ; pkg:value "high" .
<urn:x:m> a pkg:Material ; dcterms:identifier "M", "M2" .
"""


def _violations(report) -> set[tuple[str, str]]:
    return {(v.focus, v.path.rsplit("#", 1)[-1].rsplit("/", 1)[-1]) for v in report.violations}


def test_shapes_compile_to_supported_constraints() -> None:
    kinds = {c.kind for c in compile_shapes()}
    assert kinds <= {"minCount", "maxCount", "datatype", "class", "nodeKind", "minInclusive", "maxInclusive", "in"}
    assert len(compile_shapes()) > 200


def test_mini_bundle_conforms_in_both_engines() -> None:
    with pharmakg.open() as kg:
        kg.load(MINI, reason="test")
        assert kg.validate(engine="compiled").conforms
        report = kg.validate(engine="pyshacl")
        assert report.conforms, report.text


def test_engines_agree_on_broken_data() -> None:
    data = ox.serialize(ox.parse(BROKEN.encode(), format=ox.RdfFormat.TURTLE), format=ox.RdfFormat.N_TRIPLES)
    reference = run_pyshacl(data)
    compiled = check_triples(ntriples_frame(data), limit=1000)
    assert not reference.conforms and not compiled.conforms
    expected = {
        ("urn:x:lot1", "material"),
        ("urn:x:lot2", "material"),
        ("urn:x:lot2", "lotStatus"),
        ("urn:x:imp", "riskSeverity"),
        ("urn:x:pv", "value"),
        ("urn:x:m", "identifier"),
    }
    assert expected <= _violations(compiled)
    assert _violations(compiled) == _violations(reference)


@pytest.mark.parametrize("engine", ["compiled", "pyshacl"])
def test_validate_reports_frame(engine: str) -> None:
    with pharmakg.open() as kg:
        report = kg.validate(engine=engine)
        assert report.conforms
        assert list(report.to_frame().columns) == ["focus", "path", "constraint", "value", "message"]


def test_demo_plant_conforms_in_both_engines(tmp_path) -> None:
    from pharmakg.demo import build_demo

    with pharmakg.open() as kg:
        build_demo(kg, batches=30, seed=3, out_dir=tmp_path / "demo")
        assert kg.validate(engine="compiled").conforms
        report = kg.validate(engine="pyshacl")
        assert report.conforms, report.text[:2000]
