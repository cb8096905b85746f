"""Genealogy walks: known answers, a brute-force reference on random DAGs, cycles, recall, CLI contract."""

from __future__ import annotations

import csv
import json
import os
import select
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pharmakg
from pharmakg import trace as trace_module
from pharmakg.trace import batches_on, recall_scope, trace

from .conftest import MINI


def test_upstream_and_downstream_on_every_backend(kg: pharmakg.KnowledgeGraph) -> None:
    kg.load(MINI, reason="test")
    up = trace(kg, "L-TAB-001")
    assert set(up.to_frame()["id"]) == {"L-TAB-001", "B-001", "L-API-1", "L-MCC-1"}
    rows = up.to_frame().set_index("id")
    assert rows.loc["B-001", "distance"] == 1 and rows.loc["L-API-1", "distance"] == 2
    assert rows.loc["L-API-1", "supplier"] == "Supplier A"
    assert rows.loc["L-API-1", "status"] == "released"
    assert rows["equipment"].isna().all()  # details are opt-in: three more queries
    detailed = trace(kg, "L-TAB-001", details=True).to_frame().set_index("id")
    assert detailed.loc["B-001", "equipment"] == ["DRY-1", "PRESS-1"]
    assert detailed.loc["B-001", "deviations"] == ["DEV-1"]
    assert detailed.loc["L-MCC-1", "oos"] == ["L-MCC-1/MCC-WATER"]  # 7.4 % water against a 7 % limit
    assert detailed.loc["L-API-1", "oos"] == [] and detailed.loc["B-001", "oos"] == []
    assert up.paths_to("L-MCC-1") == [["L-MCC-1", "B-001", "L-TAB-001"]]
    down = trace(kg, "L-MCC-1", direction="down")
    assert set(down.to_frame()["id"]) == {"L-MCC-1", "B-001", "B-002", "L-TAB-001"}
    assert trace(kg, "B-001").to_frame()["id"].tolist()[0] == "B-001"


def test_one_walk_query_reads_what_the_closure_and_node_queries_read(kg: pharmakg.KnowledgeGraph) -> None:
    """``walk_query`` (how upstream is walked) and ``closure_query`` + ``node_query`` (downstream)
    are two shapes of one read: the same triples, whichever the direction."""
    from pharmakg.trace import closure_query, node_query, walk_query

    kg.load(MINI, reason="test")
    for ref, direction in (("L-TAB-001", "up"), ("L-MCC-1", "down"), ("B-001", "up"), ("B-001", "down")):
        root = kg.resolve(ref)
        one = {(r["n"], r["p"], r.get("o", "")) for r in kg.rows(walk_query(root, direction))}
        nodes = [r["x"] for r in kg.rows(closure_query(root, direction))]
        two = {(nodes[int(r["k"])], r["p"], r.get("o", "")) for r in kg.rows(node_query(nodes, direction))}
        assert one == two and len(one) > 8, (ref, direction)


def test_a_walk_over_no_step_relation_is_refused() -> None:
    from pharmakg.trace import closure_query, walk_query

    for build in (closure_query, walk_query):
        with pytest.raises(ValueError, match="a walk needs at least one step relation"):
            build("urn:x", "up", ())


def test_depth_and_stop_rules(tmp_path: Path) -> None:
    from pharmakg.demo import build_demo

    with pharmakg.open() as kg:
        build_demo(kg, batches=30, seed=2, out_dir=tmp_path / "demo")
        finished = kg.query(
            "SELECT ?id WHERE { ?l a pkg:MaterialLot ; pkg:material/pkg:materialKind pkg:DrugProduct ; dcterms:identifier ?id } ORDER BY ?id LIMIT 1"
        )["id"][0]
        full = trace(kg, finished)
        assert {"drug_product", "intermediate", "raw"} <= set(full.to_frame()["material_kind"].dropna())
        shallow = trace(kg, finished, max_depth=2)
        assert shallow.to_frame()["distance"].max() == 2
        stopped = trace(kg, finished, stop_at=["intermediate"])
        granulate = stopped.to_frame()
        assert "intermediate" in set(granulate["material_kind"])
        assert not (granulate["id"].str.startswith("GB-")).any()  # no granulation batch behind the granulate
        dryers = batches_on(kg, "FluidBedDryer", by_class=True)
        assert len(dryers) > 0 and dryers["batch"].str.startswith("GB-").all()
        # granulation batches feed tablets: each dryer batch's granulate reached finished lots
        assert dryers["fed_into"].str.startswith("TL-").all()
        first = dryers["start"].iloc[len(dryers) // 2]
        later = batches_on(kg, "FluidBedDryer", by_class=True, start=str(first))
        assert len(later) < len(dryers) and (later["start"] >= first).all()


def test_equipment_trace_reaches_finished_lots(kg: pharmakg.KnowledgeGraph) -> None:
    kg.load(MINI, reason="test")
    on = batches_on(kg, "DRY-1")
    assert on[["batch", "equipment", "produced", "fed_into"]].values.tolist() == [
        ["B-001", "DRY-1", "L-TAB-001", "L-TAB-001"]
    ]
    assert batches_on(kg, "fluid_bed_dryer", by_class=True)["batch"].tolist() == ["B-001"]
    assert batches_on(kg, "DRY-1", start="2025-02-01T08:00:00+01:00").empty  # B-001 started at 06:00
    assert "fed_into" not in batches_on(kg, "PRESS-1", fed_into=False)


def _write_bundle(
    folder: Path,
    batches: list[tuple[list[int], list[int]]],
    n_lots: int,
    finished: frozenset[int] = frozenset(),
    parents: dict[int, int] | None = None,
) -> None:
    """A bundle of the genealogy; the lots in ``finished`` are of a drug product, the others raw;
    ``parents`` makes lot i a sublot of lot parents[i]."""
    folder.mkdir()
    parents = parents or {}
    rows = {
        "materials.csv": [["id", "name", "kind"], ["M", "Stuff", "raw"], ["P", "Tablets", "drug_product"]],
        "lots.csv": [
            ["id", "material_id", "parent_lot_id"],
            *[
                [f"L{i}", "P" if i in finished else "M", f"L{parents[i]}" if i in parents else ""]
                for i in range(n_lots)
            ],
        ],
        "batches.csv": [["id", "product_id"], *[[f"B{j}", "M"] for j in range(len(batches))]],
        "consumption.csv": [["batch_id", "lot_id", "step_id", "quantity", "unit"]],
        "production.csv": [["batch_id", "lot_id", "quantity", "unit"]],
    }
    for j, (ins, outs) in enumerate(batches):
        rows["consumption.csv"] += [[f"B{j}", f"L{i}", "", "", ""] for i in ins]
        rows["production.csv"] += [[f"B{j}", f"L{i}", "", ""] for i in outs]
    for name, table in rows.items():
        with (folder / name).open("w", newline="") as f:
            csv.writer(f).writerows(table)


@st.composite
def genealogies(draw: st.DrawFn) -> tuple[int, list[tuple[list[int], list[int]]]]:
    """A random DAG: batches consume earlier lots and produce new ones."""
    n_raw = draw(st.integers(1, 5))
    lots = n_raw
    batches = []
    for _ in range(draw(st.integers(1, 7))):
        ins = draw(st.lists(st.integers(0, lots - 1), min_size=1, max_size=3, unique=True))
        n_out = draw(st.integers(1, 2))
        batches.append((ins, list(range(lots, lots + n_out))))
        lots += n_out
    return lots, batches


def _reference(
    batches: list[tuple[list[int], list[int]]], start: str, direction: str, parents: dict[int, int] | None = None
) -> dict[str, int]:
    """Every node reached from ``start``, with its distance (edges on a shortest path), by brute force."""
    edges: list[tuple[str, str]] = [(f"L{p}", f"L{c}") for c, p in (parents or {}).items()]
    for j, (ins, outs) in enumerate(batches):
        edges += [(f"L{i}", f"B{j}") for i in ins] + [(f"B{j}", f"L{o}") for o in outs]
    if direction == "up":
        edges = [(b, a) for a, b in edges]
    seen, level = {start: 0}, [start]
    while level:
        level = sorted({b for n in level for a, b in edges if a == n and b not in seen})
        seen |= {b: max(seen.values()) + 1 for b in level}
    return seen


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(genealogies(), st.data())
def test_walks_equal_a_brute_force_reference(tmp_path_factory, case, data) -> None:
    """Nodes and distances; big walks read their nodes in two halves on two threads (drawn here from two nodes on)."""
    n_lots, batches = case
    parents = _draw_parents(data, n_lots)
    folder = tmp_path_factory.mktemp("g") / "bundle"
    _write_bundle(folder, batches, n_lots, parents=parents)
    split_at = data.draw(st.sampled_from([2, trace_module._WALK_SPLIT_AT]), label="split_at")
    with pharmakg.open() as kg, pytest.MonkeyPatch.context() as mp:
        mp.setattr(trace_module, "_WALK_SPLIT_AT", split_at)
        kg.load(folder, reason="property test")
        start = f"L{data.draw(st.integers(0, n_lots - 1))}"
        for direction in ("up", "down"):
            frame = trace(kg, start, direction=direction, details=False).to_frame()
            got = dict(zip(frame["id"], frame["distance"], strict=True))
            assert got == _reference(batches, start, direction, parents), (direction, start, batches, parents)


def _draw_parents(data: st.DataObject, n_lots: int) -> dict[int, int]:
    """Some lots as sublots of a lower-numbered lot (as every batch's inputs are): still a DAG."""
    sublots = data.draw(st.sets(st.integers(1, n_lots - 1))) if n_lots > 1 else set()
    return {c: data.draw(st.integers(0, c - 1)) for c in sorted(sublots)}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(genealogies(), st.data())
def test_recall_equals_a_brute_force_reference(tmp_path_factory, monkeypatch, case, data) -> None:
    """The recall's walk from several roots reaches what a brute-force walk from each root does
    (sublots included; every VALUES query split across the two threads, as on a big plant; drug
    products listed in the query or looked up, as in a store with many)."""
    monkeypatch.setattr(trace_module, "_SPLIT_AT", 1)
    monkeypatch.setattr(trace_module, "_PRODUCTS_INLINE", data.draw(st.sampled_from([0, 256]), label="inline"))
    n_lots, batches = case
    finished = frozenset(data.draw(st.sets(st.integers(0, n_lots - 1))))
    parents = _draw_parents(data, n_lots)
    folder = tmp_path_factory.mktemp("g") / "bundle"
    _write_bundle(folder, batches, n_lots, finished, parents)
    roots = sorted(data.draw(st.sets(st.integers(0, n_lots - 1), min_size=1, max_size=4)))
    expected: dict[str, set[str]] = {}
    for root in roots:
        for lot in _reference(batches, f"L{root}", "down", parents):
            if lot.startswith("L") and int(lot[1:]) in finished:
                expected.setdefault(lot, set()).add(f"L{root}")
    with pharmakg.open() as kg:
        kg.load(folder, reason="property test")
        scope = recall_scope(kg, lots=[f"L{r}" for r in roots])
    got = {row.lot: set(row.via.split()) for row in scope.finished_lots.itertuples()}
    assert got == expected, (roots, finished, batches)


def test_recall_window_compares_every_kind_of_date(kg: pharmakg.KnowledgeGraph) -> None:
    """A received date-time without time zone an hour inside the window is found, and so is a date."""
    kg.load(MINI, reason="test")
    moved = kg.resolve("L-MCC-1")
    kg.update(
        f"""DELETE {{ GRAPH ?g {{ <{moved}> pkg:receivedDate ?d }} }} INSERT {{ GRAPH ?g {{ <{moved}> pkg:receivedDate
  "2025-01-12T11:00:00"^^xsd:dateTime }} }} WHERE {{ GRAPH ?g {{ <{moved}> pkg:receivedDate ?d }} }}""",
        reason="a date-time as some sources write it",
    )
    scope = recall_scope(kg, supplier='Supplier "B"', received_from="2025-01-12", received_to="2025-01-12T12:00:00Z")
    assert scope.suspect_lots["lot"].tolist() == ["L-MCC-1"]
    assert recall_scope(kg, supplier='Supplier "B"', received_to="2025-01-12T10:00:00Z").suspect_lots.empty
    # an xsd:date (L-API-1, received 2025-01-10) against date-time bounds
    scope = recall_scope(
        kg, supplier="Supplier A", received_from="2025-01-09T23:00:00Z", received_to="2025-01-10T01:00Z"
    )
    assert scope.suspect_lots["lot"].tolist() == ["L-API-1"]


def test_recall_without_shipment_links_reads_the_same(kg: pharmakg.KnowledgeGraph) -> None:
    """A store whose shipments lack pkg:shippedIn (loaded by an older pharmakg, or as RDF) is read the slow way."""
    kg.load(MINI, reason="test")
    assert (
        len(kg.rows("SELECT ?f WHERE { ?f pkg:shippedIn ?r }"))
        == len(kg.rows("SELECT ?r WHERE { ?r a pkg:Shipment }"))
        > 0
    )
    before = recall_scope(kg, lots=["L-API-1", "L-MCC-1"])
    kg.update("DELETE WHERE { GRAPH ?g { ?f pkg:shippedIn ?r } }", reason="a store from before the link")
    after = recall_scope(kg, lots=["L-API-1", "L-MCC-1"])
    assert len(before.shipments) > 0
    pd.testing.assert_frame_equal(before.finished_lots, after.finished_lots)
    pd.testing.assert_frame_equal(before.shipments, after.shipments)


def test_recall_follows_the_shipment_record_over_a_stale_link(kg: pharmakg.KnowledgeGraph) -> None:
    """A shipment moved to another lot by an update keeps its old lot's link: the record decides."""
    kg.load(MINI, reason="test")
    assert len(recall_scope(kg, lots=["L-API-1"]).shipments) == 1
    kg.update(
        f"""DELETE {{ GRAPH ?g {{ ?s pkg:lot ?l }} }} INSERT {{ GRAPH ?g {{ ?s pkg:lot <{kg.resolve("L-API-1")}> }} }}
  WHERE {{ GRAPH ?g {{ ?s a pkg:Shipment ; pkg:lot ?l }} }}""",
        reason="the shipment was of another lot",
    )
    scope = recall_scope(kg, lots=["L-API-1"])
    assert scope.finished_lots["lot"].tolist() == ["L-TAB-001"] and scope.shipments.empty


def _second_tablet_lot(bundle: Path, production: str) -> None:
    """Add finished lot L-TAB-002 (no quantity of its own) to the bundle, with ``production.csv`` rows for it."""
    with (bundle / "production.csv").open("a") as f:
        f.write(production)
    with (bundle / "lots.csv").open("a", encoding="utf-8") as f:
        f.write("L-TAB-002;TAB;;;;;;released\n")


def test_recall_follows_a_shipment_moved_to_another_lot_in_scope(bundle: Path) -> None:
    """A shipment moved to another finished lot of the same recall (its old lot keeps the link) counts for that lot."""
    _second_tablet_lot(bundle, "B-002,L-TAB-002,60,kg\n")
    with pharmakg.open() as kg:
        kg.load(bundle, reason="test")
        kg.update(
            f"""DELETE {{ GRAPH ?g {{ ?s pkg:lot ?l }} }} INSERT {{ GRAPH ?g {{ ?s pkg:lot <{kg.resolve("L-TAB-002")}> }} }}
  WHERE {{ GRAPH ?g {{ ?s a pkg:Shipment ; pkg:lot ?l }} }}""",
            reason="the shipment was of L-TAB-002",
        )
        scope = recall_scope(kg, lots=["L-MCC-1"])
    assert scope.finished_lots[["lot", "quantity"]].values.tolist() == [["L-TAB-001", 170.0], ["L-TAB-002", 60.0]]
    assert scope.shipments[["lot", "customer"]].values.tolist() == [["L-TAB-002", "Pharmacy Wholesale Ltd"]]


def test_recall_takes_one_whole_production_record_of_a_lot_made_twice(bundle: Path) -> None:
    """Quantity and unit of a lot without its own come from one production record, never from two."""
    _second_tablet_lot(bundle, "B-001,L-TAB-002,100,kg\nB-002,L-TAB-002,5,1\n")
    with pharmakg.open() as kg:
        kg.load(bundle, reason="test")
        finished = recall_scope(kg, lots=["L-MCC-1"]).finished_lots.set_index("lot")
    assert (finished.loc["L-TAB-002", "quantity"], finished.loc["L-TAB-002", "unit"]) in {(100.0, "kg"), (5.0, "1")}


def test_recall_leaves_out_finished_lots_without_an_id(kg: pharmakg.KnowledgeGraph) -> None:
    kg.load(MINI, reason="test")
    kg.update(
        f"DELETE WHERE {{ GRAPH ?g {{ <{kg.resolve('L-TAB-001')}> dcterms:identifier ?id }} }}",
        reason="a lot as RDF from elsewhere may come",
    )
    scope = recall_scope(kg, lots=["L-API-1"])
    assert scope.finished_lots.empty and scope.shipments.empty


def test_recall_reads_a_finished_lot_s_own_quantity_and_status(bundle: Path) -> None:
    """A finished lot listed in lots.csv carries its quantity and status; its production record is the fallback."""
    with (bundle / "lots.csv").open("a", encoding="utf-8") as f:
        f.write("L-TAB-001;TAB;;168000;1;;;quarantine\n")
    with pharmakg.open() as kg:
        kg.load(bundle, reason="test")
        finished = recall_scope(kg, lots=["L-API-1"]).finished_lots
    assert finished[["lot", "material", "quantity", "unit", "status", "via"]].values.tolist() == [
        ["L-TAB-001", "TAB", 168000.0, "1", "quarantine", "L-API-1"]
    ]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX only")
def test_a_forked_child_reads_big_walks_in_two_halves() -> None:
    """The thread kept for the second half of big walks is not inherited by a forked child:
    the child's walks must still finish (the pool it inherits has no thread and would wait forever)."""
    with pharmakg.open() as kg, pytest.MonkeyPatch.context() as mp:
        mp.setattr(trace_module, "_WALK_SPLIT_AT", 2)
        kg.load(MINI, reason="test")
        expected = sorted(trace(kg, "L-TAB-001").to_frame()["id"])  # the parent's pool now has its thread
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report the walk's ids, then leave without running pytest's teardown
            try:
                os.write(write, json.dumps(sorted(trace(kg, "L-TAB-001").to_frame()["id"])).encode())
            finally:
                os._exit(0)
        os.close(write)
        ready, _, _ = select.select([read], [], [], 60)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        assert ready, "the forked child's walk hung"
        assert json.loads(os.read(read, 1 << 16)) == expected
        os.close(read)


def test_cycle_terminates_with_a_warning(tmp_path: Path) -> None:
    folder = tmp_path / "cycle"
    _write_bundle(folder, [([0], [1]), ([1], [0])], 2)  # L0 -> B0 -> L1 -> B1 -> L0
    with pharmakg.open() as kg:
        kg.load(folder, reason="bad data")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            g = trace(kg, "L0")
        assert any("cycle" in str(w.message) for w in caught)
        assert set(g.to_frame()["id"]) == {"L0", "L1", "B0", "B1"}


def test_recall_scope_by_supplier_and_lot(kg: pharmakg.KnowledgeGraph) -> None:
    kg.load(MINI, reason="test")
    scope = recall_scope(kg, supplier='Supplier "B"', received_from="2025-01-01", received_to="2025-02-01")
    assert scope.suspect_lots["lot"].tolist() == ["L-MCC-1"]
    assert scope.finished_lots["lot"].tolist() == ["L-TAB-001"]
    assert scope.finished_lots["quantity"].tolist() == [170.0]
    assert scope.shipments[["customer", "market"]].values.tolist() == [["Pharmacy Wholesale Ltd", "DE"]]
    none = recall_scope(kg, supplier='Supplier "B"', received_from="2026-01-01")
    assert none.finished_lots.empty
    assert recall_scope(kg, lots=["L-API-1"]).finished_lots["lot"].tolist() == ["L-TAB-001"]


def test_cli_trace_output_contract(tmp_path: Path) -> None:
    from .test_cli import run

    assert run("load", str(MINI), cwd=tmp_path).returncode == 0
    r = run("trace", "L-TAB-001", "--format", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert {"id", "kind", "distance"} <= set(rows[0])
    assert {(x["id"], x["kind"], x["distance"]) for x in rows} >= {("L-TAB-001", "lot", 0), ("B-001", "batch", 1)}
    r = run("trace", "L-MCC-1", "--down", "--format", "csv", cwd=tmp_path)
    assert r.stdout.splitlines()[0].startswith("id,kind,distance")
    r = run("trace", "L-TAB-001", "--format", "dot", cwd=tmp_path)
    assert r.stdout.startswith("digraph") and '"L-MCC-1" -> "B-001"' in r.stdout
    r = run("recall", "--supplier", "Supplier A", "--format", "json", cwd=tmp_path)
    assert json.loads(r.stdout)[0]["lot"] == "L-TAB-001"
    r = run("trace", "NOPE", cwd=tmp_path)
    assert r.returncode != 0 and "no node with business id 'NOPE'" in r.stderr


@pytest.mark.parametrize("ref", ["L-TAB-001", "https://example.org/pharmakg/lot/L-TAB-001"])
def test_business_id_or_iri(ref: str) -> None:
    with pharmakg.open() as kg:
        kg.load(MINI, reason="test")
        assert trace(kg, ref).root == "https://example.org/pharmakg/lot/L-TAB-001"


def test_mass_balance_flags_batches_that_do_not_close(bundle: Path) -> None:
    from pharmakg.trace import mass_balance

    text = (bundle / "production.csv").read_text().replace("B-001,L-TAB-001,170,kg", "B-001,L-TAB-001,300,kg")
    (bundle / "production.csv").write_text(text)
    with pharmakg.open() as kg:
        kg.load(MINI, reason="test")
        ok = mass_balance(kg).set_index("batch")
        assert ok.loc["B-001", "closes"] and ok.loc["B-001", "yield"] == pytest.approx(1.0)
        assert ok.loc["B-002", "closes"] is None and "no quantities" in ok.loc["B-002", "note"]
    with pharmakg.open() as kg:
        kg.load(bundle, reason="test")
        bad = mass_balance(kg, ["B-001"]).set_index("batch")
        assert (
            bad.loc["B-001", "closes"] is not None
            and not bad.loc["B-001", "closes"]
            and bad.loc["B-001", "yield"] == pytest.approx(300 / 170)
        )


def test_names_follow_writes_on_every_backend(kg: pharmakg.KnowledgeGraph) -> None:
    """Material and supplier names are cached per store revision: a write must show at once."""
    kg.load(MINI, reason="test")
    assert trace(kg, "L-TAB-001").to_frame().set_index("id").loc["L-API-1", "supplier"] == "Supplier A"
    kg.update(
        """DELETE { GRAPH ?g { ?s rdfs:label "Supplier A" } } INSERT { GRAPH ?g { ?s rdfs:label "Supplier A (renamed)" } }
           WHERE { GRAPH ?g { ?s rdfs:label "Supplier A" } }""",
        reason="supplier renamed",
    )
    assert trace(kg, "L-TAB-001").to_frame().set_index("id").loc["L-API-1", "supplier"] == "Supplier A (renamed)"
    assert (kg.cache == {}) == (kg.store.revision is None)  # remote stores keep nothing


_SUBLOT_OF_TAB = """INSERT { GRAPH <urn:test:sublots> { <urn:test:lot/S1> a pkg:MaterialLot ; dcterms:identifier "S-1" ;
                                                        pkg:sublotOf ?lot } }
                  WHERE { GRAPH ?g { ?lot dcterms:identifier "L-TAB-001" } }"""


def test_walks_follow_step_relations_written_later(kg: pharmakg.KnowledgeGraph) -> None:
    """A walk leaves out step relations the store does not use (a probe kept per store revision):
    the first sublot written must be walked at once."""
    kg.load(MINI, reason="test")
    assert set(trace(kg, "L-API-1", direction="down").to_frame()["id"]) == {"L-API-1", "B-001", "L-TAB-001"}
    kg.update(_SUBLOT_OF_TAB, reason="a sublot split off the finished lot")
    down = trace(kg, "L-API-1", direction="down").to_frame().set_index("id")
    assert down.loc["S-1", "distance"] == 3 and down.loc["S-1", "kind"] == "lot"
    assert trace(kg, "S-1").paths_to("L-API-1") == [["L-API-1", "B-001", "L-TAB-001", "S-1"]]


def test_a_node_with_no_triple_of_its_own_is_still_walked(kg: pharmakg.KnowledgeGraph) -> None:
    """A lot named only as a batch's input or a sublot's parent (dangling links) has no row in the
    one-query upstream walk: it must still be a node, and the batch that made it must still be
    reached through it."""
    kg.load(MINI, reason="test")
    kg.update(
        """INSERT { GRAPH <urn:test:ghost> { ?b pkg:consumed <urn:test:lot/GHOST> .
                                             <urn:test:batch/BG> a pkg:Batch ; dcterms:identifier "B-G" ;
                                                                 pkg:produced <urn:test:lot/GHOST> .
                                             <urn:test:lot/S1> a pkg:MaterialLot ; dcterms:identifier "S-1" ;
                                                               pkg:sublotOf <urn:test:lot/PARENT> } }
           WHERE { GRAPH ?g { ?b dcterms:identifier "B-001" } }""",
        reason="dangling links",
    )
    rows = trace(kg, "L-TAB-001").to_frame().set_index("id")
    assert rows.loc["GHOST", "kind"] == "other" and rows.loc["GHOST", "iri"] == "urn:test:lot/GHOST"
    assert rows.loc["GHOST", "distance"] == 2 and rows.loc["B-G", "distance"] == 3
    assert trace(kg, "L-TAB-001").paths_to("B-G") == [["B-G", "GHOST", "B-001", "L-TAB-001"]]
    sublot = trace(kg, "S-1").to_frame().set_index("id")
    assert sublot.loc["PARENT", "kind"] == "other" and sublot.loc["PARENT", "distance"] == 1


def test_a_read_only_walk_from_an_iri_sees_a_sublot_another_writer_just_wrote(tmp_path: Path) -> None:
    """A walk from an IRI asks the store nothing before the probe of step relations: the probe's
    cache must still follow another process's commit (a read-only opener, as the server and notebooks are)."""
    with pharmakg.open(tmp_path / "store") as writer:
        writer.load(MINI, reason="test")
        with pharmakg.open(tmp_path / "store", read_only=True) as reader:
            root = reader.resolve("L-API-1")
            assert "S-1" not in set(trace(reader, root, direction="down").to_frame()["id"])
            writer.update(_SUBLOT_OF_TAB, reason="a sublot split off the finished lot")
            assert "S-1" in set(trace(reader, root, direction="down").to_frame()["id"])


def test_big_walks_still_read_once_the_interpreter_shuts_down(tmp_path: Path) -> None:
    """A thread tracing after the main thread returned finds the kept pool shut: the walk is read whole."""
    script = tmp_path / "late.py"
    script.write_text(
        f"""import threading, time
import pharmakg
from pharmakg import trace as tm
tm._WALK_SPLIT_AT = 2
kg = pharmakg.open()
kg.load({str(MINI)!r}, reason="t")
tm.trace(kg, "L-TAB-001")
def late():
    time.sleep(0.5)
    print(sorted(tm.trace(kg, "L-TAB-001").to_frame()["id"]), flush=True)
threading.Thread(target=late).start()
"""
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['B-001', 'L-API-1', 'L-MCC-1', 'L-TAB-001']", done.stderr


def test_concurrent_walks_equal_serial_ones() -> None:
    """Walks from several threads share the kept worker (one at a time; the others read whole): same results."""
    from concurrent.futures import ThreadPoolExecutor

    with pharmakg.open() as kg, pytest.MonkeyPatch.context() as mp:
        mp.setattr(trace_module, "_WALK_SPLIT_AT", 2)
        kg.load(MINI, reason="test")
        refs = ["L-TAB-001", "L-MCC-1", "L-API-1", "B-001"] * 10
        serial = [sorted(trace(kg, r, direction=d).to_frame()["id"]) for r in refs for d in ("up", "down")]
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(trace, kg, r, direction=d) for r in refs for d in ("up", "down")]
            assert [sorted(f.result().to_frame()["id"]) for f in futures] == serial
