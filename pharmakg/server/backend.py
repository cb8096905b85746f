"""Where the endpoint's queries and updates go: a store folder or another server (layer L6).

Both backends answer queries with a pyoxigraph result object that
:mod:`.formats` serialises, and send every update through
:meth:`KnowledgeGraph.update`, the audited write path of the Python API.

*Local*: each worker process opens the store folder read-only (a snapshot
that :meth:`EmbeddedStore.refresh` renews whenever the writer's revision file
moves) and opens it read-write only for the length of an update, so a notebook
kernel, other workers and the Jupyter extension can share one folder with one
writer at a time (see docs/design.md, "Sharing an on-disk store").

*Remote*: queries are forwarded (asking for SPARQL JSON or N-Triples, parsed
back into pyoxigraph objects so negotiation and the row cap work as locally);
updates go through ``pharmakg.connect``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx
import pyoxigraph as ox

from .. import audit
from ..errors import EndpointError, QueryError, StoreLockedError
from ..kg import FUNCTION_NAMESPACE, KnowledgeGraph, connect_store
from ..store.base import query_error
from ..store.oxigraph import EmbeddedStore
from .config import ServerConfig
from .formats import Answer, serialize_result
from .guard import plan_update

__all__ = ["Backend", "LocalBackend", "RemoteBackend", "make_backend", "protected_graphs"]

Result = ox.QuerySolutions | ox.QueryBoolean | Iterable[ox.Triple]


class Backend(Protocol):
    def query(
        self, sparql: str, *, default_graphs: list[str] | None, named_graphs: list[str] | None, accept: str | None
    ) -> Answer:
        """Answer a query on the data as of the last :meth:`revision` call (the endpoint makes one per request)."""
        ...

    def update(self, sparql: str, *, user: str, reason: str, checked: bool = False) -> None:
        """Run an update through the audited write path; ``checked``: built by the server, skip the guard."""
        ...

    def graph_exists(self, graph: str) -> bool: ...

    def revision(self) -> int | None:
        """The data's revision as of now, or None when it can change without this process knowing."""
        ...

    def close(self) -> None: ...


def _named_graphs(kg: KnowledgeGraph) -> list[str]:
    return [row["g"] for row in kg.rows("SELECT DISTINCT ?g WHERE { GRAPH ?g { } }")]


def protected_graphs(base: str) -> frozenset[str]:
    return frozenset({audit.audit_graph(base), audit.provenance_graph(base)})


def _audited_update(kg: KnowledgeGraph, sparql: str, config: ServerConfig, reason: str, *, checked: bool) -> None:
    """Guard (unless the caller built the update itself), spell out ALL/NAMED, run with its audit record."""
    if not checked:
        plan = plan_update(sparql, allowed=config.service_allowed, protected=protected_graphs(kg.base))
        sparql = plan.render(_named_graphs(kg)) if plan.needs_graphs else plan.text
    kg.update(sparql, reason=reason)


class LocalBackend:
    """A pharmakg store folder: read-only snapshots for queries, a short-lived writer for updates."""

    def __init__(self, config: ServerConfig) -> None:
        assert config.store is not None
        self.config = config
        self.path = config.store
        self.reader = EmbeddedStore(self.path, read_only=True)
        self._write_lock = threading.Lock()

    def query(
        self, sparql: str, *, default_graphs: list[str] | None, named_graphs: list[str] | None, accept: str | None
    ) -> Answer:
        functions = None
        if FUNCTION_NAMESPACE in sparql:  # pharmakg's own extension functions (pkgf:predict ...)
            functions = KnowledgeGraph(self.reader, base=self.config.base).functions()
        for attempt in (1, 2):
            try:
                result = self.reader.execute(
                    sparql, default_graph=default_graphs, named_graphs=named_graphs, functions=functions, refresh=False
                )
                return serialize_result(result, accept, self.config.row_cap)
            except OSError as exc:  # a file of an old snapshot compacted away by the writer
                if attempt == 2:
                    raise query_error(str(exc), sparql) from exc
                self.reader.refresh(force=True)
            except (ValueError, RuntimeError) as exc:  # raised while evaluating, during serialisation
                if isinstance(exc, QueryError):
                    raise
                raise query_error(str(exc), sparql) from exc
        raise AssertionError("unreachable")

    def revision(self) -> int | None:
        self.reader.refresh()
        return self.reader.revision

    def graph_exists(self, graph: str) -> bool:
        return bool(self.reader.execute(f"ASK {{ GRAPH <{graph}> {{ }} }}"))

    def update(self, sparql: str, *, user: str, reason: str, checked: bool = False) -> None:
        """Open the folder read-write for this one update; wait a little for another writer, then give up.

        The wait stays well inside the time limit: a request stopped by the limit
        retires its worker, which is for runaways, not for a busy writer lock."""
        deadline = time.monotonic() + min(5.0, self.config.time_limit / 4)
        with self._write_lock:
            while True:
                try:
                    writer = EmbeddedStore(self.path)
                    break
                except StoreLockedError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            try:
                kg = KnowledgeGraph(writer, base=self.config.base, user=user)
                _audited_update(kg, sparql, self.config, reason, checked=checked)
            finally:
                writer.close()
        self.reader.refresh()

    def close(self) -> None:
        self.reader.close()


class RemoteBackend:
    """Another SPARQL 1.1 server; this process adds the guards, the caps and the audit."""

    def __init__(self, config: ServerConfig) -> None:
        assert config.endpoint is not None
        self.config = config
        self.client = httpx.Client(timeout=config.time_limit)
        self.kg = connect_store(config.endpoint, config.update_endpoint, base=config.base, timeout=config.time_limit)

    def query(
        self, sparql: str, *, default_graphs: list[str] | None, named_graphs: list[str] | None, accept: str | None
    ) -> Answer:
        assert self.config.endpoint is not None
        form: list[tuple[str, str]] = [("query", sparql)]
        form += [("default-graph-uri", g) for g in default_graphs or ()]
        form += [("named-graph-uri", g) for g in named_graphs or ()]
        try:
            resp = self.client.post(
                self.config.endpoint,
                content=urlencode(form).encode(),
                headers={
                    "Accept": "application/sparql-results+json, application/n-triples;q=0.9",
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
        except httpx.TimeoutException as exc:
            raise TimeoutError(f"{self.config.endpoint} did not answer within {self.config.time_limit} s") from exc
        except httpx.HTTPError as exc:
            raise EndpointError(self.config.endpoint, str(exc)) from exc
        if resp.status_code == 400:
            raise query_error(resp.text, sparql)
        if resp.status_code >= 300:
            raise EndpointError(self.config.endpoint, resp.text[:300], status=resp.status_code)
        media = resp.headers.get("content-type", "").split(";")[0].strip()
        result: Any
        try:
            if media in ("application/sparql-results+json", "application/json"):
                result = ox.parse_query_results(resp.content, format=ox.QueryResultsFormat.JSON)
            else:
                fmt = ox.RdfFormat.from_media_type(media) or ox.RdfFormat.N_TRIPLES
                result = [q.triple for q in ox.parse(resp.content, format=fmt)]
        except (SyntaxError, ValueError) as exc:
            raise EndpointError(
                self.config.endpoint, f"answered {media or 'no content type'} that is not SPARQL results: {exc}"
            ) from exc
        return serialize_result(result, accept, self.config.row_cap)

    def revision(self) -> int | None:
        return None

    def graph_exists(self, graph: str) -> bool:
        return self.kg.ask(f"ASK {{ GRAPH <{graph}> {{ }} }}")

    def update(self, sparql: str, *, user: str, reason: str, checked: bool = False) -> None:
        kg = KnowledgeGraph(self.kg.store, base=self.config.base, user=user)
        _audited_update(kg, sparql, self.config, reason, checked=checked)

    def close(self) -> None:
        self.client.close()
        self.kg.close()


def make_backend(config: ServerConfig) -> Backend:
    return LocalBackend(config) if config.store else RemoteBackend(config)
