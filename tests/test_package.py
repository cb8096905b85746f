"""The package surface: curated exports, a light import, errors that pickle and name their fields."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pharmakg
from pharmakg.errors import PharmaKGError


def test_all_is_curated_and_resolves() -> None:
    for name in pharmakg.__all__:
        assert hasattr(pharmakg, name), name
    assert sorted(pharmakg.__all__) == sorted(set(pharmakg.__all__))
    import types

    public = {n for n in dir(pharmakg) if not n.startswith("_") and n not in pharmakg.__all__}
    stray = {n for n in public if not isinstance(getattr(pharmakg, n), types.ModuleType)}
    assert stray <= {"annotations", "load_ipython_extension"}  # the hook IPython looks up by name


def test_import_is_light() -> None:
    code = (
        "import sys, pharmakg; heavy = [m for m in ('pandas', 'rdflib', 'scipy', 'ipywidgets', 'starlette', 'httpx', 'pint') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


@pytest.mark.parametrize(
    "cls",
    [pharmakg.IngestError, pharmakg.UnitError, pharmakg.ConflictError, pharmakg.QueryError, pharmakg.NotAStoreError],
)
def test_errors_share_the_root_and_a_builtin(cls: type[Exception]) -> None:
    assert issubclass(cls, PharmaKGError)
    assert issubclass(cls, ValueError | FileNotFoundError)


ids = (
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30)
    .map(str.strip)
    .filter(bool)
)


@settings(max_examples=60, deadline=None)
@given(st.lists(ids, min_size=1, max_size=8, unique=True))
def test_any_business_id_round_trips(tmp_path_factory, names: list[str]) -> None:
    """Whatever characters a lot number holds, it becomes a valid IRI and comes back exactly."""
    import csv

    folder = tmp_path_factory.mktemp("b") / "bundle"
    folder.mkdir()
    with (folder / "materials.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "name", "kind"])
        for n in names:
            w.writerow([n, f"name of {n}", "raw"])
    with pharmakg.open() as kg:
        kg.load(folder, reason="property test")
        got = kg.query("SELECT ?id WHERE { ?m a pkg:Material ; dcterms:identifier ?id }")["id"].tolist()
        assert sorted(got) == sorted(names)
        for n in names:
            assert kg.resolve(n).startswith(kg.base + "material/")
