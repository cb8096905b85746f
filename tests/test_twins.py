"""Twins on a demo plant whose mechanisms are known: fit, store, reload, monitor, explore, query."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pharmakg
from pharmakg.demo import _generate as gen
from pharmakg.demo import build_demo
from pharmakg.errors import PharmaKGWarning
from pharmakg.twins import (
    Degradation,
    FitError,
    FluidBedDrying,
    MissingInputError,
    Port,
    ResponseSurface,
    Twin,
    TwinError,
    TwinUnitError,
    UnknownKindError,
    demo_twin,
    design_space,
    drift,
    fit_twin,
    history,
    predict_batches,
    register_twin,
    scale_up,
    sensitivity,
    twin_from_dict,
    twin_kind,
)
from pharmakg.twins import registry as twin_registry


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[pharmakg.KnowledgeGraph, dict, Path]]:
    folder = tmp_path_factory.mktemp("twins")
    kg = pharmakg.open(folder / "store")
    built = build_demo(kg, batches=300, seed=1, out_dir=folder / "plant")
    truth = json.loads(built.plant.ground_truth.read_text())
    yield kg, truth, folder
    kg.close()


@pytest.fixture(scope="module")
def dryer(plant) -> Twin:
    kg, _, _ = plant
    return fit_twin(kg, demo_twin("drying"))


@pytest.fixture(scope="module")
def saved(plant, dryer) -> Twin:
    kg, _, _ = plant
    return kg.twins.attach("MR-GRAN-UP3-OP1-PH2", dryer, id="TW-DRY", reason="fitted on demo history")


def test_fitting_recovers_the_generators_drying_mechanism(dryer: Twin) -> None:
    fit = dryer.fit_report
    assert fit is not None and fit.n_test >= 30 and fit.excluded > 0
    assert fit.test_r2["LOD"] >= 0.9, fit.to_dict()
    p = dryer.values()
    assert p["Ea"] == pytest.approx(gen._DRY_EA, rel=0.15)
    assert p["n"] == pytest.approx(gen._DRY_N, abs=0.2)
    assert p["b_mcc_water"] == pytest.approx(gen._MCC_LOD, abs=0.05)
    # parameters come back as pint quantities with their units
    assert str(dryer.parameters["Ea"].units) in ("joule / mole", "J/mol")
    assert dryer.parameters["k_ref"].to("1/h").magnitude == pytest.approx(p["k_ref"] * 60)


def test_fitting_recovers_the_compaction_mechanism(plant) -> None:
    kg, _, _ = plant
    press = fit_twin(kg, demo_twin("compaction"))
    assert press.fit_report is not None and press.fit_report.test_r2["hardness"] >= 0.9
    assert press.values()["K"] == pytest.approx(gen._HARD_K, rel=0.25)
    assert press.values()["m"] == pytest.approx(gen._HARD_M, rel=0.25)


def test_a_draft_twin_says_so_and_a_validated_one_does_not(plant, saved: Twin) -> None:
    kg, _, _ = plant
    rows = history(kg, saved).dropna().head(3)
    with pytest.warns(PharmaKGWarning, match="draft"):
        saved.predict(rows)
    with pytest.warns(PharmaKGWarning, match="not validated"):
        frame = predict_batches(kg, saved)
    assert frame.attrs["status"] == "draft"


def test_round_trip_through_turtle_in_a_new_process_gives_identical_predictions(plant, saved: Twin, tmp_path) -> None:
    kg, _, _ = plant
    ttl = tmp_path / "twins.ttl"
    ttl.write_bytes(kg.export(format="ttl", graph=kg.twins.graph))
    rows = history(kg, saved).dropna()
    rows[[p.name for p in saved.inputs]].to_csv(tmp_path / "inputs.csv", index=False)
    expected = saved.predict(rows, warn=False)["LOD"].to_numpy()
    script = f"""
import sys, numpy as np, pandas as pd, pharmakg
kg = pharmakg.open()
kg.load({str(ttl)!r}, reason="import the twin")
twin = kg.twins.load("TW-DRY")
x = pd.read_csv({str(tmp_path / "inputs.csv")!r})
np.save({str(tmp_path / "out.npy")!r}, twin.predict(x, warn=False)["LOD"].to_numpy())
"""
    subprocess.run([sys.executable, "-c", script], check=True)
    got = np.load(tmp_path / "out.npy")
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=0)


def test_versions_chain_and_status_rules(plant, saved: Twin) -> None:
    kg, _, _ = plant
    with pytest.raises(TwinError, match="exists already"):
        kg.twins.attach("MR-GRAN-UP3-OP1-PH2", saved, id="TW-DRY", reason="again")
    v2 = kg.twins.save(fit_twin(kg, saved, holdout=0.25), reason="refit with a bigger test set")
    assert v2.version == 2 and v2.meta.revision_of == saved.iri and v2.status == "draft"
    assert kg.ask(f"ASK {{ <{v2.iri}> prov:wasRevisionOf <{saved.iri}> }}")
    assert kg.twins.load("TW-DRY").version == 2
    assert [t.meta.id for t in kg.twins.of("MR-GRAN-UP3-OP1-PH2")] == ["TW-DRY"]
    with pytest.raises(TwinError, match="cannot become draft"):
        kg.twins.set_status(v2, "draft", reason="no")
    kg.twins.set_status(v2, "retired", reason="superseded")
    assert kg.twins.load("TW-DRY").version == 1, "a retired version is not current"
    with pytest.raises(TwinError, match="cannot become validated"):
        kg.twins.set_status(kg.twins.load("TW-DRY", version=2), "validated", reason="no")
    listed = kg.twins.history_of("TW-DRY")
    assert list(listed["version"]) == [1, 2] and list(listed["status"]) == ["draft", "retired"]
    audit = kg.query(
        "SELECT ?reason WHERE { GRAPH ?g { ?a a pkg:AuditRecord ; pkg:reason ?reason } FILTER(CONTAINS(STR(?g), 'audit')) }"
    )
    assert {"fitted on demo history", "superseded"} <= set(audit["reason"])


def test_twin_graph_conforms_to_the_shapes(plant, saved: Twin) -> None:
    kg, _, _ = plant
    report = kg.validate(engine="compiled")
    assert report.conforms, report


def test_the_drifting_dryer_is_flagged_before_its_first_deviation(plant, dryer: Twin) -> None:
    kg, truth, _ = plant
    setting = truth["settings"]["drifting_dryer_sensor"]
    report = drift(kg, dryer)
    assert set(report.alarms["unit"]) == {setting["unit_id"]}, report.alarms
    alarm = report.first_alarm(setting["unit_id"])
    assert alarm is not None and alarm["direction"] == "low"
    devs = {t["batch_id"] for t in truth["deviations"].values() if t["mechanism"] == "drifting_dryer_sensor"}
    frame = report.to_frame()
    first_dev = frame[frame["batch"].isin(devs)]["start"].min()
    start = pd.Timestamp(setting["episodes"][0]["start"])
    assert start <= alarm["start"] < first_dev
    on_unit = frame[(frame["unit"] == setting["unit_id"]) & (frame["start"] >= alarm["start"])]
    assert (on_unit["start"] < first_dev).sum() >= 5, "flagged several batches before the first deviation"


def test_design_space_is_a_probability_map_with_the_nor_inside(plant, dryer: Twin) -> None:
    kg, _, _ = plant
    ds = design_space(kg, dryer, "T_inlet", "time", grid=21, draws=400)
    assert ds.probability.shape == (21, 21)
    assert ((ds.probability >= 0) & (ds.probability <= 1)).all()
    frame = ds.to_frame()
    centre = frame.iloc[((frame["T_inlet"] - 60) ** 2 + (frame["time"] - 45) ** 2).idxmin()]
    assert centre["probability"] > 0.95, "the target settings meet the LOD spec"
    # hot and long over-dries below the 1.0 % limit
    assert frame.loc[frame["T_inlet"].idxmax(), "probability"] <= centre["probability"]
    assert ds.probability[-1, -1] < 0.5
    assert ds.ranges.loc["T_inlet", "nor_low"] == 57.0 and ds.ranges.loc["time", "par_high"] == 60.0
    again = design_space(kg, dryer, "T_inlet", "time", grid=21, draws=400)
    np.testing.assert_array_equal(ds.probability, again.probability)


def test_sensitivity_ranks_the_inputs_that_drive_lod(plant, dryer: Twin) -> None:
    kg, _, _ = plant
    s = sensitivity(kg, dryer)
    assert set(s["input"].head(4)) == {"mcc_water", "time", "T_inlet", "airflow"}
    assert s.set_index("input").loc["capacity", "swing"] == 0.0  # every demo dryer has the same capacity
    assert s.set_index("input").loc["T_inlet", "swing"] < 0, "hotter air dries further"


def test_scale_up_to_a_bigger_dryer(plant, dryer: Twin) -> None:
    kg, _, _ = plant
    up = scale_up(kg, dryer, capacity=900.0, adjust="time")
    assert up.unchanged > up.target, "the same airflow on a bigger bed dries less"
    assert up.setting is not None and up.setting > up.reference["time"]
    x = {**up.reference, "capacity": 900.0, "time": up.setting}
    pred = dryer.predict({k: [v] for k, v in x.items()}, warn=False)["LOD"].iloc[0]
    assert pred == pytest.approx(up.target, abs=1e-8)
    assert up.within_par is not None
    with pytest.raises(TwinError, match="not scale-aware"):
        scale_up(kg, demo_twin("compaction"), capacity=1.0, adjust="force")


def test_predictions_inside_sparql(plant, saved: Twin) -> None:
    kg, _, _ = plant
    twin = kg.twins.load("TW-DRY", version=1)
    if twin.status == "draft":
        twin = kg.twins.set_status(twin, "validated", reason="reviewed: residuals and held-out R2 checked")
    results = """?r a pkg:TestResult ; pkg:attribute ?a ; pkg:batch ?b ; pkg:value ?lod .
  ?a dcterms:identifier "Q-GRN-LOD" . ?b dcterms:identifier ?batch ."""
    rows = kg.query(f"SELECT ?batch ?lod ?pred WHERE {{ {results} BIND(pkgf:predict(<{twin.iri}>, ?b) AS ?pred) }}")
    expected = predict_batches(kg, twin).set_index("batch")["LOD_predicted"]
    got = rows.dropna().set_index("batch")["pred"]
    assert len(got) == len(expected)
    np.testing.assert_allclose(got.reindex(expected.index).to_numpy(), expected.to_numpy(), rtol=1e-12)
    far = kg.query(
        f"SELECT ?batch WHERE {{ {results} "
        f"FILTER(ABS(?lod - pkgf:predict(<{twin.iri}>, ?b)) > 3 * pkgf:twinSigma(<{twin.iri}>)) }}"
    )
    resid = predict_batches(kg, twin)
    sigma = twin.fit_report.test_rmse["LOD"]  # type: ignore[union-attr]
    assert set(far["batch"]) == set(resid[resid["LOD_residual"].abs() > 3 * sigma]["batch"])
    unknown = kg.query('SELECT (pkgf:predict("NO-SUCH-TWIN", pkg:x) AS ?p) WHERE {}')
    assert unknown["p"].isna().all()


def test_sparql_predictions_over_http(plant, saved: Twin, tmp_path: Path) -> None:
    """``pharmakg serve`` evaluates the same function for other tools."""
    import httpx

    from pharmakg.testing import free_port

    kg, _, _ = plant
    backup = tmp_path / "copy"
    kg.backup(backup)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pharmakg", "serve", "--store", str(backup), "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}/sparql"
        query = (
            "PREFIX pkgf: <https://w3id.org/pharmakg/function#> PREFIX dcterms: <http://purl.org/dc/terms/> "
            'SELECT ?p WHERE { ?b dcterms:identifier "GB-00010" BIND(pkgf:predict("TW-DRY", ?b) AS ?p) }'
        )
        for _ in range(100):
            try:
                resp = httpx.get(url, params={"query": query}, headers={"Accept": "text/csv"}, timeout=30)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert resp.status_code == 200, resp.text
        value = float(resp.text.splitlines()[1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = predict_batches(kg, kg.twins.load("TW-DRY"), ["GB-00010"])["LOD_predicted"].iloc[0]
        assert value == pytest.approx(expected, rel=1e-12)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# -- bad input: clear errors, nothing written ------------------------------------------------------


def test_missing_inputs_name_the_batch_and_the_port(plant, dryer: Twin) -> None:
    kg, _, _ = plant
    with pytest.raises(MissingInputError, match=r"batch 'TB-00001'.*none of the twin's inputs"):
        predict_batches(kg, dryer, ["TB-00001"])  # a tablet batch: no drying record
    with pytest.raises(TwinError, match="no node with business id 'NOPE'"):
        predict_batches(kg, dryer, ["NOPE"])
    with pytest.raises(MissingInputError, match="'moisture0'"):
        dryer.predict({"T_inlet": [60], "airflow": [1200], "time": [45], "capacity": [600], "mcc_water": [4]})


def test_wrong_units_are_refused_before_anything_is_written(plant) -> None:
    kg, _, _ = plant
    before = kg.domain_nquads()
    spec = json.loads(json.dumps(demo_twin("drying").to_dict()))
    spec["inputs"][0]["unit"] = "kg"  # T_inlet bound to a temperature
    twin = twin_from_dict(spec)
    with pytest.raises(TwinUnitError, match=r"T_inlet.*Cel"):
        fit_twin(kg, twin)
    with pytest.raises(TwinUnitError, match="blorb"):
        Port("x", "blorbs per kg")
    assert kg.domain_nquads() == before


def test_an_uninstalled_kind_is_named(saved: Twin) -> None:
    with pytest.raises(UnknownKindError, match=r"'cfd-solver' is not installed.*pharmakg.twins"):
        twin_kind("cfd-solver")
    data = saved.to_dict() | {"kind": "cfd-solver"}
    with pytest.raises(UnknownKindError):
        twin_from_dict(data)


def test_a_fit_that_cannot_determine_its_parameters_fails_clearly() -> None:
    rng = np.random.default_rng(0)
    n = 40
    frame = pd.DataFrame(
        {
            "T_inlet": np.full(n, 60.0),  # never varies: Ea cannot be told from k_ref
            "airflow": rng.uniform(1100, 1300, n),
            "time": rng.uniform(40, 50, n),
            "moisture0": rng.uniform(24, 26, n),
        }
    )
    frame["LOD"] = 2.0 + rng.normal(0, 0.05, n)
    twin = FluidBedDrying.build(
        temperature=Port("T_inlet", "Cel"),
        airflow=Port("airflow", "m3/h"),
        time=Port("time", "min"),
        moisture0=Port("moisture0", "%"),
        output=Port("LOD", "%"),
    )
    with pytest.raises(FitError, match="cannot tell the parameters"):
        twin.fit(frame)
    surface = ResponseSurface.build(inputs=(Port("a", "1"), Port("b", "1")), outputs=(Port("y", "1"),))
    with pytest.raises(FitError, match="cannot determine"):
        surface.fit(pd.DataFrame({"a": [1.0, 2, 3, 4, 5, 6, 7], "b": [1.0] * 7, "y": [1.0, 2, 3, 4, 5, 6, 7]}))
    with pytest.raises(FitError, match="complete rows"):
        twin.fit(frame.head(3))


# -- the other kinds and the registry ---------------------------------------------------------------


def test_response_surface_recovers_a_quadratic() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0, 10, 60), rng.uniform(-5, 5, 60)
    y = 3.0 + 0.5 * a - 2.0 * b + 0.1 * a**2 + 0.3 * a * b
    surface = ResponseSurface.build(inputs=(Port("a", "1"), Port("b", "1")), outputs=(Port("y", "%"),))
    fitted = surface.fit(pd.DataFrame({"a": a, "b": b, "y": y}))
    pred = fitted.predict({"a": [2.0, 7.5], "b": [1.0, -3.0]}, warn=False)["y"].to_numpy()
    truth = [3 + 1 - 2 + 0.4 + 0.6, 3 + 3.75 + 6 + 0.1 * 56.25 - 0.3 * 22.5]
    np.testing.assert_allclose(pred, truth, rtol=1e-9)
    assert fitted.fit_report is not None and fitted.fit_report.r2["y"] == pytest.approx(1.0)


def test_degradation_gives_arrhenius_and_shelf_life() -> None:
    rng = np.random.default_rng(2)
    temp = np.repeat([25.0, 30.0, 40.0], 12)
    months = np.tile(np.arange(12.0), 3) * 2
    k = 0.004 * np.exp(-85000 / 8.314462618 * (1 / (temp + 273.15) - 1 / 298.15))
    assay = 100.2 * np.exp(-k * months) + rng.normal(0, 0.05, len(temp))
    twin = Degradation.build(temperature=Port("T", "Cel"), time=Port("t", "mo"), output=Port("assay", "%"))
    fitted = twin.fit(pd.DataFrame({"T": temp, "t": months, "assay": assay}))
    assert fitted.values()["Ea"] == pytest.approx(85000, rel=0.05)
    life = fitted.shelf_life(25.0, 95.0)
    assert life == pytest.approx(np.log(100.2 / 95.0) / 0.004, rel=0.05)
    with pytest.raises(TwinError, match="between 0 and the initial content"):
        fitted.shelf_life(25.0, 120.0)


def test_drying_simulation_matches_the_closed_form(dryer: Twin) -> None:
    x = {"T_inlet": [58.0, 62.0], "airflow": [1150.0, 1250.0], "time": [45.0, 45.0]}
    x |= {"moisture0": [24.0, 26.0], "capacity": [600.0, 600.0], "mcc_water": [4.0, 5.4]}
    traj = dryer.simulate(x)
    end = traj[traj["time"] == 45.0].sort_values("case")["LOD"].to_numpy()
    np.testing.assert_allclose(end, dryer.predict(x, warn=False)["LOD"].to_numpy(), rtol=1e-7)


class _Toy(Twin):
    equation = "y = a x"

    def evaluate(self, x, p):  # type: ignore[no-untyped-def]
        return {"y": p["a"] * x["x"]}


def test_third_party_kinds_come_from_entry_points(monkeypatch) -> None:
    good = EntryPoint(name="toy-linear", value="tests.test_twins:_Toy", group=twin_registry.ENTRY_POINT_GROUP)
    broken = EntryPoint(name="toy-broken", value="tests.no_such_module:X", group=twin_registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(twin_registry, "entry_points", lambda group: [good, broken])
    monkeypatch.setattr(twin_registry, "_plugins_read", False)
    monkeypatch.setattr(twin_registry, "_KINDS", dict(twin_registry._KINDS))
    with pytest.warns(PharmaKGWarning, match="toy-broken"):
        cls = twin_kind("toy-linear")
    assert cls is _Toy
    with pytest.raises(TwinError, match="already registered"):
        register_twin("compaction")(_Toy)


def test_twin_panel_state_follows_the_api(plant, saved: Twin) -> None:
    from pharmakg.widgets import TwinPanel

    kg, _, _ = plant
    panel = TwinPanel(kg, "MR-GRAN-UP3-OP1-PH2")  # the node the twin hangs on
    assert panel.twin.meta.id == "TW-DRY"
    assert set(panel.sliders) == {p.name for p in panel.twin.inputs}
    assert panel.sliders["T_inlet"].min == 50.0 and panel.sliders["T_inlet"].max == 70.0  # the PAR
    expected = panel.twin.predict({k: [v] for k, v in panel.inputs().items()}, warn=False)["LOD"].iloc[0]
    assert panel.prediction == pytest.approx(expected) and panel.in_spec
    panel.sliders["T_inlet"].value = 70.0
    panel.sliders["time"].value = panel.sliders["time"].max
    assert panel.prediction < expected and "OUTSIDE" in panel.readout.value and not panel.in_spec
    space = panel.show_design_space()
    assert space.probability.shape == (40, 40) and len(panel.space_image.value) > 1000
    report = panel.show_drift()
    assert len(report.alarms) >= 1 and len(panel.drift_image.value) > 1000
    assert "TW-DRY" in panel.card.value


def test_cli_twin_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pharmakg.cli import main

    store = str(tmp_path / "store")
    assert main(["demo", "--batches", "120", "--seed", "2", "--store", store]) == 0
    assert main(["twin", "fit", "TW-DRY", "--preset", "drying", "--reason", "first fit", "--store", store]) == 0
    assert "twin TW-DRY v1 (fluid-bed-drying), status DRAFT" in capsys.readouterr().out
    assert main(["twin", "predict", "TW-DRY", "GB-00010", "--format", "json", "--store", store]) == 0
    out = capsys.readouterr()
    (row,) = json.loads(out.out)
    assert row["batch"] == "GB-00010" and abs(row["LOD"] - row["LOD_predicted"] - row["LOD_residual"]) < 1e-12
    assert "not validated" in out.err
    assert main(["twin", "fit", "TW-DRY", "--store", store]) == 1
    assert "needs --reason" in capsys.readouterr().err
    assert main(["twin", "fit", "TW-DRY", "--reason", "refit", "--store", store]) == 0
    assert "twin TW-DRY v2" in capsys.readouterr().out
    assert main(["twin", "status", "TW-DRY", "--to", "validated", "--reason", "reviewed", "--store", store]) == 0
    assert main(["twin", "list", "--format", "json", "--store", store]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["version"], r["status"]) for r in listed] == [(1, "draft"), (2, "validated")]
    assert main(["twin", "drift", "TW-DRY", "--format", "csv", "--store", store]) == 0
    assert capsys.readouterr().out.startswith("unit,batch,start,statistic")
    assert main(["twin", "show", "NOPE", "--store", store]) == 1
    assert "no twin 'NOPE'" in capsys.readouterr().err


def test_fitting_leaves_the_original_twin_as_it_was() -> None:
    rng = np.random.default_rng(3)
    surface = ResponseSurface.build(inputs=(Port("a", "1"),), outputs=(Port("y", "1"),), order=1)
    first = surface.fit(pd.DataFrame({"a": rng.uniform(0, 1, 20), "y": rng.uniform(0, 1, 20)}))
    before = first.predict({"a": [0.3]}, warn=False)["y"].iloc[0]
    first.fit(pd.DataFrame({"a": rng.uniform(50, 90, 20), "y": rng.uniform(0, 1, 20)}))
    assert first.predict({"a": [0.3]}, warn=False)["y"].iloc[0] == before
    assert surface.settings["centre"] == {"a": 0.0}


def test_root_cause_uses_the_twins_drift_alarm(plant, saved: Twin) -> None:
    from pharmakg.rootcause import investigate

    kg, truth, _ = plant
    setting = truth["settings"]["drifting_dryer_sensor"]
    devs = [d for d, t in truth["deviations"].items() if t["mechanism"] == "drifting_dryer_sensor"]
    found = investigate(kg, devs[0])
    best = found.causes[0]
    assert (best.kind, best.id) == ("equipment", setting["unit_id"]), found.to_frame().head(3)
    twin_evidence = [e for e in best.evidence if e.kind == "twin"]
    assert twin_evidence and "TW-DRY" in twin_evidence[0].text and twin_evidence[0].p < 1e-6


def test_twin_inputs_are_knowledge_links_weighted_by_their_sensitivity(plant, saved: Twin) -> None:
    from pharmakg.rootcause import _knowledge, _links, _twin_links, facts, investigate
    from pharmakg.twins import sensitivity

    kg, _, _ = plant
    lod, lod0, tin = (kg.resolve(x) for x in ("Q-GRN-LOD", "P-DRY-LOD0", "P-DRY-TIN"))
    links = _links(facts(kg), _twin_links(kg))
    shares = sensitivity(kg, saved, output="LOD").set_index("input")["share_of_spec"]
    # the risk assessment has no link from the initial moisture: the twin adds one, weighted by how
    # much of the LOD spec that input moves
    strength, meaning = links[(lod0, lod)]
    assert strength == pytest.approx(min(float(shares["moisture0"]), 1.0)) and 0 < strength < 1
    assert meaning.startswith("input of twin TW-DRY v1") and "spec width" in meaning
    # where the assessment has a link of its own, its severity stands
    assert links[(tin, lod)] == (0.9, "impacts")
    assert lod0 in _knowledge(links, kg.resolve("Q-TAB-HARD"))  # and it chains on through impacts
    # the batch with the wettest start: the initial moisture is a candidate, explained through the twin
    wettest = kg.rows(
        "SELECT ?b WHERE { ?v a pkg:ParameterValue ; pkg:parameter <" + lod0 + "> ; pkg:batch ?b ; pkg:value ?x } "
        "ORDER BY DESC(?x) LIMIT 1"
    )[0]["b"]
    found = investigate(kg, wettest, attribute="Q-GRN-LOD")
    cause = next(c for c in found.causes if c.iri == lod0)
    assert cause.link.startswith("input of twin TW-DRY") and cause.prior == pytest.approx(strength)
    assert (lod0, meaning, lod) in cause.path


def test_a_twin_that_cannot_give_links_is_skipped_not_fatal(plant, saved: Twin, monkeypatch, caplog) -> None:
    from pharmakg.rootcause import _twin_links, investigate

    kg, truth, _ = plant

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the model failed to evaluate")

    monkeypatch.setattr("pharmakg.twins.sensitivity", broken)
    kg.cache.pop("rootcause.twin-links", None)
    try:
        with caplog.at_level("WARNING", logger="pharmakg.rootcause"):
            assert _twin_links(kg) == []
        assert "TW-DRY" in caplog.text and "the model failed to evaluate" in caplog.text
        dev = next(d for d, t in truth["deviations"].items() if t["attribute_id"])
        assert investigate(kg, dev).causes
    finally:
        kg.cache.pop("rootcause.twin-links", None)


def test_a_lone_wild_result_is_an_outlier_not_a_drift() -> None:
    from pharmakg.twins.monitor import _charts

    rng = np.random.default_rng(5)
    z = np.clip(rng.normal(0, 1, 200), -2.5, 2.5)
    lone = z.copy()
    lone[100] = -25.0  # a lab error: one result far off
    charts = _charts(pd.DataFrame({"z": lone}), 0.2, 3.5, 0.5, 6.0, 4.0)
    assert not charts["signal"].any() and charts["outlier"].sum() == 1
    shifted = z.copy()
    shifted[100:] -= 1.5  # a sensor that starts to read wrong: every later batch is off
    charts = _charts(pd.DataFrame({"z": shifted}), 0.2, 3.5, 0.5, 6.0, 4.0)
    first = int(np.flatnonzero(charts["signal"].to_numpy())[0])
    assert 100 <= first <= 115


def _stability_bundle(folder: Path) -> Path:
    """Two finished lots on ICH long-term, intermediate and accelerated conditions, pulled over 24 months."""
    rng = np.random.default_rng(7)
    bundle = folder / "stability"
    bundle.mkdir()
    (bundle / "materials.csv").write_text("id,name,kind\nMAT-TAB,Tablets,drug_product\n")
    (bundle / "lots.csv").write_text("id,material_id\nTL-1,MAT-TAB\nTL-2,MAT-TAB\n")
    (bundle / "quality_attributes.csv").write_text(
        "id,material_id,name,kind,spec_low,spec_high,unit,method\nQ-ASSAY,MAT-TAB,Assay,CQA,95,105,%,HPLC\n"
    )
    rows = ["sample_id,lot_id,attribute_id,value,unit,storage_temperature,storage_humidity,storage_months"]
    for lot in ("TL-1", "TL-2"):
        for temp, rh in ((25.0, 60.0), (30.0, 65.0), (40.0, 75.0)):
            for months in (0, 3, 6, 9, 12, 18, 24):
                k = 0.002 * np.exp(-90000 / 8.314462618 * (1 / (temp + 273.15) - 1 / 298.15))
                value = 100.4 * np.exp(-k * months) + rng.normal(0, 0.08)
                rows.append(f"S-{lot}-{temp:g}-{months},{lot},Q-ASSAY,{value:.2f},%,{temp:g},{rh:g},{months}")
    (bundle / "results.csv").write_text("\n".join(rows) + "\n")
    return bundle


def test_degradation_twin_fitted_on_stability_results_in_the_graph(tmp_path: Path) -> None:
    kg = pharmakg.open()
    kg.load(_stability_bundle(tmp_path), reason="stability study")
    twin = Degradation.build(
        temperature=Port("T", "Cel", via="storage_temperature"),
        time=Port("t", "mo", via="storage_time"),
        output=Port("assay", "%", "Q-ASSAY", "result"),
    )
    rows = history(kg, twin)
    assert len(rows) == 42 and set(rows["batch"]) == {"TL-1", "TL-2"}
    fitted = fit_twin(kg, twin)
    assert fitted.fit_report is not None and fitted.fit_report.test_r2["assay"] > 0.9
    assert fitted.values()["Ea"] == pytest.approx(90000, rel=0.1)
    assert fitted.shelf_life(25.0, 95.0) == pytest.approx(np.log(100.4 / 95.0) / 0.002, rel=0.1)
    saved = kg.twins.attach("MAT-TAB", fitted, id="TW-STAB", reason="stability model")
    assert kg.twins.load("TW-STAB").values() == saved.values()
    mixed = Degradation.build(
        temperature=Port("T", "Cel", "Q-ASSAY", via="result"),
        time=Port("t", "mo", via="storage_time"),
        output=Port("assay", "%", "Q-ASSAY", "result"),
    )
    with pytest.raises(TwinError, match="reads only storage_"):
        history(kg, mixed)


def test_a_stability_value_that_is_not_a_number_is_refused(tmp_path: Path) -> None:
    bundle = _stability_bundle(tmp_path)
    text = (bundle / "results.csv").read_text().splitlines()
    text[3] = text[3].rsplit(",", 1)[0] + ",six"
    (bundle / "results.csv").write_text("\n".join(text) + "\n")
    kg = pharmakg.open()
    with pytest.raises(pharmakg.IngestError, match=r"results.csv, line 4, column 'storage_months'"):
        kg.load(bundle, reason="stability study")
    assert len(kg) == 0
