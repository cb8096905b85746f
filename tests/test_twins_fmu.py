"""The 'fmu' twin kind: an FMU built here by pythonfmu, attached, predicted, fitted and carried to another process."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.typing import ArrayLike

pytest.importorskip("fmpy", reason="the 'fmu' twin kind needs fmpy")

from pharmakg.twins.kinds.fmu import FMUTwin  # importing it registers the kind
from pharmakg.twins.model import Param, Port, TwinError, TwinUnitError
from pharmakg.twins.registry import twin_from_dict, twin_kind

SOURCES = Path(__file__).parent / "data" / "fmu"
K = 0.012  # 1/min; the FMU takes 1/h and hours, the twin's ports %, min


@pytest.fixture(autouse=True, scope="module")
def _fmu_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Extract the test FMUs under the test's temp dir, not the machine's shared cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PHARMAKG_FMU_CACHE", str(tmp_path_factory.mktemp("fmu-cache")))
        yield


def build_fmu(builder: str, source: str, out: Path) -> Path:
    """An FMU built from tests/data/fmu/<source> in a separate process (as a user would)."""
    pytest.importorskip(builder, reason=f"the test FMU {source} is built with {builder}")
    proc = subprocess.run(
        [sys.executable, "-m", builder, "build", "-f", str(SOURCES / source), "-d", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return out / source.replace(".py", ".fmu")


@pytest.fixture(scope="module")
def fmu_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Dryer.fmu: FMI 2.0 co-simulation, time in h (undeclared), units declared on the variables."""
    return build_fmu("pythonfmu", "Dryer.py", tmp_path_factory.mktemp("fmu2"))


@pytest.fixture(scope="module")
def fmu3_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Dryer3.fmu: FMI 3.0 with co-simulation and model exchange, its time declared in h."""
    return build_fmu("pythonfmu3", "Dryer3.py", tmp_path_factory.mktemp("fmu3"))


def dryer(fmu_file: Path, **kw: object) -> FMUTwin:
    return FMUTwin.build(
        fmu_file,
        (
            Port("m0", "%", label="initial LOD"),
            Port("E", "%", label="equilibrium LOD"),
            Port("t", "min", label="drying time"),
        ),
        (Port("m", "%", via="result", label="end LOD"),),
        stop_time="t",
        time_unit="h",
        parameters={"k": (K, "1/min")},
        **kw,  # type: ignore[arg-type]
    )


def closed_form(m0: ArrayLike, e: ArrayLike, t: ArrayLike, k: ArrayLike = K) -> np.ndarray:
    m0, e, t, k = (np.asarray(a, dtype=float) for a in (m0, e, t, k))
    return e + (m0 - e) * np.exp(-k * t)


CASES = pd.DataFrame(
    {"m0": [20.0, 25.0, 18.0, 22.0, 20.0], "E": [2.0, 2.5, 1.5, 3.0, 2.0], "t": [30.0, 60.0, 90.0, 45.0, 0.0]}
)


def test_predict_matches_the_closed_form(fmu_file: Path) -> None:
    twin = dryer(fmu_file)
    assert twin_kind("fmu") is FMUTwin and twin.kind == "fmu"
    pred = twin.predict(CASES, warn=False)
    expected = closed_form(CASES.m0.to_numpy(), CASES.E.to_numpy(), CASES.t.to_numpy())
    np.testing.assert_allclose(pred["m"].to_numpy(), expected, rtol=0, atol=1e-6)
    assert pred["m"].iloc[-1] == pytest.approx(20.0, abs=1e-12)  # zero duration: the initial moisture
    # the FMU travels in the settings, with its hash, as JSON-safe data
    s = twin.settings
    assert s["sha256"] == hashlib.sha256(fmu_file.read_bytes()).hexdigest()
    assert base64.b64decode(s["fmu"]) == fmu_file.read_bytes() == twin.fmu_bytes()
    assert s["model_name"] == "Dryer" and s["fmi_version"] == "2.0" and s["fmi_type"] == "CoSimulation"
    json.dumps(twin.to_dict(), allow_nan=False)


def test_unvalidated_prediction_warns(fmu_file: Path) -> None:
    from pharmakg.errors import PharmaKGWarning

    with pytest.warns(PharmaKGWarning, match="not validated"):
        dryer(fmu_file).predict(CASES.head(1))


def test_broadcasting_like_monte_carlo(fmu_file: Path) -> None:
    twin = dryer(fmu_file)
    k = np.array([[0.01], [0.02], [0.03]])  # (draws, 1)
    x = {"m0": np.array([[20.0, 25.0, 20.0]]), "E": np.array([2.0]), "t": np.array([[30.0, 60.0, 30.0]])}
    out = twin.evaluate(x, {"k": k})["m"]
    assert out.shape == (3, 3)
    np.testing.assert_allclose(out, closed_form(x["m0"], x["E"], x["t"], k), rtol=0, atol=1e-6)


def test_round_trip_gives_identical_predictions(fmu_file: Path) -> None:
    twin = dryer(fmu_file)
    data = json.loads(json.dumps(twin.to_dict()))  # as the graph stores settings: JSON text
    again = twin_from_dict(data)
    assert isinstance(again, FMUTwin)
    a = twin.predict(CASES, warn=False)["m"].to_numpy()
    b = again.predict(CASES, warn=False)["m"].to_numpy()
    assert np.array_equal(a, b)


@pytest.mark.slow
def test_another_process_runs_the_twin_from_its_dict_alone(fmu_file: Path, tmp_path: Path) -> None:
    """A fresh interpreter with an empty FMU cache gets the FMU from the twin's settings, not the file."""
    twin = dryer(fmu_file)
    saved = tmp_path / "twin.json"
    saved.write_text(json.dumps({"twin": twin.to_dict(), "cases": CASES.to_dict(orient="list")}))
    script = (
        "import json, sys\n"
        "import pandas as pd\n"
        "import pharmakg.twins.kinds.fmu\n"
        "from pharmakg.twins.registry import twin_from_dict\n"
        "d = json.load(open(sys.argv[1]))\n"
        "pred = twin_from_dict(d['twin']).predict(pd.DataFrame(d['cases']), warn=False)\n"
        "print(json.dumps(pred['m'].tolist()))\n"
    )
    cache = tmp_path / "cache"
    env = {**os.environ, "PHARMAKG_FMU_CACHE": str(cache)}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(saved)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    there = json.loads(proc.stdout.strip().splitlines()[-1])
    assert there == twin.predict(CASES, warn=False)["m"].tolist()  # bit for bit
    assert (cache / twin.settings["sha256"] / "modelDescription.xml").is_file()


def test_negative_duration_is_refused(fmu_file: Path) -> None:
    with pytest.raises(TwinError, match=r"duration 't' must not be negative, got -5.0 min"):
        dryer(fmu_file).predict({"m0": [20.0], "E": [2.0], "t": [-5.0]}, warn=False)


def test_damaged_fmu_is_refused(fmu_file: Path) -> None:
    data = dryer(fmu_file).to_dict()
    raw = bytearray(base64.b64decode(data["settings"]["fmu"]))
    raw[len(raw) // 2] ^= 0xFF
    data["settings"] = {**data["settings"], "fmu": base64.b64encode(bytes(raw)).decode("ascii")}
    with pytest.raises(TwinError, match="does not match its sha256"):
        twin_from_dict(data).predict(CASES, warn=False)


def test_port_the_fmu_lacks_is_named(fmu_file: Path) -> None:
    with pytest.raises(TwinError, match="'humidity'") as err:
        FMUTwin.build(fmu_file, (Port("humidity", "%"),), (Port("m", "%"),), stop_time=1.0)
    assert "offers inputs: E" in str(err.value) and "parameters: m0, k" in str(err.value)


def test_wrong_causality_is_refused(fmu_file: Path) -> None:
    with pytest.raises(TwinError, match="'E' has causality 'input', not output"):
        FMUTwin.build(fmu_file, (Port("m0", "%"),), (Port("E", "%"),), stop_time=1.0)


def test_incompatible_unit_is_refused(fmu_file: Path) -> None:
    with pytest.raises(TwinUnitError, match="'k'"):
        FMUTwin.build(fmu_file, (), (Port("m", "%"),), stop_time=1.0, parameters={"k": (0.5, "kg")})
    with pytest.raises(TwinUnitError, match="'t'"):
        FMUTwin.build(fmu_file, (Port("t", "kg"),), (Port("m", "%"),), stop_time="t")


def test_variables_map_twin_names_to_fmu_names(fmu_file: Path) -> None:
    twin = FMUTwin.build(
        fmu_file,
        (Port("moisture0", "kg/kg"),),
        (Port("lod", "kg/kg"),),
        stop_time=2.0,
        variables={"moisture0": "m0", "lod": "m", "rate": "k"},
        parameters={"rate": Param("rate", 0.3, "1/h", positive=True)},
        start_values={"E": 0.01},
    )
    out = twin.predict({"moisture0": [0.2, 0.3]}, warn=False)["lod"].to_numpy()
    np.testing.assert_allclose(out, closed_form(np.array([0.2, 0.3]), 0.01, 2.0, 0.3), rtol=0, atol=1e-9)
    # a parameter left to the FMU's start value (0.5 1/h in the model description)
    default = FMUTwin.build(fmu_file, (), (Port("m", "kg/kg"),), stop_time=1.0, parameters={"k": (None, "1/min")})
    assert default.params["k"].value == pytest.approx(0.5 / 60)


def test_fit_recovers_the_rate(fmu_file: Path) -> None:
    rng = np.random.default_rng(3)
    data = pd.DataFrame({"m0": rng.uniform(18, 24, 8), "E": rng.uniform(1.5, 3.0, 8), "t": rng.uniform(20, 120, 8)})
    data["m"] = closed_form(data.m0.to_numpy(), data.E.to_numpy(), data.t.to_numpy(), 0.02)
    twin = dryer(fmu_file, output_interval=0.05)  # coarser steps: exact here, and faster
    fitted = twin.fit(data, robust=False)
    assert fitted.params["k"].value == pytest.approx(0.02, rel=1e-6)
    assert fitted.fit_report is not None and fitted.fit_report.r2["m"] > 0.999999


@pytest.mark.parametrize(("fmi_type", "tolerance"), [("CoSimulation", None), ("ModelExchange", 1e-10)])
def test_fmi3_both_interfaces(fmu3_file: Path, fmi_type: str, tolerance: float | None) -> None:
    twin = FMUTwin.build(
        fmu3_file,
        (Port("m0", "%"), Port("E", "%"), Port("t", "min")),
        (Port("m", "%"),),
        stop_time="t",  # the FMU declares its time in h: minutes are converted
        parameters={"k": (K, "1/min")},
        fmi_type=fmi_type,
        relative_tolerance=tolerance,
    )
    s = twin.settings
    assert (s["fmi_version"], s["fmi_type"], s["time_unit"]) == ("3.0", fmi_type, "h")
    pred = twin.predict(CASES, warn=False)["m"].to_numpy()
    expected = closed_form(CASES.m0.to_numpy(), CASES.E.to_numpy(), CASES.t.to_numpy())
    np.testing.assert_allclose(pred, expected, rtol=0, atol=1e-6)  # CVode to 1e-10: ~1e-8 here
    assert np.array_equal(twin_from_dict(twin.to_dict()).predict(CASES, warn=False)["m"].to_numpy(), pred)


def test_saved_in_the_graph_and_loaded_back(fmu_file: Path) -> None:
    """The FMU's bytes go through the store as JSON text in the settings literal and come back intact."""
    import pharmakg

    twin = dryer(fmu_file)
    with pharmakg.open() as kg:
        kg.load(SOURCES.parent / "mini", reason="a plant to hang the twin on")
        saved = kg.twins.attach("OP-DRY", twin, id="TW-FMU-DRY", reason="attach the dryer FMU")
        loaded = kg.twins.load("TW-FMU-DRY")
    assert isinstance(loaded, FMUTwin) and loaded.version == saved.version == 1
    assert loaded.settings == twin.settings
    a = twin.predict(CASES, warn=False)["m"].to_numpy()
    assert np.array_equal(loaded.predict(CASES, warn=False)["m"].to_numpy(), a)
