"""The %%sparql magic in a real IPython shell."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
import rdflib
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import pharmakg

from .conftest import MINI


@pytest.fixture(scope="module")
def shell() -> Iterator[InteractiveShell]:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "pharmakg")
    kg = pharmakg.open()
    kg.load(MINI, reason="test")
    ip.user_ns["kg"] = kg
    yield ip
    kg.close()


def test_select_gives_a_frame_and_o_stores_it(shell: InteractiveShell) -> None:
    out = shell.run_cell_magic(
        "sparql", "-o lots", "SELECT ?id WHERE {\n  ?lot a pkg:MaterialLot ; dcterms:identifier ?id\n} ORDER BY ?id"
    )
    assert isinstance(out, pd.DataFrame) and list(out["id"])[:2] == ["L-API-1", "L-MCC-1"]
    assert shell.user_ns["lots"] is out


def test_ask_construct_and_line_magic(shell: InteractiveShell) -> None:
    assert shell.run_line_magic("sparql", "ASK { ?s a pkg:Batch }") is True
    graph = shell.run_cell_magic("sparql", "-q -o g", "CONSTRUCT WHERE { ?s a pkg:Batch }")
    assert graph is None and isinstance(shell.user_ns["g"], rdflib.Graph) and len(shell.user_ns["g"]) > 0


def test_syntax_error_points_at_the_line(shell: InteractiveShell) -> None:
    with pytest.raises(UsageError) as err:
        shell.run_cell_magic("sparql", "", "SELECT ?x\nWHERE {\n  ?x a pkg:Batch }\n  LIMIT x\n")
    text = str(err.value)
    assert "line 4, column 9" in text and "   4 |   LIMIT x\n" + " " * 15 + "^" in text


def test_kg_choice_and_endpoint(shell: InteractiveShell, oxigraph_url: str) -> None:
    other = pharmakg.open()
    shell.user_ns["other"] = other
    assert shell.run_line_magic("sparql", "--kg other ASK { ?s ?p ?o }") is False
    with pytest.raises(UsageError, match="no KnowledgeGraph"):
        shell.run_line_magic("sparql", "--kg nothing ASK {}")
    assert shell.run_line_magic("sparql", f"--endpoint {oxigraph_url}/query ASK {{}}") is True
    del shell.user_ns["other"]
