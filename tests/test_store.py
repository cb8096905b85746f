"""The graph operations every backend must support, run on memory, disk and remote stores."""

from __future__ import annotations

import time

import pandas as pd
import pytest

import pharmakg
from pharmakg import terms as T

from .conftest import MINI


def test_empty_store_has_no_quads(kg: pharmakg.KnowledgeGraph) -> None:
    assert len(kg) == 0
    assert kg.query("SELECT ?s WHERE { ?s ?p ?o }").empty


def test_load_query_typed_columns(kg: pharmakg.KnowledgeGraph) -> None:
    (report,) = kg.load(MINI, reason="test")
    assert report.triples_added > 300
    frame = kg.query(
        "SELECT ?b ?start ?v WHERE { ?x a pkg:Batch ; dcterms:identifier ?b ; pkg:startTime ?start . "
        "?pv pkg:batch ?x ; pkg:parameter/dcterms:identifier 'P-FORCE' ; pkg:value ?v } ORDER BY ?b"
    )
    assert frame["b"].tolist() == ["B-001"]
    assert pd.api.types.is_float_dtype(frame["v"])
    assert frame["v"].iloc[0] == pytest.approx(12.5)
    assert isinstance(frame["start"].dtype, pd.DatetimeTZDtype)
    assert frame["start"].iloc[0] == pd.Timestamp("2025-02-01T05:00:00Z")


def test_default_graph_is_union_of_named_graphs(kg: pharmakg.KnowledgeGraph) -> None:
    kg.load(MINI, reason="test")
    graphs = kg.query("SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }")["g"].tolist()
    assert f"{kg.base}graph/mini" in graphs
    assert f"{kg.base}graph/audit" in graphs
    assert f"{kg.base}graph/provenance" in graphs
    assert kg.ask("ASK { ?lot a pkg:MaterialLot }")


def test_construct_returns_rdflib_graph(kg: pharmakg.KnowledgeGraph) -> None:
    kg.load(MINI, reason="test")
    g = kg.construct("CONSTRUCT { ?l pkg:material ?m } WHERE { ?l a pkg:MaterialLot ; pkg:material ?m }")
    assert len(g) == 4


def test_update_is_audited(kg: pharmakg.KnowledgeGraph) -> None:
    kg.load(MINI, reason="test")
    kg.update(
        f"INSERT DATA {{ GRAPH <{kg.base}graph/notes> {{ <{kg.base}lot/L-API-1> rdfs:comment 'checked' }} }}",
        reason="QA note",
    )
    assert kg.ask("ASK { ?l rdfs:comment 'checked' }")
    reasons = kg.query("SELECT ?r WHERE { ?a a pkg:AuditRecord ; pkg:action 'update' ; pkg:reason ?r }")["r"].tolist()
    assert reasons == ["QA note"]
    with pytest.raises(ValueError, match="reason"):
        kg.update("INSERT DATA { <urn:a> <urn:b> <urn:c> }", reason=" ")


def test_load_rdf_formats(kg: pharmakg.KnowledgeGraph, tmp_path) -> None:
    ttl = tmp_path / "extra.ttl"
    ttl.write_text("@prefix ex: <http://example.org/> .\nex:a ex:p ex:b ; ex:q [ ex:r 1 ] .\n")
    nq = tmp_path / "extra.nq"
    nq.write_text('<http://example.org/c> <http://example.org/p> "x" <http://example.org/g1> .\n')
    jsonld = tmp_path / "extra.jsonld"
    jsonld.write_text('{"@id": "http://example.org/d", "http://example.org/p": "y"}')
    rdfxml = tmp_path / "extra.rdf"
    rdfxml.write_text(
        '<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns:ex="http://example.org/"><rdf:Description rdf:about="http://example.org/e"><ex:p>z</ex:p>'
        "</rdf:Description></rdf:RDF>"
    )
    kg.load(ttl, nq, jsonld, rdfxml, reason="test")
    assert kg.ask(f"ASK {{ GRAPH <{kg.base}graph/extra.ttl> {{ <http://example.org/a> ?p ?o }} }}")
    assert kg.ask("ASK { GRAPH <http://example.org/g1> { <http://example.org/c> ?p ?o } }")
    assert kg.ask("ASK { <http://example.org/d> ?p 'y' }")
    assert kg.ask("ASK { <http://example.org/e> ?p 'z' }")
    before = kg.domain_nquads()
    kg.load(ttl, reason="again")  # blank nodes are skolemised deterministically: a no-op
    assert kg.domain_nquads() == before


def test_export_formats(kg: pharmakg.KnowledgeGraph) -> None:
    kg.load(MINI, reason="test")
    nq = kg.export(format="nq")
    assert b"<https://example.org/pharmakg/graph/mini>" in nq
    ttl = kg.export(format="ttl", graph=f"{kg.base}graph/mini")
    assert b"MaterialLot" in ttl
    with pytest.raises(ValueError):
        kg.export(format="ttl")


def test_info_counts_classes(kg: pharmakg.KnowledgeGraph) -> None:
    kg.load(MINI, reason="test")
    info = kg.info()
    counts = dict(zip(info.classes["class"], info.classes["instances"], strict=True))
    assert counts["Batch"] == 2
    assert counts["MaterialLot"] == 4  # three from lots.csv, one produced
    assert info.quads > 0


def test_query_error_carries_position(kg: pharmakg.KnowledgeGraph) -> None:
    with pytest.raises(pharmakg.QueryError) as err:
        kg.query("SELECT ?x\nWHERE { ?x ?y }")
    assert err.value.line == 2
    assert err.value.column is not None
    assert "line 2" in str(err.value)


def test_resolve_business_id(kg: pharmakg.KnowledgeGraph) -> None:
    kg.load(MINI, reason="test")
    assert kg.resolve("B-001") == f"{kg.base}batch/B-001"
    with pytest.raises(KeyError):
        kg.resolve("NOPE")


def test_terms_match_ontology() -> None:
    import pyoxigraph as ox

    from pharmakg.validate import ONTOLOGY_PATH

    store = ox.Store()
    store.load(path=str(ONTOLOGY_PATH), format=ox.RdfFormat.TURTLE)
    declared = {str(q.subject.value) for q in store.quads_for_pattern(None, ox.NamedNode(T.RDFS + "label"), None)}
    declared |= {str(q.subject.value) for q in store.quads_for_pattern(None, ox.NamedNode(T.SKOS + "prefLabel"), None)}
    missing = [t for t in (*T.ALL_TERMS, *T.PROV_TERMS) if t not in declared]
    assert not missing


def test_rows_travel_as_csv_and_keep_awkward_values(kg: pharmakg.KnowledgeGraph) -> None:
    """rows() asks for SPARQL CSV on every backend; quotes, commas, newlines and non-ASCII survive."""
    kg.update(
        'INSERT DATA { GRAPH <urn:g> { <urn:a> rdfs:label "Supplier \\"B\\", Basel\\nline 2 Zürich µm" ; rdfs:comment "x" .'
        ' <urn:b> rdfs:comment "y" } }',
        reason="test",
    )
    raw = kg.store.query("SELECT ?s WHERE { ?s ?p ?o }", select_format="csv")
    assert raw.kind == "csv"
    rows = kg.rows("SELECT ?s ?label WHERE { ?s rdfs:comment ?c OPTIONAL { ?s rdfs:label ?label } } ORDER BY ?s")
    assert rows == [{"s": "urn:a", "label": 'Supplier "B", Basel\nline 2 Zürich µm'}, {"s": "urn:b"}]


COUNT = "SELECT (COUNT(*) AS ?n) WHERE { ?s <urn:p> ?o }"


def _writer_and_reader(tmp_path) -> tuple[pharmakg.KnowledgeGraph, pharmakg.KnowledgeGraph]:
    """A store with one committed triple, open read-write and read-only."""
    writer = pharmakg.open(tmp_path / "store")
    writer.update("INSERT DATA { GRAPH <urn:g> { <urn:a> <urn:p> 1 } }", reason="first")
    reader = pharmakg.open(tmp_path / "store", read_only=True)
    assert reader.query(COUNT)["n"][0] == 1
    return writer, reader


def test_a_read_only_opener_sees_each_commit_of_the_writer(tmp_path) -> None:
    """One writer, read-only readers: a reader's snapshot renews itself when the writer commits."""
    from pharmakg.store.oxigraph import BULK_THRESHOLD_BYTES

    writer, reader = _writer_and_reader(tmp_path)
    revision = reader.store.revision
    assert reader.query(COUNT)["n"][0] == 1 and reader.store.revision == revision  # nothing new: no reopen
    writer.update("INSERT DATA { GRAPH <urn:g> { <urn:b> <urn:p> 2 } }", reason="second")
    assert reader.query(COUNT)["n"][0] == 2 and reader.store.revision != revision
    # a big load switches the live folder; the reader follows it
    big = b"".join(b'<urn:s%d> <urn:p> "%d" <urn:big> .\n' % (i, i) for i in range(BULK_THRESHOLD_BYTES // 30))
    writer.store.add(big)
    assert reader.query(COUNT)["n"][0] == 2 + BULK_THRESHOLD_BYTES // 30
    reader.close()
    writer.close()


def test_a_reopen_that_meets_the_writer_mid_flush_is_tried_again(tmp_path, monkeypatch) -> None:
    """RocksDB can fail to open a snapshot while the writer's compaction moves files: a passing fault."""
    import pyoxigraph as ox

    from pharmakg import errors
    from pharmakg.store import oxigraph

    writer, reader = _writer_and_reader(tmp_path)
    opened = ox.Store.read_only
    faults = iter(  # pyoxigraph raises both kinds, by how RocksDB words it
        [OSError("IO error: No such file or directory: 000123.sst"), RuntimeError("Corruption: IO error: 000124.sst")]
    )

    def flaky(path: str) -> ox.Store:
        fault = next(faults, None)
        if fault is not None:
            raise fault
        return opened(path)

    monkeypatch.setattr(oxigraph.ox.Store, "read_only", staticmethod(flaky))
    writer.update("INSERT DATA { GRAPH <urn:g> { <urn:b> <urn:p> 2 } }", reason="second")
    assert reader.query(COUNT)["n"][0] == 2  # two failed opens, then the third
    faults = iter([OSError("IO error: the disk is gone")] * oxigraph._REOPEN_TRIES)  # more than a moment
    writer.update("INSERT DATA { GRAPH <urn:g> { <urn:c> <urn:p> 3 } }", reason="third")
    with pytest.raises(errors.NotAStoreError, match="the disk is gone"):  # a fault that lasts is still an error
        reader.query(COUNT)
    reader.close()
    writer.close()


# -- a bulk load fed while its N-Triples are produced (ingest maps a bundle into it) --------------


def _lines(count: int, first: int = 0) -> bytes:
    return b"".join(b'<urn:s%d> <urn:p> "%d" .\n' % (i, i) for i in range(first, first + count))


def _fed_store(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    from pharmakg.store import oxigraph

    monkeypatch.setattr(oxigraph, "BULK_THRESHOLD_BYTES", 10_000)
    store = oxigraph.EmbeddedStore(tmp_path / "store")
    store.add(_lines(3, 1_000_000), graph="urn:before", ntriples=_lines(3, 1_000_000))
    return store, store.dump(format="nq")


def _settled(store, feed) -> None:  # type: ignore[no-untyped-def]
    """One data folder left and the feed's pipe gone (both go once the threads end)."""
    deadline = time.monotonic() + 30

    def leftovers() -> list[str]:
        pipe = [feed._pipe._dir] if feed._pipe is not None and feed._pipe._dir.exists() else []
        return [p.name for p in store.path.iterdir() if p.name.startswith("data-")][1:] + [str(p) for p in pipe]

    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not leftovers()


def test_a_fed_bulk_load_starts_before_the_last_chunk_and_goes_in_whole(tmp_path, monkeypatch) -> None:
    store, _ = _fed_store(tmp_path, monkeypatch)
    feed = store.feed_add("urn:g")
    chunks = [_lines(200, 200 * i) for i in range(8)]  # ~6 KB each
    feed.write(chunks[0])
    assert store._prepared.loaded is None  # below the threshold: no copy yet (a small add needs none)
    feed.write(memoryview(chunks[1]))
    assert store._prepared.loaded is not None  # past it: the load runs while the rest is produced
    for chunk in chunks[2:]:
        feed.write(memoryview(chunk))
    data = feed.close()
    assert data == b"".join(chunks)
    store.add(ntriples=data, graph="urn:g")
    assert set(store.dump(format="nt", graph="urn:g").splitlines()) == set(data.splitlines())
    assert store.dump(format="nt", graph="urn:before").count(b"\n") == 3
    _settled(store, feed)
    store.close()


def test_a_dropped_feed_changes_nothing_and_leaves_nothing(tmp_path, monkeypatch) -> None:
    store, before = _fed_store(tmp_path, monkeypatch)
    feed = store.feed_add("urn:g")
    feed.write(_lines(2000))
    assert store._prepared.loaded is not None
    store.discard_prepared()  # a check failed while the rows were still being mapped
    assert store.dump(format="nq") == before
    _settled(store, feed)
    store.close()


def test_a_feed_the_store_cannot_parse_fails_the_add_and_changes_nothing(tmp_path, monkeypatch) -> None:
    raised = _a_failing_feed(tmp_path, monkeypatch, extra=b"<urn:s> <urn:p> not-a-term .\n")
    assert isinstance(raised, pharmakg.StoreError) and "could not be parsed" in str(raised)


def _threads_named(prefix: str) -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]


def _add_within(store, data: bytes, seconds: float = 30) -> BaseException | None:  # type: ignore[no-untyped-def]
    """``store.add`` of the fed bytes on a thread: what it raised, or a failure if it hangs."""
    import threading

    raised: list[BaseException] = []

    def add() -> None:
        try:
            store.add(ntriples=data, graph="urn:g")
        except BaseException as exc:  # handed to the test
            raised.append(exc)

    worker = threading.Thread(target=add, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "the add waits forever for the bulk load"
    return raised[0] if raised else None


def _a_failing_feed(  # type: ignore[no-untyped-def]
    tmp_path, monkeypatch, module: str | None = None, *, extra: bytes = b"", **replaced: object
) -> BaseException | None:
    """Feed a load past the threshold (then ``extra``), with some of ``module``'s functions (``os``,
    ``ox``) replaced in the store's code, and add it: what the add raised, once the store is checked
    to be as before and the copy, the pipe and its thread are gone."""
    import types

    from pharmakg.store import oxigraph

    store, before = _fed_store(tmp_path, monkeypatch)
    if module is not None:
        original = getattr(oxigraph, module)
        seen = {name: getattr(original, name) for name in dir(original) if not name.startswith("__")}
        monkeypatch.setattr(oxigraph, module, types.SimpleNamespace(**{**seen, **replaced}))
    feed = store.feed_add("urn:g")
    feed.write(_lines(2000))
    feed.write(extra)
    raised = _add_within(store, feed.close())
    monkeypatch.undo()
    assert store.dump(format="nq") == before
    _settled(store, feed)
    assert not _threads_named("pharmakg-feed")
    store.close()
    return raised


def test_a_feed_whose_writing_fails_is_not_taken_for_the_whole(tmp_path, monkeypatch) -> None:
    """The load sees the pipe end early and finishes without error: the copy must still not go in."""
    import errno

    def write(fd: int, data: object) -> int:
        raise OSError(errno.EIO, "input/output error")

    raised = _a_failing_feed(tmp_path, monkeypatch, "os", write=write)
    assert isinstance(raised, pharmakg.StoreError) and "feeding the bulk load failed" in str(raised)


def test_a_copy_that_cannot_be_opened_fails_the_add_and_leaves_no_pipe(tmp_path, monkeypatch) -> None:
    """The load fails before it opens the pipe (at once, on its thread): the pipe's thread must end too."""

    def no_copy(*args: object, **kwargs: object) -> object:
        raise OSError("no space left on device")

    raised = _a_failing_feed(tmp_path, monkeypatch, "ox", Store=no_copy)
    assert isinstance(raised, pharmakg.StoreError) and "no space left" in str(raised)


def test_a_pipe_that_cannot_be_opened_for_writing_fails_the_add_without_waiting(tmp_path, monkeypatch) -> None:
    """The load waits in its open for a writer that never comes: it must be let through, and the add fail."""
    import errno
    import os

    since = time.monotonic()

    def open_(path: object, flags: int, *args: object) -> int:
        """No reader yet for half a second (by then the load waits in its open), then no more files."""
        if flags & os.O_ACCMODE == os.O_WRONLY:
            if time.monotonic() - since < 0.5:
                raise OSError(errno.ENXIO, "no reader yet")
            raise OSError(errno.EMFILE, "too many open files")
        return os.open(path, flags, *args)  # type: ignore[arg-type]

    raised = _a_failing_feed(tmp_path, monkeypatch, "os", open=open_)
    assert isinstance(raised, pharmakg.StoreError) and "too many open files" in str(raised)


_FEED_AND_EXIT = """
import sys
from pharmakg.store import oxigraph
oxigraph.BULK_THRESHOLD_BYTES = 10_000
store = oxigraph.EmbeddedStore(sys.argv[1])
feed = store.feed_add("urn:g")
feed.write(b"".join(b'<urn:s%d> <urn:p> "%d" .\\n' % (i, i) for i in range(2000)))
print(feed._pipe._dir, flush=True)
store.add(ntriples=feed.close(), graph="urn:g")
"""


def test_a_process_that_exits_right_after_a_fed_load_leaves_no_pipe(tmp_path) -> None:
    """The pipe's own thread is a daemon the interpreter may stop at exit: the load's thread removes it too."""
    import subprocess
    import sys
    from pathlib import Path

    for _ in range(3):
        store = tmp_path / f"store-{_}"
        done = subprocess.run([sys.executable, "-c", _FEED_AND_EXIT, str(store)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert not Path(done.stdout.strip()).exists()
