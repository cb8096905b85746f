"""The hash-chained audit trail: every write path chains, verify catches each kind of tampering.

Tampering is done the way an attacker with file access would: writing to the
store directly (``kg.store``), bypassing the audited path.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pharmakg
from pharmakg import audit, transfer
from pharmakg.demo import build_demo, receiving_site_bundle
from pharmakg.terms import PKG

AG = f"<{pharmakg.DEFAULT_BASE}graph/audit>"


@pytest.fixture
def plant(tmp_path: Path) -> pharmakg.KnowledgeGraph:
    kg = pharmakg.open(tmp_path / "store")
    build_demo(kg, batches=12, seed=2, out_dir=tmp_path / "plant")
    return kg


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    key, public = transfer.generate_keypair(tmp_path / "keys" / "qa.pem")
    trust = tmp_path / "trust"
    trust.mkdir()
    shutil.copy(public, trust)
    return key, trust


def _raw(kg: pharmakg.KnowledgeGraph, sparql: str) -> None:
    """A write that bypasses pharmakg's audited path."""
    kg.store.update(f"PREFIX pkg: <{PKG}> " + sparql)


def test_every_write_path_extends_one_intact_chain(keys, tmp_path) -> None:
    key, trust = keys
    plant = pharmakg.open(tmp_path / "dev")
    build_demo(plant, batches=40, seed=2, out_dir=tmp_path / "plant")  # enough history to fit a twin
    plant.correct("P-DRY-TIN", "norLow", 58.0, reason="CC-142: NOR narrowed after PPQ")
    from pharmakg.twins import demo_twin, fit_twin

    twin = plant.twins.attach("MR-GRAN-UP3-OP1-PH2", fit_twin(plant, demo_twin("drying")), id="TW-DRY", reason="fit")
    plant.twins.set_status(twin, "validated", reason="VR-1", key=str(key), signer="Q. A. Lead")
    site = pharmakg.open(tmp_path / "site")
    site.load(receiving_site_bundle(tmp_path / "site-bundle"), reason="site equipment")
    pkg = transfer.export_package(plant, "MAT-TAB", tmp_path / "p.zip", key=key, signer="Q. A. Lead", history=3)
    transfer.import_package(site, pkg.path, trust=trust, reason="CC-200 transfer")
    for kg in (plant, site):
        report = kg.verify_audit(trust=trust)
        assert report.ok, str(report)
        log = kg.audit_log()
        assert list(log["number"]) == list(range(1, len(log) + 1))
        # every data write is followed by what it changed or the graphs' new states
        for i, row in log.iterrows():
            if row["action"] in ("load", "update", "import"):
                assert log.loc[i + 1, "action"] in ("checkpoint", "effect") and log.loc[i + 1, "about"] == row["number"]
    assert plant.verify_audit(trust=trust).signatures == 1
    actions = set(plant.audit_log()["action"])
    assert {"load", "update", "effect", "checkpoint", "sign"} <= actions
    assert "import" in set(site.audit_log()["action"])


def test_a_correction_keeps_the_earlier_value_and_its_signature(plant, keys) -> None:
    key, _ = keys
    rec = plant.correct("P-DRY-TIN", "norLow", 58.0, reason="CC-142: NOR narrowed after PPQ")
    plant.sign(rec.number, key=key, signer="Q. A. Lead", meaning="approved")
    plant.correct("P-DRY-TIN", "norLow", 58.5, reason="CC-150: typo in CC-142")
    life = plant.history("P-DRY-TIN")
    assert list(life["action"]) == ["load", "update", "update"]
    assert list(life["change"])[1:] == ["norLow: 57 -> 58", "norLow: 58 -> 58.5"]
    assert list(life["reason"])[1:] == ["CC-142: NOR narrowed after PPQ", "CC-150: typo in CC-142"]
    assert "approved by Q. A. Lead" in life["signatures"].iloc[1] and life["signatures"].iloc[2] == ""
    value = plant.query("SELECT ?v WHERE { ?p dcterms:identifier 'P-DRY-TIN' ; pkg:norLow ?v }")["v"].tolist()
    assert value == [58.5]


def test_an_edited_record_is_caught(plant) -> None:
    plant.correct("P-DRY-TIN", "norLow", 58.0, reason="CC-142")
    _raw(
        plant,
        f"DELETE {{ GRAPH {AG} {{ ?r pkg:reason 'CC-142' }} }} INSERT {{ GRAPH {AG} {{ ?r pkg:reason 'routine' }} }} WHERE {{ GRAPH {AG} {{ ?r pkg:reason 'CC-142' }} }}",
    )
    report = plant.verify_audit()
    assert not report.ok and any("reason reads 'routine' but was recorded as 'CC-142'" in p for _, p in report.problems)


def test_a_rewritten_record_breaks_the_chain_after_it(plant) -> None:
    plant.correct("P-DRY-TIN", "norLow", 58.0, reason="CC-142")
    plant.correct("P-DRY-TIN", "norLow", 59.0, reason="CC-143")
    log = plant.audit_log()
    n = int(log[log["reason"] == "CC-142"]["number"].iloc[0])
    # an attacker rewrites record n consistently: new reason, content and hash
    row = audit._select(
        plant.store, f"SELECT ?c WHERE {{ GRAPH {AG} {{ ?r <{PKG}recordNumber> {n} ; <{PKG}recordContent> ?c }} }}"
    )[0]
    forged = row["c"].replace('"reason":"CC-142"', '"reason":"routine"')
    import hashlib

    h = hashlib.sha256(forged.encode()).hexdigest()
    _raw(
        plant,
        f"""DELETE {{ GRAPH {AG} {{ ?r pkg:reason ?a ; pkg:recordContent ?b ; pkg:recordHash ?c }} }}
INSERT {{ GRAPH {AG} {{ ?r pkg:reason "routine" ; pkg:recordContent {audit._lit(forged)} ; pkg:recordHash "{h}" }} }}
WHERE {{ GRAPH {AG} {{ ?r pkg:recordNumber {n} ; pkg:reason ?a ; pkg:recordContent ?b ; pkg:recordHash ?c }} }}""",
    )
    report = plant.verify_audit()
    assert [p for _, p in report.problems] == [
        "does not follow the record before it (reordered, or one before it was changed)"
    ]
    assert report.problems[0][0] == f"{n + 1:09d}"


def test_deleted_and_reordered_records_are_caught(plant) -> None:
    plant.correct("P-DRY-TIN", "norLow", 58.0, reason="CC-142")
    plant.correct("P-DRY-TIN", "norLow", 59.0, reason="CC-143")
    _raw(plant, f"DELETE {{ GRAPH {AG} {{ ?r ?p ?o }} }} WHERE {{ GRAPH {AG} {{ ?r pkg:recordNumber 3 ; ?p ?o }} }}")
    problems = [p for _, p in plant.verify_audit().problems]
    assert "records 3..3 are missing (deleted)" in problems


def test_swapped_records_are_caught(plant) -> None:
    plant.correct("P-DRY-TIN", "norLow", 58.0, reason="CC-142")
    plant.correct("P-DRY-TIN", "norLow", 59.0, reason="CC-143")
    _raw(
        plant,
        f"""DELETE {{ GRAPH {AG} {{ ?a pkg:recordNumber 3 . ?b pkg:recordNumber 5 }} }}
INSERT {{ GRAPH {AG} {{ ?a pkg:recordNumber 5 . ?b pkg:recordNumber 3 }} }}
WHERE {{ GRAPH {AG} {{ ?a pkg:recordNumber 3 . ?b pkg:recordNumber 5 }} }}""",
    )
    problems = [p for _, p in plant.verify_audit().problems]
    assert any("numbered 3 but recorded as 5" in p for p in problems)
    assert any("does not follow the record before it" in p for p in problems)


def test_data_changed_outside_the_audited_path_is_caught(plant) -> None:
    graph = plant.audit_log()["target"].iloc[0]
    assert plant.verify_audit().ok
    _raw(
        plant,
        f"DELETE {{ GRAPH <{graph}> {{ ?p pkg:norLow ?o }} }} INSERT {{ GRAPH <{graph}> {{ ?p pkg:norLow 10.0e0 }} }} WHERE {{ GRAPH <{graph}> {{ ?p pkg:norLow ?o ; <http://purl.org/dc/terms/identifier> 'P-DRY-TIN' }} }}",
    )
    problems = plant.verify_audit().problems
    assert [(g, p.split(":")[0]) for g, p in problems] == [(graph, "changed outside the audited path after record 2")]
    _raw(plant, "INSERT DATA { GRAPH <urn:smuggled> { <urn:a> <urn:b> 'c' } }")
    assert (
        "urn:smuggled",
        "holds data written outside the audited path (no checkpoint ever)",
    ) in plant.verify_audit().problems


def test_a_signature_cannot_move_with_an_edited_record_and_must_be_trusted(plant, keys, tmp_path) -> None:
    key, trust = keys
    rec = plant.correct("P-DRY-TIN", "norLow", 58.0, reason="CC-142")
    plant.sign(rec.number, key=key, signer="Q. A. Lead", meaning="approved")
    assert plant.verify_audit(trust=trust).ok
    other = tmp_path / "other-trust"
    other.mkdir()
    _, pub = transfer.generate_keypair(tmp_path / "someone.pem")
    shutil.copy(pub, other)
    assert any("not trusted" in p for _, p in plant.verify_audit(trust=other).problems)
    _raw(
        plant,
        f"DELETE {{ GRAPH {AG} {{ ?r pkg:recordHash ?h }} }} INSERT {{ GRAPH {AG} {{ ?r pkg:recordHash 'f00' }} }} WHERE {{ GRAPH {AG} {{ ?r pkg:recordNumber {rec.number} ; pkg:recordHash ?h }} }}",
    )
    assert any("signs a record whose hash is no longer" in p for _, p in plant.verify_audit().problems)


def test_the_chain_holds_on_every_backend(kg, tmp_path) -> None:
    kg.load(receiving_site_bundle(tmp_path / "site"), reason="site equipment")
    kg.update("INSERT DATA { GRAPH <urn:notes> { <urn:n1> <urn:says> 'hello' } }", reason="a note")
    kg.correct("L-DRY-01", "capacity", 1250.0, reason="re-rated after the 2026 overhaul")
    report = kg.verify_audit()
    assert report.ok and report.records == 6, str(report)
    assert kg.history("L-DRY-01")["change"].iloc[-1] == "capacity: 1200 -> 1250"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pharmakg", *args], capture_output=True, text=True)


def test_cli_log_verify_sign_checkpoint(tmp_path, keys) -> None:
    key, trust = keys
    store = str(tmp_path / "cli-store")
    assert (
        _cli("--store", store, "load", str(receiving_site_bundle(tmp_path / "site")), "--reason", "site").returncode
        == 0
    )
    up = _cli("--store", store, "update", "INSERT DATA { GRAPH <urn:n> { <urn:a> <urn:b> 'c' } }", "--reason", "note")
    assert up.returncode == 0, up.stderr
    signed = _cli(
        "--store", store, "audit", "sign", "3", "--key", str(key), "--signer", "Q. A. Lead", "--meaning", "reviewed"
    )
    assert signed.returncode == 0 and "record 3 signed" in signed.stdout, signed.stderr
    assert _cli("--store", store, "audit", "checkpoint").returncode == 0
    log = _cli("--store", store, "audit", "log", "--format", "json")
    assert log.returncode == 0 and '"action":"sign"' in log.stdout.replace(" ", "")
    life = _cli("--store", store, "audit", "log", "L-DRY-01")
    assert life.returncode == 0 and "load" in life.stdout
    ok = _cli("--store", store, "audit", "verify", "--trust", str(trust))
    assert ok.returncode == 0 and "intact" in ok.stdout
    kg = pharmakg.open(store)
    kg.store.update("INSERT DATA { GRAPH <urn:n> { <urn:x> <urn:y> 'z' } }")
    kg.close()
    bad = _cli("--store", store, "audit", "verify")
    assert bad.returncode != 0 and "changed outside the audited path" in bad.stdout


def test_a_signed_twin_validation_shows_on_its_card(keys, tmp_path) -> None:
    from pharmakg.twins import card_text, demo_twin, fit_twin

    key, _ = keys
    kg = pharmakg.open(tmp_path / "dev")
    build_demo(kg, batches=40, seed=2, out_dir=tmp_path / "plant")
    twin = kg.twins.attach("MR-GRAN-UP3-OP1-PH2", fit_twin(kg, demo_twin("drying")), id="TW-DRY", reason="fit")
    assert kg.twins.load("TW-DRY").meta.signatures == ()
    kg.twins.set_status(twin, "validated", reason="VR-1", key=str(key), signer="Q. A. Lead")
    loaded = kg.twins.load("TW-DRY")
    assert len(loaded.meta.signatures) == 1 and loaded.meta.signatures[0].startswith("approved by Q. A. Lead at ")
    assert "e-signed: approved by Q. A. Lead" in card_text(loaded)


# -- updates that name their subjects read only those -------------------------------------------
def _effects(kg: pharmakg.KnowledgeGraph) -> list[dict]:
    """The effect records, oldest first, without what differs between two runs (times, hashes, numbers)."""
    import json

    rows = kg.rows(
        f"SELECT ?n ?c WHERE {{ GRAPH {AG} {{ ?r <{PKG}recordNumber> ?n ; <{PKG}recordContent> ?c ; "
        f'<{PKG}action> "effect" }} }}'
    )
    out = []
    for r in sorted(rows, key=lambda r: int(r["n"])):
        c = json.loads(r["c"])
        effect = {k: c[k] for k in ("added_nt", "removed_nt", "triples_added", "triples_removed")}
        # the graphs it changed (reading graphs whole also restates those an update might have touched)
        effect["graphs"] = [g for g in c["graphs"] if g["added"] or g["removed"]]
        out.append(effect)
    return out


def _edits(kg: pharmakg.KnowledgeGraph) -> list[str]:
    lot = kg.rows("SELECT ?l WHERE { ?l a pkg:MaterialLot ; pkg:supplier ?s } ORDER BY ?l LIMIT 1")[0]["l"]
    dev = kg.rows("SELECT ?d ?g WHERE { GRAPH ?g { ?d a pkg:Deviation } } ORDER BY ?d LIMIT 1")[0]
    g, new = f"<{dev['g']}>", f"<{kg.base}graph/notes>"
    return [
        f'INSERT DATA {{ GRAPH {g} {{ <{dev["d"]}> pkg:rootCause "seal worn"@en ; pkg:score 1e6 }} }}',
        f"DELETE {{ GRAPH {g} {{ <{dev['d']}> pkg:rootCause ?old }} }} INSERT {{ GRAPH {g} {{ <{dev['d']}> "
        f'pkg:rootCause "seal worn, confirmed" }} }} WHERE {{ GRAPH {g} {{ <{dev["d"]}> pkg:rootCause ?old }} }}',
        f"DELETE WHERE {{ GRAPH ?g {{ <{lot}> pkg:supplier ?s }} }}",
        f'INSERT DATA {{ GRAPH {new} {{ <{lot}> rdfs:comment "a note in a new graph" }} }}',
        f"DELETE DATA {{ GRAPH {g} {{ <{dev['d']}> pkg:score 1000000.0 }} }} ; "
        f'INSERT DATA {{ GRAPH {new} {{ <{dev["d"]}> rdfs:comment "moved" }} }}',
    ]


def test_an_update_naming_its_subjects_reads_only_them_and_records_the_same_effect(tmp_path, monkeypatch) -> None:
    """The effect records (triples added and removed, each graph's new count and digest) equal those of
    reading every touched graph whole, and the trail verifies."""
    stores = []
    for name in ("scoped", "whole"):
        kg = pharmakg.open(tmp_path / name)
        build_demo(kg, batches=12, seed=2, out_dir=tmp_path / name / "plant")  # the same graph names
        stores.append(kg)
    scoped, whole = stores
    reads: list[str] = []
    real_lines = audit.graph_lines
    monkeypatch.setattr(audit, "graph_lines", lambda store, g: reads.append(g) or real_lines(store, g))
    for sparql in _edits(scoped):
        scoped.update(sparql, reason="test")
    assert reads == []  # no graph was read whole
    monkeypatch.setattr(audit, "update_scope", lambda sparql: None)
    for sparql in _edits(whole):
        whole.update(sparql, reason="test")
    assert reads  # the other path did read them
    assert _effects(scoped) == _effects(whole)
    assert [e["triples_added"] for e in _effects(scoped)] == [2, 1, 0, 1, 1]
    monkeypatch.undo()
    assert scoped.verify_audit().ok, scoped.verify_audit()
    for kg in stores:
        kg.close()


def test_a_change_outside_the_audited_path_still_shows_after_a_scoped_update(plant) -> None:
    """The scoped path moves the recorded state by the update's own change, so an earlier change made
    behind the trail's back is not folded into the new checkpoint."""
    lot, graph = (lambda r: (r["l"], r["g"]))(
        plant.rows("SELECT ?l ?g WHERE { GRAPH ?g { ?l a pkg:MaterialLot } } ORDER BY ?l LIMIT 1")[0]
    )
    _raw(
        plant,
        f'INSERT DATA {{ GRAPH <{graph}> {{ <{lot}> <http://www.w3.org/2000/01/rdf-schema#comment> "behind the trail" }} }}',
    )
    plant.update(f'INSERT DATA {{ GRAPH <{graph}> {{ <{lot}> rdfs:comment "through the trail" }} }}', reason="test")
    report = plant.verify_audit()
    assert not report.ok and any(g == graph and "outside the audited path" in why for g, why in report.problems)


@pytest.mark.parametrize(
    "sparql,scope",
    [
        ("INSERT DATA { GRAPH <http://g> { <http://s> <http://p> 1 } }", (("http://g", "http://s", "http://p"),)),
        ("DELETE WHERE { GRAPH ?g { <http://s> ?p ?o } }", ((None, "http://s", None),)),
        (
            "WITH <http://g> DELETE { <http://s> <http://p> ?o } WHERE { <http://s> <http://p> ?o }",
            (("http://g", "http://s", "http://p"),),
        ),
        ("DELETE { GRAPH <http://g> { ?s <http://p> ?o } } WHERE { GRAPH <http://g> { ?s <http://p> ?o } }", None),
        ("INSERT DATA { <http://s> <http://p> 1 }", None),  # the default graph
        ("INSERT DATA { GRAPH <http://g> { _:b <http://p> 1 } }", None),
        ("CLEAR GRAPH <http://g>", None),
        ("LOAD <http://example.org/x.ttl> INTO GRAPH <http://g>", None),
        ("not sparql", None),
        # IRIs rdflib reads otherwise than the store: left to the path that reads graphs whole
        ("PREFIX e: <http://x/> INSERT DATA { GRAPH <http://g> { e:a\\-b <http://p> 1 } }", None),
        ("BASE <urn:x:y> INSERT DATA { GRAPH <http://g> { <s> <http://p> 1 } }", None),
        # a long literal (a JSON snapshot) keeps the scoped path; as many characters of triples do not
        (
            'INSERT DATA { GRAPH <http://g> { <http://s> <http://p> "' + '\\"x\\" ' * 30_000 + '" } }',
            (("http://g", "http://s", "http://p"),),
        ),
        ("INSERT DATA { GRAPH <http://g> { " + "<http://s> <http://p> 1 . " * 1_000 + "} }", None),
        # rdflib expands \uXXXX before parsing, the store only inside strings: here rdflib would see one
        # triple where the store writes two, so the shape is not trusted
        (
            'INSERT DATA { GRAPH <http://g> { <http://s> <http://p> "\\u0022" . <http://t> <http://p> "\\u0022" } }',
            None,
        ),
        # an escaped backslash before "u" is no escape: rdflib's reading is trusted
        (
            'INSERT DATA { GRAPH <http://g> { <http://s> <http://p> "C:\\\\users" } }',
            (("http://g", "http://s", "http://p"),),
        ),
    ],
    ids=lambda v: v[:60] + ("..." if len(v) > 60 else "") if isinstance(v, str) else None,
)
def test_update_scope(sparql: str, scope) -> None:
    assert audit.update_scope(sparql) == scope


@pytest.mark.parametrize(
    "sparql,default",
    [
        # rdflib's reading is not trusted (a \u escape): the lexical one must still see the default graph,
        # and a "graph" inside an IRI or a comment is no GRAPH keyword
        ('INSERT DATA { <urn:x:graph/s> <urn:p> "caf\\u00e9" }', True),
        ('INSERT DATA { <urn:s> <urn:p> "caf\\u00e9" } # into GRAPH <urn:g>', True),
        ('INSERT DATA { GRAPH <urn:g> { <urn:s> <urn:p> "caf\\u00e9" } }', False),
    ],
)
def test_the_lexical_reading_finds_default_graph_writes(sparql: str, default: bool) -> None:
    assert audit.update_shape(sparql) is None
    assert audit.writes_default_graph(sparql) is default


def test_the_lexical_reading_errs_towards_more_graphs(plant) -> None:
    """Updates rdflib is not asked about: a prefixed graph name means every graph; a graph IRI is never missed."""
    data = set(audit.data_graphs(plant.store, plant.base))
    prefixed = 'PREFIX ex: <urn:x:> INSERT DATA { GRAPH ex:g { ex:s ex:p "C:\\u0041" } }'
    assert audit.update_shape(prefixed) is None
    assert set(audit.touched_graphs(plant.store, plant.base, prefixed)) >= data
    # "<'b>" reads as an IRI and the closing quote then opens a string: urn:h must be found all the same
    tricky = (
        "CLEAR SILENT GRAPH <urn:nothing> ; DELETE { GRAPH <urn:g> { ?s <urn:p> ?o } } "
        "WHERE { GRAPH <urn:g> { ?s <urn:p> ?o FILTER(?o<'b>') } } ; "
        "INSERT DATA { GRAPH <urn:h> { <urn:b> <urn:q> 2 } }"
    )
    assert audit.update_shape(tricky) is None
    assert {"urn:g", "urn:h", "urn:nothing"} <= set(audit.touched_graphs(plant.store, plant.base, tricky))


@pytest.mark.parametrize(
    "sparql,code",
    [
        ('<http://x> "a \\" b" . x', '<http://x> "" . x'),
        ("'it\\'s' y", '"" y'),
        ('"""multi\nline "q" """ y', '"" y'),
        ("<http://x/it's> 'v' . # it's\n<http://y>", "<http://x/it's> \"\" . # it's\n<http://y>"),
        ('"open to the end of the line\n<http://y>', '""\n<http://y>'),
        ('"""open to the end', '""'),
        ('GRAPH <http://g> { <http://s> <http://p> "GRAPH ?g" }', 'GRAPH <http://g> { <http://s> <http://p> "" }'),
    ],
)
def test_string_literals_are_emptied_left_to_right(sparql: str, code: str) -> None:
    """Quotes inside IRIs and comments start no string; an unterminated string ends the scan (linear time)."""
    assert audit._code(sparql) == code


def test_an_update_of_the_default_graph_is_refused_and_changes_nothing(plant) -> None:
    """No record could name what it changed there (every triple lives in the named graph of its source)."""
    before = plant.store.dump(format="nq")
    for sparql in ("INSERT DATA { <urn:a> <urn:b> <urn:c> }", "DELETE WHERE { ?s pkg:consumed ?o }"):
        with pytest.raises(pharmakg.QueryError, match="default graph"):
            plant.update(sparql, reason="test")
    assert plant.store.dump(format="nq") == before


def test_a_graph_named_by_a_prefixed_name_is_read_for_the_effect(plant) -> None:
    graph = plant.rows("SELECT ?g WHERE { GRAPH ?g { ?b pkg:consumed ?l } } LIMIT 1")[0]["g"]
    ns, local = graph.rsplit("/", 1)
    removed = plant.update(
        f"PREFIX gg: <{ns}/> DELETE {{ GRAPH gg:{local} {{ ?b pkg:consumed ?l }} }} "
        f"WHERE {{ GRAPH gg:{local} {{ ?b pkg:consumed ?l }} }}",
        reason="test",
    ).triples_removed
    assert removed > 0
    assert plant.verify_audit().ok
