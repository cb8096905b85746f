"""Shared fixtures: one ``kg`` fixture over every backend (memory, disk, remote oxigraph serve)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import pharmakg
from pharmakg.testing import oxigraph_server

DATA = Path(__file__).parent / "data"
MINI = DATA / "mini"


def _shared_data() -> Path:
    """../shared/data beside the checkout ($PHARMAKG_SHARED_DATA first, /work/shared/data last); tests skip without it."""
    env = os.environ.get("PHARMAKG_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2] / "shared" / "data", Path("/work/shared/data")]
    return next((c for c in candidates if c.exists()), candidates[0])


SHARED = _shared_data()


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
