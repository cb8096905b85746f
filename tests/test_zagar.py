"""The Žagar & Mihelič tablet data (Scientific Data 2022) as a CSV bundle: pharmakg.demo.zagar_bundle.

Expectations are computed from the source files with pandas, independently of
the mapping code. Loading all 1 005 batches takes ~15 s, so the loads here use
a subset of product codes (the notebook 07_real_tablet_data loads everything).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pharmakg
from pharmakg import IngestError
from pharmakg.demo import zagar_bundle
from pharmakg.trace import trace

from .conftest import SHARED

ZAGAR = SHARED / "tablet-zagar-mihelic"
pytestmark = pytest.mark.skipif(
    not (ZAGAR / "Laboratory.csv").is_file(),
    reason=f"{ZAGAR} is absent (the shared Zagar & Mihelic 2022 tablet data set)",
)
#: product codes loaded here: 3 has the press series; API lot 170 fed batches of 23, 21 and 17 (17 left out on purpose)
CODES = [3, 21, 23]


@pytest.fixture(scope="module")
def lab() -> pd.DataFrame:
    return pd.read_csv(ZAGAR / "Laboratory.csv", sep=";")


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return zagar_bundle(ZAGAR, tmp_path_factory.mktemp("zagar") / "all")


@pytest.fixture(scope="module")
def subset(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[pharmakg.KnowledgeGraph, Path]]:
    folder = tmp_path_factory.mktemp("zagar-subset")
    bundle = zagar_bundle(ZAGAR, folder / "bundle", products=CODES)
    kg = pharmakg.open(folder / "store")
    kg.load(bundle, reason="Zagar & Mihelic, product codes 3, 21, 23")
    yield kg, bundle
    kg.close()


def _csv(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / name, dtype=str, keep_default_na=False)


def test_the_whole_data_set_maps_to_1005_batches_and_295_lots(full: Path, lab: pd.DataFrame) -> None:
    assert len(lab) == 1005 and lab["batch"].is_unique  # one row per batch, as the paper says
    batches, lots, consumption = _csv(full, "batches.csv"), _csv(full, "lots.csv"), _csv(full, "consumption.csv")
    assert sorted(batches["id"], key=int) == [str(b) for b in sorted(lab["batch"])]
    counts = {col: lab[col].nunique() for col in ("api_batch", "smcc_batch", "lactose_batch", "starch_batch")}
    assert counts == {"api_batch": 238, "smcc_batch": 18, "lactose_batch": 22, "starch_batch": 17}
    assert len(lots) == lots["id"].nunique() == 295
    assert lots.groupby("material_id").size().to_dict() == {"API": 238, "LACTOSE": 22, "SMCC": 18, "STARCH": 17}
    assert len(consumption) == 4 * 1005  # every batch names one lot of each of the four materials
    results = _csv(full, "results.csv")
    diss = results[results["attribute_id"] == "Q-DISSOLUTION-MIN"].set_index("batch_id")["value"].astype(float)
    assert len(diss) == 1005
    assert (diss.sort_index() == lab.set_index(lab["batch"].astype(str))["dissolution_min"].sort_index()).all()
    # product code 3's observed NOR of the main compression force: 5th-95th percentile of its batch medians
    process = pd.read_csv(ZAGAR / "Process.csv", sep=";")
    params = _csv(full, "parameters.csv").set_index("id")
    low, high = np.percentile(process.loc[process["code"] == 3, "main_CompForce_median"], [5, 95])
    assert float(params.loc["P3-MAIN", "nor_low"]) == pytest.approx(low, rel=1e-3)
    assert float(params.loc["P3-MAIN", "nor_high"]) == pytest.approx(high, rel=1e-3)
    assert "observed, not registered" in params.loc["P3-MAIN", "nor_basis"]


def test_ids_do_not_depend_on_the_products_chosen(full: Path, subset: tuple[pharmakg.KnowledgeGraph, Path]) -> None:
    _, part = subset
    for name, key in (("results.csv", ["sample_id", "attribute_id"]), ("consumption.csv", ["batch_id", "lot_id"])):
        mine, whole = _csv(part, name), _csv(full, name)
        joined = mine.merge(whole, on=key, how="left", suffixes=("", "_all"), indicator=True)
        assert (joined["_merge"] == "both").all(), name
        for column in (c for c in mine.columns if c not in key):
            assert (joined[column] == joined[column + "_all"]).all(), (name, column)


def test_every_batch_loads_and_conforms(subset: tuple[pharmakg.KnowledgeGraph, Path], lab: pd.DataFrame) -> None:
    kg, _ = subset
    expected = set(lab.loc[lab["code"].isin(CODES), "batch"].astype(str))
    ids = kg.query("SELECT ?id WHERE { ?b a pkg:Batch ; dcterms:identifier ?id }")["id"]
    assert set(ids.astype(str)) == expected and len(ids) == 271
    assert kg.validate(engine="compiled").conforms


def test_api_lot_170_reaches_exactly_its_batches(
    subset: tuple[pharmakg.KnowledgeGraph, Path], lab: pd.DataFrame
) -> None:
    kg, _ = subset
    down = trace(kg, "API-170", direction="down")
    expected = set(lab.loc[(lab["api_batch"] == 170) & lab["code"].isin(CODES), "batch"].astype(str))
    assert expected == {*map(str, range(203, 208)), *map(str, range(392, 397)), *map(str, range(660, 670))}
    assert set(down.batches()["id"]) == expected
    up = trace(kg, "203").lots()
    assert set(up["id"]) == {"API-170", "SMCC-4", "LAC-6", "STA-5"}
    # each distinct test record of the lot is its own sample; the batch's consumption names the one it reports
    samples = kg.query(
        f"SELECT ?batch ?sample WHERE {{ ?c a pkg:MaterialConsumption ; pkg:lot/dcterms:identifier 'API-170' ; "
        f"pkg:batch/dcterms:identifier ?batch ; <{kg.base}property/lot_test_sample> ?sample }}"
    )
    by_sample = samples.groupby("sample")["batch"].agg(lambda b: sorted(b, key=int))
    assert by_sample.to_dict() == {
        "API-170-T1": [str(b) for b in range(203, 208)],
        "API-170-T2": [str(b) for b in range(392, 397)],
        "API-170-T3": [str(b) for b in range(660, 670)],
    }


def test_the_press_series_of_product_3_fits_the_mapped_runs(subset: tuple[pharmakg.KnowledgeGraph, Path]) -> None:
    kg, _ = subset
    tags = pd.DataFrame(
        {
            "tag": ["main_comp", "tbl_fill", "pre_comp"],
            "parameter_id": ["P3-MAIN", "P3-FILL", "P3-PRE"],
            "equipment_id": "PRESS-3",
            "unit": ["kN", "mm", "kN"],
        }
    )
    report = kg.load_series(ZAGAR / "Process" / "3.csv", mapping=tags, timezone="Europe/Ljubljana", reason="press")
    assert report.points == 3 * 53_057 and report.dropped_outside == 0  # every point inside its batch's run
    assert len(kg.series("171", "main_comp")) == 3146


# -- malformed input: the error names the file, line and column ------------------------------------------
def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("Laboratory.csv", "Process.csv", "Normalization.csv"):
        shutil.copy(ZAGAR / name, folder / name)
    return folder


def _edit(path: Path, batch: int, column: str, value: str) -> int:
    """Set one cell of the row of ``batch``; returns the row's line number (header = 1)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    header = lines[0].split(";")
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split(";")
        if cells[0] == str(batch):
            cells[header.index(column)] = value
            lines[number - 1] = ";".join(cells)
            path.write_text("\n".join(lines), encoding="utf-8")
            return number
    raise AssertionError(f"batch {batch} not in {path}")


@pytest.mark.parametrize(
    ("file", "column", "value", "problem"),
    [
        ("Laboratory.csv", "dissolution_min", "7x", "not a number"),
        ("Laboratory.csv", "api_batch", "170b", "not a whole number"),
        ("Laboratory.csv", "code", "", "a required number is missing"),
        ("Laboratory.csv", "start", "may.19", "not a month like 'nov.18'"),
        ("Process.csv", "main_CompForce_median", "6,0", "not a number"),
        ("Process.csv", "Drug release min (%)", "99", "differs from Laboratory.csv column 'dissolution_min'"),
        ("Process.csv", "code", "22", "the product code differs from Laboratory.csv"),
    ],
)
def test_a_malformed_row_names_file_line_and_column(
    tmp_path: Path, file: str, column: str, value: str, problem: str
) -> None:
    data = _copy(tmp_path)
    line = _edit(data / file, 204, column, value)
    with pytest.raises(IngestError) as caught:
        zagar_bundle(data, tmp_path / "bundle")
    err = caught.value
    assert (err.file, err.line, err.column) == (file, line, column)
    assert str(err).startswith(f"{file}, line {line}, column {column!r}: {problem}")
    assert not (tmp_path / "bundle").exists()  # nothing written


def test_a_ragged_or_duplicate_row_names_its_line(tmp_path: Path) -> None:
    data = _copy(tmp_path)
    path = data / "Laboratory.csv"
    lines = path.read_text(encoding="utf-8").split("\n")
    lines.insert(10, lines[4])  # batch 4 again, at line 11
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(
        IngestError, match=r"^Laboratory.csv, line 11, column 'batch': batch appears twice \(first at line 5\)"
    ):
        zagar_bundle(data, tmp_path / "bundle")
    lines[10] = lines[10].rsplit(";", 1)[0]  # one cell short
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(IngestError, match=r"^Laboratory.csv, line 11: has 54 cells but the header has 55"):
        zagar_bundle(data, tmp_path / "bundle")


def test_unknown_product_codes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"no batches of product code\(s\) \[26\]"):
        zagar_bundle(ZAGAR, "unused", products=[3, 26])
