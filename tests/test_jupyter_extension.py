"""The Jupyter server extension: a real ``jupyter server`` process serving the store behind its login."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import pharmakg
from pharmakg.testing import free_port

from .conftest import MINI

pytest.importorskip(
    "pharmakg_jupyter", reason="the extension is installed by `make test` (pip install -e extensions/jupyter)"
)
pytestmark = pytest.mark.remote

JUPYTER_TOKEN = "jupyter-secret"
AUDIT = f"{pharmakg.DEFAULT_BASE}graph/audit"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    store = tmp_path_factory.mktemp("lab") / "store"
    with pharmakg.open(store) as kg:
        kg.load(MINI, reason="test fixture")
    port = free_port()
    log = open(store.parent / "jupyter.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--ServerApp.token={JUPYTER_TOKEN}",
            f"--ServerApp.root_dir={store.parent}",
            "--ServerApp.jpserver_extensions={'pharmakg_jupyter': True}",
            f"--PharmaKGServer.store={store}",
            "--PharmaKGServer.writable=True",
            "--allow-root",
        ],
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/api/status", headers=_auth(), timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (store.parent / "jupyter.log").read_text()
            time.sleep(0.2)
        yield url, store
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def _auth() -> dict[str, str]:
    return {"Authorization": f"token {JUPYTER_TOKEN}"}


def _count(url: str, sparql: str) -> int:
    resp = httpx.get(
        f"{url}/pharmakg/sparql",
        params={"query": sparql},
        headers={**_auth(), "Accept": "application/json"},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    return int(resp.json()["results"]["bindings"][0]["n"]["value"])


def test_the_endpoint_answers_behind_jupyter_login(lab: tuple[str, Path]) -> None:
    url, _ = lab
    assert _count(url, "SELECT (COUNT(*) AS ?n) WHERE { ?l a <https://w3id.org/pharmakg/ontology#MaterialLot> }") == 4
    anonymous = httpx.get(f"{url}/pharmakg/sparql", params={"query": "SELECT * WHERE { ?s ?p ?o }"})
    assert anonymous.status_code in (302, 403) and b"MaterialLot" not in anonymous.content
    wrong = httpx.get(f"{url}/pharmakg/sparql", params={"query": "ASK {}"}, headers={"Authorization": "token nope"})
    assert wrong.status_code in (302, 403)


def test_a_write_from_the_kernel_is_visible_to_the_endpoint(lab: tuple[str, Path]) -> None:
    url, store = lab
    query = "SELECT (COUNT(*) AS ?n) WHERE { <urn:kernel:lot> <urn:p> ?o }"
    assert _count(url, query) == 0
    with pharmakg.open(store) as kg:  # the notebook kernel is the writer
        kg.update("INSERT DATA { GRAPH <urn:kernel> { <urn:kernel:lot> <urn:p> 'held' } }", reason="kernel write")
        assert _count(url, query) == 1


def test_updates_through_jupyter_are_audited_with_the_jupyter_user(lab: tuple[str, Path]) -> None:
    url, _ = lab
    resp = httpx.post(
        f"{url}/pharmakg/sparql",
        content=b"INSERT DATA { GRAPH <urn:ext> { <urn:ext:a> <urn:p> 1 } }",
        headers={**_auth(), "Content-Type": "application/sparql-update", "X-PharmaKG-Reason": "via jupyter"},
        timeout=60,
    )
    assert resp.status_code == 204, resp.text
    users = httpx.get(
        f"{url}/pharmakg/sparql",
        params={
            "query": f"SELECT ?u WHERE {{ GRAPH <{AUDIT}> {{ ?r <https://w3id.org/pharmakg/ontology#reason> 'via jupyter' ; <https://w3id.org/pharmakg/ontology#user> ?u }} }}"
        },
        headers=_auth(),
    ).json()["results"]["bindings"]
    assert len(users) == 1 and users[0]["u"]["value"].startswith("jupyter:")
    assert "(authenticated by the front end) via SPARQL endpoint" in users[0]["u"]["value"]
    protected = httpx.post(
        f"{url}/pharmakg/sparql",
        content=f"CLEAR GRAPH <{AUDIT}>".encode(),
        headers={**_auth(), "Content-Type": "application/sparql-update"},
    )
    assert protected.status_code == 403
