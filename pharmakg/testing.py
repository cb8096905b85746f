"""Public test helpers: a real ``oxigraph serve`` process and store comparisons.

Third parties writing a backend or an analysis can reuse them; pharmakg's own
suite does.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

__all__ = ["free_port", "oxigraph_binary", "oxigraph_server"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def oxigraph_binary() -> str:
    found = shutil.which("oxigraph") or str(Path(sys.executable).with_name("oxigraph"))
    if not Path(found).exists():
        raise FileNotFoundError("the 'oxigraph' server is not installed: pip install oxigraph")
    return found


@contextmanager
def oxigraph_server(
    location: str | Path | None = None, *, read_only: bool = False, timeout: float = 20.0
) -> Iterator[str]:
    """Run ``oxigraph serve --union-default-graph`` on a free loopback port; yield its base URL.

    ``read_only`` runs ``serve-read-only`` on an existing RocksDB directory (queries only)."""
    port = free_port()
    if read_only and location is None:
        raise ValueError("serve-read-only needs a location")
    verb = "serve-read-only" if read_only else "serve"
    cmd = [oxigraph_binary(), verb, "--bind", f"127.0.0.1:{port}", "--union-default-graph"]
    if location is not None:
        cmd += ["--location", str(location)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(url + "/query", params={"query": "ASK {}"}, timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"oxigraph serve did not start: {err[:500]}")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
