"""Root-cause plant tables brought forward across writes equal a full read of the store.

``facts(kg)`` keeps the tables per state of the audit trail and, after a write,
re-reads only the rows of what the write touched (``rootcause._keep``). Every
test here compares the tables so obtained with a full read of the same store,
and makes the full read fail where the tables must be brought forward instead.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rdflib import Variable
from rdflib.paths import Path as RdfPath
from rdflib.plugins.sparql import algebra, parser

import pharmakg
from pharmakg import terms as T
from pharmakg.demo import generate_bundle, split_bundle
from pharmakg.kg import PREFIXES
from pharmakg.rootcause import _facts, _keep, facts, investigate
from pharmakg.rootcause._facts import _TABLES, _Facts
from pharmakg.rootcause._keep import finish_keeping


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in a fixed order (a table brought forward lists the rows it re-read last)."""
    text = frame.astype(str)
    return text.sort_values(list(text.columns), kind="stable").reset_index(drop=True)


def assert_same_facts(got: _Facts, want: _Facts) -> None:
    assert got.ids == want.ids
    assert got.labels == want.labels
    for name in _TABLES:
        a, b = getattr(got, name), getattr(want, name)
        assert list(a.columns) == list(b.columns), name
        assert {c: str(t) for c, t in a.dtypes.items()} == {c: str(t) for c, t in b.dtypes.items()}, name
        pd.testing.assert_frame_equal(_canonical(a), _canonical(b), obj=name)


def _lookups(f: _Facts) -> dict[str, object]:
    """Every lookup ``_Facts`` builds, in a form that compares by value (building them all)."""
    out: dict[str, object] = {}
    for name in _facts._LOOKUP_TABLES:
        value = getattr(f, name)
        if isinstance(value, _facts._Lookup):
            keys = sorted(value._groups._code)
            value = {k: sorted(map(str, value.get(k))) for k in keys}
        elif isinstance(value, _facts._Groups):
            value = {k: len(value.rows(k)) for k in sorted(value._code)}
        elif isinstance(value, pd.DataFrame | pd.Series):
            value = _canonical(value.reset_index())
            value = value.to_dict("list")
        elif isinstance(value, dict):
            value = {str(k): str(sorted(v)) if isinstance(v, set) else str(v) for k, v in value.items()}
        elif isinstance(value, frozenset):
            value = sorted(value)
        out[name] = value
    return out


def test_every_lookup_names_the_tables_it_rests_on() -> None:
    built = {n for n, v in vars(_Facts).items() if isinstance(v, functools.cached_property)}
    assert built == set(_facts._LOOKUP_TABLES)
    assert all(t <= set(_keep._QUERIES) for t in _facts._LOOKUP_TABLES.values())


@pytest.fixture
def no_full_read(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Call it to make ``facts`` fail from then on if it reads the whole plant (``full`` still can)."""

    def refuse(kg: pharmakg.KnowledgeGraph) -> _Facts:
        raise AssertionError("facts() read the whole plant instead of bringing its tables forward")

    yield lambda: monkeypatch.setattr(_keep, "_read", refuse)


def full(kg: pharmakg.KnowledgeGraph) -> _Facts:
    """The tables read from the whole store."""
    return _facts._read(kg)


@pytest.fixture
def plant(tmp_path: Path) -> Iterator[tuple[pharmakg.KnowledgeGraph, Path]]:
    store = tmp_path / "store"
    kg = pharmakg.open(store)
    bundle = generate_bundle(tmp_path / "plant", batches=60, seed=3).bundle
    parts = split_bundle(bundle, tmp_path / "parts", 3)
    for part in parts[:2]:
        kg.load(part, reason="first increments")
    yield kg, parts[2]
    kg.close()


def _one(kg: pharmakg.KnowledgeGraph, sparql: str) -> dict[str, str]:
    rows = kg.rows(sparql)
    assert rows, sparql
    return rows[0]


def test_updates_of_every_kind_are_brought_forward_exactly(plant, no_full_read, monkeypatch) -> None:
    kg, _ = plant
    monkeypatch.setattr(_keep, "_CHUNK", 1)  # every key in a query of its own
    facts(kg)
    no_full_read()
    pv = _one(kg, "SELECT ?v ?b WHERE { ?v a pkg:ParameterValue ; pkg:batch ?b ; pkg:value ?x } LIMIT 1")
    other = _one(kg, f"SELECT ?b WHERE {{ ?b a pkg:Batch FILTER(?b != <{pv['b']}>) }} LIMIT 1")["b"]
    lot = _one(kg, "SELECT ?l WHERE { ?l a pkg:MaterialLot ; pkg:supplier ?s } LIMIT 1")["l"]
    dev = _one(kg, "SELECT ?d WHERE { ?d a pkg:Deviation } LIMIT 1")["d"]
    param = _one(kg, "SELECT ?p WHERE { ?p a pkg:ProcessParameter ; pkg:norHigh ?h } LIMIT 1")["p"]
    supplier = _one(kg, "SELECT ?s WHERE { ?s a pkg:Supplier ; rdfs:label ?l } LIMIT 1")["s"]
    g = f"<{kg.base}graph/test>"
    writes = [
        # touches no table: kept as is
        f'INSERT DATA {{ GRAPH {g} {{ <{dev}> pkg:rootCause "operator error" }} }}',
        # a value, and a parameter actual moved to another batch (its key changes)
        f"DELETE {{ GRAPH ?g {{ <{pv['v']}> pkg:value ?x }} }} INSERT {{ GRAPH {g} {{ <{pv['v']}> pkg:value 99.5 }} }} "
        f"WHERE {{ GRAPH ?g {{ <{pv['v']}> pkg:value ?x }} }}",
        f"DELETE {{ GRAPH ?g {{ <{pv['v']}> pkg:batch ?b }} }} INSERT {{ GRAPH {g} {{ <{pv['v']}> pkg:batch <{other}> }} }} "
        f"WHERE {{ GRAPH ?g {{ <{pv['v']}> pkg:batch ?b }} }}",
        # an optional column emptied, a small table changed, a node's type removed, a new node
        f"DELETE WHERE {{ GRAPH ?g {{ <{lot}> pkg:supplier ?s }} }}",
        f"DELETE {{ GRAPH ?g {{ <{param}> pkg:norHigh ?h }} }} INSERT {{ GRAPH {g} {{ <{param}> pkg:norHigh 1e6 }} }} "
        f"WHERE {{ GRAPH ?g {{ <{param}> pkg:norHigh ?h }} }}",
        f"DELETE WHERE {{ GRAPH ?g {{ <{dev}> a pkg:Deviation }} }}",
        # a supplier's business id changes, its name does not (it is shown by name)
        f"DELETE {{ GRAPH ?g {{ <{supplier}> dcterms:identifier ?i }} }} INSERT {{ GRAPH {g} {{ <{supplier}> "
        f'dcterms:identifier "SUP-001" }} }} WHERE {{ GRAPH ?g {{ <{supplier}> dcterms:identifier ?i }} }}',
        # a name holding characters str.splitlines() would split on (the effect's lines are data)
        f"DELETE {{ GRAPH ?g {{ <{supplier}> rdfs:label ?l }} }} INSERT {{ GRAPH {g} {{ <{supplier}> "
        f'rdfs:label "Acme\u2028Basel\x85\x1c" }} }} WHERE {{ GRAPH ?g {{ <{supplier}> rdfs:label ?l }} }}',
        # a parameter actual whose batch is written as a literal (no SHACL on updates), then edited
        f'INSERT DATA {{ GRAPH {g} {{ <{kg.base}pv/odd> a pkg:ParameterValue ; pkg:batch "B-0001" ; '
        f"pkg:parameter <{param}> ; pkg:value 1 }} }}",
        f"DELETE {{ GRAPH ?g {{ <{kg.base}pv/odd> pkg:value ?x }} }} INSERT {{ GRAPH {g} {{ <{kg.base}pv/odd> "
        f"pkg:value 2 }} }} WHERE {{ GRAPH ?g {{ <{kg.base}pv/odd> pkg:value ?x }} }}",
        f'INSERT DATA {{ GRAPH {g} {{ <{kg.base}batch/NEW-1> a pkg:Batch ; dcterms:identifier "NEW-1" ; '
        f'pkg:startTime "2031-01-02T03:04:05Z"^^xsd:dateTime ; pkg:consumed <{lot}> }} }}',
    ]
    before = facts(kg)
    finish_keeping()
    inode = (_keep._disk_folder(kg) / "pvalues.parquet").stat().st_ino
    kg.update(writes[0], reason="test")  # touches no table: the same tables, lookups and files
    assert facts(kg) is before
    finish_keeping()
    assert (_keep._disk_folder(kg) / "pvalues.parquet").stat().st_ino == inode  # linked, not rewritten
    _lookups(before)
    for sparql in writes[1:]:
        kg.update(sparql, reason="test")
        forward = facts(kg)
        assert_same_facts(forward, full(kg))
        # lookups carried over from the tables before the write (those on unchanged tables) are right too
        assert _lookups(forward) == _lookups(full(kg))


def test_a_loaded_increment_is_brought_forward_exactly(plant, no_full_read) -> None:
    kg, last = plant
    before = facts(kg)
    no_full_read()
    kg.load(last, reason="the next increment")
    after = facts(kg)
    assert len(after.batches) > len(before.batches)
    assert_same_facts(after, full(kg))


def test_random_deletions_are_brought_forward_exactly(plant, no_full_read) -> None:
    """Triples of every predicate, drawn at random, deleted a few at a time."""
    kg, _ = plant
    facts(kg)
    no_full_read()
    lines = [line for line in kg.domain_nquads().decode().splitlines() if line and "_:" not in line]
    rng = np.random.default_rng(7)
    for _ in range(4):
        drawn = [lines[i] for i in rng.choice(len(lines), size=12, replace=False)]
        kg.update(_delete_everywhere(drawn), reason="test")
        assert_same_facts(facts(kg), full(kg))


def _delete_everywhere(triples: list[str]) -> str:
    """DELETE of N-Triples lines from whichever graph holds them."""
    parts = [line.rstrip(" .") for line in triples]
    return (
        "DELETE { "
        + " ".join(f"GRAPH ?g{i} {{ {t} }}" for i, t in enumerate(parts))
        + " } WHERE { "
        + " ".join(f"OPTIONAL {{ GRAPH ?g{i} {{ {t} }} }}" for i, t in enumerate(parts))
        + " }"
    )


def test_a_new_process_brings_the_kept_tables_forward(tmp_path: Path, plant, no_full_read) -> None:
    """A process that never saw the tables reads them from ``<store>/cache`` and brings them forward."""
    kg, _ = plant
    path = kg.store.path
    facts(kg)
    no_full_read()
    kg.update(
        f'INSERT DATA {{ GRAPH <{kg.base}graph/t> {{ <{kg.base}person/x> a pkg:Person ; dcterms:identifier "X" }} }}',
        reason="t",
    )
    finish_keeping()  # the tables are written on a second thread
    kg.close()
    with pharmakg.open(path) as again:  # another knowledge graph: nothing held in this process for it
        got = facts(again)
        assert got.ids[f"{again.base}person/x"] == "X"
        assert_same_facts(got, full(again))
        finish_keeping()
        kept = list((path / "cache").glob("rootcause-facts-*"))
        assert len(kept) == 1 and kept[0] == _keep._disk_folder(again)


def test_a_write_the_trail_cannot_account_for_means_a_full_read(plant, monkeypatch: pytest.MonkeyPatch) -> None:
    kg, _ = plant
    facts(kg)
    monkeypatch.setattr(pharmakg.audit, "INLINE_DELTA_BYTES", 10)  # the effect is not kept inline
    lot = _one(kg, "SELECT ?l WHERE { ?l a pkg:MaterialLot ; pkg:supplier ?s } LIMIT 1")["l"]
    kg.update(f"DELETE WHERE {{ GRAPH ?g {{ <{lot}> pkg:supplier ?s }} }}", reason="test")
    reads: list[int] = []
    real = _keep._read
    monkeypatch.setattr(_keep, "_read", lambda k: reads.append(1) or real(k))
    assert_same_facts(facts(kg), full(kg))
    assert reads == [1]


def test_same_ranking_after_bringing_forward(plant) -> None:
    kg, last = plant
    facts(kg)
    kg.load(last, reason="the next increment")
    dev = sorted(r["id"] for r in kg.rows("SELECT ?id WHERE { ?d a pkg:Deviation ; dcterms:identifier ?id }"))[0]
    forward = [(c.id, round(c.score, 9)) for c in investigate(kg, dev).causes]
    kg.cache.clear()
    _keep._HELD.clear()
    finish_keeping()
    for kept in (kg.store.path / "cache").glob("rootcause-facts-*"):
        import shutil

        shutil.rmtree(kept)
    assert [(c.id, round(c.score, 9)) for c in investigate(kg, dev).causes] == forward


def test_a_remote_store_keeps_its_tables_per_state_and_brings_them_forward(
    oxigraph_url: str, tmp_path: Path, no_full_read
) -> None:
    """A remote store's ``kg.cache`` is a throwaway (other clients write too); the audit state says what holds."""
    from .conftest import _clear

    bundle = generate_bundle(tmp_path / "plant", batches=30, seed=4).bundle
    parts = split_bundle(bundle, tmp_path / "parts", 2)
    _clear(oxigraph_url)
    remote = pharmakg.connect(oxigraph_url + "/query", oxigraph_url + "/update")
    remote.load(parts[0], reason="test")
    first = facts(remote)
    no_full_read()
    assert facts(remote) is first  # nothing written since: the same tables, no query but the state's
    other = pharmakg.connect(oxigraph_url + "/query", oxigraph_url + "/update")  # another client writes
    other.load(parts[1], reason="test")
    assert_same_facts(facts(remote), full(remote))


# -- the queries are what bringing forward assumes ---------------------------------------------
def _patterns(sparql: str) -> list[tuple[object, object, object]]:
    tree = algebra.translateQuery(parser.parseQuery(PREFIXES + sparql)).algebra
    found: list[tuple[object, object, object]] = []

    def visit(node: object) -> None:
        if isinstance(node, dict):
            if node.get("triples") is not None and getattr(node, "name", "") == "BGP":
                found.extend(node["triples"])
            for value in node.values():
                visit(value)
        elif isinstance(node, list | tuple):
            for value in node:
                visit(value)

    visit(tree)
    return found


@pytest.mark.parametrize("name", sorted(_keep._QUERIES))
def test_no_query_has_a_variable_predicate_and_keyed_ones_are_stars(name: str) -> None:
    """A triple can change a table only through the predicates and classes its query names (``_mentioned``),
    and a keyed table's rows for a key depend on triples about one node only."""
    sparql = _keep._QUERIES[name]
    patterns = _patterns(sparql)
    assert patterns
    for _, p, _ in patterns:
        assert not isinstance(p, Variable), f"{name}: variable predicate"
        assert not isinstance(p, RdfPath) or name not in _keep._KEYS, f"{name}: a path in a keyed table"
    if name in _keep._KEYS:
        column, link = _keep._KEYS[name]
        subjects = {s for s, _, _ in patterns}
        assert len(subjects) == 1, f"{name}: not a star: {subjects}"
        if name in _keep._CLASSES:  # the classes a load is filtered by are those the query requires
            typed = {o for s, p, o in patterns if str(p) == str(T.type_) and s in subjects}
            assert typed and all(isinstance(o, Variable) or str(o) in _keep._CLASSES[name] for o in typed), name
            assert all(f"<{c}>" in _keep._mentioned(sparql) for c in _keep._CLASSES[name]), name
        if link is None:
            assert subjects == {Variable(column)}
        else:
            assert any(str(p) == link and o == Variable(column) for _, p, o in patterns), f"{name}: key not by its link"


def test_mentioned_names_predicates_and_classes() -> None:
    names = _keep._mentioned(_TABLES["pvalues"][0])
    assert f"<{T.PKG}ParameterValue>" in names and f"<{T.batch}>" in names and f"<{T.value}>" in names
