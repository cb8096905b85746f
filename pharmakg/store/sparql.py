"""Remote backend: any SPARQL 1.1 Protocol server (layer L2).

Queries go out as ``application/sparql-query`` POSTs, updates as
``application/sparql-update``. Additions become one ``INSERT DATA`` request,
which a conforming server applies atomically. The server must expose the
union of its named graphs as the default graph (``oxigraph serve
--union-default-graph``, Fuseki ``unionDefaultGraph``, ...), as pharmakg's own
queries assume.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import httpx
import pyoxigraph as ox

from ..errors import EndpointError, ReadOnlyStoreError, StoreError
from .base import Functions, RawResult, SelectFormat, as_nquads, query_error

__all__ = ["RemoteStore"]

_ACCEPT = "application/sparql-results+json, application/n-triples;q=0.9, text/turtle;q=0.5"
_ACCEPT_CSV = "text/csv, application/sparql-results+json;q=0.8, application/n-triples;q=0.9, text/turtle;q=0.5"


class RemoteStore:
    """A store behind a SPARQL 1.1 endpoint."""

    def __init__(
        self,
        query_url: str,
        update_url: str | None = None,
        *,
        auth: str | tuple[str, str] | httpx.Auth | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.query_url = query_url
        self.update_url = update_url
        self.location = query_url
        self.revision: int | None = None  # other clients may write: never cache
        headers: dict[str, str] = {}
        client_auth: Any = None
        if isinstance(auth, str):
            headers["Authorization"] = f"Bearer {auth}"
        elif auth is not None:
            client_auth = auth
        self._client = httpx.Client(timeout=timeout, headers=headers, auth=client_auth)

    def _post(self, url: str, body: str, content_type: str, accept: str | None = None) -> httpx.Response:
        headers = {"Content-Type": f"{content_type}; charset=utf-8"}
        if accept:
            headers["Accept"] = accept
        try:
            return self._client.post(url, content=body.encode("utf-8"), headers=headers)
        except httpx.TimeoutException as exc:
            raise EndpointError(url, f"timed out after {self._client.timeout.read} s") from exc
        except httpx.HTTPError as exc:
            raise EndpointError(url, f"cannot connect ({exc})") from exc

    def query(
        self, sparql: str, *, select_format: SelectFormat = "json", functions: Functions | None = None
    ) -> RawResult:
        # extension functions are the server's to evaluate (pharmakg serve knows pharmakg's own)
        accept = _ACCEPT_CSV if select_format == "csv" else _ACCEPT
        resp = self._post(self.query_url, sparql, "application/sparql-query", accept)
        self._raise_for(resp, sparql)
        ctype = resp.headers.get("content-type", "").split(";")[0].strip()
        if ctype == "application/sparql-results+json":
            return RawResult("json", resp.content)
        if ctype == "text/csv" and select_format == "csv":
            return RawResult("csv", resp.content)
        if ctype in ("application/n-triples", "text/turtle", "application/n-quads"):
            fmt = ox.RdfFormat.from_media_type(ctype)
            if fmt is None:
                raise EndpointError(self.query_url, f"unsupported result type {ctype}")
            triples = [q.triple for q in ox.parse(resp.content, format=fmt)]
            return RawResult("graph", ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES) or b"")
        raise EndpointError(self.query_url, f"unexpected result type {ctype!r}", status=resp.status_code)

    def update(self, sparql: str) -> None:
        if self.update_url is None:
            raise ReadOnlyStoreError(f"{self.query_url} was connected without an update_url; it is read-only")
        resp = self._post(self.update_url, sparql, "application/sparql-update")
        self._raise_for(resp, sparql)

    def add(self, nquads: bytes = b"", *, ntriples: bytes = b"", graph: str | None = None) -> None:
        if ntriples and graph is None:
            raise ValueError("N-Triples need a target graph")
        data = nquads + (as_nquads(ntriples, graph) if graph else b"")
        if not data:
            return
        by_graph: dict[Any, list[ox.Triple]] = defaultdict(list)
        try:
            for quad in ox.parse(data, format=ox.RdfFormat.N_QUADS):
                by_graph[quad.graph_name].append(quad.triple)
        except SyntaxError as exc:
            raise StoreError(f"internal N-Quads could not be parsed: {exc}") from exc
        parts = []
        for graph, triples in by_graph.items():
            body = (ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES) or b"").decode("utf-8")
            if isinstance(graph, ox.DefaultGraph):
                parts.append(body)
            else:
                parts.append(f"GRAPH {graph} {{\n{body}}}")
        self.update("INSERT DATA {\n" + "\n".join(parts) + "\n}")

    def dump(self, *, format: str = "nq", graph: str | None = None) -> bytes:
        if graph is None:
            sparql = "SELECT ?s ?p ?o ?g WHERE { { ?s ?p ?o } UNION { GRAPH ?g { ?s ?p ?o } } }"
        else:
            sparql = f"SELECT ?s ?p ?o WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}"
        raw = self.query(sparql)
        quads = []
        seen_default = set()
        for row in json.loads(raw.body)["results"]["bindings"]:
            s, p, o = (_term(row[k]) for k in ("s", "p", "o"))
            if graph is not None:
                g: Any = ox.NamedNode(graph)
            elif "g" in row:
                g = _term(row["g"])
            else:
                g = ox.DefaultGraph()
            quad = ox.Quad(s, p, o, g)
            if isinstance(g, ox.DefaultGraph):
                if quad in seen_default:
                    continue
                seen_default.add(quad)
            quads.append(quad)
        from .oxigraph import _FORMATS

        fmt = _FORMATS[format]
        if fmt in (ox.RdfFormat.TURTLE, ox.RdfFormat.N_TRIPLES):
            return ox.serialize([q.triple for q in quads], format=fmt) or b""
        return ox.serialize(quads, format=fmt) or b""

    def close(self) -> None:
        self._client.close()

    def _raise_for(self, resp: httpx.Response, sparql: str) -> None:
        if resp.status_code < 300:
            return
        text = resp.text.strip()
        if resp.status_code == 400:
            raise query_error(text or "bad request", sparql)
        if resp.status_code in (401, 403):
            raise ReadOnlyStoreError(f"{resp.request.url} refused the write (HTTP {resp.status_code}): {text[:200]}")
        raise EndpointError(str(resp.request.url), text[:300] or resp.reason_phrase, status=resp.status_code)


def _term(binding: dict[str, str]) -> Any:
    kind = binding["type"]
    if kind == "uri":
        return ox.NamedNode(binding["value"])
    if kind == "bnode":
        return ox.BlankNode(binding["value"])
    if "xml:lang" in binding:
        return ox.Literal(binding["value"], language=binding["xml:lang"])
    if "datatype" in binding:
        return ox.Literal(binding["value"], datatype=ox.NamedNode(binding["datatype"]))
    return ox.Literal(binding["value"])
