"""Jupyter server extension: the notebook's store as a SPARQL 1.1 endpoint at ``<base_url>/pharmakg/sparql``.

Once enabled (``make lab`` does it), a running JupyterLab answers the SPARQL
1.1 Protocol at ``<base_url>/pharmakg/sparql`` and the Graph Store Protocol at
``<base_url>/pharmakg/store``, behind Jupyter's own authentication (a
colleague's tool sends ``Authorization: token <jupyter token>``). Configure::

    c.PharmaKGServer.store = "/path/to/store"   # default: $PHARMAKG_STORE
    c.PharmaKGServer.writable = False           # True: logged-in users may update (audited)
    c.PharmaKGServer.time_limit = 60.0

Why a child process rather than handlers inside Jupyter: pyoxigraph cannot
cancel a query, so the endpoint's time limit works by retiring the worker
process that runs a runaway; that must never be the Jupyter server itself. The
extension starts ``pharmakg serve`` on a private loopback port, with a random
update token it never shows, and forwards authenticated requests to it. Writes
are recorded under the Jupyter user who made them (``jupyter:NAME``): the child
trusts that name only from the holder of its private token.

Sharing the folder with the kernel: the kernel may hold the store read-write
(one writer, RocksDB's lock); the endpoint opens it read-only and reopens its
snapshot when the writer's revision file moves, so a write from the kernel is
visible to the very next endpoint query. Updates through the endpoint need the
writer lock: while a kernel holds it they wait up to the time limit and then
answer 503.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from typing import Any

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.application import ExtensionApp
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from traitlets import Bool, Float, Unicode

__all__ = ["PharmaKGServer"]

_FORWARDED = ("Accept", "Content-Type", "X-PharmaKG-Reason")


class SparqlProxy(JupyterHandler):
    """Forwards an authenticated request to the private ``pharmakg serve``."""

    def initialize(self, extension: PharmaKGServer) -> None:
        self.extension = extension

    def check_xsrf_cookie(self) -> None:
        """Browsers' form posts need the XSRF cookie; tools authenticate with a token header instead."""
        if self.request.headers.get("Authorization"):
            return
        super().check_xsrf_cookie()

    @web.authenticated
    async def get(self, path: str) -> None:
        await self._forward(path)

    @web.authenticated
    async def head(self, path: str) -> None:
        await self._forward(path)

    @web.authenticated
    async def post(self, path: str) -> None:
        await self._forward(path)

    @web.authenticated
    async def put(self, path: str) -> None:
        await self._forward(path)

    @web.authenticated
    async def delete(self, path: str) -> None:
        await self._forward(path)

    async def _forward(self, path: str) -> None:
        base = await self.extension.endpoint_url()
        url = f"{base}/{path}" + (f"?{self.request.query}" if self.request.query else "")
        headers = {h: v for h in _FORWARDED if (v := self.request.headers.get(h))}
        if self.request.method not in ("GET", "HEAD") and self.extension.writable:
            headers["Authorization"] = f"Bearer {self.extension.token}"
            user = self.current_user
            headers["X-PharmaKG-User"] = f"jupyter:{getattr(user, 'username', user)}"
        has_body = self.request.method in ("POST", "PUT")
        request = HTTPRequest(
            url,
            method=self.request.method or "GET",
            headers=headers,
            body=self.request.body if has_body else None,
            request_timeout=self.extension.time_limit + 10,
            allow_nonstandard_methods=True,
        )
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        self.set_status(response.code)
        for name in ("Content-Type", "Vary", "Retry-After", "Allow"):
            if name in response.headers:
                self.set_header(name, response.headers[name])
        if response.body and self.request.method != "HEAD":
            self.write(response.body)
        await self.finish()


class PharmaKGServer(ExtensionApp):
    """Serves a pharmakg store over SPARQL inside Jupyter."""

    name = "pharmakg_jupyter"

    store = Unicode("", config=True, help="the on-disk pharmakg store to serve (default: $PHARMAKG_STORE)")
    writable = Bool(False, config=True, help="let logged-in Jupyter users update the store (audited)")
    time_limit = Float(60.0, config=True, help="seconds a query or update may run")

    def initialize_settings(self) -> None:
        self.token = secrets.token_urlsafe(32)
        self._server: Any = None
        self._starting: asyncio.Future[str] | None = None

    def initialize_handlers(self) -> None:
        self.handlers.append((r"/pharmakg/(sparql|store)", SparqlProxy, {"extension": self}))

    def _store_path(self) -> str:
        path = self.store or os.environ.get("PHARMAKG_STORE", "")
        if not path:
            raise web.HTTPError(503, "no store configured: set c.PharmaKGServer.store or $PHARMAKG_STORE")
        return path

    async def endpoint_url(self) -> str:
        """Start the private ``pharmakg serve`` on first use (Jupyter starts fast) and return its URL."""
        if self._server is not None and self._server.process.poll() is None:
            return str(self._server.url)
        if self._starting is None or self._starting.done():
            self._starting = asyncio.ensure_future(asyncio.to_thread(self._start))
        try:
            return await asyncio.shield(self._starting)
        except Exception as exc:
            self._starting = None
            raise web.HTTPError(503, f"the pharmakg endpoint could not start: {exc}") from exc

    def _start(self) -> str:
        from pharmakg.server import start

        self._server = start(
            self._store_path(),
            token=self.token if self.writable else None,
            token_proxy=True,  # Jupyter authenticated the user; the child records the name the proxy gives
            workers=1,
            time_limit=self.time_limit,
        )
        self.log.info("pharmakg: serving %s at <base_url>/pharmakg/sparql", self._store_path())
        return str(self._server.url)

    async def stop_extension(self) -> None:
        if self._server is not None:
            await asyncio.to_thread(self._server.stop)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "pharmakg_jupyter", "app": PharmaKGServer}]
