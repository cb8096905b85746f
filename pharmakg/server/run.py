"""Start the endpoint: uvicorn workers under a supervisor, or a child process for notebooks and tests (layer L6).

``serve`` always runs uvicorn's multi-process supervisor, even for one
worker, because a worker that retires after a runaway query (see
:mod:`.app`) must be replaced; the parent holds the listening socket, so
connections wait in its backlog while a replacement starts.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from ..errors import StoreError
from ..store.oxigraph import EmbeddedStore
from .config import ENV_CONFIG, ServerConfig, is_loopback

__all__ = ["RunningServer", "serve", "start"]

log = logging.getLogger("pharmakg.server")


def exposure_warning(config: ServerConfig) -> str | None:
    """The warning to shout when the endpoint listens beyond this machine."""
    if is_loopback(config.host):
        return None
    if not config.writable:
        return (
            f"pharmakg serve listens on {config.host}:{config.port} with no update token: it is read-only, but anyone "
            "who can reach this port can read the whole graph. Bind 127.0.0.1 unless that is what you want."
        )
    return (
        f"pharmakg serve listens on {config.host}:{config.port} and accepts writes with a bearer token sent in clear "
        "text; put it behind TLS (a reverse proxy) before the token leaves this machine."
    )


def serve(config: ServerConfig, *, log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from .app import ENV_SUPERVISED

    if config.store is not None:  # fail here, once, with a clear message rather than in every worker
        EmbeddedStore(config.store, read_only=True).close()
    if config.token_sha256 is not None and not config.token_proxy:
        log.warning(
            "writes with the update token are recorded as user %r (%s): keep the token to that user alone; "
            "give everyone else a token of their own with 'pharmakg user add' and --users",
            config.token_user,
            config.token_role,
        )
    warning = exposure_warning(config)
    if warning:
        banner = "!" * 78
        print(f"{banner}\nWARNING: {warning}\n{banner}", file=sys.stderr, flush=True)
    os.environ[ENV_CONFIG] = config.to_json()
    os.environ[ENV_SUPERVISED] = "1"
    workers = config.workers or os.cpu_count() or 1
    uconfig = uvicorn.Config(
        "pharmakg.server.app:create_app",
        factory=True,
        host=config.host,
        port=config.port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        server_header=False,
        proxy_headers=False,  # the audit records the peer address; X-Forwarded-For must not rewrite it
        timeout_graceful_shutdown=int(config.time_limit) + 1,
        root_path=config.root_path,
    )
    sock = uconfig.bind_socket()
    mode = "read-write (update token set)" if config.writable else "read-only"
    source = config.store or config.endpoint
    print(
        f"pharmakg serve: {source} at http://{config.host}:{sock.getsockname()[1]}/sparql, {mode}, {workers} worker(s)",
        file=sys.stderr,
        flush=True,
    )
    Multiprocess(uconfig, sockets=[sock]).run()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    """A ``pharmakg serve`` child process; stop it with :meth:`stop` or a ``with`` block."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def sparql_url(self) -> str:
        return f"{self.url}/sparql"

    @property
    def store_url(self) -> str:
        return f"{self.url}/store"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.process.poll() is None else f"exited {self.process.returncode}"
        return f"<pharmakg endpoint {self.sparql_url} ({state})>"


def start(
    store: str | Path | None = None,
    *,
    endpoint: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    token_user: str | None = None,
    token_proxy: bool = False,
    workers: int = 1,
    time_limit: float | None = None,
    row_cap: int | None = None,
    extra_args: tuple[str, ...] = (),
    ready_timeout: float = 60.0,
) -> RunningServer:
    """Start ``pharmakg serve`` in a child process and wait until it answers (port 0: a free one).

    ``token`` lets updates in; writes made with it are recorded under ``token_user`` (default:
    this login), or, with ``token_proxy``, under the user the caller names in X-PharmaKG-User.
    """
    if (store is None) == (endpoint is None):
        raise ValueError("give a store folder or an endpoint URL (exactly one)")
    port = port or _free_port(host)
    args = [sys.executable, "-m", "pharmakg"]
    args += ["--store", str(store)] if store is not None else ["--endpoint", str(endpoint)]
    args += ["serve", "--host", host, "--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    if time_limit is not None:
        args += ["--time-limit", str(time_limit)]
    if row_cap is not None:
        args += ["--row-cap", str(row_cap)]
    if token and token_proxy:
        args += ["--token-proxy"]
    elif token and token_user:
        args += ["--token-user", token_user]
    args += list(extra_args)
    env = dict(os.environ)
    env.pop("PHARMAKG_UPDATE_TOKEN", None)
    if token:
        env["PHARMAKG_UPDATE_TOKEN"] = token
    fd, log_name = tempfile.mkstemp(prefix="pharmakg-serve-", suffix=".log")
    process = subprocess.Popen(args, stdout=fd, stderr=fd, env=env)
    os.close(fd)
    server = RunningServer(f"http://{host}:{port}", process, Path(log_name))
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StoreError(f"pharmakg serve exited ({process.returncode}): {server.log().strip()[-2000:]}")
        try:
            if httpx.get(server.sparql_url, timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise StoreError(f"pharmakg serve did not answer within {ready_timeout} s: {server.log().strip()[-2000:]}")
