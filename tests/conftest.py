"""Shared fixtures: one ``kg`` fixture over every backend (memory, disk, remote oxigraph serve)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import pharmakg
from pharmakg.testing import oxigraph_server

DATA = Path(__file__).parent / "data"
MINI = DATA / "mini"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def oxigraph_url() -> Iterator[str]:
    with oxigraph_server() as url:
        yield url


def _clear(url: str) -> None:
    import httpx

    httpx.post(
        url + "/update", content=b"CLEAR ALL", headers={"Content-Type": "application/sparql-update"}
    ).raise_for_status()


@pytest.fixture(params=["memory", "disk", "remote"])
def kg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[pharmakg.KnowledgeGraph]:
    """A fresh, empty KnowledgeGraph on each backend."""
    if request.param == "memory":
        graph = pharmakg.open()
    elif request.param == "disk":
        graph = pharmakg.open(tmp_path / "store")
    else:
        url = request.getfixturevalue("oxigraph_url")
        _clear(url)
        graph = pharmakg.connect(url + "/query", url + "/update")
    with graph:
        yield graph


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A writable copy of the mini bundle, for tests that break it."""
    target = tmp_path / "mini"
    shutil.copytree(MINI, target)
    return target
