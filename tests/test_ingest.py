"""CSV bundle ingest: mapping, units, incremental loads, and bad input that changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pharmakg
from pharmakg import IngestError
from pharmakg.ingest import _CANONICAL_DATES
from pharmakg.store import oxigraph

from .conftest import MINI


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8-sig")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _append(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(line + "\n")


# (id, how to break the bundle, error type, file, line, column, words in the message)
BREAKAGES: list[tuple[str, Callable[[Path], None], type[Exception], str, int | None, str | None, str]] = [
    (
        "ragged row",
        lambda b: _append(b / "materials.csv", "X1,Extra,raw,surplus"),
        IngestError,
        "materials.csv",
        6,
        None,
        "4 cells but the header has 3",
    ),
    ("short row", lambda b: _append(b / "materials.csv", "X1,Extra"), IngestError, "materials.csv", 6, None, "2 cells"),
    (
        "bad number",
        lambda b: _edit(b / "parameters.csv", "60,55,65", "sixty,55,65"),
        IngestError,
        "parameters.csv",
        2,
        "target",
        "expects a number",
    ),
    (
        "bad date",
        lambda b: _edit(b / "batches.csv", "2025-02-01T06:00:00+01:00", "2025-13-01T06:00:00+01:00"),
        IngestError,
        "batches.csv",
        2,
        "start",
        "not a valid date",
    ),
    (
        "time without offset",
        lambda b: _edit(b / "batches.csv", "2025-02-01T06:00:00+01:00", "2025-02-01T06:00:00"),
        IngestError,
        "batches.csv",
        2,
        "start",
        "with offset",
    ),
    (
        "unknown unit",
        lambda b: _edit(b / "consumption.csv", "50,kg", "50,kgs"),
        pharmakg.UnitError,
        "consumption.csv",
        2,
        "unit",
        "unknown unit 'kgs'",
    ),
    (
        "wrong dimension",
        lambda b: _edit(b / "parameter_values.csv", '12,5",kN', '12,5",kg'),
        pharmakg.UnitError,
        "parameter_values.csv",
        3,
        "unit",
        "cannot be converted",
    ),
    (
        "missing lot",
        lambda b: _edit(b / "consumption.csv", "B-001,L-API-1", "B-001,L-API-9"),
        IngestError,
        "consumption.csv",
        2,
        "lot_id",
        "refers to lot 'L-API-9'",
    ),
    (
        "missing batch",
        lambda b: _edit(b / "results.csv", "S-001,B-001", "S-001,B-404"),
        IngestError,
        "results.csv",
        2,
        "batch_id",
        "refers to batch 'B-404'",
    ),
    (
        "missing recipe",
        lambda b: _edit(b / "batches.csv", "B-002,CR-TAB", "B-002,CR-NONE"),
        IngestError,
        "batches.csv",
        3,
        "recipe_id",
        "refers to recipe",
    ),
    (
        "duplicate id",
        lambda b: _append(b / "materials.csv", "API,Acetaminophen,drug_substance"),
        pharmakg.ConflictError,
        "materials.csv",
        6,
        "id",
        "appears again",
    ),
    (
        "unknown level",
        lambda b: _edit(b / "equipment.csv", "Unit,CELL1,granulator", "Machine,CELL1,granulator"),
        IngestError,
        "equipment.csv",
        6,
        "level",
        "expected one of",
    ),
    (
        "severity out of range",
        lambda b: _edit(b / "impacts.csv", "TAB-HARD,8", "TAB-HARD,11"),
        IngestError,
        "impacts.csv",
        2,
        "severity",
        "1-10",
    ),
    (
        "missing id column",
        lambda b: _edit(b / "batches.csv", "id,recipe_id", "batch,recipe_id"),
        IngestError,
        "batches.csv",
        1,
        "id",
        "required column",
    ),
    (
        "empty required cell",
        lambda b: _edit(b / "lots.csv", "L-MCC-2;MCC", "L-MCC-2;"),
        IngestError,
        "lots.csv",
        4,
        "material_id",
        "required cell is empty",
    ),
]


@pytest.mark.parametrize("case", BREAKAGES, ids=[c[0] for c in BREAKAGES])
def test_bad_bundle_is_refused_and_changes_nothing(case, tmp_path: Path) -> None:
    _, breaks, error, file, line, column, words = case
    with pharmakg.open(tmp_path / "store") as kg:
        kg.load(MINI, reason="baseline")
        before = kg.export(format="nq")
        broken = tmp_path / "broken"
        import shutil

        shutil.copytree(MINI, broken)
        breaks(broken)
        with pytest.raises(error) as err:
            kg.load(broken, reason="should fail")
        assert err.value.where.file.endswith(file)
        assert err.value.line == line
        assert err.value.column == column
        assert words in str(err.value)
        assert kg.export(format="nq") == before


def test_bad_input_on_every_backend_changes_nothing(kg: pharmakg.KnowledgeGraph, bundle: Path) -> None:
    kg.load(MINI, reason="baseline")
    before = kg.export(format="nq")
    _edit(bundle / "consumption.csv", "50,kg", "50,furlong")
    with pytest.raises(pharmakg.UnitError):
        kg.load(bundle, reason="should fail")
    assert kg.export(format="nq") == before


def test_semicolons_bom_and_empty_cells_are_fine(kg: pharmakg.KnowledgeGraph) -> None:
    kg.load(MINI, reason="test")
    frame = kg.query(
        "SELECT ?lot ?qty ?unit WHERE { ?l a pkg:MaterialLot ; dcterms:identifier ?lot . "
        "OPTIONAL { ?l pkg:quantity ?qty ; pkg:unit ?unit } } ORDER BY ?lot"
    )
    rows = {r.lot: (r.qty, r.unit) for r in frame.itertuples()}
    assert rows["L-MCC-1"] == (250.0, "kg")  # 250000 g, stored in kg
    assert rows["L-MCC-2"][0] != rows["L-MCC-2"][0]  # empty quantity: no triple (NaN)


def test_units_are_converted_and_given_values_kept(kg: pharmakg.KnowledgeGraph) -> None:
    kg.load(MINI, reason="test")
    frame = kg.query(
        "SELECT ?p ?v ?u ?given ?gu WHERE { ?x a pkg:ParameterValue ; pkg:parameter/dcterms:identifier ?p ; "
        "pkg:value ?v ; pkg:unit ?u . OPTIONAL { ?x pkg:valueAsGiven ?given ; pkg:unitAsGiven ?gu } } ORDER BY ?p"
    )
    got = {r.p: (round(r.v, 9), r.u, r.given, r.gu) for r in frame.itertuples()}
    assert got["P-INLET"] == (60.0, "Cel", "333.15", "K")  # K -> the parameter's unit Cel
    assert got["P-DRYTIME"] == (30.0, "min", "0.5", "h")
    assert got["P-FORCE"][:2] == (12.5, "kN")  # decimal comma accepted


def test_reload_identical_bundle_is_a_no_op(kg: pharmakg.KnowledgeGraph) -> None:
    kg.load(MINI, reason="first")
    before = kg.domain_nquads()
    (report,) = kg.load(MINI, reason="second")
    assert report.triples_added == 0
    assert kg.domain_nquads() == before
    loads = kg.query("SELECT (COUNT(?a) AS ?n) WHERE { ?a a pkg:LoadActivity }")["n"].iloc[0]
    assert loads == 2  # every load is recorded, even a no-op


def test_incremental_bundle_references_earlier_load(kg: pharmakg.KnowledgeGraph, tmp_path: Path) -> None:
    kg.load(MINI, reason="day 1")
    day2 = tmp_path / "day2"
    day2.mkdir()
    (day2 / "batches.csv").write_text(
        "id,recipe_id,product_id,start,end,status\nB-003,CR-TAB,TAB,2025-02-03T06:00:00+01:00,,running\n"
    )
    (day2 / "consumption.csv").write_text("batch_id,lot_id,step_id,quantity,unit\nB-003,L-MCC-1,UP-GRAN,10,kg\n")
    (day2 / "parameter_values.csv").write_text("batch_id,parameter_id,value,unit,time\nB-003,P-INLET,61,,\n")
    (report,) = kg.load(day2, reason="day 2")
    assert report.triples_added > 0
    frame = kg.query(
        "SELECT ?step ?v ?u WHERE { ?c a pkg:MaterialConsumption ; pkg:batch/dcterms:identifier 'B-003' ; "
        "pkg:step/dcterms:identifier ?step . ?pv pkg:batch/dcterms:identifier 'B-003' ; pkg:value ?v ; pkg:unit ?u }"
    )
    assert frame.iloc[0].tolist() == ["UP-GRAN", 61.0, "Cel"]  # the parameter's unit, from the store


def test_row_contradicting_store_is_a_conflict(kg: pharmakg.KnowledgeGraph, tmp_path: Path) -> None:
    kg.load(MINI, reason="day 1")
    before = kg.export(format="nq")
    day2 = tmp_path / "day2"
    day2.mkdir()
    (day2 / "materials.csv").write_text("id,name,kind\nAPI,Acetaminophen,drug_substance\n")
    with pytest.raises(pharmakg.ConflictError) as err:
        kg.load(day2, reason="day 2")
    assert err.value.line == 2
    assert err.value.column == "name"
    assert "Paracetamol" in str(err.value)
    assert kg.export(format="nq") == before


def test_shacl_violation_in_rdf_is_refused(kg: pharmakg.KnowledgeGraph, tmp_path: Path) -> None:
    kg.load(MINI, reason="baseline")
    before = kg.export(format="nq")
    bad = tmp_path / "lot.ttl"
    bad.write_text(
        "@prefix pkg: <https://w3id.org/pharmakg/ontology#> .\n@prefix dcterms: <http://purl.org/dc/terms/> .\n"
        "<https://example.org/pharmakg/lot/L-X> a pkg:MaterialLot ; dcterms:identifier 'L-X' .\n"
    )
    with pytest.raises(pharmakg.ValidationError) as err:
        kg.load(bad, reason="should fail")
    assert "material" in str(err.value)
    assert err.value.where.file == str(bad)
    assert kg.export(format="nq") == before


def test_malformed_turtle_names_line_and_column(kg: pharmakg.KnowledgeGraph, tmp_path: Path) -> None:
    bad = tmp_path / "bad.ttl"
    bad.write_text('@prefix ex: <http://example.org/> .\nex:a ex:b ex:c .\nex:a ex:b "open .\n')
    with pytest.raises(IngestError) as err:
        kg.load(bad, reason="should fail")
    assert err.value.line == 3
    assert "malformed" in str(err.value)
    assert len(kg) == 0


def test_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(pharmakg.NotAStoreError, match="not a pharmakg store"):
        pharmakg.open(tmp_path)


def test_store_locked_by_another_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    kg = pharmakg.open(tmp_path / "store")
    try:
        proc = subprocess.run(
            [sys.executable, "-c", f"import pharmakg; pharmakg.open({str(tmp_path / 'store')!r})"],
            capture_output=True,
            text=True,
        )
        assert proc.returncode != 0
        assert "in use by another process" in proc.stderr
    finally:
        kg.close()


def test_remote_endpoint_refused() -> None:
    from pharmakg.testing import free_port

    kg = pharmakg.connect(f"http://127.0.0.1:{free_port()}/query", timeout=2)
    with pytest.raises(pharmakg.EndpointError, match="cannot connect"):
        kg.query("ASK {}")


def test_remote_endpoint_timeout() -> None:
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    t = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
    t.start()
    try:
        kg = pharmakg.connect(f"http://127.0.0.1:{port}/query", timeout=0.5)
        with pytest.raises(pharmakg.EndpointError, match="timed out"):
            kg.query("ASK {}")
    finally:
        for s in accepted:
            s.close()
        listener.close()


def test_remote_read_only_without_update_url(oxigraph_url: str) -> None:
    kg = pharmakg.connect(oxigraph_url + "/query")
    with pytest.raises(pharmakg.ReadOnlyStoreError):
        kg.load(MINI, reason="no")


def test_provenance_records_files_and_hashes(kg: pharmakg.KnowledgeGraph) -> None:
    kg.load(MINI, reason="initial load")
    frame = kg.query(
        "SELECT ?file ?sha ?rows ?who ?why WHERE { ?a a pkg:LoadActivity ; prov:used ?f ; "
        "prov:wasAssociatedWith/rdfs:label ?who ; pkg:reason ?why . ?f dcterms:identifier ?file ; pkg:sha256 ?sha ; pkg:rowCount ?rows }"
    )
    assert len(frame) == 18
    assert set(frame["why"]) == {"initial load"}
    assert frame["sha"].str.len().eq(64).all()
    lots = frame[frame["file"].str.endswith("lots.csv")]
    assert lots["rows"].iloc[0] == 3


def test_errors_pickle() -> None:
    import pickle

    from pharmakg.errors import Where

    err = pharmakg.UnitError(Where("a.csv", 3, "unit"), "unknown unit 'x'", value="x")
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err) and back.line == 3 and isinstance(back, ValueError)


def test_a_new_graph_is_checkpointed_from_exactly_the_lines_the_store_holds(tmp_path: Path) -> None:
    """The load's checkpoint of a fresh graph is computed from staged lines, not read back: they must match."""
    import pandas as pd

    from pharmakg import audit
    from pharmakg.ingest import _stored_lines
    from pharmakg.store.oxigraph import EmbeddedStore

    xsd = "http://www.w3.org/2001/XMLSchema#"
    objects = pd.Series(
        [
            f'"5.0"^^<{xsd}double>',  # kept by value: reads back as "5"
            f'"1.50"^^<{xsd}decimal>',
            f'"2024-01-01T00:00:00+00:00"^^<{xsd}dateTime>',
            f'"007"^^<{xsd}integer>',
            '"a\tb"',  # a raw tab: the store writes \t
            '"x"@EN',
            "<https://example.org/o>",
            '"plain é"',
            '"q\\"uote and line\\nbreak"',
        ]
        * 2  # each object on two subjects: a term is read the store's way once, both lines follow
    )
    ntriples = "".join(f"<https://example.org/s{i}> <https://example.org/p> {o} .\n" for i, o in enumerate(objects))
    graph = "https://example.org/graph/g"
    store = EmbeddedStore(tmp_path / "store")
    store.add(ntriples=ntriples.encode(), graph=graph)
    assert set(_stored_lines(ntriples.encode(), objects)) == audit.graph_lines(store, graph)
    assert set(_stored_lines(ntriples.encode(), objects.astype("category"))) == audit.graph_lines(store, graph)


def test_checkpoint_lines_are_distinct_where_repeats_and_rewritten_values_meet(tmp_path: Path) -> None:
    """Lines fed with their repeats, and values the store reads as one ("5.0" and "5"): the checkpoint
    counts each stored line once, so the state must equal the graph read back."""
    import numpy as np

    from pharmakg import audit
    from pharmakg.ingest import _stored_lines
    from pharmakg.store.oxigraph import EmbeddedStore

    xsd = "http://www.w3.org/2001/XMLSchema#"
    rows = [
        ("s1", f'"5.0"^^<{xsd}double>'),
        ("s1", f'"5"^^<{xsd}double>'),  # the same stored line as the one above
        ("s1", f'"5.00"^^<{xsd}double>'),  # and again, rewritten to the same text
        ("s2", f'"2024-01-01T00:00:00+00:00"^^<{xsd}dateTime>'),
        ("s2", f'"2024-01-01T00:00:00Z"^^<{xsd}dateTime>'),  # taken as written, met by the rewritten one
        ("s3", "<https://example.org/o>"),
        ("s3", "<https://example.org/o>"),  # a repeat of the row above, as a bundle maps it
        ("s4", f'"7.5"^^<{xsd}double>'),
        ("s4", f'"7.5"^^<{xsd}double>'),  # a repeated value the store rewrites
    ]
    ntriples = "".join(f"<https://example.org/{s}> <https://example.org/p> {o} .\n" for s, o in rows).encode()
    objects = pd.Series([o for _, o in rows]).astype("category")
    first = ~pd.Series([f"{s} {o}" for s, o in rows]).duplicated().to_numpy()
    assert not first.all()
    graph = "https://example.org/graph/g"
    store = EmbeddedStore(tmp_path / "store")
    store.add(ntriples=ntriples, graph=graph)
    lines = _stored_lines(ntriples, objects, first)
    assert len(lines) == len(set(lines)) and set(lines) == audit.graph_lines(store, graph)
    assert audit.lines_state(graph, lines, distinct=True) == audit.graph_state(store, graph)
    unique = [i for i in range(len(rows)) if first[i]]
    once = b"".join(ntriples.splitlines(keepends=True)[i] for i in unique)
    lines = _stored_lines(once, objects.iloc[unique], np.ones(len(unique), dtype=bool))
    assert len(lines) == len(set(lines)) and set(lines) == audit.graph_lines(store, graph)


_XSD = "http://www.w3.org/2001/XMLSchema#"
#: dates and times near the canonical form: zones the store rewrites (+00:00), 24:00, fractions
_NEAR_DATES = st.builds(
    lambda day, time, frac, zone, kind: (
        f'"{day}T{time}{frac}{zone}"^^<{_XSD}dateTime>' if kind else f'"{day}{zone}"^^<{_XSD}date>'
    ),
    day=st.sampled_from(["2025-03-01", "2024-02-29", "2025-02-30", "0000-01-01", "9999-12-31"]),
    time=st.sampled_from(["00:00:00", "09:30:15", "23:59:59", "24:00:00", "12:00:60"]),
    frac=st.sampled_from(["", "", ".0", ".5", ".500"]),
    zone=st.sampled_from(["", "Z", "+00:00", "-00:00", "+00:30", "-00:01", "+05:30", "-14:00", "+10:00"]),
    kind=st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(
    canonical=st.lists(st.from_regex(_CANONICAL_DATES, fullmatch=True), max_size=10),
    near=st.lists(_NEAR_DATES, max_size=10),
)
def test_dates_taken_as_written_are_written_so_by_the_store(canonical: list[str], near: list[str]) -> None:
    """The checkpoint skips reading the dates ``_CANONICAL_DATES`` matches the store's way: the store must
    write each exactly as given, and the near misses it rewrites must not match."""
    import re

    from pharmakg.store.oxigraph import canonical_terms

    terms = canonical + [t for t in near if re.fullmatch(_CANONICAL_DATES, t)]
    assert canonical_terms(terms) == terms


def test_a_bundle_loaded_on_disk_leaves_an_intact_trail(tmp_path: Path) -> None:
    kg = pharmakg.open(tmp_path / "store")
    kg.load(MINI, reason="test")
    report = pharmakg.audit.verify_trail(kg.store, kg.base)
    assert report.ok, report
    assert report.graphs_checked >= 1


def test_the_checkpoint_uses_the_lines_given_and_reads_back_when_they_fail(tmp_path: Path) -> None:
    from pharmakg import audit

    kg = pharmakg.open(tmp_path / "store")
    data = b'<https://example.org/s> <https://example.org/p> "1" .\n'

    def write(graph: str, produce: Callable[[], audit.GraphState]) -> None:
        rec = audit.WriteRecord(
            action="load", user="t", reason="test", target_graph=graph, triples_added=1, digest="0" * 64
        )
        audit.commit_add(kg.store, kg.base, rec, b"", ntriples=data, graph=graph, fresh={graph: produce})

    def broken() -> audit.GraphState:
        raise RuntimeError("boom")

    write(kg.base + "graph/a", broken)  # falls back to reading the graph back: the trail holds
    assert audit.verify_trail(kg.store, kg.base).ok
    wrong = [b'<https://example.org/s> <https://example.org/p> "2" .']
    write(kg.base + "graph/b", lambda: audit.lines_state(kg.base + "graph/b", wrong))
    report = audit.verify_trail(kg.store, kg.base)
    assert not report.ok and "graph/b" in str(report)


def _data_dirs(store: Path) -> list[str]:
    return sorted(p.name for p in store.iterdir() if p.name.startswith("data-"))


def _assert_the_copy_goes(store: Path) -> None:
    """A dropped copy is removed once its bulk load stops: one data directory is left."""
    import time

    deadline = time.monotonic() + 30
    while len(_data_dirs(store)) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_data_dirs(store)) == 1


def test_a_big_load_starts_its_bulk_load_before_shacl_and_a_violation_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every load on the bulk path, the copy filled during SHACL is switched in, or dropped on a violation."""

    from pharmakg import audit
    from pharmakg.store import oxigraph

    monkeypatch.setattr(oxigraph, "BULK_THRESHOLD_BYTES", 0)
    finished = []
    finish = oxigraph.EmbeddedStore._finish_prepared
    monkeypatch.setattr(oxigraph.EmbeddedStore, "_finish_prepared", lambda *a: finished.append(1) or finish(*a))
    store = tmp_path / "store"
    kg = pharmakg.open(store)
    kg.load(MINI, reason="baseline")
    assert finished == [1]  # the load's data went in through the copy filled during SHACL
    assert audit.verify_trail(kg.store, kg.base).ok
    assert len(_data_dirs(store)) == 1
    assert kg.query("SELECT (COUNT(*) AS ?n) WHERE { ?b a pkg:Batch }")["n"][0] > 0
    before = kg.export(format="nq")

    bad = tmp_path / "lot.ttl"
    bad.write_text(
        "@prefix pkg: <https://w3id.org/pharmakg/ontology#> .\n@prefix dcterms: <http://purl.org/dc/terms/> .\n"
        "<https://example.org/pharmakg/lot/L-X> a pkg:MaterialLot ; dcterms:identifier 'L-X' .\n"
    )
    with pytest.raises(pharmakg.ValidationError):
        kg.load(bad, reason="should fail")
    assert kg.export(format="nq") == before
    _assert_the_copy_goes(store)
    kg.close()


def test_a_prepared_bulk_load_is_dropped_by_any_other_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pharmakg.store import oxigraph

    monkeypatch.setattr(oxigraph, "BULK_THRESHOLD_BYTES", 0)
    store = oxigraph.EmbeddedStore(tmp_path / "store")
    graph = "https://example.org/graph/g"
    prepared = b'<https://example.org/s> <https://example.org/p> "prepared" .\n'
    store.prepare_add(prepared, graph)
    store.update(
        'INSERT DATA { GRAPH <https://example.org/graph/h> { <https://example.org/s> <https://example.org/p> "u" } }'
    )
    store.add(ntriples=prepared, graph=graph)  # the same bytes, but the store moved on: loaded afresh
    dump = store.dump(format="nq")
    assert b'"prepared"' in dump and b'"u"' in dump
    store.close()


def _spy_prepared(monkeypatch: pytest.MonkeyPatch) -> list[oxigraph._PreparedLoad]:
    """Every bulk load into a copy that was started (with every load on the bulk path)."""
    monkeypatch.setattr(oxigraph, "BULK_THRESHOLD_BYTES", 0)
    started: list[oxigraph._PreparedLoad] = []
    start = oxigraph._PreparedLoad._start

    def spy(self: oxigraph._PreparedLoad, source: bytes | Path) -> None:
        self.source = source  # type: ignore[attr-defined]
        started.append(self)
        start(self, source)

    monkeypatch.setattr(oxigraph._PreparedLoad, "_start", spy)
    return started


def test_into_an_empty_store_the_bulk_load_starts_from_the_mapped_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy reads the rows as they are mapped (repeats included) while the checks run, and that copy goes in."""
    from pharmakg import audit

    started = _spy_prepared(monkeypatch)
    fed: list[bytes] = []
    write = oxigraph._PreparedLoad.write
    monkeypatch.setattr(
        oxigraph._PreparedLoad, "write", lambda self, chunk: fed.append(bytes(chunk)) or write(self, chunk)
    )
    kg = pharmakg.open(tmp_path / "store")
    (report,) = kg.load(MINI, reason="first load")
    assert len(started) == 1  # started once, while mapping, and not again for the commit
    assert len(fed) > 10  # a chunk per mapped column
    assert isinstance(started[0].source, Path)  # each read as it came, through the pipe
    assert started[0].ntriples == b"".join(fed)
    mapped = b"".join(fed).splitlines()
    assert len(mapped) > len(set(mapped))  # MINI repeats a sample's batch on each of its results
    stored = set(kg.export(format="nt", graph=report.graph).splitlines())
    assert len(stored) == report.triples_added == len(set(mapped))
    assert audit.verify_trail(kg.store, kg.base).ok  # the checkpoint made from the mapped lines is right
    with pharmakg.open() as memory:  # the same load without any copy: the same graph
        (again,) = memory.load(MINI, reason="reference")
        assert set(memory.export(format="nt", graph=again.graph).splitlines()) == stored
    kg.close()


def test_a_small_bundle_into_an_empty_store_takes_no_copy(tmp_path: Path) -> None:
    """Below the bulk threshold the feed never starts a load: the transactional path, and no copy left."""
    kg = pharmakg.open(tmp_path / "store")
    (report,) = kg.load(MINI, reason="first load")
    assert report.triples_added > 0
    assert len(_data_dirs(tmp_path / "store")) == 1
    assert pharmakg.audit.verify_trail(kg.store, kg.base).ok
    kg.close()


def test_a_conflict_found_after_the_bulk_load_started_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    started = _spy_prepared(monkeypatch)
    broken = tmp_path / "broken"
    shutil.copytree(MINI, broken)
    # the same sample drawn from another batch: only the rows together show it
    _append(broken / "results.csv", "S-001,B-002,L-TAB-001,MCC-WATER,2.1,%,2025-02-03T10:00:00+01:00,,Ana Novak,valid")
    store = tmp_path / "store"
    kg = pharmakg.open(store)
    before = kg.export(format="nq")
    with pytest.raises(pharmakg.ConflictError) as err:
        kg.load(broken, reason="should fail")
    assert err.value.where.file.endswith("results.csv") and err.value.line == 4
    assert len(started) == 1  # the copy was being filled when the conflict was found
    assert kg.export(format="nq") == before
    _assert_the_copy_goes(store)
    kg.close()


_IDS = st.lists(st.one_of(st.none(), st.text(max_size=12)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(_IDS)
def test_ids_are_percent_encoded_like_urllib(ids: list[str | None]) -> None:
    from urllib.parse import quote

    from pharmakg.ingest._nt import encode_ids

    got = encode_ids(pd.Series(ids, dtype=object)).tolist()
    assert [None if v is None else quote(v, safe="") for v in ids] == [None if pd.isna(v) else v for v in got]


@settings(max_examples=200, deadline=None)
@given(_IDS, st.sets(st.text(max_size=12), max_size=10))
def test_member_is_isin(values: list[str | None], allowed: set[str]) -> None:
    from pharmakg.ingest._nt import member

    column = pd.Series(values, dtype=object)
    assert member(column, allowed).tolist() == column.isin(allowed).tolist()


def test_staged_triples_are_coded_over_one_set_of_terms_and_written_as_mapped() -> None:
    from pharmakg._shacl_frame import shared_terms
    from pharmakg.ingest._triples import TripleParts, nt_lines

    fed: list[bytes] = []
    parts = TripleParts(on_lines=lambda chunk: fed.append(bytes(chunk)))
    subjects = pd.Series(["<urn:a>", "<urn:b>", "<urn:a>"], dtype="str")
    parts.add(subjects, "<urn:p>", pd.Series(['"x"', "<urn:b>", '"x"'], dtype=object), "f.csv", [2, 3, 4], "c")
    parts.add(pd.Series(["<urn:b>"], dtype=object), "<urn:b>", pd.Series(["<urn:a>"], dtype="str"), "g.csv", [9], "d")
    frame = parts.frame()
    terms = shared_terms(frame)
    assert terms is not None and sorted(terms) == ['"x"', "<urn:a>", "<urn:b>", "<urn:p>"]
    # a term used as subject, predicate and object has one code
    assert frame["p"].cat.codes[3] == frame["s"].cat.codes[1] == frame["o"].cat.codes[1]
    expected = b'<urn:a> <urn:p> "x" .\n<urn:b> <urn:p> <urn:b> .\n<urn:a> <urn:p> "x" .\n<urn:b> <urn:b> <urn:a> .\n'
    assert len(fed) == 2 and b"".join(fed) == nt_lines(frame) == expected  # one chunk per part, as it is added
    assert frame[["file", "line", "column"]].astype(object).values.tolist() == [
        ["f.csv", 2, "c"],
        ["f.csv", 3, "c"],
        ["f.csv", 4, "c"],
        ["g.csv", 9, "d"],
    ]
    plain = frame[["s", "p", "o"]].astype(str)  # the same lines from plain strings, and with a graph column
    assert nt_lines(plain) == expected
    quads = nt_lines(plain.assign(g="<urn:g>"), ("s", "p", "o", "g"))
    assert quads.splitlines()[0] == b'<urn:a> <urn:p> "x" <urn:g> .'


def test_a_missing_term_is_refused_when_staged_and_matches_nothing_in_shacl() -> None:
    from pharmakg._shacl_frame import _Terms
    from pharmakg.ingest._triples import TripleParts

    parts = TripleParts()
    with pytest.raises(ValueError, match=r"f\.csv, column c"):
        parts.add(pd.Series(["<urn:a>", None], dtype="str"), "<urn:p>", pd.Series(['"x"', '"y"']), "f.csv", [2, 3], "c")
    parts.add(pd.Series(["<urn:a>"], dtype="str"), "<urn:p>", pd.Series(['"x"'], dtype="str"), "f.csv", [2], "c")
    coded = parts.frame()
    context = pd.DataFrame({"s": ["<urn:a>"], "p": ["<urn:p>"], "o": [None]}, dtype=object)
    terms = _Terms([coded, context], ["<urn:p>"])
    assert terms.coded(1).iloc[0].tolist() == [int(coded["s"].cat.codes[0]), int(coded["p"].cat.codes[0]), -1]


_CELL = st.text(alphabet=st.sampled_from(list('ab1 \t;,é-\u2028\xa0"')), max_size=4)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.integers(1, 4).flatmap(
        lambda w: st.lists(
            st.one_of(st.lists(_CELL, min_size=w, max_size=w), st.lists(_CELL, min_size=1, max_size=4)),
            min_size=1,
            max_size=6,
        )
    ),
    sep=st.sampled_from([",", ";"]),
    final_newline=st.booleans(),
)
def test_the_fast_csv_reader_agrees_with_the_stdlib_one(
    rows: list[list[str]], sep: str, final_newline: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Whatever Arrow's reader takes, it reads as the stdlib reader does (cells, line numbers, skipped rows)."""
    from pharmakg.ingest import _read

    text = "\n".join(sep.join(r) for r in [["id", "name", "x", "y"][: len(rows[0])], *rows])
    text += "\n" if final_newline else ""
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    path.write_text(text, encoding="utf-8")
    fast = _read._read_plain(text, str(path))
    if fast is None:
        return  # left to the stdlib reader
    original = _read._read_plain
    try:
        _read._read_plain = lambda text, name: None  # type: ignore[assignment]
        slow = _read.read_table(path)
    except IngestError:
        raise AssertionError("the fast reader took a file the stdlib reader refuses") from None
    finally:
        _read._read_plain = original  # type: ignore[assignment]
    pd.testing.assert_frame_equal(fast, slow, check_dtype=False)


def test_a_plain_csv_takes_the_fast_reader_and_keeps_its_line_numbers() -> None:
    from pharmakg.ingest import _read

    frame = _read._read_plain("id;name\nA; b \n;\nC;d\n", "t.csv")
    assert frame is not None
    assert frame.values.tolist() == [["A", "b", 2], ["C", "d", 4]]  # the row of empty cells is skipped
    assert _read._read_plain('id,name\n"A",b\n', "t.csv") is None  # quotes: the stdlib reader
    assert _read._read_plain("id,name\n\nA,b\n", "t.csv") is None  # a blank line would shift the numbers
    assert _read._read_plain("id,name\nA,b,c\n", "t.csv") is None  # ragged: the stdlib reader names the line


def test_an_all_missing_iri_column_stays_missing_without_a_pandas_warning() -> None:
    """pandas reads a column with no value as float, which takes no "" as fill value (a warning now, an error in pandas 4)."""
    import warnings

    from pharmakg.ingest._nt import iri_column

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert iri_column(pd.Series([float("nan")] * 3)).isna().all()
        assert iri_column(pd.Series(["https://x/a", None])).tolist()[0] == "<https://x/a>"
