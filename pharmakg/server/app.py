"""The SPARQL 1.1 Protocol and Graph Store Protocol over HTTP (Starlette; layer L6).

A thin shell: requests are screened (:mod:`.guard`), run by a backend
(:mod:`.backend`) on a pool of daemon threads, and serialised natively
(:mod:`.formats`). Why threads and worker recycling: pyoxigraph releases the
GIL while it evaluates, so a thread keeps the event loop free for other
clients, but it has no way to cancel a query. When a query outlives the time
limit the client gets a 503 at once and the worker process retires gracefully
(``SIGTERM``: finish what is in flight, accept nothing new) while the
supervisor in :mod:`.run` starts a fresh one; the runaway dies with its
process. An update that outlives the limit stops its process at once, so it
cannot commit after the client was told it did not.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import re
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import pyoxigraph as ox
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.datastructures import QueryParams
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import EndpointError, QueryError, StoreLockedError
from .backend import Backend, make_backend, protected_graphs
from .config import ENV_CONFIG, ServerConfig
from .formats import GRAPH_TYPES, NotAcceptable, RowCapExceeded, negotiate
from .guard import Refusal, check_query

__all__ = ["create_app"]

log = logging.getLogger("pharmakg.server")
T = TypeVar("T")

#: Set by ``pharmakg serve`` in its workers: a timed-out worker may retire, a supervisor replaces it.
ENV_SUPERVISED = "PHARMAKG_SERVE_SUPERVISED"
_FORMATS_NS = "http://www.w3.org/ns/formats/"
#: an update that changes a twin's validation status needs the approver role
_NEEDS_APPROVER = re.compile(r"twinStatus", re.I)


class _DaemonPool:
    """Threads that run blocking store calls; daemon threads, so a runaway never holds up process exit."""

    def __init__(self, threads: int) -> None:
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for i in range(threads):
            threading.Thread(target=self._work, name=f"pharmakg-sparql-{i}", daemon=True).start()

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, fn, args, kwargs))
        return future

    def _work(self) -> None:
        while True:
            loop, future, fn, args, kwargs = self._jobs.get()
            try:
                outcome, error = fn(*args, **kwargs), None
            except BaseException as exc:
                outcome, error = None, exc
            try:
                loop.call_soon_threadsafe(_settle, future, outcome, error)
            except RuntimeError:  # the loop is gone (worker shutting down)
                pass


def _settle(future: asyncio.Future[Any], outcome: Any, error: BaseException | None) -> None:
    if future.done():  # abandoned at the time limit
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(outcome)


def _timed(fn: Callable[..., Any], query: str, default: Any, named: Any, accept: str | None) -> tuple[float, Any]:
    started = time.thread_time()
    answer = fn(query, default_graphs=default, named_graphs=named, accept=accept)
    return time.thread_time() - started, answer


@dataclass(frozen=True)
class _Repeat:
    """A GET answered fast at ``revision``: what to run when it comes again."""

    revision: int
    query: str
    default: list[str] | None
    named: list[str] | None
    accept: str | None


def _accept(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == b"accept":
            return bytes(value)
    return b""


class _FastPath:
    """ASGI wrapper: repeated GETs on /sparql go to :meth:`Endpoint.answer_repeat`, the rest to Starlette."""

    def __init__(self, app: ASGIApp, endpoint: Endpoint) -> None:
        self.app = app
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self.endpoint._fast
            and scope["method"] == "GET"
            and scope["path"].endswith("/sparql")
            and await self.endpoint.answer_repeat(scope, send)
        ):
            return
        await self.app(scope, receive, send)


class _Stopped(Exception):
    """The time limit passed before the store answered."""


def _error(status: int, message: str, headers: dict[str, str] | None = None, **kw: Any) -> PlainTextResponse:
    return PlainTextResponse(message.rstrip() + "\n", status_code=status, headers=headers, **kw)


class Endpoint:
    """Request handlers bound to one configuration and backend."""

    def __init__(self, config: ServerConfig, backend: Backend, *, supervised: bool) -> None:
        self.config = config
        self.backend = backend
        self.supervised = supervised
        self.pool = _DaemonPool(threads=16)
        self.protected = protected_graphs(config.base)
        self._described: dict[tuple[str, str | None], tuple[bytes, str]] = {}
        self._fast: dict[tuple[bytes, bytes], _Repeat] = {}  # (query string, Accept) of GETs answered fast
        self.inline_seconds = config.inline_ms / 1000

    # -- plumbing ----------------------------------------------------------------------
    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        timer = asyncio.timeout(self.config.time_limit)
        try:
            async with timer:
                return await self.pool.submit(fn, *args, **kwargs)
        except TimeoutError:
            if timer.expired():
                raise _Stopped from None
            raise

    def _retire(self, *, at_once: bool) -> None:
        """Stop this worker so the runaway thread dies with it; the supervisor starts a fresh one."""
        if not self.supervised:
            log.warning("a request outlived the time limit; its thread runs on (no supervisor to replace this process)")
            return
        if at_once:
            log.warning("an update outlived the time limit; stopping this worker now")
            os._exit(70)
        log.warning("a query outlived the time limit; this worker retires and is replaced")
        grace = threading.Timer(self.config.time_limit + 5, os._exit, args=(0,))
        grace.daemon = True
        grace.start()
        signal.raise_signal(signal.SIGTERM)

    def _stopped(self, *, update: bool) -> Response:
        if update:
            message = (
                f"the update did not finish within the time limit ({self.config.time_limit:g} s) and was stopped; "
                "its audit record shows whether it committed"
            )
        else:
            message = f"the query did not finish within the time limit ({self.config.time_limit:g} s) and was stopped"
        return _error(503, message, background=BackgroundTask(self._retire, at_once=update))

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.config.max_body:
            raise Refusal(413, f"request body larger than this server's cap of {self.config.max_body} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.config.max_body:
                raise Refusal(413, f"request body larger than this server's cap of {self.config.max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _bearer(self, request: Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def _reader(self, request: Request) -> None:
        """A private endpoint answers queries only to its users (any role)."""
        if not self.config.private:
            return
        token = self._bearer(request)
        if token is None:
            raise Refusal(401, "this endpoint is private: queries need 'Authorization: Bearer <your token>'")
        if self.config.user_of(token) is None:
            raise Refusal(403, "the token is not valid")

    def _writer(self, request: Request, text: str = "") -> tuple[str, str]:
        """(user, reason) for the audit record of a write, once the bearer token and its role check out.

        A token names its user: a per-user token, or the update token, which belongs to one named
        user (``--token-user``). The audit trail records that name, never a header's claim. The one
        exception is a front end that authenticated the person itself and holds the token for the
        purpose (``token_proxy``: the Jupyter extension); it names the person in X-PharmaKG-User.
        """
        if not self.config.writable:
            raise Refusal(403, "this endpoint is read-only: it was started without an update token or authors")
        token = self._bearer(request)
        if token is None:
            raise Refusal(401, "writes need 'Authorization: Bearer <token>'")
        client = request.client.host if request.client else "unknown client"
        reason = request.headers.get("x-pharmakg-reason", "").strip() or "SPARQL update through the endpoint"
        known = self.config.user_of(token)
        if known is not None:
            name, role = known
            if role == "reader":
                raise Refusal(403, f"user {name!r} is a reader: writes need the author or approver role")
            if role != "approver" and _NEEDS_APPROVER.search(text):
                raise Refusal(403, f"user {name!r} is an author: changing a twin's status needs the approver role")
            return f"{name} via SPARQL endpoint ({client})", reason
        if not (self.config.token_proxy and self.config.token_ok(token)):
            raise Refusal(403, "the update token is not valid")
        person = request.headers.get("x-pharmakg-user", "").strip()
        if not person:
            raise Refusal(403, "the front end must name the user it authenticated (X-PharmaKG-User)")
        if _NEEDS_APPROVER.search(text):
            raise Refusal(403, f"user {person!r} writes as an author: changing a twin's status needs the approver role")
        return f"{person} (authenticated by the front end) via SPARQL endpoint ({client})", reason

    # -- /sparql -------------------------------------------------------------------------
    async def sparql(self, request: Request) -> Response:
        try:
            if request.method == "GET":
                params = request.query_params
                if "update" in params:
                    return _error(405, "updates must be POSTed", headers={"Allow": "POST"})
                query = params.get("query")
                if query is None:
                    return self._description(request)
                return await self._query(request, query, params)
            kind, text, params = await self._post(request)
            if kind == "query":
                return await self._query(request, text, params)
            return await self._update(request, text, params)
        except Refusal as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            return _error(exc.status, exc.message, headers=headers)
        except Exception:
            log.exception("internal error on %s %s", request.method, request.url.path)
            return _error(500, "internal error (logged on the server)")

    async def _post(self, request: Request) -> tuple[str, str, QueryParams]:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await self._body(request)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Refusal(400, f"the request body is not UTF-8: {exc}") from None
        if media == "application/sparql-query":
            return "query", text, request.query_params
        if media == "application/sparql-update":
            return "update", text, request.query_params
        if media == "application/x-www-form-urlencoded":
            form = QueryParams(parse_qsl(text, keep_blank_values=True))
            if ("query" in form) == ("update" in form):
                raise Refusal(400, "send exactly one of the form fields 'query' and 'update'")
            return ("query", form["query"], form) if "query" in form else ("update", form["update"], form)
        raise Refusal(
            415,
            "POST a body of type application/sparql-query, application/sparql-update "
            "or application/x-www-form-urlencoded",
        )

    async def _query(self, request: Request, query: str, params: QueryParams) -> Response:
        self._reader(request)
        check_query(query, self.config.service_allowed)
        default = params.getlist("default-graph-uri") or None
        named = params.getlist("named-graph-uri") or None
        accept = request.headers.get("accept")
        revision = self.backend.revision()
        try:
            elapsed, answer = await self.call(_timed, self.backend.query, query, default, named, accept)
        except _Stopped:
            return self._stopped(update=False)
        except QueryError as exc:
            return _error(400, str(exc))
        except NotAcceptable as exc:
            return _error(406, str(exc))
        except RowCapExceeded as exc:
            return _error(422, str(exc))
        except TimeoutError as exc:
            return _error(503, str(exc))
        except EndpointError as exc:
            return _error(502, str(exc))
        if revision is not None and elapsed < self.inline_seconds and request.method == "GET":
            self._remember(request, _Repeat(revision, query, default, named, accept))
        return Response(answer.body, media_type=answer.media_type, headers={"Vary": "Accept"})

    # -- the fast path for repeated requests ----------------------------------------------
    def _remember(self, request: Request, repeat: _Repeat) -> None:
        if self.config.cors_origins:  # CORS headers come from the middleware: no shortcut around it
            return
        if len(self._fast) >= 4096:
            self._fast.clear()
        self._fast[(request.scope["query_string"], _accept(request.scope))] = repeat

    async def answer_repeat(self, scope: Scope, send: Send) -> bool:
        """Answer a repeated GET on the event loop, without Starlette or a thread hop; False: not one.

        A thread hop and the framework cost more than a small query itself. A
        query is deterministic over unchanged data, so a GET whose exact query
        string and Accept header were answered under ``config.inline_ms`` at the
        store's current revision (guards passed, no error) is answered inline
        the next time: it blocks the loop no longer than it did then. New, slow
        or changed-data requests take the full path, with the time limit. Cost is
        the thread's CPU time, so a run that was merely preempted on a busy
        machine does not count as slow."""
        key = (scope["query_string"], _accept(scope))
        repeat = self._fast.get(key)
        if repeat is None or repeat.revision != self.backend.revision():
            return False
        started = time.thread_time()
        try:
            answer = self.backend.query(
                repeat.query, default_graphs=repeat.default, named_graphs=repeat.named, accept=repeat.accept
            )
        except Exception:
            self._fast.pop(key, None)
            return False  # the full path answers, errors included
        if time.thread_time() - started > self.inline_seconds:
            self._fast.pop(key, None)
        headers = [
            (b"content-type", answer.media_type.encode()),
            (b"content-length", str(len(answer.body)).encode()),
            (b"vary", b"Accept"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})
        return True

    async def _update(
        self, request: Request, text: str, params: QueryParams, *, checked: bool = False, created: bool = False
    ) -> Response:
        user, reason = self._writer(request, text)
        if "using-graph-uri" in params or "using-named-graph-uri" in params:
            raise Refusal(400, "using-graph-uri / using-named-graph-uri are not supported; write USING in the update")
        try:
            await self.call(self.backend.update, text, user=user, reason=reason, checked=checked)
        except _Stopped:
            return self._stopped(update=True)
        except QueryError as exc:
            return _error(400, str(exc))
        except StoreLockedError as exc:
            return _error(503, str(exc), headers={"Retry-After": "5"})
        except TimeoutError as exc:
            return _error(503, str(exc))
        except EndpointError as exc:
            return _error(502, str(exc))
        return Response(status_code=201 if created else 204)

    def _description(self, request: Request) -> Response:
        """The SPARQL 1.1 Service Description of this endpoint (a GET without a query)."""
        url = str(request.url).split("?", 1)[0]
        accept = request.headers.get("accept")
        key = (url, accept)
        if key not in self._described:
            try:
                media = negotiate(accept, "graph")
            except NotAcceptable as exc:
                return _error(406, str(exc))
            languages = "sd:SPARQL11Query" + (", sd:SPARQL11Update" if self.config.writable else "")
            formats = ", ".join(
                f"<{_FORMATS_NS}{name}>"
                for name in (
                    "SPARQL_Results_JSON",
                    "SPARQL_Results_XML",
                    "SPARQL_Results_CSV",
                    "SPARQL_Results_TSV",
                    "Turtle",
                    "N-Triples",
                    "JSON-LD",
                    "RDF_XML",
                )
            )
            turtle = (
                "@prefix sd: <http://www.w3.org/ns/sparql-service-description#> .\n"
                f"<{url}#service> a sd:Service ; sd:endpoint <{url}> ;\n"
                f"  sd:supportedLanguage {languages} ;\n"
                f"  sd:resultFormat {formats} ;\n"
                "  sd:feature sd:UnionDefaultGraph ;\n"
                "  sd:defaultDataset [ a sd:Dataset ] .\n"
            )
            triples = [q.triple for q in ox.parse(turtle.encode(), format=ox.RdfFormat.TURTLE)]
            body = ox.serialize(triples, format=GRAPH_TYPES[media]) or b""
            self._described[key] = (body, f"{media}; charset=utf-8")
        body, media_type = self._described[key]
        return Response(body, media_type=media_type, headers={"Vary": "Accept"})

    # -- /store (Graph Store HTTP Protocol) ---------------------------------------------
    async def graph_store(self, request: Request) -> Response:
        params = request.query_params
        try:
            if "default" in params:
                raise Refusal(
                    400, "this server's default graph is the union of its named graphs; address one with ?graph=IRI"
                )
            graph = params.get("graph", "")
            try:
                ox.NamedNode(graph)
            except ValueError:
                raise Refusal(400, f"?graph must be an absolute IRI, not {graph!r}") from None
            if request.method in ("GET", "HEAD"):
                return await self._get_graph(request, graph)
            if graph in self.protected:
                self._writer(request)
                raise Refusal(403, f"<{graph}> is append-only (audit and provenance) and cannot be changed over HTTP")
            if request.method == "DELETE":
                self._writer(request)
                if not await self.call(self.backend.graph_exists, graph):
                    return _error(404, f"no graph <{graph}>")
                return await self._update(request, f"DROP GRAPH <{graph}>", params, checked=True)
            return await self._put_post(request, graph)
        except Refusal as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            return _error(exc.status, exc.message, headers=headers)
        except _Stopped:
            return self._stopped(update=False)
        except Exception:
            log.exception("internal error on %s %s", request.method, request.url.path)
            return _error(500, "internal error (logged on the server)")

    async def _get_graph(self, request: Request, graph: str) -> Response:
        if not await self.call(self.backend.graph_exists, graph):
            return _error(404, f"no graph <{graph}>")
        sparql = f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}"
        response = await self._query(request, sparql, QueryParams())
        if request.method == "HEAD":
            return Response(status_code=response.status_code, headers=dict(response.headers))
        return response

    async def _put_post(self, request: Request, graph: str) -> Response:
        self._writer(request)
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        fmt = ox.RdfFormat.from_media_type(media) if media else None
        if fmt is None or fmt.supports_datasets:
            raise Refusal(415, "send the graph as Turtle, N-Triples, RDF/XML or JSON-LD (with its Content-Type)")
        body = await self._body(request)
        try:
            triples = [q.triple for q in ox.parse(body, format=fmt, base_iri=graph)]
        except SyntaxError as exc:
            raise Refusal(400, f"malformed {fmt.name} body: {exc}") from None
        existed = await self.call(self.backend.graph_exists, graph)
        data = (ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES) or b"").decode("utf-8")
        replace = f"DROP SILENT GRAPH <{graph}> ;\n" if request.method == "PUT" else ""
        text = f"{replace}INSERT DATA {{ GRAPH <{graph}> {{\n{data}}} }}"
        return await self._update(request, text, QueryParams(), checked=True, created=not existed)


def _lifespan(endpoint: Endpoint) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        endpoint.backend.close()

    return lifespan


def create_app(config: ServerConfig | None = None, *, backend: Backend | None = None) -> ASGIApp:
    """The ASGI app; with no arguments it reads the configuration a ``pharmakg serve`` worker was given."""
    if config is None:
        config = ServerConfig.from_json(os.environ[ENV_CONFIG])
    endpoint = Endpoint(config, backend or make_backend(config), supervised=os.environ.get(ENV_SUPERVISED) == "1")
    middleware = []
    if config.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST", "PUT", "DELETE", "HEAD"],
                allow_headers=["Authorization", "Content-Type", "Accept", "X-PharmaKG-Reason", "X-PharmaKG-User"],
            )
        )
    app = Starlette(
        routes=[
            Route("/sparql", endpoint.sparql, methods=["GET", "POST"]),
            Route("/store", endpoint.graph_store, methods=["GET", "HEAD", "PUT", "POST", "DELETE"]),
        ],
        middleware=middleware,
        lifespan=_lifespan(endpoint),
    )
    app.state.endpoint = endpoint
    return _FastPath(app, endpoint)
