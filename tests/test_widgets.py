"""Widget state without a browser: the view state is what the API returns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import pharmakg
from pharmakg.trace import trace
from pharmakg.widgets import TraceExplorer
from pharmakg.widgets.trace import layout

from .conftest import MINI


def test_trace_explorer_state_follows_the_api(tmp_path: Path) -> None:
    with pharmakg.open() as kg:
        kg.load(MINI, reason="test")
        w = TraceExplorer(kg, "L-TAB-001")
        genealogy = trace(kg, "L-TAB-001")
        assert len(w.nodes) == len(genealogy) == 4
        assert len(w.edges) == genealogy.graph.number_of_edges() == 3
        xs = {n["id"]: n["x"] for n in w.nodes}
        assert xs["L-API-1"] < xs["B-001"] < xs["L-TAB-001"]  # raw materials left, finished goods right
        assert w.details["id"] == "L-TAB-001"  # the start is selected
        batch = next(n for n in w.nodes if n["id"] == "B-001")
        assert "deviation DEV-1" in batch["flag"]
        w.selected = batch["iri"]
        assert w.details["kind"] == "batch" and w.details["equipment"] == ["DRY-1", "PRESS-1"]
        w.direction = "down"
        w.centre("L-MCC-1")
        assert {n["id"] for n in w.nodes} == {"L-MCC-1", "B-001", "B-002", "L-TAB-001"}
        out = w.export_csv(tmp_path / "g.csv")
        assert set(pd.read_csv(out)["id"]) == {"L-MCC-1", "B-001", "B-002", "L-TAB-001"}
        assert {r["id"] for r in w.table} == {"L-MCC-1", "B-001", "B-002", "L-TAB-001"}
        w.typed = "L-M"
        assert w.suggestions == ["L-MCC-1", "L-MCC-2"]
        w.centre("NOPE")
        assert "NOPE" in w.error and w.nodes == []


def test_layout_levels_follow_material_flow() -> None:
    with pharmakg.open() as kg:
        kg.load(MINI, reason="test")
        nodes, edges = layout(trace(kg, "L-MCC-1", direction="down"))
        x = {n["id"]: n["x"] for n in nodes}
        assert x["L-MCC-1"] == 0 and x["L-TAB-001"] == 2
        for a, b in edges:
            assert nodes[a]["x"] < nodes[b]["x"]


def test_widgets_are_not_imported_by_pharmakg() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", "import sys, pharmakg; print('anywidget' in sys.modules, 'ipywidgets' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["False", "False"]


def test_root_cause_explorer_state_follows_the_api(tmp_path: Path) -> None:
    from pharmakg.demo import build_demo
    from pharmakg.rootcause import investigate, outcome
    from pharmakg.widgets import RootCauseExplorer

    kg = pharmakg.open(tmp_path / "store")
    build_demo(kg, batches=40, seed=1, out_dir=tmp_path / "plant")
    dev = kg.rows("SELECT ?id WHERE { ?d a pkg:Deviation ; dcterms:identifier ?id } ORDER BY ?id LIMIT 1")[0]["id"]
    explorer = RootCauseExplorer(kg, dev)
    found = investigate(kg, dev, top=10)
    assert [c.id for c in explorer.investigation.causes] == [c.id for c in found.causes]
    assert found.causes[0].id in explorer.ranking.value
    explorer.cause.value = 1 if len(found.causes) > 1 else 0
    assert explorer.selected().id in explorer.path.value and "pharmakg-cause" in explorer.detail.value
    explorer.record()  # no reason: refused, nothing written
    assert "reason is required" in explorer.status.value
    assert not kg.ask(f"ASK {{ ?d dcterms:identifier '{dev}' ; pkg:rootCause ?rc FILTER(CONTAINS(?rc, 'score')) }}")
    explorer.reason.value = "INV-7 closed"
    explorer.capa.value = "CAPA-2026-017: retrain, revise SOP-GRAN-4"
    explorer.record()
    assert "Recorded" in explorer.status.value and "CAPA-2026-017" in explorer.status.value
    recorded = outcome(kg, dev)
    assert recorded.capa == "CAPA-2026-017: retrain, revise SOP-GRAN-4" and "score" in (recorded.root_cause or "")
    assert recorded.snapshot is not None and recorded.snapshot["accepted"]["id"] == explorer.selected().id
    report = explorer.write_report(tmp_path)
    assert report is not None and dev in report.read_text() and "CAPA-2026-017" in report.read_text()
    assert kg.verify_audit().ok


def test_root_cause_explorer_filters_and_draws_evidence_and_path(tmp_path: Path) -> None:
    import datetime
    import json

    from pharmakg.demo import build_demo
    from pharmakg.rootcause import cause_history
    from pharmakg.widgets import RootCauseExplorer

    kg = pharmakg.open(tmp_path / "store")
    built = build_demo(kg, batches=120, seed=1, out_dir=tmp_path / "plant")
    truth = json.loads(built.plant.ground_truth.read_text())["deviations"]
    explorer = RootCauseExplorer(kg)
    every = len(explorer.deviation.options)
    attribute_of = explorer.all.set_index("id")["attribute"]
    # filters: by CQA, then a period with no deviation in it
    cqa = next(a for a in attribute_of if isinstance(a, str))
    explorer.attribute.value = cqa
    kept = [i for _, i in explorer.deviation.options]
    assert kept and len(kept) < every and all(attribute_of[i] == cqa for i in kept)
    explorer.since.value = datetime.date(2100, 1, 1)
    assert explorer.deviation.options == () and "No deviations match" in explorer.ranking.value
    explorer.since.value = None
    explorer.attribute.value = "(all)"
    # a parameter cause: its history with the batch marked and the NOR/PAR bands; the path drawn
    water = next(d for d, t in sorted(truth.items()) if t["mechanism"] == "granulation_water")
    explorer.deviation.value = water
    best = explorer.investigation.causes[0]
    assert (best.kind, best.id) == ("parameter", "P-GRN-WATER")
    explorer.cause.value = 0
    assert "pharmakg-history" in explorer.chart.value and explorer.chart.value.count("pharmakg-band") == 2
    history = cause_history(kg, best)
    assert history is not None and set(history.bands) == {"PAR", "NOR"}
    assert int(history.frame["marked"].sum()) == explorer.chart.value.count("pharmakg-marked") >= 1
    assert "pharmakg-path" in explorer.path.value and best.id in explorer.path.value
    # a cause with enrichment evidence: the failing and passing counts drawn
    wet = next(d for d, t in sorted(truth.items()) if t["mechanism"] == "wet_excipient_supplier")
    explorer.deviation.value = wet
    causes = explorer.investigation.causes
    enriched = next(i for i, c in enumerate(causes) if any(e.kind == "enrichment" for e in c.evidence))
    explorer.cause.value = enriched
    assert "pharmakg-counts" in explorer.chart.value and "failing" in explorer.chart.value
