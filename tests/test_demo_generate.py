"""The demo-plant generator: contract, references, genealogy, causes and ground truth.

The expected columns are written out here rather than taken from the module,
so the test checks the generator against DESIGN.md's table, not against itself.
Plants are small (a few hundred batches) and built once per module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pharmakg.demo._generate import MECHANISMS, DemoPlant, generate_bundle

CONTRACT: dict[str, list[str]] = {
    "equipment.csv": ["id", "name", "level", "parent_id", "equipment_class", "capacity", "unit"],
    "materials.csv": ["id", "name", "kind"],
    "lots.csv": ["id", "material_id", "supplier", "quantity", "unit", "received", "expiry", "status"],
    "lot_attributes.csv": ["lot_id", "attribute_id", "value", "unit"],
    "recipes.csv": ["id", "name", "type", "product_id", "version", "status"],
    "recipe_steps.csv": ["recipe_id", "step_id", "parent_step_id", "level", "name", "equipment_class", "seq"],
    "parameters.csv": [
        "id", "recipe_id", "step_id", "name", "criticality", "target", "nor_low", "nor_high", "par_low", "par_high", "unit",
    ],
    "quality_attributes.csv": ["id", "material_id", "name", "kind", "spec_low", "spec_high", "unit", "method"],
    "impacts.csv": ["source_id", "cqa_id", "severity", "rationale"],
    "batches.csv": ["id", "recipe_id", "product_id", "start", "end", "status"],
    "batch_equipment.csv": ["batch_id", "step_id", "equipment_id", "start", "end"],
    "consumption.csv": ["batch_id", "lot_id", "step_id", "quantity", "unit"],
    "production.csv": ["batch_id", "lot_id", "quantity", "unit"],
    "parameter_values.csv": ["batch_id", "parameter_id", "value", "unit", "time"],
    "results.csv": [
        "sample_id", "batch_id", "lot_id", "attribute_id", "value", "unit", "time", "instrument_id", "analyst", "status",
    ],
    "deviations.csv": [
        "id", "batch_id", "equipment_id", "attribute_id", "category", "severity", "opened", "closed", "description",
        "root_cause", "capa",
    ],
    "equipment_events.csv": ["id", "equipment_id", "type", "time", "description", "outcome"],
    "shipments.csv": ["lot_id", "customer", "market", "quantity", "unit", "shipped"],
}  # fmt: skip

#: date-time columns (ISO 8601 with offset); expiry is a calendar date
TIMES = {
    "lots.csv": ["received"],
    "batches.csv": ["start", "end"],
    "batch_equipment.csv": ["start", "end"],
    "parameter_values.csv": ["time"],
    "results.csv": ["time"],
    "deviations.csv": ["opened", "closed"],
    "equipment_events.csv": ["time"],
    "shipments.csv": ["shipped"],
}
#: every unit the plant may write: UCUM codes (no "rpm", no "degF")
UNITS = set("% N kN Cel K m3/h m3/min min h /min /s /h um kg g g/min kg/h L 1 {tbl}".split())
OFFSET = re.compile(r"T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
N = 300


def _read(bundle: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(bundle / name, dtype=str, keep_default_na=False)


def _truth(plant: DemoPlant) -> dict[str, Any]:
    return json.loads(plant.ground_truth.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def make(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., DemoPlant]:
    """Generate a plant once per distinct argument set (generation is the slow part)."""
    cache: dict[tuple[Any, ...], DemoPlant] = {}

    def _make(batches: int = N, seed: int = 0, mechanisms: tuple[str, ...] | None = None) -> DemoPlant:
        key = (batches, seed, mechanisms)
        if key not in cache:
            folder = tmp_path_factory.mktemp("plant") / f"demo-{batches}-{seed}"
            cache[key] = generate_bundle(folder, batches=batches, seed=seed, mechanisms=mechanisms)
        return cache[key]

    return _make


@pytest.fixture(scope="module")
def plant(make: Callable[..., DemoPlant]) -> DemoPlant:
    return make()


@pytest.fixture(scope="module")
def tables(plant: DemoPlant) -> dict[str, pd.DataFrame]:
    return {name: _read(plant.bundle, name) for name in CONTRACT}


# -- contract ---------------------------------------------------------------------------
def test_every_file_has_exactly_the_contract_columns(plant: DemoPlant) -> None:
    assert sorted(p.name for p in plant.bundle.iterdir()) == sorted(CONTRACT)
    for name, columns in CONTRACT.items():
        header = (plant.bundle / name).read_text(encoding="utf-8").split("\n", 1)[0]
        assert header.split(",") == columns, name


def test_returned_plant_describes_what_was_written(plant: DemoPlant, tables: dict[str, pd.DataFrame]) -> None:
    assert plant.batches == N and plant.seed == 0
    finished = tables["batches.csv"]["product_id"] == "MAT-TAB"
    assert finished.sum() == N
    assert (~finished).sum() > N * 0.8  # granulation batches come on top, about one per finished batch


def test_same_arguments_give_byte_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    a = generate_bundle(tmp_path / "a", batches=60, seed=3)
    b = generate_bundle(tmp_path / "b", batches=60, seed=3)
    c = generate_bundle(tmp_path / "c", batches=60, seed=4)
    for name in CONTRACT:
        assert (a.bundle / name).read_bytes() == (b.bundle / name).read_bytes(), name
    assert a.ground_truth.read_bytes() == b.ground_truth.read_bytes()
    assert any((a.bundle / n).read_bytes() != (c.bundle / n).read_bytes() for n in CONTRACT)


def test_mechanism_order_does_not_matter(tmp_path: Path) -> None:
    a = generate_bundle(tmp_path / "a", batches=40, mechanisms=["granulation_water", "api_particle_size"])
    b = generate_bundle(tmp_path / "b", batches=40, mechanisms=("api_particle_size", "granulation_water"))
    assert all((a.bundle / n).read_bytes() == (b.bundle / n).read_bytes() for n in CONTRACT)


def test_times_are_iso_8601_with_offset(tables: dict[str, pd.DataFrame]) -> None:
    for name, columns in TIMES.items():
        for col in columns:
            cells = tables[name][col]
            cells = cells[cells != ""]
            assert len(cells), (name, col)
            assert cells.str.contains(OFFSET).all(), (name, col, cells[~cells.str.contains(OFFSET)].head())
            parsed = pd.to_datetime(cells, format="ISO8601", utc=True)
            assert parsed.notna().all(), (name, col)
    expiry = pd.to_datetime(tables["lots.csv"]["expiry"], format="ISO8601")
    assert expiry.notna().all()
    batches = tables["batches.csv"]
    start = pd.to_datetime(batches["start"], format="ISO8601", utc=True)
    end = pd.to_datetime(batches["end"], format="ISO8601", utc=True)
    assert (end > start).all()


def test_units_are_ucum_codes(tables: dict[str, pd.DataFrame]) -> None:
    for name, frame in tables.items():
        if "unit" in frame.columns:
            used = set(frame["unit"]) - {""}
            assert used <= UNITS, (name, used - UNITS)


def test_records_are_as_untidy_as_real_ones(tables: dict[str, pd.DataFrame]) -> None:
    cons = tables["consumption.csv"]
    assert (cons["quantity"] == "").any(), "some consumptions carry no quantity"
    assert (cons["unit"] == "g").any() and (cons["unit"] == "kg").any()
    pv = tables["parameter_values.csv"]
    params = tables["parameters.csv"].set_index("id")["unit"]
    other = pv["unit"] != pv["parameter_id"].map(params)
    assert 0 < other.mean() < 0.03, "about 1 % of actuals are written in another compatible unit"


# -- references ---------------------------------------------------------------------------
def test_every_reference_resolves(tables: dict[str, pd.DataFrame]) -> None:
    t = tables
    equipment = set(t["equipment.csv"]["id"])
    materials = set(t["materials.csv"]["id"])
    lots = set(t["lots.csv"]["id"])
    batches = set(t["batches.csv"]["id"])
    recipes = set(t["recipes.csv"]["id"])
    steps = set(t["recipe_steps.csv"]["step_id"])
    params = set(t["parameters.csv"]["id"])
    attrs = set(t["quality_attributes.csv"]["id"])

    def within(values: pd.Series, known: set[str], what: str) -> None:
        values = values[values != ""]
        missing = set(values) - known
        assert not missing, (what, sorted(missing)[:5])

    for name in ("equipment.csv", "materials.csv", "lots.csv", "batches.csv", "recipes.csv", "parameters.csv",
                 "quality_attributes.csv", "deviations.csv", "equipment_events.csv"):  # fmt: skip
        assert t[name]["id"].is_unique, name
    assert len(steps) == len(t["recipe_steps.csv"]), "step ids are unique across recipes"
    within(t["equipment.csv"]["parent_id"], equipment, "equipment parent")
    within(t["lots.csv"]["material_id"], materials, "lot material")
    within(t["lot_attributes.csv"]["lot_id"], lots, "CoA lot")
    within(t["lot_attributes.csv"]["attribute_id"], attrs, "CoA attribute")
    within(t["recipes.csv"]["product_id"], materials, "recipe product")
    within(t["recipe_steps.csv"]["recipe_id"], recipes, "step recipe")
    within(t["recipe_steps.csv"]["parent_step_id"], steps, "parent step")
    within(t["parameters.csv"]["recipe_id"], recipes, "parameter recipe")
    within(t["parameters.csv"]["step_id"], steps, "parameter step")
    within(t["quality_attributes.csv"]["material_id"], materials, "attribute material")
    within(t["impacts.csv"]["source_id"], params | attrs, "impact source")
    within(t["impacts.csv"]["cqa_id"], attrs, "impact target")
    within(t["batches.csv"]["recipe_id"], recipes, "batch recipe")
    within(t["batches.csv"]["product_id"], materials, "batch product")
    for name in ("batch_equipment.csv", "consumption.csv", "production.csv", "parameter_values.csv", "results.csv"):
        within(t[name]["batch_id"], batches, f"{name} batch")
    within(t["batch_equipment.csv"]["step_id"], steps, "equipment use step")
    within(t["batch_equipment.csv"]["equipment_id"], equipment, "equipment use unit")
    within(t["consumption.csv"]["lot_id"], lots, "consumed lot")
    within(t["consumption.csv"]["step_id"], steps, "consumption step")
    within(t["production.csv"]["lot_id"], lots, "produced lot")
    within(t["parameter_values.csv"]["parameter_id"], params, "actual's parameter")
    within(t["results.csv"]["lot_id"], lots, "result lot")
    within(t["results.csv"]["attribute_id"], attrs, "result attribute")
    within(t["results.csv"]["instrument_id"], equipment, "result instrument")
    within(t["deviations.csv"]["batch_id"], batches, "deviation batch")
    within(t["deviations.csv"]["equipment_id"], equipment, "deviation equipment")
    within(t["deviations.csv"]["attribute_id"], attrs, "deviation attribute")
    within(t["equipment_events.csv"]["equipment_id"], equipment, "event equipment")
    within(t["shipments.csv"]["lot_id"], lots, "shipped lot")


def test_keys_the_loader_uses_are_unique(tables: dict[str, pd.DataFrame]) -> None:
    keys = {
        "batch_equipment.csv": ["batch_id", "step_id", "equipment_id"],
        "consumption.csv": ["batch_id", "lot_id", "step_id"],
        "production.csv": ["batch_id", "lot_id"],
        "parameter_values.csv": ["batch_id", "parameter_id", "time"],
        "lot_attributes.csv": ["lot_id", "attribute_id"],
        "results.csv": ["sample_id", "attribute_id"],
        "shipments.csv": ["lot_id", "customer", "shipped"],
        "recipe_steps.csv": ["recipe_id", "step_id"],
        "impacts.csv": ["source_id", "cqa_id"],
    }
    for name, cols in keys.items():
        assert not tables[name].duplicated(cols).any(), name


def test_equipment_hierarchy_follows_isa_88(tables: dict[str, pd.DataFrame]) -> None:
    eq = tables["equipment.csv"].set_index("id")
    order = ["Enterprise", "Site", "Area", "ProcessCell", "Unit", "EquipmentModule", "ControlModule"]
    for eid, row in eq.iterrows():
        if row["parent_id"]:
            assert order.index(eq.at[row["parent_id"], "level"]) < order.index(row["level"]), eid
    units = eq[eq["level"] == "Unit"].groupby("equipment_class").size()
    for cls in ("HighShearGranulator", "FluidBedDryer", "BinBlender", "RotaryTabletPress", "PanCoater"):
        assert 2 <= units[cls] <= 3, cls
    presses = eq.index[eq["equipment_class"] == "RotaryTabletPress"]
    tooling = eq[eq["equipment_class"] == "TabletToolingSet"]
    assert set(tooling["level"]) == {"EquipmentModule"} and set(presses) <= set(tooling["parent_id"])


def test_every_master_recipe_step_has_levels_and_parameters(tables: dict[str, pd.DataFrame]) -> None:
    recipes = tables["recipes.csv"]
    assert set(recipes["type"]) == {"general", "site", "master", "control"}
    per_product = recipes[recipes["type"] != "control"].groupby(["product_id", "type"]).size()
    assert (per_product == 1).all() and len(per_product) == 6
    steps = tables["recipe_steps.csv"]
    assert set(steps["level"]) == {"UnitProcedure", "Operation", "Phase"}
    params = tables["parameters.csv"]
    assert {"CPP", "KPP", "non-critical"} <= set(params["criticality"])
    for _, p in params.iterrows():
        nor_lo, nor_hi, par_lo, par_hi = (float(p[c]) for c in ("nor_low", "nor_high", "par_low", "par_high"))
        assert par_lo <= nor_lo < float(p["target"]) < nor_hi <= par_hi, p["id"]


# -- genealogy ----------------------------------------------------------------------------
def test_genealogy_is_multi_level(tables: dict[str, pd.DataFrame]) -> None:
    lots = tables["lots.csv"].set_index("id")
    cons = tables["consumption.csv"]
    prod = tables["production.csv"]
    made_by = dict(zip(prod["lot_id"], prod["batch_id"], strict=True))
    used_by = cons.groupby("batch_id")["lot_id"].apply(list)
    shipped = tables["shipments.csv"]["lot_id"].iloc[0]
    tablet_batch = made_by[shipped]
    granulate = [lot for lot in used_by[tablet_batch] if lots.at[lot, "material_id"] == "MAT-GRAN"]
    assert granulate, "a finished lot comes from a compression batch that consumed granulate"
    granulation_batch = made_by[granulate[0]]
    raw = used_by[granulation_batch]
    assert lots.loc[raw, "supplier"].ne("").all() and "MAT-API" in set(lots.loc[raw, "material_id"])

    gran_per_comp = cons[cons["lot_id"].str.startswith("GL-")].groupby("batch_id").size()
    comp_per_gran = cons[cons["lot_id"].str.startswith("GL-")].groupby("lot_id").size()
    assert (gran_per_comp == 2).any(), "some compression batches merge two granulate lots"
    assert (comp_per_gran == 2).any(), "some granulate lots are split over two compression batches"
    raw_use = cons[cons["lot_id"].str.startswith("RM-")].groupby("lot_id")["batch_id"].nunique()
    assert raw_use.median() >= 3, "raw lots are split across several batches"
    suppliers = lots[lots["supplier"] != ""].groupby("material_id")["supplier"].nunique()
    assert suppliers.max() >= 2 and len(suppliers) >= 5


# -- deviations and ground truth ----------------------------------------------------------
def test_deviation_rate_is_realistic(tables: dict[str, pd.DataFrame]) -> None:
    dev = tables["deviations.csv"]
    rate = dev["batch_id"].nunique() / len(tables["batches.csv"])
    assert 0.02 <= rate <= 0.10, rate
    assert (dev["root_cause"] == "").all() and (dev["capa"] == "").all()
    assert set(dev["category"]) <= {"OOS", "process", "equipment"}
    assert set(dev["severity"]) <= {"minor", "major", "critical"}


def test_ground_truth_sits_beside_the_bundle_and_covers_every_deviation(
    plant: DemoPlant, tables: dict[str, pd.DataFrame]
) -> None:
    assert plant.ground_truth.parent == plant.bundle.parent
    assert plant.ground_truth.name == f"{plant.bundle.name}-ground-truth.json"
    assert not any("truth" in p.name or p.suffix == ".json" for p in plant.bundle.iterdir())
    truth = _truth(plant)
    dev = tables["deviations.csv"].set_index("id")
    assert set(truth["deviations"]) == set(dev.index)
    known = {
        "supplier": set(tables["lots.csv"]["supplier"]),
        "lot": set(tables["lots.csv"]["id"]),
        "parameter": set(tables["parameters.csv"]["id"]),
        "equipment": set(tables["equipment.csv"]["id"]),
        "event": set(tables["equipment_events.csv"]["id"]),
    }
    for did, entry in truth["deviations"].items():
        assert entry["batch_id"] == dev.at[did, "batch_id"]
        assert (entry["attribute_id"] or "") == dev.at[did, "attribute_id"]
        assert entry["mechanism"] in (*MECHANISMS, None)
        if entry["cause"] is not None:
            assert entry["cause"]["id"] in known[entry["cause"]["kind"]], entry
        if entry["mechanism"] is not None:
            assert entry["cause"] is not None
    assert set(truth["settings"]) == set(MECHANISMS)


def test_the_bundle_holds_no_answers(plant: DemoPlant) -> None:
    text = "\n".join((plant.bundle / n).read_text(encoding="utf-8") for n in CONTRACT).lower()
    for word in (*MECHANISMS, "mechanism", "ground truth", "root cause"):
        assert word not in text, word


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_each_mechanism_shows_when_enabled_and_vanishes_when_disabled(
    make: Callable[..., DemoPlant], mechanism: str
) -> None:
    # alone: it shows, and the four disabled ones leave no trace (over the five
    # parametrisations every mechanism is disabled four times)
    alone = _truth(make(mechanisms=(mechanism,)))
    hits = [d for d in alone["deviations"].values() if d["mechanism"] == mechanism]
    assert hits, f"{mechanism} caused no deviation on a {N}-batch plant"
    assert {d["mechanism"] for d in alone["deviations"].values()} <= {mechanism, None}
    assert set(alone["settings"]) == {mechanism}


def test_default_plant_shows_every_mechanism_and_some_noise(plant: DemoPlant) -> None:
    truth = _truth(plant)
    seen = {d["mechanism"] for d in truth["deviations"].values()}
    assert set(MECHANISMS) <= seen
    assert any(d["mechanism"] is None and d["cause"] is None for d in truth["deviations"].values())
    distractors = truth["distractors"]
    assert distractors["failed_calibrations"] and distractors["out_of_spec_cma_lots"]
    assert distractors["cpp_excursions_on_passing_batches"] and distractors["noncritical_excursions"]


def test_without_mechanisms_only_noise_and_distractors_remain(make: Callable[..., DemoPlant]) -> None:
    truth = _truth(make(mechanisms=()))
    assert truth["deviations"], "random OOS and equipment failures still happen"
    assert all(d["mechanism"] is None for d in truth["deviations"].values())
    oos = [d for d in truth["deviations"].values() if d["attribute_id"]]
    noise = {(n["batch_id"], n["attribute_id"]) for n in truth["distractors"]["noise_oos"]}
    assert {(d["batch_id"], d["attribute_id"]) for d in oos} == noise


def test_switching_mechanisms_off_leaves_the_plant_itself_unchanged(make: Callable[..., DemoPlant]) -> None:
    on, off = make(), make(mechanisms=())
    for name in ("equipment.csv", "recipes.csv", "batch_equipment.csv", "consumption.csv", "production.csv"):
        assert (on.bundle / name).read_bytes() == (off.bundle / name).read_bytes(), name
    pv_on, pv_off = _read(on.bundle, "parameter_values.csv"), _read(off.bundle, "parameter_values.csv")
    changed = pv_on["parameter_id"][pv_on["value"] != pv_off["value"]]
    # over-wetting changes the set point; the wet-mass IPC measures what over-wetting and wet MCC did
    assert set(changed) == {"P-GRN-WATER", "P-DRY-LOD0"}, "no other recorded actual depends on a mechanism"


def test_drift_stays_inside_the_nor_in_the_records(make: Callable[..., DemoPlant]) -> None:
    plant = make()
    truth = _truth(plant)
    dryer = truth["settings"]["drifting_dryer_sensor"]["unit_id"]
    use = _read(plant.bundle, "batch_equipment.csv")
    on_dryer = set(use.loc[use["equipment_id"] == dryer, "batch_id"])
    pv = _read(plant.bundle, "parameter_values.csv")
    tin = pv[(pv["parameter_id"] == "P-DRY-TIN") & pv["batch_id"].isin(on_dryer) & (pv["unit"] == "Cel")]
    assert tin["value"].astype(float).between(57.0, 63.0).all()


# -- API behaviour ------------------------------------------------------------------------
def test_refuses_a_non_empty_folder_but_accepts_an_empty_one(tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        generate_bundle(full, batches=5)
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    plant = generate_bundle(empty, batches=5)
    assert (plant.bundle / "batches.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "empty-ground-truth.json", "full"]


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown mechanism"):
        generate_bundle(tmp_path / "a", batches=5, mechanisms=["wet_supplier"])
    with pytest.raises(ValueError, match="batches"):
        generate_bundle(tmp_path / "b", batches=0)
    with pytest.raises(ValueError, match="seed"):
        generate_bundle(tmp_path / "c", batches=5, seed=-1)
    assert not list(tmp_path.iterdir())


def test_progress_is_reported_up_to_the_total(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    generate_bundle(tmp_path / "p", batches=5, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1][0] == calls[-1][1]
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
