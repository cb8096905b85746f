"""The compiled SHACL engine agrees with pyshacl, on good data and on broken data."""

from __future__ import annotations

import subprocess
import sys

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


def test_validate_reports_records_whose_link_is_missing(tmp_path) -> None:
    """A consumption or shipment record without its direct link is invisible to walks and recalls: validate says so."""
    from pharmakg.trace import recall_scope

    with pharmakg.open(tmp_path / "store") as kg:
        kg.load(MINI, reason="test")
        kg.update(
            f"DELETE WHERE {{ GRAPH ?g {{ <{kg.resolve('L-TAB-001')}> pkg:shippedIn ?s . ?b pkg:consumed <{kg.resolve('L-API-1')}> }} }}",
            reason="links lost",
        )
        assert recall_scope(kg, lots=["L-API-1"]).finished_lots.empty  # the walk follows the missing link
        for engine in ("compiled", "pyshacl"):
            report = kg.validate(engine=engine)
            assert not report.conforms
            links = report.to_frame().query("constraint == 'link'")
            assert sorted(links["path"]) == ["consumed", "shippedIn"], (engine, links)
            assert links["value"].tolist() and all("is missing" in m for m in links["message"])
    r = subprocess.run(
        [sys.executable, "-m", "pharmakg", "--store", str(tmp_path / "store"), "validate"],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and "shippedIn" in r.stdout + r.stderr


def test_a_missing_value_is_judged_by_no_value_constraint() -> None:
    """A staged triple without its object (coded -1) matches nothing: it must not be tested under another
    path (packed with the path's code, -1 borrowed from it) nor reported with a made-up value."""
    import numpy as np
    import pandas as pd

    from pharmakg._shacl_frame import check_frames
    from pharmakg.validate import _subclass_pairs, compile_shapes

    constraints = compile_shapes()
    values = [c for c in constraints if c.kind not in ("minCount", "maxCount")]
    a = values[0]
    b = next(c for c in values if c.path != a.path)
    rdf_type = "<http://www.w3.org/1999/02/22-rdf-syntax-ns#type>"
    staged = pd.DataFrame(
        [
            ("<urn:a>", f"<{a.path}>", '"v"'),  # first seen: a's path is coded just before b's
            ("<urn:b>", f"<{b.path}>", np.nan),
            ("<urn:b>", rdf_type, f"<{b.target}>"),
            ("<urn:b>", rdf_type, f"<{a.target}>"),
        ],
        columns=["s", "p", "o"],
    )
    empty = pd.DataFrame(columns=["s", "p", "o"])
    found = check_frames(staged, empty, empty, constraints, _subclass_pairs(), limit=1000)
    assert not [v for v in found if v.focus == "urn:b" and v.path in (a.path, b.path) and v.value is not None]
