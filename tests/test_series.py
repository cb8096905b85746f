"""Historian series: Parquet beside the store, one node per batch x tag, batch features as parameter actuals.

Every failure case checks the whole promise: the store's N-Quads (domain graphs
and, where the commit itself fails, audit too) and the series folder's bytes are
exactly as before. The real-data test imports the 10-second tablet-press series
of product 3 (Zagar & Mihelic 2022) against batches built from the same file.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import pharmakg
from pharmakg import ConflictError, IngestError, ReadOnlyStoreError, UnitError
from pharmakg import terms as T
from pharmakg.ingest.series import FEATURES, TagMap, recover_series, verify_series

from .conftest import MINI, SHARED

PRESS_3 = SHARED / "tablet-zagar-mihelic" / "Process" / "3.csv"
START = "2025-02-01T12:00:00+01:00"  # B-001 ran on PRESS-1 from 12:00 to 16:00 (+01:00) in the mini bundle
NOR_LOW, NOR_HIGH = 10.0, 14.0  # P-FORCE in tests/data/mini/parameters.csv


# -- helpers ------------------------------------------------------------------------------------
def _press_frame(n: int = 1441, step: str = "10s") -> pd.DataFrame:
    """A compression-force series on PRESS-1 during B-001, with excursions above and below the NOR."""
    ts = pd.date_range(START, periods=n, freq=step)
    values = 12 + 1.5 * np.sin(np.arange(n) / 40)
    values[100:130] = 14.5
    values[200:210] = 9.5
    return pd.DataFrame({"tag": "FORCE", "timestamp": [t.isoformat() for t in ts], "value": values, "unit": "kN"})


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def _mapping(path: Path, rows: str = "FORCE,P-FORCE,PRESS-1,kN") -> Path:
    path.write_text("tag,parameter_id,equipment_id,unit\n" + rows + "\n", encoding="utf-8")
    return path


def _snapshot(folder: Path) -> dict[str, bytes] | None:
    """Every file under ``folder`` with its bytes (None: the folder does not exist)."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _pv(kg: pharmakg.KnowledgeGraph, batch: str, parameter: str) -> float:
    frame = kg.query(
        f"SELECT ?v WHERE {{ ?x a pkg:ParameterValue ; pkg:batch/dcterms:identifier '{batch}' ; "
        f"pkg:parameter/dcterms:identifier '{parameter}' ; pkg:value ?v }}"
    )
    assert len(frame) == 1, (batch, parameter, frame)
    return float(frame["v"].iloc[0])


@pytest.fixture(scope="module")
def mini_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("series") / "mini-store"
    with pharmakg.open(path) as kg:
        kg.load(MINI, reason="baseline")
    return path


@pytest.fixture
def store(mini_store: Path, tmp_path: Path) -> Path:
    """An on-disk store holding the mini bundle (a copy per test; its series folder is store/series)."""
    path = tmp_path / "store"
    shutil.copytree(mini_store, path, symlinks=True)
    return path


# -- the import ---------------------------------------------------------------------------------
def test_long_csv_makes_one_node_per_batch_and_tag_and_features_as_actuals(store: Path, tmp_path: Path) -> None:
    frame = _press_frame()
    given = frame.assign(value=frame["value"] * 1000, unit="N")  # in newtons: stored in the parameter's kN
    series = _write_csv(given, tmp_path / "press.csv")
    with pharmakg.open(store) as kg:
        before = len(kg)
        report = kg.load_series(series, mapping=_mapping(tmp_path / "map.csv"), reason="historian export")
        assert report.points == len(frame)
        assert len(report.series) == 1 and report.series["status"].tolist() == ["new"]
        nodes = kg.query(
            "SELECT ?n ?tag ?unit ?given ?count ?file ?sha ?s ?e WHERE { ?n a pkg:TimeSeries ; pkg:tag ?tag ; "
            "pkg:unit ?unit ; pkg:unitAsGiven ?given ; pkg:pointCount ?count ; pkg:seriesFile ?file ; pkg:sha256 ?sha ; "
            "pkg:seriesStart ?s ; pkg:seriesEnd ?e ; pkg:batch/dcterms:identifier 'B-001' ; "
            "pkg:equipment/dcterms:identifier 'PRESS-1' ; pkg:parameter/dcterms:identifier 'P-FORCE' }"
        )
        assert len(nodes) == 1
        node = nodes.iloc[0]
        assert (node["tag"], node["unit"], node["given"], int(node["count"])) == ("FORCE", "kN", "N", len(frame))
        assert node["s"] == pd.Timestamp(START) and node["e"] == pd.Timestamp("2025-02-01T16:00:00+01:00")
        parquet = kg.series_dir / node["file"]
        assert parquet == store / "series" / "FORCE" / "B-001.parquet"
        assert hashlib.sha256(parquet.read_bytes()).hexdigest() == node["sha"]
        # the features, against numpy on the values as given (converted back to kN)
        v = frame["value"].to_numpy()
        hours = (pd.to_datetime(frame["timestamp"]) - pd.Timestamp(START)).dt.total_seconds().to_numpy() / 3600
        expected = {
            "mean": v.mean(),
            "min": v.min(),
            "max": v.max(),
            "time_above_nor": (v > NOR_HIGH).sum() * 10 / 60,
            "time_below_nor": (v < NOR_LOW).sum() * 10 / 60,
            "slope": np.polyfit(hours, v, 1)[0],
        }
        assert expected["time_above_nor"] == 5.0 and expected["time_below_nor"] > 0
        for feature, value in expected.items():
            assert _pv(kg, "B-001", f"P-FORCE:{feature}") == pytest.approx(value, rel=1e-9, abs=1e-12), feature
        derived = kg.query(
            "SELECT ?id ?f ?lo ?hi ?u ?crit WHERE { ?p pkg:featureOf/dcterms:identifier 'P-FORCE' ; dcterms:identifier ?id ; "
            "pkg:feature ?f ; pkg:unit ?u ; pkg:criticality ?crit OPTIONAL { ?p pkg:norLow ?lo } OPTIONAL { ?p pkg:norHigh ?hi } }"
        ).set_index("f")
        assert sorted(derived.index) == sorted(FEATURES)
        assert (derived.loc["mean", "lo"], derived.loc["mean", "hi"]) == (NOR_LOW, NOR_HIGH)  # mean/min/max inherit NOR
        assert pd.isna(derived.loc["slope", "lo"]) and derived.loc["slope", "u"] == "kN/h"
        assert derived.loc["time_above_nor", "u"] == "min" and set(derived["crit"]) == {T.CPP}
        # one node per batch x tag, six actuals and six derived parameters: a handful of triples, not one per point
        in_graph = kg.query(f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{report.graph}> {{ ?s ?p ?o }} }}")
        assert report.triples_added == int(in_graph["n"].iloc[0]) < 150
        assert len(kg) > before + report.triples_added  # plus the audit record and the load activity
        audit = kg.query("SELECT ?why WHERE { ?r a pkg:AuditRecord ; pkg:reason ?why }")
        assert "historian export" in set(audit["why"])
        assert kg.validate(engine="compiled").conforms


def test_window_read_reads_only_the_row_groups_it_needs(store: Path, tmp_path: Path) -> None:
    frame = _press_frame(n=4 * 3600 + 1, step="1s")  # 1 s data over the whole run: several row groups
    series = _write_csv(frame, tmp_path / "press.csv")
    with pharmakg.open(store) as kg:
        kg.load_series(series, mapping=_mapping(tmp_path / "map.csv"), reason="1 s export")
        window = kg.series("B-001", "FORCE", "2025-02-01T13:10:00+01:00", "2025-02-01T13:20:00+01:00", verify=True)
        assert len(window) == 601
        assert window["timestamp"].iloc[0] == pd.Timestamp("2025-02-01T12:10:00Z")
        assert window["timestamp"].iloc[-1] == pd.Timestamp("2025-02-01T12:20:00Z")
        np.testing.assert_array_equal(window["value"].to_numpy(), frame["value"].to_numpy()[4200:4801])
        assert window.attrs["unit"] == "kN" and window.attrs["parameter"] == "P-FORCE"
        whole = kg.series("B-001", "FORCE")
        assert len(whole) == len(frame) and whole["timestamp"].is_monotonic_increasing
        across = kg.series(None, "FORCE", end="2025-02-01T12:00:05+01:00")
        assert across["batch"].tolist() == ["B-001"] * 6
        path = kg.series_dir / "FORCE" / "B-001.parquet"
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups >= 4
    assert meta.row_group(0).column(0).statistics.has_min_max
    # the window's filter, as series() builds it, keeps one row group (rows 4096-8191) of the file
    when = pa.scalar(pd.Timestamp("2025-02-01T12:10:00Z").value // 1000, type=pa.timestamp("us", tz="UTC"))
    until = pa.scalar(pd.Timestamp("2025-02-01T12:20:00Z").value // 1000, type=pa.timestamp("us", tz="UTC"))
    (fragment,) = ds.dataset(str(path), format="parquet").get_fragments()
    kept = fragment.split_by_row_group(filter=(ds.field("timestamp") >= when) & (ds.field("timestamp") <= until))
    assert len(kept) == 1 < meta.num_row_groups


def test_identical_reimport_changes_nothing_and_different_points_are_refused(store: Path, tmp_path: Path) -> None:
    frame = _press_frame()
    series = _write_csv(frame, tmp_path / "press.csv")
    mapping = _mapping(tmp_path / "map.csv")
    with pharmakg.open(store) as kg:
        kg.load_series(series, mapping=mapping, reason="first")
        quads, folder = kg.domain_nquads(), _snapshot(kg.series_dir)
        again = kg.load_series(series, mapping=mapping, reason="again")
        assert again.triples_added == 0 and again.series["status"].tolist() == ["unchanged"]
        assert kg.domain_nquads() == quads and _snapshot(kg.series_dir) == folder
        changed = frame.copy()
        changed.loc[700, "value"] = 13.9
        with pytest.raises(ConflictError, match="already holds the series of tag 'FORCE' for batch 'B-001'") as info:
            kg.load_series(_write_csv(changed, tmp_path / "changed.csv"), mapping=mapping, reason="changed")
        assert info.value.file.endswith("changed.csv") and info.value.line == 2
        assert kg.domain_nquads() == quads and _snapshot(kg.series_dir) == folder


def _replace(frame: pd.DataFrame, row: int, column: str, value: object) -> pd.DataFrame:
    out = frame.copy()
    out[column] = out[column].astype(object)
    out.loc[row, column] = value
    return out


# (id, how to break the import, error type, file it names, line, column, words in the message)
Breakage = Callable[[pd.DataFrame, Path], tuple[pd.DataFrame, str]]
BAD: list[tuple[str, Breakage, type[Exception], str, int | None, str | None, str]] = [
    (
        "unparseable timestamp",
        lambda f, _: (_replace(f, 7, "timestamp", "2025-02-01T12:01:1O+01:00"), ""),
        IngestError,
        "press.csv",
        9,
        "timestamp",
        "is not an ISO 8601 date-time",
    ),
    (
        "time without offset",
        lambda f, _: (_replace(f, 3, "timestamp", "2025-02-01 12:00:30"), ""),
        IngestError,
        "press.csv",
        5,
        "timestamp",
        "has no UTC offset",
    ),
    (
        "unknown unit in the file",
        lambda f, _: (_replace(f, 11, "unit", "kNN"), ""),
        UnitError,
        "press.csv",
        13,
        "unit",
        "unknown unit 'kNN'",
    ),
    (
        "unit of the wrong dimension",
        lambda f, _: (f.assign(unit="kg"), ""),
        UnitError,
        "press.csv",
        2,
        "unit",
        "cannot be converted to 'kN'",
    ),
    (
        "unknown unit in the mapping",
        lambda f, _: (f.drop(columns="unit"), "FORCE,P-FORCE,PRESS-1,blorp"),
        UnitError,
        "map.csv",
        2,
        "unit",
        "unknown unit 'blorp'",
    ),
    (
        "a batch that does not exist",
        lambda f, _: (f.assign(batch=["B-001"] * 20 + ["B-999"] * (len(f) - 20)), ""),
        IngestError,
        "press.csv",
        22,
        "batch",
        "refers to batch 'B-999', which is not in the store",
    ),
    (
        "a batch that did not run then",
        lambda f, _: (f.assign(batch=["B-001"] * 20 + ["B-002"] * (len(f) - 20)), ""),
        IngestError,
        "press.csv",
        22,
        "batch",
        "says batch 'B-002', but at 2025-02-01T11:03:20Z equipment 'PRESS-1' was running batch 'B-001'",
    ),
    (
        "a point outside every batch run",
        lambda f, _: (_replace(f, len(f) - 1, "timestamp", "2025-02-01T17:00:00+01:00"), ""),
        IngestError,
        "press.csv",
        1442,
        "timestamp",
        "outside every batch run on equipment 'PRESS-1'",
    ),
    (
        "a tag with no mapping",
        lambda f, _: (_replace(f, 30, "tag", "SPEED"), ""),
        IngestError,
        "press.csv",
        32,
        "tag",
        "tag 'SPEED' has no mapping",
    ),
    (
        "a parameter not in the store",
        lambda f, _: (f, "FORCE,P-NOPE,PRESS-1,kN"),
        IngestError,
        "map.csv",
        2,
        "parameter_id",
        "refers to parameter 'P-NOPE', which is not in the store",
    ),
    (
        "a value that is not a number",
        lambda f, _: (_replace(f, 40, "value", "12.x"), ""),
        IngestError,
        "press.csv",
        42,
        "value",
        "expects a number, got '12.x'",
    ),
    (
        "two values at one time",
        lambda f, _: (_replace(f, 50, "timestamp", f.loc[49, "timestamp"]), ""),
        ConflictError,
        "press.csv",
        52,
        "value",
        "a second value at 2025-02-01T11:08:10Z",
    ),
]


@pytest.mark.parametrize(("case", "break_it", "error", "file", "line", "column", "words"), BAD, ids=[b[0] for b in BAD])
@pytest.mark.parametrize("first", [True, False], ids=["into-empty-folder", "after-an-import"])
def test_bad_input_is_refused_with_file_line_column_and_nothing_changes(
    store: Path,
    tmp_path: Path,
    case: str,
    break_it: Breakage,
    error: type[Exception],
    file: str,
    line: int | None,
    column: str | None,
    words: str,
    first: bool,
) -> None:
    with pharmakg.open(store) as kg:
        if not first:  # a good import of another batch's worth (B-001 on another tag) already there
            other = _press_frame().assign(tag="FORCE-2")
            kg.load_series(
                _write_csv(other, tmp_path / "other.csv"),
                mapping=_mapping(tmp_path / "other-map.csv", "FORCE-2,P-FORCE,PRESS-1,kN"),
                reason="other",
            )
        quads, folder = kg.domain_nquads(), _snapshot(kg.series_dir)
        assert (folder is None) == first
        frame, mapping_row = break_it(_press_frame(), tmp_path)
        series = _write_csv(frame, tmp_path / "press.csv")
        mapping = _mapping(tmp_path / "map.csv", mapping_row or "FORCE,P-FORCE,PRESS-1,kN")
        with pytest.raises(error) as info:
            kg.load_series(series, mapping=mapping, reason=case)
        err = info.value
        assert isinstance(err, IngestError)
        assert Path(err.file).name == file, str(err)
        assert (err.line, err.column) == (line, column), str(err)
        assert words in str(err)
        assert kg.domain_nquads() == quads
        assert _snapshot(kg.series_dir) == folder


def test_line_numbers_count_blank_lines_and_parquet_errors_name_the_row(store: Path, tmp_path: Path) -> None:
    frame = _press_frame()
    text = _write_csv(_replace(frame, 20, "value", "n/a?"), tmp_path / "press.csv").read_text().splitlines()
    (tmp_path / "gaps.csv").write_text("\n".join([*text[:5], "", "", *text[5:]]) + "\n")  # two blank lines
    mapping = _mapping(tmp_path / "map.csv")
    with pharmakg.open(store) as kg:
        with pytest.raises(IngestError) as info:
            kg.load_series(tmp_path / "gaps.csv", mapping=mapping, reason="gaps")
        assert (info.value.line, info.value.column) == (24, "value")  # data row 21 + header + 2 blank lines
        naive = frame.assign(timestamp=pd.to_datetime(frame["timestamp"], utc=True).dt.tz_localize(None))
        naive.to_parquet(tmp_path / "naive.parquet")
        with pytest.raises(IngestError, match="without a time zone") as info:
            kg.load_series(tmp_path / "naive.parquet", mapping=mapping, reason="naive")
        assert (Path(info.value.file).name, info.value.line, info.value.column) == ("naive.parquet", 1, "timestamp")
        _replace(frame, 99, "unit", "kNN").to_parquet(tmp_path / "unit.parquet")
        with pytest.raises(UnitError) as info:
            kg.load_series(tmp_path / "unit.parquet", mapping=mapping, reason="unit")
        assert (info.value.line, info.value.column) == (100, "unit")  # Parquet rows count from 1
        assert _snapshot(kg.series_dir) is None


def test_naive_times_are_read_in_the_zone_given(store: Path, tmp_path: Path) -> None:
    frame = _press_frame()
    frame["timestamp"] = (
        pd.to_datetime(frame["timestamp"]).dt.tz_convert("Europe/Vienna").dt.strftime("%Y-%m-%d %H:%M:%S")
    )
    series = _write_csv(frame, tmp_path / "press.csv")
    with pharmakg.open(store) as kg:
        report = kg.load_series(
            series, mapping=_mapping(tmp_path / "map.csv"), timezone="Europe/Vienna", reason="local"
        )
        assert report.series["start"].iloc[0] == pd.Timestamp(START)
        with pytest.raises(ValueError, match="unknown time zone"):
            kg.load_series(series, mapping=_mapping(tmp_path / "map.csv"), timezone="Mars/Olympus", reason="x")


def test_points_outside_batch_runs_can_be_dropped(store: Path, tmp_path: Path) -> None:
    frame = _press_frame(n=1800)  # runs on for an hour after B-001 left the press
    series = _write_csv(frame, tmp_path / "press.csv")
    with pharmakg.open(store) as kg:
        report = kg.load_series(series, mapping=_mapping(tmp_path / "map.csv"), outside="drop", reason="drop idle")
        assert (report.points, report.dropped_outside) == (1441, 1800 - 1441)
        assert "outside batch runs dropped" in str(report)


def test_a_failed_commit_leaves_store_and_series_folder_as_before(store: Path, tmp_path: Path) -> None:
    series = _write_csv(_press_frame(), tmp_path / "press.csv")
    with pharmakg.open(store) as kg:
        everything = kg.export(format="nq")
    folder = _snapshot(store / "series")
    with pharmakg.open(store, read_only=True) as kg:  # the commit is refused after the Parquet files were staged
        with pytest.raises(ReadOnlyStoreError):
            kg.load_series(series, mapping=_mapping(tmp_path / "map.csv"), reason="refused")
    assert _snapshot(store / "series") == folder is None
    with pharmakg.open(store) as kg:
        assert kg.export(format="nq") == everything


CRASH = """
import os, sys
from pharmakg.kg import KnowledgeGraph
from pharmakg.store.oxigraph import EmbeddedStore

class Dies(EmbeddedStore):
    '''The process is killed just before, or just after, the graph commit.'''

    def add(self, nquads=b"", *, ntriples=b"", graph=None):
        if sys.argv[4] == "after":
            super().add(nquads, ntriples=ntriples, graph=graph)
        os._exit(9)

KnowledgeGraph(Dies(sys.argv[1])).load_series(sys.argv[2], mapping=sys.argv[3], reason="killed")
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_killed_import_is_finished_or_undone_on_next_use(store: Path, tmp_path: Path, when: str) -> None:
    series = _write_csv(_press_frame(), tmp_path / "press.csv")
    mapping = _mapping(tmp_path / "map.csv")
    with pharmakg.open(store) as kg:
        quads = kg.domain_nquads()
    done = subprocess.run([sys.executable, "-c", CRASH, str(store), str(series), str(mapping), when], check=False)
    assert done.returncode == 9
    assert any(p.name.startswith(".staging-") for p in (store / "series").iterdir())  # files staged, not placed
    with pharmakg.open(store) as kg:
        assert recover_series(kg.store, kg.series_dir) == 1
        if when == "before":
            assert kg.domain_nquads() == quads
            assert _snapshot(kg.series_dir) == {}
        else:
            assert len(kg.series("B-001", "FORCE")) == 1441
            assert verify_series(kg.store, kg.series_dir)["status"].tolist() == ["ok"]
            assert not any(p.name.startswith(".staging-") for p in kg.series_dir.iterdir())


def test_wide_parquet_in_memory_store_and_its_temporary_folder(tmp_path: Path) -> None:
    long = _press_frame()
    wide = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(long["timestamp"], utc=True),
            "FORCE": long["value"] * 1000,
            "SPEED": np.where(np.arange(len(long)) % 2 == 0, 60.0, np.nan),  # a tag sampled half as often
            "operator": "jdoe",
        }
    )
    path = tmp_path / "press.parquet"
    wide.to_parquet(path)
    kg = pharmakg.open()
    kg.load(MINI, reason="baseline")
    mapping = {
        "FORCE": {"parameter_id": "P-FORCE", "equipment_id": "PRESS-1", "unit": "N"},
        "SPEED": TagMap("SPEED", "P-DRYTIME", "PRESS-1", "min"),
    }
    report = kg.load_series(path, mapping=mapping, reason="wide")
    assert report.ignored_columns == ("operator",)
    assert (report.points, report.empty_cells) == (1441 + 721, 720)
    assert sorted(report.series["tag"]) == ["FORCE", "SPEED"]
    assert _pv(kg, "B-001", "P-FORCE:max") == pytest.approx(14.5)
    assert _pv(kg, "B-001", "P-DRYTIME:mean") == 60.0
    folder = kg.series_dir
    assert folder.name.startswith("pharmakg-series-") and (folder / "SPEED" / "B-001.parquet").is_file()
    kg.close()
    assert not folder.exists()


def test_remote_store_needs_a_series_folder_and_then_works(oxigraph_url: str, tmp_path: Path) -> None:
    from .conftest import _clear

    _clear(oxigraph_url)
    with pharmakg.connect(oxigraph_url + "/query", oxigraph_url + "/update") as kg:
        with pytest.raises(pharmakg.StoreError, match=r"pass series_dir= to pharmakg\.connect"):
            _ = kg.series_dir
    folder = tmp_path / "remote-series"
    with pharmakg.connect(oxigraph_url + "/query", oxigraph_url + "/update", series_dir=folder) as kg:
        kg.load(MINI, reason="baseline")
        report = kg.load_series(_write_csv(_press_frame(), tmp_path / "p.csv"), mapping=_mapping(tmp_path / "m.csv"))
        assert report.points == 1441 and (folder / "FORCE" / "B-001.parquet").is_file()
        assert len(kg.series("B-001", "FORCE", verify=True)) == 1441


def test_backup_carries_the_series_folder(store: Path, tmp_path: Path) -> None:
    with pharmakg.open(store) as kg:
        kg.load_series(_write_csv(_press_frame(), tmp_path / "p.csv"), mapping=_mapping(tmp_path / "m.csv"), reason="r")
        kg.backup(tmp_path / "backup")
    with pharmakg.open(tmp_path / "backup", read_only=True) as kg:
        assert len(kg.series("B-001", "FORCE", verify=True)) == 1441


def test_a_changed_or_missing_file_is_reported(store: Path, tmp_path: Path) -> None:
    with pharmakg.open(store) as kg:
        kg.load_series(_write_csv(_press_frame(), tmp_path / "p.csv"), mapping=_mapping(tmp_path / "m.csv"), reason="r")
        path = kg.series_dir / "FORCE" / "B-001.parquet"
        path.write_bytes(path.read_bytes()[:-100])  # truncated behind the graph's back
        assert verify_series(kg.store, kg.series_dir)["status"].tolist() == ["changed"]
        with pytest.raises(pharmakg.StoreError, match="does not match the sha256"):
            kg.series("B-001", "FORCE", verify=True)
        with pytest.raises(pharmakg.StoreError, match="cannot be read"):
            kg.series("B-001", "FORCE")
        path.unlink()
        with pytest.raises(pharmakg.StoreError, match="is missing"):
            kg.series("B-001", "FORCE")
        with pytest.raises(KeyError, match="no series for batch 'B-002'"):
            kg.series("B-002", "FORCE")


def test_cli_series_load_and_show(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pharmakg.cli import main

    series = _write_csv(_press_frame(), tmp_path / "press.csv")
    mapping = _mapping(tmp_path / "map.csv")
    assert main(["series", "load", str(series), "--map", str(mapping), "--store", str(store), "--reason", "cli"]) == 0
    assert "1441 points -> 1 series (1 new)" in capsys.readouterr().err
    args = [
        "series",
        "show",
        "B-001",
        "FORCE",
        "--store",
        str(store),
        "--start",
        START,
        "--end",
        "2025-02-01T12:00:20+01:00",
    ]
    assert main([*args, "--format", "json"]) == 0
    rows = pd.read_json(__import__("io").StringIO(capsys.readouterr().out))
    assert len(rows) == 3 and rows["value"].iloc[0] == pytest.approx(12.0)
    assert main([*args, "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "timestamp,value"
    assert main(["series", "show", "B-001", "SPEED", "--store", str(store)]) == 1
    assert "no series of tag 'SPEED' for batch 'B-001'; its tags: FORCE" in capsys.readouterr().err
    bad = _write_csv(_replace(_press_frame(), 3, "value", "x"), tmp_path / "bad.csv")
    assert main(["series", "load", str(bad), "--map", str(mapping), "--store", str(store)]) == 1
    assert "bad.csv, line 5, column 'value': expects a number, got 'x'" in capsys.readouterr().err


def test_series_terms_are_declared_in_the_ontology() -> None:
    import pyoxigraph as ox

    from pharmakg.validate import ONTOLOGY_PATH

    declared = {str(t.subject.value) for t in ox.parse(path=str(ONTOLOGY_PATH), format=ox.RdfFormat.TURTLE)}
    assert set(T.SERIES_TERMS) <= declared


# -- real data: the 10-second tablet-press series of product 3 ---------------------------------------
@pytest.fixture(scope="module")
def press_3() -> pd.DataFrame:
    if not PRESS_3.is_file():
        pytest.skip(reason=f"{PRESS_3} is absent (the shared Zagar & Mihelic data set)")
    frame = pd.read_csv(PRESS_3, sep=";")
    frame["time"] = pd.to_datetime(frame["timestamp"]).dt.tz_localize("Europe/Ljubljana")
    return frame


def _press_3_bundle(frame: pd.DataFrame, folder: Path) -> Path:
    """Batches of product 3 with their press runs (first to last point of each batch), CPPs with NORs."""
    folder.mkdir()
    runs = frame.groupby("batch")["time"].agg(["min", "max"])
    (folder / "equipment.csv").write_text(
        "id,name,level,parent_id,equipment_class\nSITE,Site,Site,,\nPRESS-3,Tablet press,Unit,SITE,tablet_press\n"
    )
    (folder / "materials.csv").write_text("id,name,kind\nP3,Product 3,drug_product\n")
    (folder / "recipes.csv").write_text("id,name,type,product_id\nMR-3,Product 3,master,P3\n")
    (folder / "recipe_steps.csv").write_text(
        "recipe_id,step_id,parent_step_id,level,name,equipment_class,seq\n"
        "MR-3,UP-COMP,,UnitProcedure,Compression,tablet_press,1\n"
    )
    (folder / "parameters.csv").write_text(
        "id,recipe_id,step_id,name,criticality,target,nor_low,nor_high,par_low,par_high,unit\n"
        "P-MAIN,MR-3,UP-COMP,Main compression force,CPP,6,5,7,4,8,kN\n"
        "P-FILL,MR-3,UP-COMP,Fill depth,CPP,6.6,6,7,5.5,7.5,mm\n"
        "P-PRE,MR-3,UP-COMP,Pre-compression force,non-critical,,,,,,kN\n"
    )
    (folder / "quality_attributes.csv").write_text(
        "id,material_id,name,kind,spec_low,spec_high,unit\nDISS,P3,Dissolution,CQA,80,,%\n"
    )
    (folder / "impacts.csv").write_text(
        "source_id,cqa_id,severity,rationale\nP-MAIN,DISS,7,Harder tablets dissolve slower\n"
    )
    iso = [t.isoformat() for t in runs["min"]], [t.isoformat() for t in runs["max"]]
    ids = runs.index.astype(str)
    pd.DataFrame({"id": ids, "product_id": "P3", "start": iso[0], "end": iso[1]}).to_csv(
        folder / "batches.csv", index=False
    )
    pd.DataFrame(
        {"batch_id": ids, "step_id": "UP-COMP", "equipment_id": "PRESS-3", "start": iso[0], "end": iso[1]}
    ).to_csv(folder / "batch_equipment.csv", index=False)
    return folder


def test_real_tablet_press_series_of_product_3(press_3: pd.DataFrame, tmp_path: Path) -> None:
    bundle = _press_3_bundle(press_3, tmp_path / "product-3")
    mapping = _mapping(
        tmp_path / "press-map.csv", "main_comp,P-MAIN,PRESS-3,kN\ntbl_fill,P-FILL,PRESS-3,mm\npre_comp,P-PRE,PRESS-3,kN"
    )
    with pharmakg.open(tmp_path / "store") as kg:
        kg.load(bundle, reason="product 3 batches")
        report = kg.load_series(PRESS_3, mapping=mapping, timezone="Europe/Ljubljana", reason="press 3 historian")
        batches = sorted(press_3["batch"].astype(str).unique())
        assert len(batches) == 16
        # counts: every cell of the three mapped columns is a point; one node per batch x tag
        assert report.points == 3 * len(press_3) == 159_171
        assert report.empty_cells == report.dropped_outside == report.duplicates == 0
        assert "batch" not in report.ignored_columns and "tbl_speed" in report.ignored_columns
        nodes = kg.query("SELECT ?b ?tag ?n WHERE { ?x a pkg:TimeSeries ; pkg:batch/dcterms:identifier ?b ; "
                         "pkg:tag ?tag ; pkg:pointCount ?n }")  # fmt: skip
        assert len(nodes) == 48 and sorted(set(nodes["b"].astype(str))) == batches
        counts = press_3.groupby("batch").size()
        for b, n in nodes[nodes["tag"] == "main_comp"][["b", "n"]].itertuples(index=False):
            assert int(n) == counts[int(b)]
        # features against pandas on the raw file
        for batch, group in press_3.groupby("batch"):
            force = group["main_comp"].to_numpy()
            hours = (group["time"] - group["time"].iloc[0]).dt.total_seconds().to_numpy() / 3600
            b = str(batch)
            assert _pv(kg, b, "P-MAIN:mean") == pytest.approx(force.mean(), rel=1e-12)
            assert _pv(kg, b, "P-MAIN:min") == force.min() and _pv(kg, b, "P-MAIN:max") == force.max()
            assert _pv(kg, b, "P-MAIN:time_above_nor") == pytest.approx((force > 7).sum() * 10 / 60)
            assert _pv(kg, b, "P-MAIN:time_below_nor") == pytest.approx((force < 5).sum() * 10 / 60)
            assert _pv(kg, b, "P-MAIN:slope") == pytest.approx(np.polyfit(hours, force, 1)[0], rel=1e-6, abs=1e-9)
            assert _pv(kg, b, "P-FILL:mean") == pytest.approx(group["tbl_fill"].mean(), rel=1e-12)
        # no NOR on the pre-compression force: no time-outside-NOR features for it
        pre = kg.query("SELECT ?f WHERE { ?p pkg:featureOf/dcterms:identifier 'P-PRE' ; pkg:feature ?f }")
        assert sorted(pre["f"]) == ["max", "mean", "min", "slope"]
        # a window read: a quarter of an hour of batch 19, as pandas reads it from the file
        window = kg.series("19", "main_comp", "2018-11-19T01:00:00+01:00", "2018-11-19T01:15:00+01:00")
        local = press_3[(press_3["batch"] == 19)].set_index("time")["main_comp"]
        expected = local[pd.Timestamp("2018-11-19T01:00:00+01:00") : pd.Timestamp("2018-11-19T01:15:00+01:00")]
        assert len(window) == len(expected) == 90
        np.testing.assert_array_equal(window["value"].to_numpy(), expected.to_numpy())
        assert (window["timestamp"].to_numpy() == expected.index.tz_convert("UTC").to_numpy()).all()
        # root cause and twins read the features as ordinary parameter actuals
        from pharmakg.rootcause import facts
        from pharmakg.twins.data import _QUERIES

        values = facts(kg).pvalues
        mean_iri = kg.resolve("P-MAIN:mean")
        assert (values["parameter"] == mean_iri).sum() == 16
        params = facts(kg).params.set_index("iri")
        assert (params.loc[mean_iri, "nor_low"], params.loc[mean_iri, "nor_high"]) == (5.0, 7.0)
        assert set(facts(kg).impacts[facts(kg).impacts["src"] == mean_iri]["tgt"]) == {kg.resolve("DISS")}
        history = kg.query(_QUERIES["parameter"].format(src=mean_iri))
        assert len(history) == 16 and set(history["u"]) == {"kN"}
        assert kg.validate(engine="compiled").conforms
