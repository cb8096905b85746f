"""``pharmakg serve``: a real server process, real HTTP clients (httpx, SPARQLWrapper, rdflib)."""

from __future__ import annotations

import csv
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import rdflib

import pharmakg
from pharmakg.server import RunningServer, ServerConfig, start
from pharmakg.server.run import exposure_warning

from .conftest import MINI

TOKEN = "correct horse battery staple"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AUDIT = f"{pharmakg.DEFAULT_BASE}graph/audit"
PROVENANCE = f"{pharmakg.DEFAULT_BASE}graph/provenance"
ALL_QUADS = "SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }"
SLOW = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l }"

pytestmark = pytest.mark.remote


def _mini_store(path: Path) -> Path:
    with pharmakg.open(path) as kg:
        kg.load(MINI, reason="test fixture")
    return path


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _mini_store(tmp_path_factory.mktemp("served") / "store")


@pytest.fixture(scope="module")
def server(store_path: Path) -> Iterator[RunningServer]:
    with start(
        store_path,
        token=TOKEN,
        token_user="qa.lead",
        workers=2,
        time_limit=3,
        row_cap=200,
        extra_args=("--max-body", "200000"),
    ) as running:
        yield running


def _count(server: RunningServer, sparql: str = ALL_QUADS) -> int:
    resp = httpx.post(server.sparql_url, data={"query": sparql}, headers={"Accept": "application/json"})
    resp.raise_for_status()
    return int(resp.json()["results"]["bindings"][0]["n"]["value"])


def _update(server: RunningServer, text: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        server.sparql_url,
        content=text.encode(),
        headers={"Content-Type": "application/sparql-update", **(headers if headers is not None else AUTH)},
    )


# -- queries: protocol, formats, status codes ------------------------------------------------
LOTS = (
    "SELECT ?lot ?id WHERE { ?lot a <https://w3id.org/pharmakg/ontology#MaterialLot> ; "
    "<http://purl.org/dc/terms/identifier> ?id } ORDER BY ?id"
)


@pytest.mark.parametrize("how", ["get", "form", "direct"])
@pytest.mark.parametrize(
    "accept,media",
    [
        ("application/sparql-results+json", "application/sparql-results+json"),
        ("application/sparql-results+xml", "application/sparql-results+xml"),
        ("text/csv", "text/csv"),
        ("text/tab-separated-values", "text/tab-separated-values"),
        (None, "application/sparql-results+json"),
    ],
)
def test_select_in_every_format_and_every_way(server: RunningServer, how: str, accept: str | None, media: str) -> None:
    headers = {"Accept": accept} if accept else {}
    if how == "get":
        resp = httpx.get(server.sparql_url, params={"query": LOTS}, headers=headers)
    elif how == "form":
        resp = httpx.post(server.sparql_url, data={"query": LOTS}, headers=headers)
    else:
        resp = httpx.post(
            server.sparql_url, content=LOTS.encode(), headers={**headers, "Content-Type": "application/sparql-query"}
        )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith(media)
    with pharmakg.open(server_store(server), read_only=True) as kg:
        expected = list(kg.query(LOTS)["id"])
    if media.endswith("json"):
        got = [b["id"]["value"] for b in resp.json()["results"]["bindings"]]
    elif media.endswith("xml"):
        got = [el.text for el in _xml_literals(resp.content)]
    elif media == "text/csv":
        got = [row["id"] for row in csv.DictReader(io.StringIO(resp.text))]
    else:
        got = [line.split("\t")[1].strip('"') for line in resp.text.splitlines()[1:]]
    assert got == expected and len(got) >= 4


def server_store(server: RunningServer) -> str:
    args = server.process.args
    assert isinstance(args, list)
    return str(args[args.index("--store") + 1])


def _xml_literals(body: bytes) -> list[object]:
    from xml.etree import ElementTree as ET

    ns = "{http://www.w3.org/2005/sparql-results#}"
    root = ET.fromstring(body)
    return [b.find(f"{ns}literal") for b in root.iter(f"{ns}binding") if b.get("name") == "id"]


@pytest.mark.parametrize(
    "accept,fmt",
    [
        ("text/turtle", "turtle"),
        ("application/n-triples", "nt"),
        ("application/ld+json", "json-ld"),
        ("application/rdf+xml", "xml"),
    ],
)
def test_construct_in_every_graph_format(server: RunningServer, accept: str, fmt: str) -> None:
    sparql = (
        "CONSTRUCT { ?lot ?p ?o } WHERE { ?lot a <https://w3id.org/pharmakg/ontology#MaterialLot> ; ?p ?o } LIMIT 20"
    )
    resp = httpx.get(server.sparql_url, params={"query": sparql}, headers={"Accept": accept})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith(accept)
    graph = rdflib.Graph().parse(data=resp.content, format=fmt)
    assert len(graph) == 20


def test_ask_and_describe(server: RunningServer) -> None:
    resp = httpx.get(server.sparql_url, params={"query": "ASK { ?s a ?c }"})
    assert resp.json()["boolean"] is True
    resp = httpx.get(server.sparql_url, params={"query": "ASK { ?s a ?c }"}, headers={"Accept": "text/csv"})
    assert resp.text.strip() == "true"
    lot = "<https://example.org/pharmakg/lot/L-API-1>"
    resp = httpx.get(
        server.sparql_url, params={"query": f"DESCRIBE {lot}"}, headers={"Accept": "application/n-triples"}
    )
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/n-triples")
    described = rdflib.Graph().parse(data=resp.text, format="nt")
    assert len(described) > 3 and all(str(s) == lot.strip("<>") for s in described.subjects())


def test_malformed_query_is_400_with_line_and_column(server: RunningServer) -> None:
    resp = httpx.get(server.sparql_url, params={"query": "SELECT * WHERE {\n  ?s ?p \n}"})
    assert resp.status_code == 400
    assert "line 3" in resp.text and "column" in resp.text


def test_not_acceptable_unsupported_media_and_methods(server: RunningServer) -> None:
    resp = httpx.get(server.sparql_url, params={"query": "ASK {}"}, headers={"Accept": "image/png"})
    assert resp.status_code == 406 and "text/csv" in resp.text
    construct = "CONSTRUCT WHERE { ?s ?p ?o } LIMIT 1"
    resp = httpx.get(server.sparql_url, params={"query": construct}, headers={"Accept": "text/csv"})
    assert resp.status_code == 406
    resp = httpx.post(server.sparql_url, content=b"ASK {}", headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415
    resp = httpx.get(server.sparql_url, params={"update": "CLEAR ALL"})
    assert resp.status_code == 405
    resp = httpx.post(server.sparql_url, data={"query": "ASK {}", "update": "CLEAR ALL"})
    assert resp.status_code == 400


def test_accept_q_values_choose_the_format(server: RunningServer) -> None:
    resp = httpx.get(
        server.sparql_url,
        params={"query": "SELECT * WHERE { ?s ?p ?o } LIMIT 1"},
        headers={"Accept": "text/csv;q=0.4, application/sparql-results+xml;q=0.9, */*;q=0.1"},
    )
    assert resp.headers["content-type"].startswith("application/sparql-results+xml")


def test_row_cap_refuses_instead_of_truncating(server: RunningServer) -> None:
    resp = httpx.get(server.sparql_url, params={"query": "SELECT * WHERE { ?s ?p ?o }"})
    assert resp.status_code == 422 and "200" in resp.text and "LIMIT" in resp.text
    for accept in ("text/csv", "text/tab-separated-values", "application/sparql-results+xml"):
        capped = httpx.get(
            server.sparql_url, params={"query": "SELECT * WHERE { ?s ?p ?o }"}, headers={"Accept": accept}
        )
        assert capped.status_code == 422
    ok = httpx.get(server.sparql_url, params={"query": "SELECT * WHERE { ?s ?p ?o } LIMIT 200"})
    assert ok.status_code == 200 and len(ok.json()["results"]["bindings"]) == 200
    resp = httpx.get(server.sparql_url, params={"query": "CONSTRUCT WHERE { ?s ?p ?o }"})
    assert resp.status_code == 422


def test_request_body_cap_is_413(server: RunningServer) -> None:
    big = "SELECT * WHERE { ?s ?p ?o } #" + "x" * 250_000
    resp = httpx.post(server.sparql_url, content=big.encode(), headers={"Content-Type": "application/sparql-query"})
    assert resp.status_code == 413


def test_service_description(server: RunningServer) -> None:
    resp = httpx.get(server.sparql_url, headers={"Accept": "text/turtle"})
    assert resp.status_code == 200
    graph = rdflib.Graph().parse(data=resp.text, format="turtle")
    sd = rdflib.Namespace("http://www.w3.org/ns/sparql-service-description#")
    assert (None, sd.endpoint, rdflib.URIRef(server.sparql_url)) in graph
    assert (None, sd.supportedLanguage, sd.SPARQL11Update) in graph  # a token is configured


def test_dataset_parameters_are_honoured(server: RunningServer) -> None:
    a, b = "urn:test:dataset-a", "urn:test:dataset-b"
    assert (
        _update(
            server, f"INSERT DATA {{ GRAPH <{a}> {{ <urn:x> <urn:p> 1 }} GRAPH <{b}> {{ <urn:y> <urn:p> 2 }} }}"
        ).status_code
        == 204
    )
    query = "SELECT ?s WHERE { ?s <urn:p> ?o }"
    resp = httpx.get(server.sparql_url, params={"query": query, "default-graph-uri": a})
    assert [x["s"]["value"] for x in resp.json()["results"]["bindings"]] == ["urn:x"]
    query = "SELECT ?g ?s WHERE { GRAPH ?g { ?s <urn:p> ?o } }"
    resp = httpx.get(server.sparql_url, params=[("query", query), ("named-graph-uri", b)])
    assert [x["g"]["value"] for x in resp.json()["results"]["bindings"]] == [b]


# -- writes: token, audit, protected graphs ----------------------------------------------------
def test_update_without_token_changes_nothing(server: RunningServer) -> None:
    before = _count(server)
    resp = _update(server, "INSERT DATA { GRAPH <urn:test:nope> { <urn:a> <urn:b> 1 } }", headers={})
    assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
    resp = _update(server, "CLEAR ALL", headers={"Authorization": "Bearer wrong"})
    assert resp.status_code == 403
    form = httpx.post(server.sparql_url, data={"update": "CLEAR ALL"})
    assert form.status_code == 401
    assert _count(server) == before


def test_update_is_audited_and_visible_to_the_next_query_on_any_worker(server: RunningServer) -> None:
    resp = _update(
        server,
        "INSERT DATA { GRAPH <urn:test:upd> { <urn:lot:1> <urn:status> 'hold' } }",
        headers={**AUTH, "X-PharmaKG-Reason": "CAPA-17 hold", "X-PharmaKG-User": "someone.else"},
    )
    assert resp.status_code == 204, resp.text
    for _ in range(8):  # two workers: every one of them must see it at once
        assert _count(server, "SELECT (COUNT(*) AS ?n) WHERE { <urn:lot:1> <urn:status> 'hold' }") == 1
    audit = httpx.get(
        server.sparql_url,
        params={
            "query": f"SELECT ?user WHERE {{ GRAPH <{AUDIT}> {{ ?r <{pharmakg.terms.PKG}reason> 'CAPA-17 hold' ; <{pharmakg.terms.PKG}user> ?user }} }}"
        },
    ).json()["results"]["bindings"]
    # the update token is its owner's credential: the record names the owner, never a header's claim
    assert len(audit) == 1 and audit[0]["user"]["value"].startswith("qa.lead via SPARQL endpoint (")


def test_audit_and_provenance_graphs_cannot_be_changed(server: RunningServer) -> None:
    audit_before = _count(server, f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{AUDIT}> {{ ?s ?p ?o }} }}")
    total = _count(server)
    for text in (
        f"CLEAR GRAPH <{AUDIT}>",
        f"DROP GRAPH <{PROVENANCE}>",
        f"DELETE WHERE {{ GRAPH <{AUDIT}> {{ ?s ?p ?o }} }}",
        "DELETE WHERE { GRAPH ?g { ?s ?p ?o } }",
        f"INSERT DATA {{ GRAPH <{AUDIT}> {{ <urn:fake> <urn:p> 1 }} }}",
        f"WITH <{AUDIT}> DELETE {{ ?s ?p ?o }} WHERE {{ ?s ?p ?o }}",
        f"MOVE <{AUDIT}> TO <urn:test:elsewhere>",
    ):
        resp = _update(server, text)
        assert resp.status_code == 403, (text, resp.text)
    put = httpx.put(
        server.store_url, params={"graph": AUDIT}, content=b"", headers={**AUTH, "Content-Type": "text/turtle"}
    )
    assert put.status_code == 403
    assert _count(server) == total
    assert _count(server, f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{AUDIT}> {{ ?s ?p ?o }} }}") == audit_before


class _Listener:
    """A TCP listener on a free loopback port that counts the connections it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


def test_service_and_load_to_outside_urls_are_refused(server: RunningServer) -> None:
    listener = _Listener()
    url = f"http://127.0.0.1:{listener.port}/sparql"
    resp = httpx.get(server.sparql_url, params={"query": f"SELECT * WHERE {{ SERVICE <{url}> {{ ?s ?p ?o }} }}"})
    assert resp.status_code == 403 and "SERVICE" in resp.text
    escaped = f"SELECT * WHERE {{ \\u0053ERVICE <{url}> {{ ?s ?p ?o }} }}"
    assert httpx.get(server.sparql_url, params={"query": escaped}).status_code == 403
    resp = _update(server, f"LOAD <{url}> INTO GRAPH <urn:test:loaded>")
    assert resp.status_code == 403 and "LOAD" in resp.text
    resp = _update(server, f"INSERT {{ GRAPH <urn:t> {{ ?s ?p ?o }} }} WHERE {{ SERVICE <{url}> {{ ?s ?p ?o }} }}")
    assert resp.status_code == 403
    time.sleep(0.2)
    assert listener.connections == 0
    listener.sock.close()


def test_a_runaway_query_gets_503_and_does_not_block_others(server: RunningServer) -> None:
    with ThreadPoolExecutor(2) as pool:
        started = time.monotonic()
        slow = pool.submit(httpx.get, server.sparql_url, params={"query": SLOW}, timeout=30)
        time.sleep(0.3)
        small = []
        for _ in range(5):
            t0 = time.monotonic()
            assert httpx.get(server.sparql_url, params={"query": "ASK { ?s ?p ?o }"}, timeout=30).status_code == 200
            small.append(time.monotonic() - t0)
        resp = slow.result()
        took = time.monotonic() - started
    assert resp.status_code == 503 and "time limit" in resp.text
    assert took < 3 + 5, took  # the 3 s limit plus scheduling slack, not the query's own hours
    assert max(small) < 2.5, small
    deadline = time.monotonic() + 20  # the retired worker is replaced; the server keeps answering
    while time.monotonic() < deadline:
        assert httpx.get(server.sparql_url, params={"query": "ASK {}"}, timeout=10).status_code == 200
        if "died" in server.log():
            break
        time.sleep(0.2)
    assert "retires" in server.log()


# -- Graph Store Protocol ----------------------------------------------------------------------
def test_graph_store_protocol_round_trip(server: RunningServer) -> None:
    g = "urn:test:gsp"
    ttl = b"@prefix ex: <urn:ex:> . ex:lot1 ex:status ex:Released ; ex:qty 12.5 ."
    assert httpx.get(server.store_url, params={"graph": g}).status_code == 404
    resp = httpx.put(server.store_url, params={"graph": g}, content=ttl, headers={"Content-Type": "text/turtle"})
    assert resp.status_code == 401
    resp = httpx.put(
        server.store_url, params={"graph": g}, content=ttl, headers={**AUTH, "Content-Type": "text/turtle"}
    )
    assert resp.status_code == 201, resp.text
    got = httpx.get(server.store_url, params={"graph": g}, headers={"Accept": "application/n-triples"})
    assert got.status_code == 200 and len(got.text.strip().splitlines()) == 2
    head = httpx.head(server.store_url, params={"graph": g}, headers={"Accept": "text/turtle"})
    assert head.status_code == 200 and head.content == b"" and head.headers["content-type"].startswith("text/turtle")
    nt = b"<urn:ex:lot2> <urn:ex:status> <urn:ex:Quarantine> .\n"
    resp = httpx.post(
        server.store_url, params={"graph": g}, content=nt, headers={**AUTH, "Content-Type": "application/n-triples"}
    )
    assert resp.status_code == 204
    assert _count(server, f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{g}> {{ ?s ?p ?o }} }}") == 3
    resp = httpx.put(
        server.store_url, params={"graph": g}, content=nt, headers={**AUTH, "Content-Type": "application/n-triples"}
    )
    assert resp.status_code == 204
    assert _count(server, f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{g}> {{ ?s ?p ?o }} }}") == 1
    bad = httpx.put(
        server.store_url,
        params={"graph": g},
        content=b"<urn:a> <urn:b> .",
        headers={**AUTH, "Content-Type": "text/turtle"},
    )
    assert bad.status_code == 400 and "line" in bad.text
    assert _count(server, f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{g}> {{ ?s ?p ?o }} }}") == 1
    assert httpx.delete(server.store_url, params={"graph": g}, headers=AUTH).status_code == 204
    assert httpx.get(server.store_url, params={"graph": g}).status_code == 404
    assert httpx.delete(server.store_url, params={"graph": g}, headers=AUTH).status_code == 404
    assert httpx.get(server.store_url, params={"default": ""}).status_code == 400


# -- real client libraries -----------------------------------------------------------------------
def test_sparqlwrapper_queries_and_updates(server: RunningServer) -> None:
    from SPARQLWrapper import CSV, JSON, POST, TURTLE, SPARQLWrapper

    client = SPARQLWrapper(server.sparql_url)
    client.setQuery(LOTS)
    client.setReturnFormat(JSON)
    rows = client.query().convert()["results"]["bindings"]  # type: ignore[index,call-overload]
    assert len(rows) >= 4
    client.setReturnFormat(CSV)
    assert client.query().convert().startswith(b"lot,id")  # type: ignore[union-attr]
    client.setQuery("CONSTRUCT WHERE { ?s a ?c } LIMIT 3")
    client.setReturnFormat(TURTLE)
    assert len(rdflib.Graph().parse(data=client.query().convert(), format="turtle")) == 3  # type: ignore[arg-type]
    writer = SPARQLWrapper(server.sparql_url, updateEndpoint=server.sparql_url)
    writer.setMethod(POST)
    writer.addCustomHttpHeader("Authorization", f"Bearer {TOKEN}")
    writer.setQuery("INSERT DATA { GRAPH <urn:test:sw> { <urn:sw> <urn:p> 'from SPARQLWrapper' } }")
    writer.query()
    assert _count(server, "SELECT (COUNT(*) AS ?n) WHERE { <urn:sw> <urn:p> ?o }") == 1


def test_rdflib_sparql_store_and_update_store(server: RunningServer) -> None:
    from rdflib.plugins.stores.sparqlstore import SPARQLStore, SPARQLUpdateStore

    graph = rdflib.Graph(store=SPARQLStore(server.sparql_url))
    rows = list(graph.query("SELECT ?id WHERE { ?lot <http://purl.org/dc/terms/identifier> ?id } LIMIT 5"))
    assert len(rows) == 5
    store = SPARQLUpdateStore(server.sparql_url, server.sparql_url, headers=dict(AUTH))
    named = rdflib.Graph(store=store, identifier=rdflib.URIRef("urn:test:rdflib"))
    named.add((rdflib.URIRef("urn:r"), rdflib.URIRef("urn:p"), rdflib.Literal("from rdflib")))
    assert _count(server, "SELECT (COUNT(*) AS ?n) WHERE { GRAPH <urn:test:rdflib> { <urn:r> <urn:p> ?o } }") == 1


def test_cors_is_off_by_default(server: RunningServer) -> None:
    resp = httpx.get(server.sparql_url, params={"query": "ASK {}"}, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in resp.headers


# -- sharing the folder with a writer in another process ---------------------------------------
def test_a_write_from_another_process_is_visible_to_the_next_query(store_path: Path, server: RunningServer) -> None:
    with pharmakg.open(store_path) as kg:  # what a notebook kernel does
        kg.update("INSERT DATA { GRAPH <urn:test:kernel> { <urn:k> <urn:p> 42 } }", reason="from the kernel")
        for _ in range(4):
            assert _count(server, "SELECT (COUNT(*) AS ?n) WHERE { <urn:k> <urn:p> 42 }") == 1
        locked = _update(server, "INSERT DATA { GRAPH <urn:test:k2> { <urn:k2> <urn:p> 1 } }")
    assert locked.status_code == 503 and "another process" in locked.text  # the kernel holds the writer lock
    assert locked.headers["retry-after"]
    assert _update(server, "INSERT DATA { GRAPH <urn:test:k2> { <urn:k2> <urn:p> 1 } }").status_code == 204


# -- separate servers: destructive or differently configured -----------------------------------
def test_clear_all_leaves_audit_and_provenance(tmp_path: Path) -> None:
    path = _mini_store(tmp_path / "store")
    with start(path, token=TOKEN, time_limit=60) as srv:
        records = f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{AUDIT}> {{ ?r a <{pharmakg.terms.PKG}AuditRecord> }} }}"
        audit_before = _count(srv, records)
        prov_before = _count(srv, f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{PROVENANCE}> {{ ?s ?p ?o }} }}")
        data_before = _count(srv) - _count(
            srv,
            f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH ?g {{ ?s ?p ?o }} FILTER(?g IN (<{AUDIT}>, <{PROVENANCE}>)) }}",
        )
        assert prov_before > 0
        resp = _update(srv, "CLEAR ALL")
        assert resp.status_code == 204, resp.text
        graphs = httpx.get(
            srv.sparql_url, params={"query": "SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }"}
        ).json()["results"]["bindings"]
        assert {g["g"]["value"] for g in graphs} == {AUDIT, PROVENANCE}
        assert _count(srv, records) == audit_before + 2  # the update, and the record of what it removed
        removed = f"SELECT (SUM(?x) AS ?n) WHERE {{ GRAPH <{AUDIT}> {{ ?r <{pharmakg.terms.PKG}action> 'effect' ; <{pharmakg.terms.PKG}triplesRemoved> ?x }} }}"
        assert _count(srv, removed) == data_before  # every cleared triple is named in the trail
        assert _count(srv, f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{PROVENANCE}> {{ ?s ?p ?o }} }}") == prov_before


def test_a_server_without_token_is_read_only(store_path: Path) -> None:
    with start(store_path) as srv:
        before = _count(srv)
        resp = _update(srv, "INSERT DATA { GRAPH <urn:ro> { <urn:a> <urn:b> 1 } }")
        assert resp.status_code == 403 and "read-only" in resp.text
        description = httpx.get(srv.sparql_url).text
        assert "SPARQL11Update" not in description
        assert _count(srv) == before


def test_serving_a_remote_endpoint_keeps_guards_and_audit(oxigraph_url: str) -> None:
    with start(
        endpoint=oxigraph_url + "/query", token=TOKEN, extra_args=("--update-endpoint", oxigraph_url + "/update")
    ) as srv:
        assert _update(srv, "INSERT DATA { GRAPH <urn:test:remote> { <urn:rm> <urn:p> 7 } }").status_code == 204
        assert _count(srv, "SELECT (COUNT(*) AS ?n) WHERE { <urn:rm> <urn:p> 7 }") == 1
        audit = _count(srv, f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{AUDIT}> {{ ?r ?p ?o }} }}")
        assert audit >= 7
        assert _update(srv, f"CLEAR GRAPH <{AUDIT}>").status_code == 403
        listener = _Listener()
        query = f"SELECT * WHERE {{ SERVICE <http://127.0.0.1:{listener.port}/> {{ ?s ?p ?o }} }}"
        assert httpx.get(srv.sparql_url, params={"query": query}).status_code == 403
        assert listener.connections == 0
        resp = httpx.get(
            srv.sparql_url, params={"query": "CONSTRUCT WHERE { ?s ?p ?o } LIMIT 2"}, headers={"Accept": "text/turtle"}
        )
        assert resp.status_code == 200 and len(rdflib.Graph().parse(data=resp.text, format="turtle")) == 2


# -- configuration ------------------------------------------------------------------------------
def test_exposure_warning_and_config_checks() -> None:
    assert exposure_warning(ServerConfig(store="s")) is None
    assert "read the whole graph" in (exposure_warning(ServerConfig(store="s", host="0.0.0.0")) or "")
    assert "TLS" in (
        exposure_warning(ServerConfig(store="s", host="0.0.0.0", token_sha256="x", token_user="ann")) or ""
    )
    with pytest.raises(ValueError):
        ServerConfig()
    with pytest.raises(ValueError):
        ServerConfig(store="s", time_limit=0)
    config = ServerConfig(store="s", token_sha256=__import__("hashlib").sha256(b"abc").hexdigest(), token_user="ann")
    assert config.token_ok("abc") and not config.token_ok("abd")
    assert config.user_of("abc") == ("ann", "author") and config.user_of("abd") is None
    assert ServerConfig.from_json(config.to_json()) == config
    assert json.loads(config.to_json())["token_sha256"] != "abc"


def test_an_allow_listed_service_is_reached_and_cors_can_be_enabled(store_path: Path, oxigraph_url: str) -> None:
    httpx.post(
        oxigraph_url + "/update",
        content=b"INSERT DATA { GRAPH <urn:fed> { <urn:fed:lot> <urn:fed:site> 'Basel' } }",
        headers={"Content-Type": "application/sparql-update"},
    ).raise_for_status()
    extra = ("--allow-service", oxigraph_url + "/", "--cors", "https://dashboard.example")
    with start(store_path, extra_args=extra) as srv:
        query = f"SELECT ?site WHERE {{ SERVICE <{oxigraph_url}/query> {{ <urn:fed:lot> <urn:fed:site> ?site }} }}"
        resp = httpx.get(srv.sparql_url, params={"query": query}, headers={"Origin": "https://dashboard.example"})
        assert resp.status_code == 200, resp.text
        assert [b["site"]["value"] for b in resp.json()["results"]["bindings"]] == ["Basel"]
        assert resp.headers["access-control-allow-origin"] == "https://dashboard.example"
        other = httpx.get(srv.sparql_url, params={"query": "ASK {}"}, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_cli_serve_refuses_a_missing_store(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "pharmakg", "--store", str(tmp_path / "nothing"), "serve", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and "nothing" in out.stderr and "error" in out.stderr


def test_per_user_tokens_with_roles_name_the_writer_in_the_audit_trail(tmp_path: Path) -> None:
    from pharmakg.server.config import add_user

    users = tmp_path / "users.csv"
    tokens = {
        name: add_user(users, name, role)
        for name, role in (("rita", "reader"), ("ann", "author"), ("paul", "approver"))
    }
    assert users.stat().st_mode & 0o077 == 0 and all(t not in users.read_text() for t in tokens.values())
    with start(_mini_store(tmp_path / "store"), extra_args=("--users", str(users), "--private")) as srv:

        def upd(text: str, who: str | None) -> httpx.Response:
            return _update(srv, text, headers={"Authorization": f"Bearer {tokens[who]}"} if who else {})

        assert httpx.post(srv.sparql_url, data={"query": ALL_QUADS}).status_code == 401  # private: no anonymous reads
        ok = httpx.post(
            srv.sparql_url, data={"query": ALL_QUADS}, headers={"Authorization": f"Bearer {tokens['rita']}"}
        )
        assert ok.status_code == 200
        assert upd("INSERT DATA { GRAPH <urn:t> { <urn:a> <urn:b> 1 } }", "rita").status_code == 403
        assert upd("INSERT DATA { GRAPH <urn:t> { <urn:a> <urn:b> 1 } }", None).status_code == 401
        resp = upd("INSERT DATA { GRAPH <urn:t> { <urn:a> <urn:b> 1 } }", "ann")
        assert resp.status_code == 204, resp.text
        status = f"INSERT DATA {{ GRAPH <urn:t> {{ <urn:twin> <{pharmakg.terms.PKG}twinStatus> <{pharmakg.terms.PKG}Validated> }} }}"
        refused = upd(status, "ann")
        assert refused.status_code == 403 and "approver" in refused.text
        assert upd(status, "paul").status_code == 204
    with pharmakg.open(tmp_path / "store") as kg:
        writers = set(kg.audit_log()["user"])
        assert {"ann via SPARQL endpoint (127.0.0.1)", "paul via SPARQL endpoint (127.0.0.1)"} <= writers
        assert kg.verify_audit().ok


def test_the_update_token_belongs_to_one_named_user() -> None:
    from pharmakg.server.config import token_digest

    with pytest.raises(ValueError, match="no shared accounts"):
        ServerConfig(store="x", token_sha256=token_digest("t"))
    with pytest.raises(ValueError, match="users file too"):
        ServerConfig(
            store="x", token_sha256=token_digest("t"), token_user="ann", users=(("ann", "author", token_digest("a")),)
        )
    with pytest.raises(ValueError, match="author or approver"):
        ServerConfig(store="x", token_sha256=token_digest("t"), token_user="ann", token_role="reader")
    both = ServerConfig(
        store="x", token_sha256=token_digest("t"), token_user="ops", users=(("ann", "author", token_digest("a")),)
    )
    assert both.user_of("t") == ("ops", "author") and both.user_of("a") == ("ann", "author")
    proxy = ServerConfig(store="x", token_sha256=token_digest("t"), token_proxy=True)
    assert proxy.user_of("t") is None and proxy.token_ok("t")  # the front end names the user per request


def test_a_front_end_token_must_name_the_user_it_authenticated(tmp_path: Path) -> None:
    with start(_mini_store(tmp_path / "store"), token="front", token_proxy=True) as srv:
        data = {"update": "INSERT DATA { GRAPH <urn:t> { <urn:a> <urn:b> 1 } }"}
        auth = {"Authorization": "Bearer front"}
        unnamed = httpx.post(srv.sparql_url, data=data, headers=auth)
        assert unnamed.status_code == 403 and "X-PharmaKG-User" in unnamed.text
        named = httpx.post(srv.sparql_url, data=data, headers={**auth, "X-PharmaKG-User": "jupyter:ann"})
        assert named.status_code == 204, named.text
    with pharmakg.open(tmp_path / "store") as kg:
        assert "jupyter:ann (authenticated by the front end) via SPARQL endpoint (127.0.0.1)" in set(
            kg.audit_log()["user"]
        )
