"""Deterministic demo plant: an oral-solid-dose (tablet) plant written as a CSV bundle.

Why this exists: every analysis in pharmakg (genealogy, root cause, twins,
transfer) needs data with *known* answers. Real plant data have no labels, so
this module simulates one plant whose failures have causes we planted, and
writes those causes to a ground-truth JSON file *beside* the bundle, never
inside it: the graph must only hold what a real plant would record.

The plant
---------
ISA-88 physical model Enterprise > Site > Area > ProcessCell > Unit, with
EquipmentModules (tablet tooling sets, spray systems) and ControlModules
(sensors, scales). Each finished batch is made in two stages, so genealogy is
multi-level::

    raw lots -> granulation batch (dispensing, wet granulation, fluid-bed
    drying, blending) -> granulate lot -> compression/coating batch -> finished lot -> shipments

A compression batch consumes one or two granulate lots, and some granulate
lots are split over two compression batches. ``batches`` counts compression
(finished-product) batches; granulation batches come on top (about one per
finished batch: merges and splits roughly cancel).

Causes (``mechanisms``)
-----------------------
- ``wet_excipient_supplier``: the main MCC supplier's lots carry more water
  (CoA ~5.4 % against 4.0 %, still within the 6.0 % limit; the few above it
  are rejected on receipt) -> the granule holds more water at equilibrium
  -> higher granule LOD -> slower dissolution.
- ``drifting_dryer_sensor``: one dryer's inlet-air temperature transmitter
  reads low, increasingly (~t^2 up to 16 Cel); the recorded actual stays near
  target, inside the NOR, while the true temperature rises -> over-dried
  granule (low LOD) -> soft tablets. An unscheduled calibration ends it.
- ``worn_press_tooling``: the tooling set (EquipmentModule) of one press wears
  -> weight variation and content uniformity fail towards the end; press
  alarms "reject rate high" pile up; a maintenance event swaps in a new set.
- ``api_particle_size``: an API lot with d50 inside spec but far from its
  history -> content uniformity failures in the batches that used it.
- ``granulation_water``: occasional over-wetting above the NOR (some above
  the PAR: process deviations) -> hard, slow-dissolving tablets downstream.

Process models (what the twins in pharmakg.twins recover)
---------------------------------------------------------
- Drying (fluid bed): LOD = E + (LOD0 - E) exp(-k t), k = k_ref exp(-Ea/R
  (1/T - 1/T_ref)) (q/q_ref)^n with T the *true* inlet-air temperature, q the
  airflow per kg of dryer capacity, LOD0 the wet-mass moisture (recorded as
  the IPC actual ``P-DRY-LOD0``) and E the equilibrium moisture, which rises
  with the MCC's water. Constants: ``_DRY_K``, ``_DRY_EA``, ``_DRY_N``, ``_MCC_LOD``.
- Compaction: hardness = H_max exp(-c exp(-K F (1 + m (LOD - 2)))) of the
  main compression force F and the granule LOD (Ryshkewitch-Duckworth with a
  Heckel-type porosity), plus 6 N per % of over-wetting.
- Measurement noise is at instrument repeatability (LOD ~0.04 %, hardness
  ~1 N as the mean of 10 tablets), so the inputs explain most of the variance.

Distractors that explain nothing are always present: non-critical parameter
excursions (a few beyond the PAR), CPP excursions inside the PAR on batches
that pass, failed calibrations on uninvolved equipment, out-of-spec CMAs on
attributes that drive nothing, random OOS results and equipment failures.

Ground truth (``<bundle>-ground-truth.json``): per deviation id its
``mechanism`` (or null), ``cause`` (``{"kind": supplier|lot|parameter|
equipment|event, "id": business id as written in the CSVs}`` or null for
noise), ``batch_id`` and ``attribute_id``; the settings of each enabled
mechanism; the distractors; which impacts.csv links are active or inert.

Design notes
------------
- Determinism: every random draw comes from ``numpy.random.default_rng([seed,
  stream])`` with a fixed stream number per concern, and every draw is made
  whether or not a mechanism is enabled. Switching a mechanism off therefore
  changes only that mechanism's effects, not the rest of the plant.
- Quality results follow a small latent model in which the natural variation
  is bounded (clipped noise) so that, with no mechanism enabled, nothing goes
  out of specification except the deliberately injected noise results. Every
  OOS result is therefore attributable: the ground truth names the mechanism
  whose removal moves the value most (leave-one-out).
- Vectorised: numpy/pandas throughout; Python loops run over materials,
  parameters or attributes (tens), never over batches. Equipment scheduling
  uses a max-plus recurrence solved with a cumulative maximum.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
import pandas as pd

__all__ = ["COLUMNS", "MECHANISMS", "DemoPlant", "generate_bundle"]

#: The causal mechanisms this generator can inject, in a fixed order.
MECHANISMS: tuple[str, ...] = (
    "wet_excipient_supplier",
    "drifting_dryer_sensor",
    "worn_press_tooling",
    "api_particle_size",
    "granulation_water",
)

#: The CSV bundle contract v1 (DESIGN.md): file -> exact columns, in order.
COLUMNS: dict[str, tuple[str, ...]] = {
    "equipment.csv": ("id", "name", "level", "parent_id", "equipment_class", "capacity", "unit"),
    "materials.csv": ("id", "name", "kind"),
    "lots.csv": ("id", "material_id", "supplier", "quantity", "unit", "received", "expiry", "status"),
    "lot_attributes.csv": ("lot_id", "attribute_id", "value", "unit"),
    "recipes.csv": ("id", "name", "type", "product_id", "version", "status"),
    "recipe_steps.csv": ("recipe_id", "step_id", "parent_step_id", "level", "name", "equipment_class", "seq"),
    "parameters.csv": (
        "id",
        "recipe_id",
        "step_id",
        "name",
        "criticality",
        "target",
        "nor_low",
        "nor_high",
        "par_low",
        "par_high",
        "unit",
    ),
    "quality_attributes.csv": ("id", "material_id", "name", "kind", "spec_low", "spec_high", "unit", "method"),
    "impacts.csv": ("source_id", "cqa_id", "severity", "rationale"),
    "batches.csv": ("id", "recipe_id", "product_id", "start", "end", "status"),
    "batch_equipment.csv": ("batch_id", "step_id", "equipment_id", "start", "end"),
    "consumption.csv": ("batch_id", "lot_id", "step_id", "quantity", "unit"),
    "production.csv": ("batch_id", "lot_id", "quantity", "unit"),
    "parameter_values.csv": ("batch_id", "parameter_id", "value", "unit", "time"),
    "results.csv": (
        "sample_id",
        "batch_id",
        "lot_id",
        "attribute_id",
        "value",
        "unit",
        "time",
        "instrument_id",
        "analyst",
        "status",
    ),
    "deviations.csv": (
        "id",
        "batch_id",
        "equipment_id",
        "attribute_id",
        "category",
        "severity",
        "opened",
        "closed",
        "description",
        "root_cause",
        "capa",
    ),
    "equipment_events.csv": ("id", "equipment_id", "type", "time", "description", "outcome"),
    "shipments.csv": ("lot_id", "customer", "market", "quantity", "unit", "shipped"),
}


@dataclass(frozen=True)
class DemoPlant:
    """Where a generated plant was written and what it was generated from.

    ``ground_truth`` sits beside the bundle (``<parent>/<name>-ground-truth.json``)
    so that loading the bundle folder can never load the answers with it.
    """

    bundle: Path
    ground_truth: Path
    batches: int
    seed: int


# ---------------------------------------------------------------------------
# time: int64 minutes since T0, written as local time with a fixed +01:00 offset
# ---------------------------------------------------------------------------
_T0 = np.datetime64("2024-01-08T06:00", "m")
_DAY = 1440
_NA = np.iinfo(np.int64).min


_TOD = np.array([f"T{h:02d}:{m:02d}:00+01:00" for h in range(24) for m in range(60)], dtype=object)


def _iso(minutes: np.ndarray) -> np.ndarray:
    """ISO 8601 date-times with offset (``2024-01-08T06:00:00+01:00``); None where missing.

    Built as day text + time-of-day text from two small tables: formatting
    millions of timestamps one by one would dominate the run time.
    """
    m = np.asarray(minutes, dtype=np.int64)
    ok = m != _NA
    since_midnight = np.where(ok, m, 0) + (_T0 - _T0.astype("datetime64[D]")).astype(np.int64)
    day, tod = np.divmod(since_midnight, _DAY)
    lo = int(day.min()) if len(day) else 0
    days = np.datetime_as_string(
        _T0.astype("datetime64[D]") + np.arange(lo, int(day.max()) + 1 if len(day) else lo), unit="D"
    )
    out = days.astype(object)[day - lo] + _TOD[tod]
    out[~ok] = None
    return out


def _isodate(minutes: np.ndarray) -> np.ndarray:
    """ISO 8601 calendar dates (expiry dates are dates, not instants)."""
    m = np.asarray(minutes, dtype=np.int64)
    return np.datetime_as_string(_T0 + m.astype("timedelta64[m]"), unit="D").astype(object)


def _day_shift(minutes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Move times onto the same calendar day between 07:00 and 15:00 (warehouse hours)."""
    since_midnight = 6 * 60  # T0 is 06:00
    day = (np.asarray(minutes, np.int64) + since_midnight) // _DAY
    return day * _DAY - since_midnight + rng.integers(7 * 60, 15 * 60, len(day))


def _ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """Business ids such as ``GB-00042``: fixed prefix, zero-padded running number."""
    digits = np.strings.zfill(np.asarray(numbers, dtype=np.int64).astype(np.str_), width)
    return np.strings.add(prefix, digits).astype(object)


def _width(n: int) -> int:
    return max(5, len(str(int(n))))


# ---------------------------------------------------------------------------
# random streams: one generator per concern so that concerns stay independent
# ---------------------------------------------------------------------------
def _rng(seed: int, stream: str) -> np.random.Generator:
    """A generator for one concern; crc32 (not ``hash``) keeps it stable across processes."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


def _tnorm(rng: np.random.Generator, sd: float, bound: float, size: int) -> np.ndarray:
    """Normal noise clipped to +-bound: natural variation that can never cause an OOS by itself."""
    return np.clip(rng.normal(0.0, sd, size), -bound, bound)


# ---------------------------------------------------------------------------
# master data
# ---------------------------------------------------------------------------
class _CMA(NamedTuple):
    """A critical material attribute as the supplier's CoA reports it, with its normal spread."""

    id: str
    material: str
    name: str
    spec_low: float | None
    spec_high: float | None
    unit: str
    method: str
    mean: float
    sd: float
    decimals: int


class _CQA(NamedTuple):
    """A critical quality attribute tested in the QC lab."""

    id: str
    material: str
    name: str
    spec_low: float | None
    spec_high: float | None
    unit: str
    method: str
    decimals: int
    instruments: tuple[str, ...]


class _Param(NamedTuple):
    """A process parameter of a master-recipe step; ``alt`` is another unit actuals are sometimes written in."""

    id: str
    stage: str  # "gran" or "comp": which batch records it
    step: str
    name: str
    criticality: str
    target: float
    nor: tuple[float, float]
    par: tuple[float, float]
    unit: str
    decimals: int
    alt: tuple[str, float, float, int] | None  # unit, factor, offset, decimals


_T = TypeVar("_T")


def _rows(cls: Callable[..., _T], rows: tuple[tuple[Any, ...], ...]) -> tuple[_T, ...]:
    return tuple(cls(*r) for r in rows)


#: material id, name, kind, fraction of granulate (intragranular + extragranular), dispensing phase
_RAW = (
    ("MAT-API", "Exemplarol hydrochloride (API)", "drug_substance", 0.200, "MR-GRAN-UP1-OP1-PH1"),
    ("MAT-MCC", "Microcrystalline cellulose PH-101", "raw", 0.320, "MR-GRAN-UP1-OP1-PH2"),
    ("MAT-LAC", "Lactose monohydrate 200 mesh", "raw", 0.375, "MR-GRAN-UP1-OP1-PH3"),
    ("MAT-PVP", "Povidone K30 (binder)", "raw", 0.040, "MR-GRAN-UP1-OP1-PH4"),
    ("MAT-CCS", "Croscarmellose sodium (disintegrant)", "raw", 0.050, "MR-GRAN-UP1-OP1-PH5"),
    ("MAT-MGS", "Magnesium stearate (lubricant)", "raw", 0.015, "MR-GRAN-UP1-OP1-PH6"),
)
_OPADRY = ("MAT-OPA", "Opadry II white film-coating system", "raw")
_GRAN = ("MAT-GRAN", "Exemplarol 50 mg final blend (granulate)", "intermediate")
_TAB = ("MAT-TAB", "Exemplarol 50 mg film-coated tablets", "drug_product")
_CORE_MG = 250.0  # core tablet mass; 50 mg API = 20 %
_COAT_GAIN = 0.03  # Opadry weight gain on cores
_STATIONS = 50  # punch stations per press
# Drying (fluid bed), first order towards an equilibrium moisture with an Arrhenius
# rate: LOD = E + (LOD0 - E) * exp(-k t), k = k_ref exp(-Ea/R (1/T - 1/T_ref)) (q/q_ref)^n,
# q = airflow per kg of dryer capacity; the drying twin (pharmakg.twins) has this form.
_MCC_LOD = 0.40  # equilibrium granule LOD (%) per % water of the MCC: the grade's sorption holds it
_LOD_EQ = 0.4  # equilibrium LOD (%) at the normal MCC water (4.0 %)
_DRY_K, _DRY_EA, _DRY_N = 0.0606, 30000.0, 0.8  # 1/min at 60 Cel and 2 m3/h per kg; J/mol; airflow exponent
_DRY_QREF = 2.0  # m3/h of inlet air per kg of dryer capacity at the reference
# Compaction (Ryshkewitch-Duckworth with a Heckel-type porosity, moisture as plasticiser):
# hardness = H_max exp(-c exp(-K F (1 + m (LOD - 2)))), the compaction twin's form.
_HARD_MAX, _HARD_C, _HARD_K, _HARD_M = 148.9, 1.833, 0.15, 0.333  # N, 1, 1/kN, 1/%
# mechanism strengths, tuned so that ~3-8 % of batches get a deviation
_WET_WATER = 5.4  # MCC water (%) of the wet supplier's lots; normal 4.0, spec <= 6.0
_DISS_HINGE, _DISS_SLOPE = 2.45, 28.0  # dissolution falls 28 % per % granule LOD above 2.45 %
_WEAR_WV, _WEAR_CU = 1.65, 12.0  # weight RSD (%) and CU acceptance value added by fully worn tooling
_DRIFT_PEAK = 16.0  # Cel: true inlet temperature above the reading at the end of an episode (grows ~ t^2)
_WATER_RATE = 0.015  # share of granulation batches over-wetted beyond the NOR

#: material -> (suppliers, weights, lot size range kg, shelf life days)
_SUPPLY = {
    "MAT-API": (("Synthexa Fine Chemicals Pvt Ltd", "Lumen API S.r.l."), (0.6, 0.4), (250, 600), 3 * 365),
    "MAT-MCC": (
        ("Nordcell Excipients GmbH", "Cellulia Pharma S.A.", "Avanti Fibres Ltd"),
        (1 / 3, 1 / 3, 1 / 3),
        (800, 2000),
        5 * 365,
    ),
    "MAT-LAC": (("Dairyfine Excipients B.V.", "Alpenmilch Pharma AG"), (0.55, 0.45), (1000, 2500), 3 * 365),
    "MAT-PVP": (("Polymerix Chemicals AG",), (1.0,), (100, 250), 3 * 365),
    "MAT-CCS": (("Cellulia Pharma S.A.", "Hydrocel Specialties Inc."), (0.5, 0.5), (100, 300), 4 * 365),
    "MAT-MGS": (("Stearix Oleochemicals Ltd",), (1.0,), (25, 75), 3 * 365),
    "MAT-OPA": (("Coatex Film Systems Ltd",), (1.0,), (100, 300), 2 * 365),
}

#: CMA id, material, name, spec low, spec high, unit, method, normal mean, sd, decimals
_CMAS = _rows(
    _CMA,
    (
        ("Q-API-WATER", "MAT-API", "Water content (KF)", None, 0.5, "%", "Ph. Eur. 2.5.12", 0.20, 0.06, 2),
        (
            "Q-API-D50",
            "MAT-API",
            "Particle size d50",
            20.0,
            60.0,
            "um",
            "Laser diffraction, dry dispersion",
            35.0,
            2.5,
            1,
        ),
        ("Q-API-ASSAY", "MAT-API", "Assay (anhydrous basis)", 98.0, 102.0, "%", "HPLC-UV", 100.0, 0.5, 1),
        ("Q-MCC-WATER", "MAT-MCC", "Loss on drying", None, 6.0, "%", "Ph. Eur. 2.2.32", 4.0, 0.15, 2),
        ("Q-MCC-D50", "MAT-MCC", "Particle size d50", 35.0, 70.0, "um", "Laser diffraction", 50.0, 4.0, 1),
        ("Q-LAC-WATER", "MAT-LAC", "Water content (KF)", 4.5, 5.5, "%", "Ph. Eur. 2.5.12", 5.0, 0.12, 2),
        ("Q-LAC-D50", "MAT-LAC", "Particle size d50", 30.0, 70.0, "um", "Air-jet sieving", 50.0, 5.0, 1),
        ("Q-PVP-WATER", "MAT-PVP", "Water content (KF)", None, 5.0, "%", "Ph. Eur. 2.5.12", 3.5, 0.4, 2),
        ("Q-CCS-WATER", "MAT-CCS", "Loss on drying", None, 10.0, "%", "Ph. Eur. 2.2.32", 6.0, 0.8, 2),
        ("Q-MGS-D50", "MAT-MGS", "Particle size d50", 5.0, 15.0, "um", "Laser diffraction", 9.0, 1.2, 1),
        ("Q-MGS-WATER", "MAT-MGS", "Loss on drying", None, 6.0, "%", "Ph. Eur. 2.2.32", 3.5, 0.5, 2),
        ("Q-OPA-WATER", "MAT-OPA", "Loss on drying", None, 5.0, "%", "Ph. Eur. 2.2.32", 2.5, 0.4, 2),
    ),
)

#: CQA id, material, name, spec low, spec high, unit, method, decimals, instrument pool
_CQAS = _rows(
    _CQA,
    (
        (
            "Q-GRN-LOD",
            "MAT-GRAN",
            "Loss on drying of granulate",
            1.0,
            3.5,
            "%",
            "Halogen moisture analyser, 105 Cel",
            2,
            ("MA-01", "MA-02"),
        ),
        ("Q-TAB-ASSAY", "MAT-TAB", "Assay", 95.0, 105.0, "%", "HPLC-UV, TM-1021", 1, ("HPLC-01", "HPLC-02")),
        (
            "Q-TAB-DISS",
            "MAT-TAB",
            "Dissolution at 30 min (mean of 6)",
            80.0,
            None,
            "%",
            "Ph. Eur. 2.9.3 paddle, 50 /min, 900 mL pH 6.8",
            0,
            ("DISS-01", "DISS-02"),
        ),
        (
            "Q-TAB-HARD",
            "MAT-TAB",
            "Hardness (breaking force)",
            80.0,
            140.0,
            "N",
            "Ph. Eur. 2.9.8",
            0,
            ("HARD-01", "HARD-02"),
        ),
        (
            "Q-TAB-CU",
            "MAT-TAB",
            "Content uniformity (acceptance value)",
            None,
            15.0,
            "1",
            "Ph. Eur. 2.9.40, HPLC-UV",
            1,
            ("HPLC-01", "HPLC-02"),
        ),
        (
            "Q-TAB-WV",
            "MAT-TAB",
            "Uniformity of mass (RSD of 20 tablets)",
            None,
            2.0,
            "%",
            "Ph. Eur. 2.9.5",
            2,
            ("BAL-01",),
        ),
    ),
)
_TAB_CQAS = ("Q-TAB-ASSAY", "Q-TAB-DISS", "Q-TAB-HARD", "Q-TAB-CU", "Q-TAB-WV")

#: id, stage, step, name, criticality, target, nor, par, unit, decimals, alternative unit (unit, factor, offset, decimals)
_PARAMS = _rows(
    _Param,
    (
        (
            "P-GRN-WATER",
            "gran",
            "MR-GRAN-UP2-OP2-PH2",
            "Granulation water amount (of dry mass)",
            "CPP",
            30.0,
            (28.0, 32.0),
            (25.0, 35.0),
            "%",
            1,
            None,
        ),
        (
            "P-GRN-IMP",
            "gran",
            "MR-GRAN-UP2-OP3-PH1",
            "Impeller speed",
            "CPP",
            150.0,
            (140.0, 160.0),
            (120.0, 180.0),
            "/min",
            0,
            ("/s", 1 / 60, 0.0, 3),
        ),
        (
            "P-GRN-TIME",
            "gran",
            "MR-GRAN-UP2-OP3-PH1",
            "Wet massing (granulation) time",
            "CPP",
            5.0,
            (4.0, 6.0),
            (3.0, 8.0),
            "min",
            1,
            ("h", 1 / 60, 0.0, 4),
        ),
        (
            "P-GRN-CHOP",
            "gran",
            "MR-GRAN-UP2-OP3-PH1",
            "Chopper speed",
            "non-critical",
            1500.0,
            (1400.0, 1600.0),
            (1000.0, 2000.0),
            "/min",
            0,
            None,
        ),
        (
            "P-DRY-TIN",
            "gran",
            "MR-GRAN-UP3-OP1-PH2",
            "Inlet air temperature",
            "CPP",
            60.0,
            (57.0, 63.0),
            (50.0, 70.0),
            "Cel",
            1,
            ("K", 1.0, 273.15, 2),
        ),
        (
            "P-DRY-AIR",
            "gran",
            "MR-GRAN-UP3-OP1-PH2",
            "Inlet airflow",
            "KPP",
            1200.0,
            (1100.0, 1300.0),
            (900.0, 1500.0),
            "m3/h",
            0,
            ("m3/min", 1 / 60, 0.0, 2),
        ),
        (
            "P-DRY-TIME",
            "gran",
            "MR-GRAN-UP3-OP1-PH2",
            "Drying time",
            "KPP",
            45.0,
            (40.0, 50.0),
            (35.0, 60.0),
            "min",
            0,
            ("h", 1 / 60, 0.0, 3),
        ),
        (
            "P-DRY-DEW",
            "gran",
            "MR-GRAN-UP3-OP1-PH2",
            "Inlet air dew point",
            "non-critical",
            8.0,
            (5.0, 11.0),
            (0.0, 15.0),
            "Cel",
            1,
            ("K", 1.0, 273.15, 2),
        ),
        (
            "P-BLD-TIME",
            "gran",
            "MR-GRAN-UP4-OP1-PH2",
            "Extragranular blend time",
            "CPP",
            15.0,
            (13.0, 17.0),
            (10.0, 20.0),
            "min",
            1,
            ("h", 1 / 60, 0.0, 4),
        ),
        (
            "P-BLD-LUB",
            "gran",
            "MR-GRAN-UP4-OP2-PH2",
            "Lubrication time",
            "CPP",
            3.0,
            (2.5, 3.5),
            (2.0, 5.0),
            "min",
            1,
            None,
        ),
        (
            "P-CMP-FORCE",
            "comp",
            "MR-TAB-UP1-OP2-PH2",
            "Main compression force",
            "CPP",
            12.0,
            (11.0, 13.0),
            (9.0, 15.0),
            "kN",
            2,
            ("N", 1000.0, 0.0, 0),
        ),
        (
            "P-CMP-PRE",
            "comp",
            "MR-TAB-UP1-OP2-PH2",
            "Pre-compression force",
            "KPP",
            3.0,
            (2.5, 3.5),
            (2.0, 4.5),
            "kN",
            2,
            ("N", 1000.0, 0.0, 0),
        ),
        (
            "P-CMP-TURRET",
            "comp",
            "MR-TAB-UP1-OP2-PH2",
            "Turret speed",
            "CPP",
            40.0,
            (36.0, 44.0),
            (30.0, 50.0),
            "/min",
            1,
            None,
        ),
        (
            "P-CMP-FEED",
            "comp",
            "MR-TAB-UP1-OP2-PH2",
            "Force-feeder paddle speed",
            "non-critical",
            30.0,
            (26.0, 34.0),
            (20.0, 40.0),
            "/min",
            1,
            None,
        ),
        (
            "P-COT-PAN",
            "comp",
            "MR-TAB-UP2-OP2-PH2",
            "Tablet bed (pan) temperature",
            "CPP",
            42.0,
            (40.0, 44.0),
            (38.0, 48.0),
            "Cel",
            1,
            ("K", 1.0, 273.15, 2),
        ),
        (
            "P-COT-SPRAY",
            "comp",
            "MR-TAB-UP2-OP2-PH2",
            "Spray rate",
            "KPP",
            300.0,
            (270.0, 330.0),
            (240.0, 360.0),
            "g/min",
            0,
            ("kg/h", 0.06, 0.0, 2),
        ),
        (
            "P-COT-PANSP",
            "comp",
            "MR-TAB-UP2-OP2-PH2",
            "Pan rotation speed",
            "non-critical",
            8.0,
            (7.0, 9.0),
            (5.0, 11.0),
            "/min",
            1,
            None,
        ),
        # an in-process control, not a set point: its value follows the wet mass (see _quality)
        (
            "P-DRY-LOD0",
            "gran",
            "MR-GRAN-UP3-OP1-PH2",
            "Wet-mass moisture at the start of drying (IPC, LOD)",
            "non-critical",
            24.8,
            (23.5, 26.5),
            (20.0, 32.0),
            "%",
            1,
            None,
        ),
    ),
)
_IPC = ("P-DRY-LOD0",)  # measured, not set: no draws of their own, never a process deviation
_PIDX = {p.id: i for i, p in enumerate(_PARAMS)}
_GRAN_P = tuple(p for p in _PARAMS if p.stage == "gran")
_COMP_P = tuple(p for p in _PARAMS if p.stage == "comp")

#: source, CQA, severity, rationale, active in the simulation
_IMPACTS = (
    (
        "P-GRN-WATER",
        "Q-TAB-HARD",
        8,
        "Excess granulation liquid gives denser, harder granules and harder tablets",
        True,
    ),
    ("P-GRN-WATER", "Q-TAB-DISS", 8, "Dense over-wetted granules disintegrate and dissolve more slowly", True),
    ("P-DRY-TIN", "Q-GRN-LOD", 9, "Inlet air temperature drives the drying end point", True),
    ("P-DRY-TIME", "Q-GRN-LOD", 7, "Drying time at fixed temperature sets residual moisture", True),
    (
        "Q-GRN-LOD",
        "Q-TAB-HARD",
        7,
        "Residual moisture plasticises granules; over-dried granulate compacts poorly",
        True,
    ),
    ("Q-GRN-LOD", "Q-TAB-DISS", 7, "Moist granulate forms harder, slower-dissolving tablets", True),
    ("Q-MCC-WATER", "Q-GRN-LOD", 6, "Water brought in with MCC adds to the moisture load of the wet mass", True),
    ("Q-API-D50", "Q-TAB-CU", 9, "Coarse API distributes less uniformly in a low-dose blend", True),
    ("P-CMP-FORCE", "Q-TAB-HARD", 9, "Main compression force sets tablet breaking force", True),
    ("Q-API-ASSAY", "Q-TAB-ASSAY", 6, "API potency carries through to tablet assay", True),
    ("P-GRN-IMP", "Q-TAB-DISS", 6, "Impeller speed changes granule densification", False),
    ("P-GRN-TIME", "Q-TAB-HARD", 6, "Longer wet massing grows larger, denser granules", False),
    ("P-BLD-TIME", "Q-TAB-CU", 7, "Blend time governs blend homogeneity", False),
    ("P-BLD-LUB", "Q-TAB-DISS", 7, "Over-lubrication coats particles with hydrophobic magnesium stearate", False),
    ("P-BLD-LUB", "Q-TAB-HARD", 5, "Over-lubrication weakens inter-particle bonds", False),
    ("P-CMP-TURRET", "Q-TAB-WV", 7, "Short dwell time at high turret speed impairs die filling", False),
    ("P-CMP-PRE", "Q-TAB-HARD", 4, "Pre-compression removes air before main compression", False),
    ("P-DRY-AIR", "Q-GRN-LOD", 5, "Airflow changes the drying rate", False),
    ("P-COT-PAN", "Q-TAB-DISS", 4, "Bed temperature affects film coalescence", False),
    ("P-COT-SPRAY", "Q-TAB-DISS", 4, "Over-wetting during coating can delay disintegration", False),
    ("Q-LAC-D50", "Q-TAB-WV", 5, "Lactose particle size affects blend flow into the dies", False),
    ("Q-MGS-D50", "Q-TAB-DISS", 4, "Fine magnesium stearate spreads further over particle surfaces", False),
    ("Q-LAC-WATER", "Q-GRN-LOD", 4, "Lactose water of crystallisation could be released on drying", False),
    ("Q-CCS-WATER", "Q-TAB-DISS", 4, "Pre-hydrated disintegrant swells less", False),
)

# recipe step trees: (code, name, equipment class, children)
_GRAN_STEPS = (
    (
        "UP1",
        "Dispensing",
        "DispensingBooth",
        (
            (
                "OP1",
                "Weigh and dispense raw materials",
                None,
                (
                    ("PH1", "Dispense Exemplarol hydrochloride", None, ()),
                    ("PH2", "Dispense microcrystalline cellulose", None, ()),
                    ("PH3", "Dispense lactose monohydrate", None, ()),
                    ("PH4", "Dispense povidone", None, ()),
                    ("PH5", "Dispense croscarmellose sodium", None, ()),
                    ("PH6", "Dispense magnesium stearate", None, ()),
                ),
            ),
        ),
    ),
    (
        "UP2",
        "Wet granulation",
        "HighShearGranulator",
        (
            ("OP1", "Dry mixing", None, (("PH1", "Charge powders", None, ()), ("PH2", "Dry mix", None, ()))),
            (
                "OP2",
                "Binder addition",
                None,
                (
                    ("PH1", "Prepare binder solution", None, ()),
                    ("PH2", "Spray binder solution", "BinderSpraySystem", ()),
                ),
            ),
            ("OP3", "Wet massing", None, (("PH1", "Wet mass", None, ()), ("PH2", "Discharge and wet mill", None, ()))),
        ),
    ),
    (
        "UP3",
        "Fluid-bed drying",
        "FluidBedDryer",
        (
            (
                "OP1",
                "Drying",
                None,
                (("PH1", "Preheat", None, ()), ("PH2", "Dry to end point", None, ()), ("PH3", "Cool", None, ())),
            ),
            ("OP2", "Dry milling", None, (("PH1", "Mill and sieve", None, ()),)),
        ),
    ),
    (
        "UP4",
        "Blending",
        "BinBlender",
        (
            (
                "OP1",
                "Extragranular blending",
                None,
                (("PH1", "Charge extragranular excipients", None, ()), ("PH2", "Blend", None, ())),
            ),
            ("OP2", "Lubrication", None, (("PH1", "Charge lubricant", None, ()), ("PH2", "Lubricate", None, ()))),
        ),
    ),
)
_TAB_STEPS = (
    (
        "UP1",
        "Compression",
        "RotaryTabletPress",
        (
            (
                "OP1",
                "Press set-up",
                None,
                (("PH1", "Install tooling", "TabletToolingSet", ()), ("PH2", "Adjust weight and force", None, ())),
            ),
            (
                "OP2",
                "Compression",
                None,
                (
                    ("PH1", "Charge granulate", None, ()),
                    ("PH2", "Compress", "TabletToolingSet", ()),
                    ("PH3", "In-process checks", None, ()),
                ),
            ),
        ),
    ),
    (
        "UP2",
        "Film coating",
        "PanCoater",
        (
            ("OP1", "Coating suspension preparation", None, (("PH1", "Prepare coating suspension", None, ()),)),
            (
                "OP2",
                "Coating",
                None,
                (
                    ("PH1", "Preheat tablet bed", None, ()),
                    ("PH2", "Spray coating", "SpraySystem", ()),
                    ("PH3", "Dry and cool", None, ()),
                ),
            ),
        ),
    ),
)
_GRAN_UPS = ("MR-GRAN-UP1", "MR-GRAN-UP2", "MR-GRAN-UP3", "MR-GRAN-UP4")
_TAB_UPS = ("MR-TAB-UP1", "MR-TAB-UP2")
_COMPRESS_PHASE = "MR-TAB-UP1-OP2-PH2"

_UNITS = {  # step -> (unit ids, equipment class, capacity, capacity unit)
    "disp": (("DISP-01", "DISP-02"), "DispensingBooth", None, None),
    "gran": (("GRN-01", "GRN-02", "GRN-03"), "HighShearGranulator", 1200.0, "L"),
    "dry": (("DRY-01", "DRY-02", "DRY-03"), "FluidBedDryer", 600.0, "kg"),
    "blend": (("BLD-01", "BLD-02"), "BinBlender", 2000.0, "L"),
    "press": (("TP-01", "TP-02", "TP-03"), "RotaryTabletPress", 180000.0, "/h"),
    "coat": (("COT-01", "COT-02"), "PanCoater", 650.0, "kg"),
}
_QC = (
    ("HPLC-01", "HPLC system 1", "HPLC"),
    ("HPLC-02", "HPLC system 2", "HPLC"),
    ("DISS-01", "Dissolution bath 1", "DissolutionTester"),
    ("DISS-02", "Dissolution bath 2", "DissolutionTester"),
    ("HARD-01", "Tablet hardness tester 1", "HardnessTester"),
    ("HARD-02", "Tablet hardness tester 2", "HardnessTester"),
    ("MA-01", "Halogen moisture analyser 1", "MoistureAnalyzer"),
    ("MA-02", "Halogen moisture analyser 2", "MoistureAnalyzer"),
    ("BAL-01", "Analytical balance", "AnalyticalBalance"),
    ("KF-01", "Karl Fischer titrator", "KarlFischerTitrator"),
)
_ANALYSTS = (
    "M. Dubois",
    "A. Novak",
    "K. Lindqvist",
    "S. Moretti",
    "J. Okafor",
    "P. Schneider",
    "L. Garcia",
    "H. Tanaka",
)
_CUSTOMERS = (
    ("MedDistrib GmbH", "DE"),
    ("Pharmalog SAS", "FR"),
    ("NordApotek AB", "SE"),
    ("Iberfarma S.L.", "ES"),
    ("Britmed Wholesale Ltd", "GB"),
    ("Helvepharm AG", "CH"),
    ("Polfarm Dystrybucja Sp. z o.o.", "PL"),
    ("Farmadis S.p.A.", "IT"),
)
#: equipment whose failed calibrations are pure distractors: they never touch a failing attribute
_DISTRACTOR_CAL = (
    "KF-01",
    "GRN-01-ST01",
    "GRN-02-ST01",
    "GRN-03-ST01",
    "COT-01-TT01",
    "COT-02-TT01",
    "BLD-01-ST01",
    "BLD-02-ST01",
)


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------
def generate_bundle(
    out_dir: str | Path,
    *,
    batches: int = 200,
    seed: int = 0,
    mechanisms: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DemoPlant:
    """Write a demo plant's CSV bundle into ``out_dir`` and its ground truth beside it.

    ``batches`` counts finished-product (compression/coating) batches;
    granulation batches come on top. ``mechanisms`` picks the injected causes
    (None: all of ``MECHANISMS``; an empty sequence: none, only noise and
    distractors). The same ``(batches, seed, mechanisms)`` always yields
    byte-identical files. ``progress(done, total)`` is called as stages finish.

    The bundle is written to a temporary sibling folder and renamed into
    place at the end, so a failure never leaves half a bundle behind.
    Raises ``FileExistsError`` if ``out_dir`` exists and is not an empty folder,
    ``ValueError`` for a bad ``batches``, ``seed`` or mechanism name.
    """
    if isinstance(batches, bool) or not isinstance(batches, (int, np.integer)) or batches < 1:
        raise ValueError(f"batches must be a positive integer, got {batches!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if mechanisms is None:
        enabled = frozenset(MECHANISMS)
    else:
        if isinstance(mechanisms, str):
            raise ValueError("mechanisms must be a sequence of names, not a single string")
        unknown = sorted(set(mechanisms) - set(MECHANISMS))
        if unknown:
            raise ValueError(f"unknown mechanism(s) {', '.join(map(repr, unknown))}; valid: {', '.join(MECHANISMS)}")
        enabled = frozenset(mechanisms)

    bundle = Path(out_dir).expanduser().resolve()
    if bundle.exists() and (not bundle.is_dir() or any(bundle.iterdir())):
        raise FileExistsError(f"{bundle} exists and is not an empty folder; choose a new bundle folder")
    ground_truth = bundle.parent / f"{bundle.name}-ground-truth.json"

    bundle.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{bundle.name}.", dir=bundle.parent))

    def write(name: str, frame: pd.DataFrame) -> None:  # each table leaves memory once written
        frame.to_csv(tmp / name, index=False, lineterminator="\n")

    try:
        truth = _Plant(int(batches), int(seed), enabled, progress).build(write)
        if bundle.exists():
            bundle.rmdir()  # empty (checked above)
        os.replace(tmp, bundle)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tmp_truth = ground_truth.with_name(ground_truth.name + ".tmp")
    tmp_truth.write_text(json.dumps(truth, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp_truth, ground_truth)
    if progress is not None:
        progress(_Plant.STAGES, _Plant.STAGES)
    return DemoPlant(bundle=bundle, ground_truth=ground_truth, batches=int(batches), seed=int(seed))


# ---------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------
def _schedule(ready: np.ndarray, dur: np.ndarray, unit: np.ndarray, gap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start/end of jobs on shared units: each job waits for its unit and its own ``ready`` time.

    Per unit, in order of readiness, ``end_k = max(ready_k + dur_k, end_{k-1} + gap_k + dur_k)``.
    This max-plus recurrence is solved without a loop: with ``S_k`` the running
    sum of ``gap + dur`` on the unit, ``end_k - S_k`` is the running maximum of
    ``ready_j + dur_j - S_j``.
    """
    n = len(ready)
    order = np.lexsort((np.arange(n), ready, unit))
    u, r, d, c = unit[order], ready[order], dur[order], gap[order]
    inc = c + d
    first = np.r_[True, u[1:] != u[:-1]]
    grp = np.cumsum(first) - 1
    cs = np.cumsum(inc)
    starts = np.flatnonzero(first)
    s = cs - (cs[starts] - inc[starts])[grp]
    x = r + d - s
    big = int(x.max() - x.min()) + 1
    off = grp.astype(np.int64) * big
    e = np.maximum.accumulate(x + off) - off + s
    end = np.empty(n, np.int64)
    end[order] = e
    return end - dur, end


def _allocate(demand: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """First-in-first-out draw of lots by batches.

    ``demand`` per batch (in batch order), ``sizes`` of candidate lots in
    receipt order. Returns consumption rows (batch, lot, quantity) and how many
    lots were needed; a batch straddling a lot boundary consumes from both lots.
    """
    d_end = np.cumsum(demand)
    d_start = d_end - demand
    c_end = np.cumsum(sizes)
    n_lots = int(np.searchsorted(c_end, d_end[-1], side="left")) + 1
    c_end = c_end[:n_lots]
    c_start = c_end - sizes[:n_lots]
    j0 = np.searchsorted(c_end, d_start, side="right")
    j1 = np.minimum(np.searchsorted(c_end, d_end, side="left"), n_lots - 1)
    count = j1 - j0 + 1
    b = np.repeat(np.arange(len(demand)), count)
    j = np.repeat(j0, count) + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count))
    q = np.minimum(d_end[b], c_end[j]) - np.maximum(d_start[b], c_start[j])
    keep = q > 1e-6
    return b[keep], j[keep], q[keep], n_lots


def _agg(group: np.ndarray, weight: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Weighted mean of ``values`` per group (e.g. granulate properties per compression batch)."""
    return np.bincount(group, weight * values, n) / np.bincount(group, weight, n)


def _argmax_by(group: np.ndarray, score: np.ndarray, n: int) -> np.ndarray:
    """Index of the highest-scoring row of each group (-1 for empty groups)."""
    order = np.lexsort((-score, group))
    first = np.r_[True, group[order][1:] != group[order][:-1]]
    out = np.full(n, -1, np.int64)
    out[group[order][first]] = order[first]
    return out


def _episodes(t_lo: int, t_hi: int, cycle: int, start_frac: float, rng: np.random.Generator) -> np.ndarray:
    """Start times of recurring episodes: one per cycle (the whole span if shorter than a cycle)."""
    span = max(t_hi - t_lo, _DAY)
    c = min(span, cycle)
    k = np.arange(int(np.ceil(span / c)))
    jitter = rng.uniform(-0.03, 0.03, len(k))
    starts = (t_lo + (k + start_frac + jitter) * c).astype(np.int64)
    return starts[starts < t_hi]


def _frame(file: str, data: dict[str, Any]) -> pd.DataFrame:
    """A table with exactly the contract's columns (missing ones empty)."""
    n = len(next(iter(data.values())))
    cols = {c: data.get(c, np.full(n, None, dtype=object)) for c in COLUMNS[file]}
    return pd.DataFrame(cols)


def _num_text(values: np.ndarray, decimals: int) -> pd.Series:
    """Numbers as text for descriptions (``36.4``)."""
    return pd.Series(np.round(values, decimals)).map(lambda v: f"{v:.{decimals}f}")


# ---------------------------------------------------------------------------
# the plant
# ---------------------------------------------------------------------------
class _Tables:
    """Where finished tables go: checked against the contract, passed to a sink, not kept."""

    def __init__(self) -> None:
        self.sink: Callable[[str, pd.DataFrame], None] | None = None
        self.written: set[str] = set()

    def __setitem__(self, name: str, frame: pd.DataFrame) -> None:
        if tuple(frame.columns) != COLUMNS[name]:
            raise AssertionError(f"{name}: columns {list(frame.columns)} differ from the contract")
        assert self.sink is not None
        self.sink(name, frame)
        self.written.add(name)


class _Plant:
    """One simulation run: arrays live on the instance while ``build`` walks the stages."""

    STAGES = 9

    def __init__(self, n: int, seed: int, enabled: frozenset[str], progress: Callable[[int, int], None] | None) -> None:
        self.n = n
        self.seed = seed
        self.on = enabled
        self.progress = progress
        self.tables = _Tables()
        self._stage = 0

    def _done(self) -> None:
        self._stage += 1
        if self.progress is not None:
            self.progress(self._stage, self.STAGES)

    def rng(self, stream: str) -> np.random.Generator:
        return _rng(self.seed, stream)

    def build(self, sink: Callable[[str, pd.DataFrame], None]) -> dict[str, Any]:
        """Run every stage, hand each finished table to ``sink``; return the ground truth."""
        self.tables.sink = sink
        self._genealogy()
        self._process_values()
        self._timeline()
        self._done()
        self._raw_lots()
        self._done()
        self._mechanisms()
        self._done()
        self._quality()
        self._results_frame(self.rng("results"))
        self._done()
        self._events()
        self._done()
        self._deviations()
        self._done()
        self._master_data()
        self._done()
        self._execution_tables()
        self._done()
        missing = set(COLUMNS) - self.tables.written
        assert not missing, f"tables never written: {sorted(missing)}"
        return self._truth()

    # -- 1. genealogy: how granulate lots feed compression batches ----------------
    def _genealogy(self) -> None:
        """Blocks of 1:1 (most), 2 granulate lots -> 1 compression batch, or 1 lot -> 2 batches."""
        rng = self.rng("genealogy")
        n = self.n
        types = rng.choice(3, size=n, p=[0.78, 0.12, 0.10])
        comp_per = np.array([1, 1, 2])[types]
        cum = np.cumsum(comp_per)
        nb = int(np.searchsorted(cum, n, side="left")) + 1
        types = types[:nb].copy()
        if cum[nb - 1] > n:
            types[-1] = 0
        comp_per = np.array([1, 1, 2])[types]
        gran_per = np.array([1, 2, 1])[types]
        g0 = np.cumsum(gran_per) - gran_per
        c0 = np.cumsum(comp_per) - comp_per
        self.ng = ng = int(gran_per.sum())
        split = rng.uniform(0.42, 0.58, nb)
        t0, t1, t2 = types == 0, types == 1, types == 2
        e_g = np.concatenate([g0[t0], g0[t1], g0[t1] + 1, g0[t2], g0[t2]])
        e_c = np.concatenate([c0[t0], c0[t1], c0[t1], c0[t2], c0[t2] + 1])
        e_f = np.concatenate([np.ones(t0.sum() + 2 * t1.sum()), split[t2], 1 - split[t2]])
        order = np.lexsort((e_g, e_c))
        self.e_g, self.e_c, self.e_f = e_g[order], e_c[order], e_f[order]
        # planned granulate size (kg) by block type: merged lots are small, split lots large
        size = np.empty(ng)
        btype = np.repeat(types, gran_per)
        size[btype == 0] = rng.integers(20, 26, (btype == 0).sum()) * 20.0
        size[btype == 1] = rng.integers(25, 31, (btype == 1).sum()) * 10.0
        size[btype == 2] = rng.integers(25, 31, (btype == 2).sum()) * 20.0
        fractions = np.array([m[3] for m in _RAW])
        self.g_disp = (
            size[:, None] * fractions[None, :] * (1 + _tnorm(rng, 0.002, 0.005, ng * len(_RAW)).reshape(ng, -1))
        )
        self.g_kg = np.round(self.g_disp.sum(axis=1) * rng.uniform(0.975, 0.995, ng), 1)
        self.e_kg = np.round(self.e_f * self.g_kg[self.e_g], 1)
        self.c_kg = np.bincount(self.e_c, self.e_kg, n)
        self.c_tablets = np.floor(self.c_kg * 1e6 / _CORE_MG * rng.uniform(0.975, 0.99, n)).astype(np.int64)
        self.c_opadry = np.round(self.c_kg * _COAT_GAIN * rng.uniform(1.08, 1.12, n), 2)
        self.wg, self.wc = _width(ng), _width(n)
        self.g_id = _ids("GB-", np.arange(1, ng + 1), self.wg)
        self.c_id = _ids("TB-", np.arange(1, n + 1), self.wc)
        self.gl_id = _ids("GL-", np.arange(1, ng + 1), self.wg)
        self.cl_id = _ids("TL-", np.arange(1, n + 1), self.wc)

    # -- 2. recorded process values (before any mechanism) ------------------------
    def _process_values(self) -> None:
        """Actuals inside the NOR; excursions are added later by mechanisms and distractors."""
        rng = self.rng("params")
        self.pv: dict[str, np.ndarray] = {}
        for p in _PARAMS:
            if p.id in _IPC:
                continue
            size = self.ng if p.stage == "gran" else self.n
            lo, hi = p.nor
            sd = (hi - lo) / 7
            v = np.round(p.target + _tnorm(rng, sd, (hi - lo) / 2 * 0.95, size), p.decimals)
            self.pv[p.id] = np.clip(v, lo, hi)

    # -- 3. timeline: equipment scheduling ------------------------------------------
    def _timeline(self) -> None:
        rng = self.rng("schedule")
        ng, n = self.ng, self.n
        rate_per_day = 3.0 * ng / n  # granulation batches per day so that ~3 finished batches/day
        gaps = rng.gamma(4.0, _DAY / rate_per_day / 4.0, ng)
        planned = np.cumsum(gaps).astype(np.int64) - int(gaps[0])
        pv = self.pv

        def uni(lo: float, hi: float, size: int) -> np.ndarray:
            return rng.uniform(lo, hi, size)

        def cleaning(size: int) -> np.ndarray:
            return np.round(uni(60, 120, size)).astype(np.int64)

        self.uses: dict[str, dict[str, np.ndarray]] = {}
        ready = planned
        durs = {
            "disp": uni(90, 150, ng),
            "gran": uni(15, 25, ng) + uni(12, 20, ng) + pv["P-GRN-TIME"] + uni(10, 15, ng),
            "dry": uni(10, 20, ng) + pv["P-DRY-TIME"] + uni(10, 20, ng) + uni(15, 25, ng),
            "blend": uni(15, 25, ng) + pv["P-BLD-TIME"] + uni(5, 10, ng) + pv["P-BLD-LUB"] + uni(10, 20, ng),
        }
        for step in ("disp", "gran", "dry", "blend"):
            units = _UNITS[step][0]
            unit = rng.integers(0, len(units), ng)
            dur = np.round(durs[step]).astype(np.int64)
            start, end = _schedule(ready, dur, unit, cleaning(ng))
            self.uses[step] = {"unit": unit, "start": start, "end": end}
            ready = end + np.round(uni(10, 40, ng)).astype(np.int64)
        self.g_start = self.uses["disp"]["start"]
        self.g_end = self.uses["blend"]["end"]
        self.g_ready = self.g_end + np.round(uni(240, 720, ng)).astype(np.int64)  # LOD release

        c_ready = np.zeros(n, np.int64)
        np.maximum.at(c_ready, self.e_c, self.g_ready[self.e_g])
        turret = pv["P-CMP-TURRET"]
        run = self.c_tablets / (turret * _STATIONS) * uni(1.05, 1.12, n)
        dur = np.round(uni(45, 75, n) + run).astype(np.int64)
        unit = rng.integers(0, 3, n)
        start, end = _schedule(c_ready, dur, unit, np.round(uni(90, 150, n)).astype(np.int64))
        self.uses["press"] = {"unit": unit, "start": start, "end": end}
        # the compress phase: after set-up, until the end of the run
        self.compress_start = end - np.round(run).astype(np.int64)
        spray = self.c_kg * _COAT_GAIN / 0.15 * 1000 / pv["P-COT-SPRAY"]
        dur = np.round(uni(20, 30, n) + spray + uni(30, 45, n)).astype(np.int64)
        unit = rng.integers(0, 2, n)
        start, end = _schedule(end + np.round(uni(30, 120, n)).astype(np.int64), dur, unit, cleaning(n))
        self.uses["coat"] = {"unit": unit, "start": start, "end": end}
        self.c_start = self.uses["press"]["start"]
        self.c_end = self.uses["coat"]["end"]
        self.t_first = int(self.g_start.min())
        self.t_last = int(self.c_start.max())
        # when each actual was recorded: part-way through the unit procedure it belongs to
        spans = {"UP2": "gran", "UP3": "dry", "UP4": "blend"}
        self.param_time: dict[str, np.ndarray] = {}
        for k, p in enumerate(_PARAMS):
            up = p.step.split("-")[2]
            if p.stage == "gran":
                u = self.uses[spans[up]]
                s, e = u["start"], u["end"]
            elif up == "UP1":
                s, e = self.compress_start, self.uses["press"]["end"]
            else:
                s, e = self.uses["coat"]["start"], self.uses["coat"]["end"]
            self.param_time[p.id] = s + ((e - s) * (0.35 + 0.04 * (k % 7))).astype(np.int64)

    # -- 4. raw material lots, FIFO consumption, CoA values --------------------------
    def _raw_lots(self) -> None:
        rng = self.rng("lots")
        rows = []  # per material: consumption rows
        lots = []  # per material: lot table pieces
        order_g = np.argsort(self.g_start, kind="stable")  # FIFO in dispensing order
        materials = [(m[0], self.g_disp[:, i], m[4], order_g, "gran") for i, m in enumerate(_RAW)]
        materials.append(
            (
                "MAT-OPA",
                self.c_opadry,
                "MR-TAB-UP2-OP1-PH1",
                np.argsort(self.uses["coat"]["start"], kind="stable"),
                "comp",
            )
        )
        for mat, demand, step, order, stage in materials:
            suppliers, weights, (lo, hi), shelf = _SUPPLY[mat]
            mean = (lo + hi) / 2
            cap = int(demand.sum() / lo) + 2
            sizes = np.round(rng.uniform(lo, hi, cap) / 5) * 5
            b, j, q, nl = _allocate(demand[order], sizes)
            batch = order[b]
            use_t = (self.g_start if stage == "gran" else self.uses["coat"]["start"])[batch]
            first = np.full(nl, np.iinfo(np.int64).max)
            np.minimum.at(first, j, use_t)
            # goods receipt 7-45 days before first use, during the warehouse day shift (07:00-15:00)
            received = _day_shift(first - rng.integers(7, 46, nl) * _DAY, rng)
            sup = rng.choice(len(suppliers), nl, p=weights)
            # extra lots that were never used: rejected on receipt, or still in quarantine at the end
            n_rej = int(rng.binomial(nl, 0.02))
            rej_t = _day_shift(np.sort(rng.integers(self.t_first - 30 * _DAY, self.t_last, n_rej)), rng)
            rej_sup = rng.choice(len(suppliers), n_rej, p=weights)
            kind = np.r_[np.zeros(nl, np.int8), np.ones(n_rej, np.int8), np.full(1, 2, np.int8)]
            lots.append(
                pd.DataFrame(
                    {
                        "mat": mat,
                        "size": np.r_[sizes[:nl], np.round(rng.uniform(lo, hi, n_rej) / 5) * 5, [round(mean / 5) * 5]],
                        "received": np.r_[
                            received, rej_t, _day_shift(np.array([self.t_last - int(rng.integers(1, 10)) * _DAY]), rng)
                        ],
                        "supplier": np.asarray(suppliers, dtype=object)[
                            np.r_[sup, rej_sup, rng.choice(len(suppliers), 1, p=weights)]
                        ],
                        "kind": kind,  # 0 used, 1 rejected, 2 quarantine
                        "shelf": shelf,
                        "local": np.r_[np.arange(nl), np.full(n_rej + 1, -1)],
                    }
                )
            )
            rows.append(pd.DataFrame({"mat": mat, "batch": batch, "local": j, "qty": q, "step": step, "stage": stage}))
        lot = pd.concat(lots, ignore_index=True)
        mat_order = {m: i for i, m in enumerate([m[0] for m in _RAW] + ["MAT-OPA"])}
        lot["mat_i"] = lot["mat"].map(mat_order)
        lot = lot.sort_values(["received", "mat_i", "kind", "local"], kind="stable").reset_index(drop=True)
        lot["id"] = _ids("RM-", np.arange(1, len(lot) + 1), 6)
        self.lot = lot
        cons = pd.concat(rows, ignore_index=True)
        key = lot[lot["kind"] == 0].set_index(["mat", "local"]).index
        pos = pd.Series(np.arange(len(lot))[lot["kind"].to_numpy() == 0], index=key)
        cons["lot"] = pos.reindex(pd.MultiIndex.from_arrays([cons["mat"], cons["local"]])).to_numpy()
        self.cons = cons
        # share of each lot in a batch's demand of that material (for attribute mixing)
        need = cons.groupby(["stage", "mat", "batch"])["qty"].transform("sum")
        cons["share"] = cons["qty"] / need

        # supplier CoA values (before mechanisms), clipped inside spec
        crng = self.rng("coa")
        self.coa: dict[str, np.ndarray] = {}
        nlot = len(lot)
        mats = lot["mat"].to_numpy()
        for a in _CMAS:
            v = np.full(nlot, np.nan)
            m = mats == a.material
            spec_lo = -np.inf if a.spec_low is None else a.spec_low
            spec_hi = np.inf if a.spec_high is None else a.spec_high
            draw = a.mean + _tnorm(crng, a.sd, 3 * a.sd, m.sum())
            v[m] = np.round(np.clip(draw, spec_lo, spec_hi), a.decimals)
            self.coa[a.id] = v
        # rejected lots carry one out-of-spec CMA (that is why they were rejected)
        drng = self.rng("distractors")
        for mat in pd.unique(mats):
            rej = np.flatnonzero((mats == mat) & (lot["kind"].to_numpy() == 1))
            cmas = [a for a in _CMAS if a.material == mat]
            pick = drng.integers(0, len(cmas), len(rej))
            for k, a in enumerate(cmas):
                sel = rej[pick == k]
                self.coa[a.id][sel] = self._oos_values(a.spec_low, a.spec_high, a.sd, a.decimals, drng, len(sel))
        # distractor: a few *used* lots with an out-of-spec CMA on an attribute that drives nothing
        used = lot["kind"].to_numpy() == 0
        self.oos_cma_lots: list[dict[str, Any]] = []
        for aid in ("Q-LAC-D50", "Q-MGS-D50", "Q-CCS-WATER"):
            a = next(x for x in _CMAS if x.id == aid)
            cand = np.flatnonzero(used & (mats == a.material))
            k = max(1, int(drng.binomial(len(cand), 0.015)))
            sel = np.sort(drng.choice(cand, min(k, len(cand)), replace=False))
            self.coa[aid][sel] = self._oos_values(
                a.spec_low, a.spec_high, a.sd, a.decimals, drng, len(sel), high_only=True
            )
            self.oos_cma_lots += [
                {"lot_id": lot["id"].iat[i], "attribute_id": aid, "value": float(self.coa[aid][i])} for i in sel
            ]

    @staticmethod
    def _oos_values(
        lo: float | None,
        hi: float | None,
        sd: float,
        dec: int,
        rng: np.random.Generator,
        k: int,
        high_only: bool = False,
    ) -> np.ndarray:
        """Values just outside a specification (0.5-2 sd beyond a limit)."""
        beyond = rng.uniform(0.5, 2.0, k) * sd
        coin = rng.random(k) < 0.5
        low_side = np.zeros(k, bool) if (lo is None or high_only) else np.ones(k, bool) if hi is None else coin
        return np.round(np.where(low_side, (lo or 0.0) - beyond, (hi or 0.0) + beyond), dec)

    def _lot_mix(self, mat: str, values: np.ndarray, stage: str = "gran") -> np.ndarray:
        """Per batch, the consumed-quantity-weighted mean of a per-lot value of one material."""
        c = self.cons[(self.cons["mat"] == mat) & (self.cons["stage"] == stage)]
        size = self.ng if stage == "gran" else self.n
        return np.bincount(c["batch"].to_numpy(), c["share"].to_numpy() * values[c["lot"].to_numpy()], size)

    # -- 5. mechanisms: where and when each cause acts (drawn always, applied if enabled) ----
    def _mechanisms(self) -> None:
        rng = self.rng("mechanisms")
        lot = self.lot
        ng, n = self.ng, self.n
        mats = lot["mat"].to_numpy()
        kind = lot["kind"].to_numpy()

        # wet_excipient_supplier: one MCC supplier's lots run wetter (mostly still within spec)
        mcc_sup = _SUPPLY["MAT-MCC"][0]
        # the main MCC source (most lots used) changed something in its process: the story a
        # supplier audit tells, and it makes sure the cause is visible in every plant size
        used_mcc = lot[(mats == "MAT-MCC") & (kind == 0)]["supplier"].value_counts()
        self.wet_supplier = max(mcc_sup, key=lambda s: (int(used_mcc.get(s, 0)), -mcc_sup.index(s)))
        wet_lots = (mats == "MAT-MCC") & (lot["supplier"].to_numpy() == self.wet_supplier)
        wet_draw = np.round(_WET_WATER + _tnorm(rng, 0.15, 0.35, len(lot)), 2)
        base_w = self.coa["Q-MCC-WATER"].copy()
        wet_val = np.where(wet_lots & (kind == 0), np.minimum(wet_draw, 5.95), base_w)
        rej_val = np.round(6.05 + rng.uniform(0, 0.4, len(lot)), 2)
        wet_val = np.where(wet_lots & (kind == 1), rej_val, wet_val)  # rejected on receipt: above spec
        if "wet_excipient_supplier" in self.on:
            self.coa["Q-MCC-WATER"] = np.where(wet_lots, wet_val, base_w)
        self.g_wet_excess = self._lot_mix("MAT-MCC", np.nan_to_num(np.where(wet_lots, wet_val - base_w, 0.0)))
        self.g_mcc_water = self._lot_mix("MAT-MCC", np.nan_to_num(base_w))
        self.wet_lot_ids = lot["id"].to_numpy()[wet_lots & (kind == 0)]

        # api_particle_size: an API lot with d50 inside spec but far from its history
        api_used = np.flatnonzero((mats == "MAT-API") & (kind == 0))
        c = self.cons[self.cons["mat"] == "MAT-API"]
        full = np.bincount(c["lot"].to_numpy()[c["share"].to_numpy() > 0.999], minlength=len(lot))
        mid = api_used[int(len(api_used) * 0.3) : max(int(len(api_used) * 0.7), int(len(api_used) * 0.3) + 1)]
        cand = mid[full[mid] > 0] if (full[mid] > 0).any() else mid
        k = max(1, round(len(api_used) / 80))
        self.api_lots = np.sort(rng.choice(cand, min(k, len(cand)), replace=False))
        d50 = np.round(rng.uniform(55.0, 59.0, len(self.api_lots)), 1)
        if "api_particle_size" in self.on:
            self.coa["Q-API-D50"][self.api_lots] = d50
        is_bad = np.zeros(len(lot))
        is_bad[self.api_lots] = 1.0
        self.g_api_bad = self._lot_mix("MAT-API", is_bad)
        # which anomalous lot a batch used most (for the ground truth)
        bad_rows = c[is_bad[c["lot"].to_numpy()] > 0]
        self.g_api_lot = np.full(ng, -1, np.int64)
        idx = _argmax_by(bad_rows["batch"].to_numpy(), bad_rows["share"].to_numpy(), ng)
        has = idx >= 0
        self.g_api_lot[has] = bad_rows["lot"].to_numpy()[idx[has]]
        self.g_api_assay = self._lot_mix("MAT-API", np.nan_to_num(self.coa["Q-API-ASSAY"], nan=100.0))

        # granulation_water: occasional over-wetting beyond the NOR (some beyond the PAR)
        k = max(2, int(rng.binomial(ng, _WATER_RATE)))
        self.water_batches = np.sort(rng.choice(ng, min(k, ng), replace=False))
        self.water_base = self.pv["P-GRN-WATER"].copy()
        self.water_exc = self.water_base.copy()
        exc = rng.uniform(33.0, 39.0, len(self.water_batches))
        exc[np.argmax(exc)] = max(exc.max(), 36.5)  # at least one beyond the PAR (35 %)
        self.water_exc[self.water_batches] = np.round(exc, 1)
        if "granulation_water" in self.on:
            self.pv["P-GRN-WATER"] = self.water_exc

        # drifting_dryer_sensor: one dryer's inlet temperature transmitter drifts high
        dryers = _UNITS["dry"][0]
        self.drift_dryer = int(rng.integers(0, len(dryers)))
        self.drift_sensor = f"{dryers[self.drift_dryer]}-TT01"
        self.cal_interval = {"sensor": 90 * _DAY, "instrument": 180 * _DAY}
        self.cal_phase = rng.uniform(0, 1, 64)  # per calibrated item, fixed by position
        d_use = self.uses["dry"]
        on_dryer = d_use["unit"] == self.drift_dryer
        t_dry = d_use["start"]
        # an episode runs until a trend review triggers an unscheduled calibration that finds the drift
        span = min(int(t_dry.max()) - self.t_first, 730 * _DAY)
        starts = _episodes(self.t_first, int(t_dry.max()), 730 * _DAY, 0.45, rng)
        ends_a = starts + int(min(0.25 * span, 60 * _DAY))
        self.drift_episodes = (starts, ends_a)
        drift = np.zeros(ng)
        for s, e in zip(starts, ends_a, strict=True):  # one episode per two years: a handful
            m = on_dryer & (t_dry >= s) & (t_dry < e)
            if m.any():  # the last batch dried before detection sees the full drift
                drift[m] = _DRIFT_PEAK * ((t_dry[m] - s) / max(int(t_dry[m].max()) - s, 1)) ** 2
        self.g_drift = drift

        # worn_press_tooling: one press's tooling set wears until a maintenance event replaces it
        presses = _UNITS["press"][0]
        self.worn_press = int(rng.integers(0, len(presses)))
        p_use = self.uses["press"]
        t_c = self.compress_start
        starts = _episodes(self.t_first, self.t_last, 365 * _DAY, 0.40, rng)
        span = max(self.t_last - self.t_first, _DAY)
        length = int(min(0.25 * min(span, 365 * _DAY), 60 * _DAY))
        ends_t = starts + length
        on_press = p_use["unit"] == self.worn_press
        wear = np.zeros(n)
        ep = np.searchsorted(starts, t_c, side="right") - 1
        inside = on_press & (ep >= 0) & (t_c < ends_t[np.maximum(ep, 0)])
        last = np.zeros(len(starts), np.int64)  # the last batch before the replacement runs on fully worn tooling
        np.maximum.at(last, ep[inside], t_c[inside])
        wear[inside] = (t_c[inside] - starts[ep[inside]]) / np.maximum(last[ep[inside]] - starts[ep[inside]], 1)
        self.c_wear = np.clip(wear, 0, 1)
        # the tooling is changed between batches: 30 min after the last worn batch leaves the press
        last_end = np.zeros(len(starts), np.int64)
        np.maximum.at(last_end, ep[inside], p_use["end"][inside])
        replaced = np.where((last_end > 0) & (ends_t <= self.t_last), last_end + 30, ends_t)
        self.wear_episodes = (starts, replaced)
        # tooling set index in use: number of replacements before the batch
        self.c_tooling = np.where(on_press, np.searchsorted(replaced, t_c, side="right"), 0)

        # which batches a mechanism could touch (independent of which are enabled):
        # distractors and noise avoid them, so they never blur an injected cause
        g_touch = (self.g_wet_excess > 0) | (self.g_api_bad > 0) | (self.g_drift > 0)
        g_touch[self.water_batches] = True
        c_touch = np.bincount(self.e_c, g_touch[self.e_g].astype(float), n) > 0
        c_touch |= self.c_wear > 0
        self.g_clean, self.c_clean = ~g_touch, ~c_touch

    def _calibration_times(self, equipment_id: str, kind: str) -> np.ndarray:
        """Scheduled calibrations of one item: fixed interval, phase from the item's position."""
        interval = self.cal_interval[kind]
        slot = zlib.crc32(equipment_id.encode()) % 64
        first = self.t_first - 30 * _DAY + int(self.cal_phase[slot] * interval)
        horizon = self.t_last + 60 * _DAY
        t = first + np.arange(max(1, (horizon - first) // interval + 1)) * interval
        return (t // _DAY) * _DAY + 3 * 60  # 09:00 local on the day

    # -- 6. quality: latent model, results, distractor excursions ----------------------
    def _quality_values(self, on: frozenset[str]) -> dict[str, np.ndarray]:
        """CQA values for a set of enabled mechanisms (unrounded).

        Natural variation is bounded so nothing leaves its specification without
        a mechanism; mechanisms add the effects documented in the module.
        """
        z = self.noise
        water = self.water_exc if "granulation_water" in on else self.water_base
        wet = self.g_wet_excess if "wet_excipient_supplier" in on else 0.0
        drift = self.g_drift if "drifting_dryer_sensor" in on else 0.0
        pv = self.pv
        mcc = self.g_mcc_water + wet
        # wet mass: granulation water plus the water the dry blend brings (MCC ~32 % of it)
        lod0 = 100.0 * (water + 0.32 * mcc + 1.0) / (100.0 + water)
        # hotter air than recorded (drift) dries faster: the recorded value hides it
        t_true = pv["P-DRY-TIN"] + drift + 273.15
        q = pv["P-DRY-AIR"] / _UNITS["dry"][2]
        k = _DRY_K * np.exp(-_DRY_EA / 8.314462618 * (1.0 / t_true - 1.0 / 333.15)) * (q / _DRY_QREF) ** _DRY_N
        eq = _LOD_EQ + _MCC_LOD * (mcc - 4.0)
        lod = eq + (lod0 - eq) * np.exp(-k * pv["P-DRY-TIME"]) + z["lod"]
        w = self.e_kg
        agg = lambda x: _agg(self.e_c, w, x[self.e_g], self.n)  # noqa: E731
        lod_c = agg(lod)
        over_wet = np.maximum(water - 32.0, 0.0)
        porosity = np.exp(-_HARD_K * self.hard_force * (1.0 + _HARD_M * (lod_c - 2.0)))
        hard = _HARD_MAX * np.exp(-_HARD_C * porosity) + z["hard"] + 6.0 * agg(over_wet)
        diss = 91.0 + z["diss"] - _DISS_SLOPE * np.maximum(lod_c - _DISS_HINGE, 0.0) - 2.5 * agg(over_wet)
        cu = 4.5 + z["cu"]
        if "api_particle_size" in on:
            cu = cu + 15.0 * agg(self.g_api_bad)
        wv = 0.9 + z["wv"]
        if "worn_press_tooling" in on:
            cu = cu + _WEAR_CU * self.c_wear**2
            wv = wv + _WEAR_WV * self.c_wear**1.5
        assay = 100.0 + z["assay"] + 0.8 * (agg(self.g_api_assay) - 100.0)
        self.lod0 = lod0
        return {
            "Q-GRN-LOD": lod,
            "Q-TAB-ASSAY": assay,
            "Q-TAB-DISS": diss,
            "Q-TAB-HARD": hard,
            "Q-TAB-CU": cu,
            "Q-TAB-WV": wv,
        }

    def _quality(self) -> None:
        rng = self.rng("quality")
        drng = self.rng("distractors2")
        ng, n = self.ng, self.n
        self.noise = {
            "lod": _tnorm(rng, 0.12, 0.3, ng) / 3.0,  # analyser repeatability ~0.04 % LOD
            "hard": _tnorm(rng, 4.0, 8.0, n) / 4.0,  # mean of 10 tablets: ~1 N
            "diss": _tnorm(rng, 1.8, 4.5, n),
            "cu": _tnorm(rng, 1.2, 3.5, n),
            "wv": _tnorm(rng, 0.18, 0.5, n),
            "assay": _tnorm(rng, 1.0, 3.0, n),
        }
        # distractor: CPP excursions (outside NOR, inside PAR) on batches that pass
        self.cpp_excursions: list[dict[str, Any]] = []
        for pid, stage, rate in (
            ("P-GRN-IMP", "gran", 0.015),
            ("P-CMP-TURRET", "comp", 0.015),
            ("P-CMP-FORCE", "comp", 0.01),
        ):
            clean = np.flatnonzero(self.g_clean if stage == "gran" else self.c_clean)
            self._excursion(pid, clean, rate, drng, beyond_par=False, log=self.cpp_excursions)
        self.hard_force = np.clip(self.pv["P-CMP-FORCE"], 9.5, 14.5)
        # distractor: non-critical excursions, a few beyond the PAR (minor process deviations)
        self.nc_excursions: list[dict[str, Any]] = []
        for pid, stage in (
            ("P-GRN-CHOP", "gran"),
            ("P-DRY-DEW", "gran"),
            ("P-CMP-FEED", "comp"),
            ("P-COT-PANSP", "comp"),
        ):
            clean = np.flatnonzero(self.g_clean if stage == "gran" else self.c_clean)
            done = self._excursion(pid, clean, 0.02, drng, beyond_par=False, log=self.nc_excursions)
            self._excursion(pid, np.setdiff1d(clean, done), 0.002, drng, beyond_par=True, log=self.nc_excursions)

        loo = {m: self._quality_values(self.on - {m}) for m in sorted(self.on)}
        vals = self._quality_values(self.on)  # last: self.lod0 is the wet mass as it was
        ipc = self.rng("ipc").normal(0.0, 0.1, self.ng)  # NIR/LOD reading of the wet mass
        self.pv["P-DRY-LOD0"] = np.round(self.lod0 + ipc, 1)
        dec = {q.id: q.decimals for q in _CQAS}
        self.q = {k: np.round(v, dec[k]) for k, v in vals.items()}
        self.q["Q-TAB-DISS"] = np.minimum(self.q["Q-TAB-DISS"], 100.0)
        # which mechanism moved each value most (towards the violated limit is checked later)
        self.q_cause: dict[str, np.ndarray] = {}
        names = sorted(self.on)
        for k, v in vals.items():
            if not names:
                self.q_cause[k] = np.full(len(v), -1)
                continue
            delta = np.stack([np.abs(v - loo[m][k]) for m in names])
            best = delta.argmax(axis=0)
            self.q_cause[k] = np.where(delta.max(axis=0) > 1e-9, best, -1)
        self.q_names = names

        # noise: random OOS results with no injected cause, on batches no mechanism touches
        self.noise_oos: list[tuple[str, int]] = []
        specs = {q.id: q for q in _CQAS}
        clean_c = np.flatnonzero(self.c_clean)
        n_noise = max(1, int(drng.binomial(len(clean_c), 0.006)))
        pick = np.sort(drng.choice(clean_c, min(n_noise, len(clean_c)), replace=False))
        attrs = drng.choice(np.array(_TAB_CQAS), len(pick), p=[0.35, 0.2, 0.15, 0.1, 0.2])
        clean_g = np.flatnonzero(self.g_clean)
        kg_ = int(drng.binomial(len(clean_g), 0.002))
        pick_g = np.sort(drng.choice(clean_g, min(kg_, len(clean_g)), replace=False))
        for aid, idx in [(a, pick[attrs == a]) for a in _TAB_CQAS] + [("Q-GRN-LOD", pick_g)]:
            s = specs[aid]
            lo, hi = s.spec_low, s.spec_high
            width = (hi - lo) if (lo is not None and hi is not None) else float(hi if hi is not None else lo or 1.0)
            beyond = drng.uniform(0.01, 0.06, len(idx)) * width + 10.0**-s.decimals
            low_side = (
                np.zeros(len(idx), bool)
                if lo is None
                else np.ones(len(idx), bool)
                if hi is None
                else drng.random(len(idx)) < 0.5
            )
            v = np.where(low_side, (lo or 0.0) - beyond, (hi or 0.0) + beyond)
            self.q[aid][idx] = np.round(v, s.decimals)
            self.noise_oos += [(aid, int(i)) for i in idx]

    def _excursion(
        self,
        pid: str,
        pool: np.ndarray,
        rate: float,
        rng: np.random.Generator,
        *,
        beyond_par: bool,
        log: list[dict[str, Any]],
    ) -> np.ndarray:
        """Move a parameter of some batches outside its NOR (and, if asked, outside its PAR); return them."""
        p = _PARAMS[_PIDX[pid]]
        k = int(rng.binomial(len(pool), rate))
        if not beyond_par:
            k = max(1, k)
        idx = np.sort(rng.choice(pool, min(k, len(pool)), replace=False))
        high = rng.random(len(idx)) < 0.5
        (nl, nh), (pl, ph) = p.nor, p.par
        if beyond_par:
            v = np.where(
                high,
                ph + rng.uniform(0.05, 0.25, len(idx)) * (ph - nh),
                pl - rng.uniform(0.05, 0.25, len(idx)) * (nl - pl),
            )
        else:
            v = np.where(
                high,
                nh + rng.uniform(0.2, 0.85, len(idx)) * (ph - nh),
                nl - rng.uniform(0.2, 0.85, len(idx)) * (nl - pl),
            )
        self.pv[pid][idx] = np.round(v, p.decimals)
        stage_ids = self.g_id if p.stage == "gran" else self.c_id
        log += [
            {"batch_id": stage_ids[i], "parameter_id": pid, "value": float(self.pv[pid][i]), "beyond_par": beyond_par}
            for i in idx
        ]
        return idx

    # -- 7. equipment events --------------------------------------------------------------
    def _events(self) -> None:
        rng = self.rng("events")
        as_of = self.as_of
        ev: list[pd.DataFrame] = []

        def add(
            eq: np.ndarray | list[str],
            typ: str,
            t: np.ndarray,
            desc: np.ndarray | str,
            outcome: np.ndarray | str,
            key: np.ndarray | None = None,
        ) -> None:
            t = np.asarray(t, np.int64)
            ev.append(
                pd.DataFrame(
                    {
                        "equipment_id": np.asarray(eq, dtype=object),
                        "type": typ,
                        "t": t,
                        "description": desc,
                        "outcome": outcome,
                        "key": np.full(len(t), -1) if key is None else key,
                    }
                )
            )

        # scheduled calibrations: sensors/scales every 90 days, QC instruments every 180 days
        cal_items = [(eid, "sensor") for eid in self._control_module_ids()] + [(q[0], "instrument") for q in _QC]
        cal = []
        for eid, kind in cal_items:
            t = self._calibration_times(eid, kind)
            t = t[(t >= self.t_first - 30 * _DAY) & (t <= as_of)]
            cal.append(pd.DataFrame({"equipment_id": eid, "t": t}))
        cal_df = pd.concat(cal, ignore_index=True)
        cal_df["description"] = "Scheduled calibration; as-found within tolerance"
        cal_df["outcome"] = "pass"
        # drifting sensor: scheduled calibrations fell due outside the episodes (inside ones were
        # deferred); each episode ends with an unscheduled calibration that finds the drift
        starts, ends = self.drift_episodes
        t_cal = cal_df["t"].to_numpy()
        k = np.searchsorted(starts, t_cal, side="right") - 1
        inside = (cal_df["equipment_id"].to_numpy() == self.drift_sensor) & (k >= 0) & (t_cal < ends[np.maximum(k, 0)])
        cal_df = cal_df[~inside].reset_index(drop=True)
        found = ends[ends <= as_of]
        self.drift_detect_t = [int(e) for e in found]
        drifting = "drifting_dryer_sensor" in self.on
        cal_df = pd.concat(
            [
                cal_df,
                pd.DataFrame(
                    {
                        "equipment_id": self.drift_sensor,
                        "t": found,
                        "description": (
                            f"Unscheduled calibration after LOD trend review; as-found reading {_DRIFT_PEAK:g} Cel below "
                            "reference, transmitter adjusted and re-verified"
                        )
                        if drifting
                        else "Unscheduled verification calibration; as-found within tolerance",
                        "outcome": "fail" if drifting else "pass",
                    }
                ),
            ],
            ignore_index=True,
        )
        # distractor: failed calibrations on equipment that takes no part in any failure
        pool = cal_df.index[cal_df["equipment_id"].isin(_DISTRACTOR_CAL)].to_numpy()
        n_fail = max(1, round((self.t_last - self.t_first) / (150 * _DAY)))
        sel = np.sort(rng.choice(pool, min(n_fail, len(pool)), replace=False))
        cal_df.loc[sel, "description"] = "Scheduled calibration; as-found out of tolerance, adjusted and re-verified"
        cal_df.loc[sel, "outcome"] = "fail"
        cal_df["type"] = "calibration"
        cal_df["key"] = -1
        cal_df.loc[sel, "key"] = -2  # marks distractor calibrations for the ground truth
        ev.append(cal_df)

        # unit uses (for maintenance, cleaning, alarms, failures)
        uu = []
        for step in ("disp", "gran", "dry", "blend", "press", "coat"):
            u = self.uses[step]
            ids = np.asarray(_UNITS[step][0], dtype=object)[u["unit"]]
            bidx = np.arange(len(u["unit"]))
            uu.append(
                pd.DataFrame({"equipment_id": ids, "start": u["start"], "end": u["end"], "step": step, "b": bidx})
            )
        uses = (
            pd.concat(uu, ignore_index=True)
            .sort_values(["equipment_id", "start"], kind="stable")
            .reset_index(drop=True)
        )
        self.unit_uses = uses
        nu = len(uses)
        # campaign cleaning after every 8th use of a unit; 1 % fail the visual inspection
        nth = uses.groupby("equipment_id").cumcount().to_numpy()
        cl = uses[(nth % 8) == 7]
        fail = rng.random(len(cl)) < 0.01
        add(
            cl["equipment_id"].to_numpy(),
            "cleaning",
            cl["end"].to_numpy() + 30,
            np.where(
                fail,
                "Full cleaning after campaign; visual inspection failed, re-cleaned",
                "Full cleaning after campaign",
            ),
            np.where(fail, "fail", "pass"),
        )
        # preventive maintenance every 60 days per process unit
        all_units = [u for step in _UNITS.values() for u in step[0]]
        for i, eid in enumerate(all_units):
            t = self.t_first + int((i * 7 + 3) * _DAY) + np.arange(0, max(as_of - self.t_first, 1), 60 * _DAY)
            t = t[t <= as_of]
            add(
                [eid] * len(t),
                "maintenance",
                (t // _DAY) * _DAY + 2 * 60,
                "Preventive maintenance completed",
                "completed",
            )
        # alarms: nuisance alarms on ~1.2 % of unit uses
        alarm_text = {
            "disp": "Balance stability alarm",
            "gran": "Impeller torque high",
            "dry": "Filter bag differential pressure high",
            "blend": "Safety interlock opened during rotation",
            "press": "Punch tightness alarm",
            "coat": "Spray gun pressure low",
        }
        pos = rng.random(nu)
        when = (uses["start"].to_numpy() + pos * (uses["end"].to_numpy() - uses["start"].to_numpy())).astype(np.int64)
        a = rng.random(nu) < 0.012
        add(
            uses["equipment_id"].to_numpy()[a],
            "alarm",
            when[a],
            uses["step"].map(alarm_text).to_numpy()[a],
            "acknowledged",
        )
        # worn tooling: the press's weight control rejects more tablets as the tooling wears
        if "worn_press_tooling" in self.on:
            press_rows = (uses["step"] == "press").to_numpy()
            wear = np.zeros(nu)
            wear[press_rows] = self.c_wear[uses["b"].to_numpy()[press_rows]]
            w_alarm = press_rows & (rng.random(nu) < 0.8 * wear)
            add(
                uses["equipment_id"].to_numpy()[w_alarm],
                "alarm",
                when[w_alarm],
                "Tablet weight control: reject rate high",
                "acknowledged",
            )
        else:
            rng.random(nu)
        # failures during a batch (each raises an equipment deviation)
        f = rng.random(nu) < 0.0015
        fail_text = {
            "disp": "Weighing terminal crashed; restarted",
            "gran": "Impeller motor overload trip",
            "dry": "Inlet air fan stopped; restarted",
            "blend": "Bin lift drive fault",
            "press": "Turret drive fault; press stopped",
            "coat": "Peristaltic pump failure; pump replaced",
        }
        fidx = np.flatnonzero(f)
        add(
            uses["equipment_id"].to_numpy()[fidx],
            "failure",
            when[fidx],
            uses["step"].map(fail_text).to_numpy()[fidx],
            "repaired",
            key=fidx,
        )
        # tooling replacement on the worn press, at the end of each wear episode
        press = _UNITS["press"][0][self.worn_press]
        ends = self.wear_episodes[1]
        ends = ends[ends <= as_of]
        desc = (
            "Tablet tooling set replaced: punch tips and die bores worn beyond limits"
            if "worn_press_tooling" in self.on
            else "Tablet tooling set replaced (planned change)"
        )
        self.tool_ids = [f"{press}-TS{i + 1:02d}" for i in range(len(self.wear_episodes[0]) + 1)]
        add(
            [self.tool_ids[i] for i in range(len(ends))],
            "maintenance",
            ends,
            desc,
            "completed",
            key=np.full(len(ends), -3),
        )

        e = pd.concat(ev, ignore_index=True)
        e = e.sort_values(["t", "equipment_id", "type"], kind="stable").reset_index(drop=True)
        e["id"] = _ids("EV-", np.arange(1, len(e) + 1), max(6, _width(len(e))))
        self.events = e
        self.failure_event = e[e["type"] == "failure"].set_index("key")["id"]

    def _control_module_ids(self) -> list[str]:
        out = []
        for u in _UNITS["disp"][0]:
            out.append(f"{u}-WS01")
        for u in _UNITS["gran"][0] + _UNITS["blend"][0]:
            out.append(f"{u}-ST01")
        for u in _UNITS["dry"][0]:
            out += [f"{u}-TT01", f"{u}-FT01"]
        for u in _UNITS["press"][0]:
            out.append(f"{u}-FT01")
        for u in _UNITS["coat"][0]:
            out.append(f"{u}-TT01")
        return out

    # -- 8. deviations ----------------------------------------------------------------------
    def _deviations(self) -> None:
        rng = self.rng("deviations")
        specs = {q.id: q for q in _CQAS}
        rows: list[pd.DataFrame] = []
        # results: times, instruments, analysts
        r = self.results
        val = r["value"].to_numpy()
        lo = (
            r["attribute_id"]
            .map({k: (np.nan if s.spec_low is None else s.spec_low) for k, s in specs.items()})
            .to_numpy(float)
        )
        hi = (
            r["attribute_id"]
            .map({k: (np.nan if s.spec_high is None else s.spec_high) for k, s in specs.items()})
            .to_numpy(float)
        )
        low, high = val < lo, val > hi
        oos = low | high
        o = r[oos].copy()
        # attribution (a loop over OOS results only: a few per hundred batches)
        self.src_api = self._upstream(self.g_api_bad)
        self.src_water = self._upstream(np.maximum(self.water_exc - 32.0, 0.0))
        mech: list[str | None] = []
        cause: list[dict[str, Any] | None] = []
        noise = set(self.noise_oos)
        for aid, bi in zip(o["attribute_id"], o["bidx"], strict=True):
            ci = int(self.q_cause[aid][bi])
            if (aid, int(bi)) in noise or ci < 0:
                mech.append(None)
                cause.append(None)
                continue
            m = self.q_names[ci]
            mech.append(m)
            cause.append(self._cause(m, aid, int(bi)))
        sev = np.where(
            o["attribute_id"].isin(["Q-TAB-ASSAY", "Q-TAB-CU"])
            & ((o["value"] > hi[oos] * 1.3) | (o["value"] < lo[oos] * 0.9)),
            "critical",
            "major",
        )
        spec_txt = o["attribute_id"].map({k: self._spec_text(s) for k, s in specs.items()})
        desc = (
            "OOS result for "
            + o["attribute_id"].map({k: s.name for k, s in specs.items()})
            + " on lot "
            + o["lot_id"]
            + " (sample "
            + o["sample_id"]
            + "): "
            + o["value"].map(lambda v: f"{v:g}")
            + o["unit"].map(lambda u: "" if u == "1" else f" {u}")
            + "; specification "
            + spec_txt
        )
        rows.append(
            pd.DataFrame(
                {
                    "batch_id": o["batch_id"].to_numpy(),
                    "equipment_id": None,
                    "attribute_id": o["attribute_id"].to_numpy(),
                    "category": "OOS",
                    "severity": sev,
                    "t": o["t"].to_numpy() + np.round(rng.uniform(60, 480, len(r))[oos]).astype(np.int64),
                    "close": rng.random(len(r))[oos],
                    "description": desc.to_numpy(),
                    "mechanism": np.asarray(mech, dtype=object),
                    "cause": _objects(cause),
                }
            )
        )
        # process deviations: a recorded parameter value outside its PAR
        for p in _PARAMS:
            if p.id in _IPC:
                continue
            v = self.pv[p.id]
            pl, ph = p.par
            bad = np.flatnonzero((v < pl) | (v > ph))
            delay, close = rng.uniform(30, 360, len(v)), rng.random(len(v))  # drawn for every batch: stable streams
            if not len(bad):
                continue
            gran = p.stage == "gran"
            ids = (self.g_id if gran else self.c_id)[bad]
            up = {"UP1": 0, "UP2": 1, "UP3": 2, "UP4": 3}[p.step.split("-")[2]]
            step = (("disp", "gran", "dry", "blend") if gran else ("press", "coat"))[up]
            u = self.uses[step]
            eq = np.asarray(_UNITS[step][0], dtype=object)[u["unit"][bad]]
            t = self.param_time[p.id][bad]
            is_mech = (p.id == "P-GRN-WATER") & np.isin(bad, self.water_batches) & ("granulation_water" in self.on)
            crit = p.criticality != "non-critical"
            desc = (
                p.name
                + " recorded "
                + _num_text(v[bad], p.decimals)
                + " "
                + p.unit
                + " during "
                + self._step_name(p.step)
                + " on "
                + pd.Series(eq)
                + f", outside PAR {p.par[0]:g}-{p.par[1]:g} {p.unit}"
            )
            rows.append(
                pd.DataFrame(
                    {
                        "batch_id": ids,
                        "equipment_id": eq,
                        "attribute_id": None,
                        "category": "process",
                        "severity": "major" if crit else "minor",
                        "t": t + np.round(delay[bad]).astype(np.int64),
                        "close": close[bad],
                        "description": desc.to_numpy(),
                        "mechanism": _objects(["granulation_water" if x else None for x in is_mech]),
                        "cause": _objects([{"kind": "parameter", "id": p.id} for _ in bad]),
                    }
                )
            )
        # equipment deviations: a failure during a batch
        uses = self.unit_uses
        fidx = self.failure_event.index.to_numpy()
        fu = uses.iloc[fidx]
        in_gran = fu["step"].isin(["disp", "gran", "dry", "blend"]).to_numpy()
        b = fu["b"].to_numpy()
        bids = np.where(in_gran, self.g_id[np.where(in_gran, b, 0)], self.c_id[np.where(in_gran, 0, b)])
        ev = self.events.set_index("id")
        ev_ids = self.failure_event.to_numpy()
        rows.append(
            pd.DataFrame(
                {
                    "batch_id": bids,
                    "equipment_id": fu["equipment_id"].to_numpy(),
                    "attribute_id": None,
                    "category": "equipment",
                    "severity": np.where(rng.random(len(fu)) < 0.7, "minor", "major"),
                    "t": ev.loc[ev_ids, "t"].to_numpy() + np.round(rng.uniform(10, 240, len(fu))).astype(np.int64),
                    "close": rng.random(len(fu)),
                    "description": (
                        ev.loc[ev_ids, "description"].astype(str) + " during batch " + pd.Series(bids, index=ev_ids)
                    ).to_numpy(),
                    "mechanism": None,
                    "cause": _objects([{"kind": "event", "id": str(i)} for i in ev_ids]),
                }
            )
        )
        d = pd.concat([x for x in rows if len(x)], ignore_index=True)
        d = d.sort_values(
            ["t", "batch_id", "category", "attribute_id"], kind="stable", na_position="first"
        ).reset_index(drop=True)
        d["id"] = _ids("DEV-", np.arange(1, len(d) + 1), _width(len(d)))
        minor = (d["severity"] == "minor").to_numpy()
        frac = d["close"].to_numpy(float)
        closed = d["t"].to_numpy() + np.round(np.where(minor, 5 + 15 * frac, 10 + 35 * frac) * _DAY).astype(np.int64)
        d["closed_t"] = np.where(closed <= self.as_of, closed, _NA)
        self.dev = d

    @staticmethod
    def _spec_text(s: _CQA) -> str:
        unit = "" if s.unit == "1" else f" {s.unit}"
        if s.spec_low is not None and s.spec_high is not None:
            return f"{s.spec_low:g}-{s.spec_high:g}{unit}"
        return f">= {s.spec_low:g}{unit}" if s.spec_low is not None else f"<= {s.spec_high:g}{unit}"

    @staticmethod
    def _step_name(step_id: str) -> str:
        tree = _GRAN_STEPS if step_id.startswith("MR-GRAN") else _TAB_STEPS
        names = []
        codes = step_id.split("-")[2:]
        nodes: tuple[Any, ...] = tree
        for code in codes:
            node = next(x for x in nodes if x[0] == code)
            names.append(node[1])
            nodes = node[3]
        return " / ".join(names[:2]).lower()

    def _cause(self, mech: str, aid: str, bi: int) -> dict[str, Any]:
        """The business id a root-cause analysis should find for one OOS result."""
        gran_level = aid == "Q-GRN-LOD"
        if mech == "wet_excipient_supplier":
            return {"kind": "supplier", "id": self.wet_supplier}
        if mech == "drifting_dryer_sensor":
            return {"kind": "equipment", "id": _UNITS["dry"][0][self.drift_dryer], "component": self.drift_sensor}
        if mech == "worn_press_tooling":
            return {
                "kind": "equipment",
                "id": self.tool_ids[int(self.c_tooling[bi])],
                "part_of": _UNITS["press"][0][self.worn_press],
            }
        if mech == "api_particle_size":
            g = bi if gran_level else int(self.src_api[bi])
            return {"kind": "lot", "id": self.lot["id"].iat[int(self.g_api_lot[g])]}
        g = bi if gran_level else int(self.src_water[bi])
        return {"kind": "parameter", "id": "P-GRN-WATER", "source_batch_id": str(self.g_id[g])}

    def _upstream(self, score: np.ndarray) -> np.ndarray:
        """Per compression batch, the granulation batch feeding it that contributes most of ``score``."""
        edge = _argmax_by(self.e_c, score[self.e_g] * self.e_kg, self.n)
        return self.e_g[edge]

    def _results_frame(self, rng: np.random.Generator) -> None:
        """LIMS results: one sample per batch (granulate: LOD; tablets: the five release tests)."""
        ng, n = self.ng, self.n
        specs = {q.id: q for q in _CQAS}
        parts = []
        g_t = self.g_end + np.round(rng.uniform(60, 240, ng)).astype(np.int64)
        analyst_g = rng.integers(0, len(_ANALYSTS), ng)
        parts.append(
            pd.DataFrame(
                {
                    "sample_id": np.strings.add("SMP-", self.g_id.astype(str)).astype(object),
                    "batch_id": self.g_id,
                    "lot_id": self.gl_id,
                    "attribute_id": "Q-GRN-LOD",
                    "value": self.q["Q-GRN-LOD"],
                    "t": g_t,
                    "instrument_id": np.asarray(specs["Q-GRN-LOD"][8], dtype=object)[rng.integers(0, 2, ng)],
                    "analyst": np.asarray(_ANALYSTS, dtype=object)[analyst_g],
                    "bidx": np.arange(ng),
                }
            )
        )
        analyst_c = rng.integers(0, len(_ANALYSTS), n)
        c_sample = np.strings.add("SMP-", self.c_id.astype(str)).astype(object)
        for k, aid in enumerate(_TAB_CQAS):
            s = specs[aid]
            delay = rng.uniform(12, 30, n) if aid in ("Q-TAB-HARD", "Q-TAB-WV") else rng.uniform(30, 96, n)
            parts.append(
                pd.DataFrame(
                    {
                        "sample_id": c_sample,
                        "batch_id": self.c_id,
                        "lot_id": self.cl_id,
                        "attribute_id": aid,
                        "value": self.q[aid],
                        "t": self.c_end + np.round(delay * 60).astype(np.int64) + k,
                        "instrument_id": np.asarray(s.instruments, dtype=object)[
                            rng.integers(0, len(s.instruments), n)
                        ],
                        "analyst": np.asarray(_ANALYSTS, dtype=object)[analyst_c],
                        "bidx": np.arange(n),
                    }
                )
            )
        r = pd.concat(parts, ignore_index=True)
        r["unit"] = r["attribute_id"].map({k: s.unit for k, s in specs.items()})
        r = r.sort_values(["t", "sample_id", "attribute_id"], kind="stable").reset_index(drop=True)
        self.results = r
        tab = r[r["attribute_id"] != "Q-GRN-LOD"]
        self.c_last_result = np.zeros(n, np.int64)
        np.maximum.at(self.c_last_result, tab["bidx"].to_numpy(), tab["t"].to_numpy())
        # the moment the records were extracted: anything later is not known yet
        self.as_of = int(r["t"].max()) + 12 * 60

    # -- 9. master data tables --------------------------------------------------------------
    def _master_data(self) -> None:
        t = self.tables
        # equipment
        rows: list[tuple[Any, ...]] = [
            ("ENT-01", "Exemplar Pharma", "Enterprise", None, None, None, None),
            ("SITE-01", "Exemplar Pharma Riverside site", "Site", "ENT-01", None, None, None),
            ("A-OSD", "Oral solid dose production", "Area", "SITE-01", None, None, None),
            ("A-QC", "Quality control", "Area", "SITE-01", None, None, None),
            ("PC-GRAN", "Granulation suite", "ProcessCell", "A-OSD", None, None, None),
            ("PC-TAB", "Tableting and coating suite", "ProcessCell", "A-OSD", None, None, None),
            ("PC-QCL", "QC laboratory", "ProcessCell", "A-QC", None, None, None),
        ]
        names = {
            "disp": "Dispensing booth",
            "gran": "High-shear granulator",
            "dry": "Fluid-bed dryer",
            "blend": "Bin blender",
            "press": "Rotary tablet press",
            "coat": "Perforated pan coater",
        }
        for step, (ids, cls, cap, unit) in _UNITS.items():
            cell = "PC-GRAN" if step in ("disp", "gran", "dry", "blend") else "PC-TAB"
            for i, eid in enumerate(ids):
                rows.append((eid, f"{names[step]} {i + 1}", "Unit", cell, cls, cap, unit))
                if step == "disp":
                    rows.append(
                        (f"{eid}-WS01", f"Floor scale {eid}", "ControlModule", eid, "WeighingScale", 600.0, "kg")
                    )
                elif step in ("gran", "blend"):
                    if step == "gran":
                        rows.append(
                            (
                                f"{eid}-BSS",
                                f"Binder spray system {eid}",
                                "EquipmentModule",
                                eid,
                                "BinderSpraySystem",
                                None,
                                None,
                            )
                        )
                    rows.append(
                        (f"{eid}-ST01", f"Rotation speed sensor {eid}", "ControlModule", eid, "SpeedSensor", None, None)
                    )
                elif step == "dry":
                    rows.append(
                        (
                            f"{eid}-TT01",
                            f"Inlet air temperature transmitter {eid}",
                            "ControlModule",
                            eid,
                            "TemperatureTransmitter",
                            None,
                            None,
                        )
                    )
                    rows.append(
                        (
                            f"{eid}-FT01",
                            f"Inlet airflow transmitter {eid}",
                            "ControlModule",
                            eid,
                            "FlowTransmitter",
                            None,
                            None,
                        )
                    )
                elif step == "press":
                    tools = self.tool_ids if i == self.worn_press else [f"{eid}-TS01"]
                    for k, tid in enumerate(tools):
                        rows.append(
                            (
                                tid,
                                f"Tablet tooling set {k + 1} (50 stations, 9 mm round) {eid}",
                                "EquipmentModule",
                                eid,
                                "TabletToolingSet",
                                None,
                                None,
                            )
                        )
                    rows.append((f"{eid}-FF", f"Force feeder {eid}", "EquipmentModule", eid, "ForceFeeder", None, None))
                    rows.append(
                        (
                            f"{eid}-FT01",
                            f"Main compression force transducer {eid}",
                            "ControlModule",
                            eid,
                            "ForceTransducer",
                            None,
                            None,
                        )
                    )
                elif step == "coat":
                    rows.append(
                        (f"{eid}-SPR", f"Spray system {eid}", "EquipmentModule", eid, "SpraySystem", None, None)
                    )
                    rows.append(
                        (
                            f"{eid}-TT01",
                            f"Tablet bed temperature probe {eid}",
                            "ControlModule",
                            eid,
                            "TemperatureProbe",
                            None,
                            None,
                        )
                    )
        for eid, name, cls in _QC:
            rows.append((eid, name, "Unit", "PC-QCL", cls, None, None))
        eq = pd.DataFrame(rows, columns=list(COLUMNS["equipment.csv"]))
        t["equipment.csv"] = eq

        mats = [m[:3] for m in _RAW] + [_OPADRY, _GRAN, _TAB]
        t["materials.csv"] = pd.DataFrame(mats, columns=list(COLUMNS["materials.csv"]))

        rec = [
            ("GR-GRAN", "General recipe: Exemplarol 50 mg final blend", "general", "MAT-GRAN", "1", "approved"),
            ("SR-GRAN", "Site recipe: Exemplarol 50 mg final blend, Riverside", "site", "MAT-GRAN", "2", "approved"),
            (
                "MR-GRAN",
                "Master recipe: Exemplarol 50 mg final blend, granulation train",
                "master",
                "MAT-GRAN",
                "3",
                "approved",
            ),
            ("GR-TAB", "General recipe: Exemplarol 50 mg film-coated tablets", "general", "MAT-TAB", "1", "approved"),
            (
                "SR-TAB",
                "Site recipe: Exemplarol 50 mg film-coated tablets, Riverside",
                "site",
                "MAT-TAB",
                "2",
                "approved",
            ),
            (
                "MR-TAB",
                "Master recipe: Exemplarol 50 mg film-coated tablets, compression and coating",
                "master",
                "MAT-TAB",
                "4",
                "approved",
            ),
        ]
        fixed = pd.DataFrame(rec, columns=list(COLUMNS["recipes.csv"]))
        ctrl = pd.DataFrame(
            {
                "id": np.r_[
                    np.strings.add("CR-", self.g_id.astype(str)), np.strings.add("CR-", self.c_id.astype(str))
                ].astype(object),
                "name": np.r_[
                    np.strings.add("Control recipe for batch ", self.g_id.astype(str)),
                    np.strings.add("Control recipe for batch ", self.c_id.astype(str)),
                ].astype(object),
                "type": "control",
                "product_id": np.r_[
                    np.full(self.ng, "MAT-GRAN", dtype=object), np.full(self.n, "MAT-TAB", dtype=object)
                ],
                "version": np.r_[np.full(self.ng, "3", dtype=object), np.full(self.n, "4", dtype=object)],
                "status": "completed",
            }
        )
        t["recipes.csv"] = pd.concat([fixed, ctrl], ignore_index=True)

        steps: list[tuple[Any, ...]] = []

        def walk(recipe: str, nodes: tuple[Any, ...], parent: str | None, level: int) -> None:
            for k, (code, name, cls, children) in enumerate(nodes):
                sid = f"{parent or recipe}-{code}"
                steps.append((recipe, sid, parent, ("UnitProcedure", "Operation", "Phase")[level], name, cls, k + 1))
                walk(recipe, children, sid, level + 1)

        walk("MR-GRAN", _GRAN_STEPS, None, 0)
        walk("MR-TAB", _TAB_STEPS, None, 0)
        st = pd.DataFrame(steps, columns=list(COLUMNS["recipe_steps.csv"]))
        st["seq"] = st["seq"].astype("Int64")
        t["recipe_steps.csv"] = st

        t["parameters.csv"] = pd.DataFrame(
            [
                (
                    p.id,
                    "MR-GRAN" if p.stage == "gran" else "MR-TAB",
                    p.step,
                    p.name,
                    p.criticality,
                    p.target,
                    p.nor[0],
                    p.nor[1],
                    p.par[0],
                    p.par[1],
                    p.unit,
                )
                for p in _PARAMS
            ],
            columns=list(COLUMNS["parameters.csv"]),
        )
        qa = [(q.id, q.material, q.name, "CQA", q.spec_low, q.spec_high, q.unit, q.method) for q in _CQAS]
        qa += [(a.id, a.material, a.name, "CMA", a.spec_low, a.spec_high, a.unit, a.method) for a in _CMAS]
        t["quality_attributes.csv"] = pd.DataFrame(qa, columns=list(COLUMNS["quality_attributes.csv"]))
        t["impacts.csv"] = pd.DataFrame([i[:4] for i in _IMPACTS], columns=list(COLUMNS["impacts.csv"]))

    # -- 10. execution tables ----------------------------------------------------------------
    def _execution_tables(self) -> None:
        rng = self.rng("records")
        t = self.tables
        ng, n = self.ng, self.n
        specs = {q.id: q for q in _CQAS}
        # batch status and finished-lot disposition
        r = self.results
        tab = r[r["attribute_id"] != "Q-GRN-LOD"]
        val = tab["value"].to_numpy()
        lo = (
            tab["attribute_id"]
            .map({k: (-np.inf if s.spec_low is None else s.spec_low) for k, s in specs.items()})
            .to_numpy(float)
        )
        hi = (
            tab["attribute_id"]
            .map({k: (np.inf if s.spec_high is None else s.spec_high) for k, s in specs.items()})
            .to_numpy(float)
        )
        failed = np.bincount(tab["bidx"].to_numpy(), (val < lo) | (val > hi), n) > 0
        release = self.c_last_result + np.round(rng.uniform(12, 48, n) * 60).astype(np.int64)
        released = ~failed & (release <= self.as_of)
        c_status = np.where(failed, "rejected", np.where(released, "released", "completed"))
        lot_status = np.where(failed, "rejected", np.where(released, "released", "quarantine"))

        t["batches.csv"] = _frame(
            "batches.csv",
            {
                "id": np.r_[self.g_id, self.c_id],
                "recipe_id": np.r_[
                    np.strings.add("CR-", self.g_id.astype(str)), np.strings.add("CR-", self.c_id.astype(str))
                ].astype(object),
                "product_id": np.r_[np.full(ng, "MAT-GRAN", dtype=object), np.full(n, "MAT-TAB", dtype=object)],
                "start": _iso(np.r_[self.g_start, self.c_start]),
                "end": _iso(np.r_[self.g_end, self.c_end]),
                "status": np.r_[np.full(ng, "completed", dtype=object), c_status.astype(object)],
            },
        )

        # equipment use per unit procedure (+ the tooling set on the compress phase)
        be: list[pd.DataFrame] = []
        for step, up in zip(("disp", "gran", "dry", "blend"), _GRAN_UPS, strict=True):
            u = self.uses[step]
            be.append(
                pd.DataFrame(
                    {
                        "batch_id": self.g_id,
                        "step_id": up,
                        "equipment_id": np.asarray(_UNITS[step][0], dtype=object)[u["unit"]],
                        "s": u["start"],
                        "e": u["end"],
                        "o": np.arange(ng) * 8 + len(be),
                    }
                )
            )
        for k, (step, up) in enumerate(zip(("press", "coat"), _TAB_UPS, strict=True)):
            u = self.uses[step]
            be.append(
                pd.DataFrame(
                    {
                        "batch_id": self.c_id,
                        "step_id": up,
                        "equipment_id": np.asarray(_UNITS[step][0], dtype=object)[u["unit"]],
                        "s": u["start"],
                        "e": u["end"],
                        "o": ng * 8 + np.arange(n) * 8 + 2 * k,
                    }
                )
            )
        press_ids = np.asarray(_UNITS["press"][0], dtype=object)[self.uses["press"]["unit"]]
        tool = np.strings.add(press_ids.astype(str), "-TS01").astype(object)
        worn = self.uses["press"]["unit"] == self.worn_press
        tool[worn] = np.asarray(self.tool_ids, dtype=object)[self.c_tooling[worn]]
        be.append(
            pd.DataFrame(
                {
                    "batch_id": self.c_id,
                    "step_id": _COMPRESS_PHASE,
                    "equipment_id": tool,
                    "s": self.compress_start,
                    "e": self.uses["press"]["end"],
                    "o": ng * 8 + np.arange(n) * 8 + 1,
                }
            )
        )
        b = pd.concat(be, ignore_index=True).sort_values("o", kind="stable")
        t["batch_equipment.csv"] = _frame(
            "batch_equipment.csv",
            {
                "batch_id": b["batch_id"].to_numpy(),
                "step_id": b["step_id"].to_numpy(),
                "equipment_id": b["equipment_id"].to_numpy(),
                "start": _iso(b["s"].to_numpy()),
                "end": _iso(b["e"].to_numpy()),
            },
        )

        # consumption: raw lots (FIFO) and granulate lots; some records in g, some without quantity
        c = self.cons
        raw_b = np.where(
            c["stage"] == "gran",
            self.g_id[np.where(c["stage"] == "gran", c["batch"], 0)],
            self.c_id[np.where(c["stage"] == "comp", c["batch"], 0)],
        )
        raw = pd.DataFrame(
            {
                "batch_id": raw_b,
                "lot_id": self.lot["id"].to_numpy()[c["lot"].to_numpy()],
                "step_id": c["step"].to_numpy(),
                "q": c["qty"].to_numpy(),
                "o": np.where(c["stage"] == "gran", c["batch"] * 8, ng * 8 + c["batch"] * 8 + 3),
            }
        )
        gl = pd.DataFrame(
            {
                "batch_id": self.c_id[self.e_c],
                "lot_id": self.gl_id[self.e_g],
                "step_id": "MR-TAB-UP1-OP2-PH1",
                "q": self.e_kg,
                "o": ng * 8 + self.e_c * 8 + 1,
            }
        )
        cons = pd.concat([raw, gl], ignore_index=True).sort_values(["o", "step_id", "lot_id"], kind="stable")
        roll = rng.random(len(cons))
        grams = roll < 0.03
        blank = (roll >= 0.03) & (roll < 0.045)
        qty = np.where(grams, np.round(cons["q"].to_numpy() * 1000, 0), np.round(cons["q"].to_numpy(), 2))
        t["consumption.csv"] = _frame(
            "consumption.csv",
            {
                "batch_id": cons["batch_id"].to_numpy(),
                "lot_id": cons["lot_id"].to_numpy(),
                "step_id": cons["step_id"].to_numpy(),
                "quantity": np.where(blank, np.nan, qty),
                "unit": np.where(grams, "g", "kg").astype(object),
            },
        )

        t["production.csv"] = _frame(
            "production.csv",
            {
                "batch_id": np.r_[self.g_id, self.c_id],
                "lot_id": np.r_[self.gl_id, self.cl_id],
                "quantity": _fmt_quantities(self.g_kg, self.c_tablets),
                "unit": np.r_[np.full(ng, "kg", dtype=object), np.full(n, "{tbl}", dtype=object)],
            },
        )

        # lots: raw lots, then granulate and finished lots made here (no supplier, no receipt)
        lot = self.lot
        kind = lot["kind"].to_numpy()
        raw_status = np.where(kind == 1, "rejected", np.where(kind == 2, "quarantine", "released"))
        raw_exp = lot["received"].to_numpy() + lot["shelf"].to_numpy() * _DAY
        t["lots.csv"] = _frame(
            "lots.csv",
            {
                "id": np.r_[lot["id"].to_numpy(), self.gl_id, self.cl_id],
                "material_id": np.r_[
                    lot["mat"].to_numpy(), np.full(ng, "MAT-GRAN", dtype=object), np.full(n, "MAT-TAB", dtype=object)
                ],
                "supplier": np.r_[lot["supplier"].to_numpy(), np.full(ng + n, None, dtype=object)],
                "quantity": np.r_[
                    _fmt_quantities(lot["size"].to_numpy(), np.zeros(0, np.int64)),
                    _fmt_quantities(self.g_kg, self.c_tablets),
                ],
                "unit": np.r_[np.full(len(lot) + ng, "kg", dtype=object), np.full(n, "{tbl}", dtype=object)],
                "received": np.r_[_iso(lot["received"].to_numpy()), np.full(ng + n, None, dtype=object)],
                "expiry": np.r_[
                    _isodate(raw_exp), _isodate(self.g_end + 90 * _DAY), _isodate(self.c_end + 3 * 365 * _DAY)
                ],
                "status": np.r_[
                    raw_status.astype(object), np.full(ng, "released", dtype=object), lot_status.astype(object)
                ],
            },
        )

        # supplier CoA values of raw lots
        la = []
        mats = lot["mat"].to_numpy()
        for k, a in enumerate(_CMAS):
            idx = np.flatnonzero(mats == a.material)
            la.append(
                pd.DataFrame({"lot": idx, "k": k, "attribute_id": a.id, "value": self.coa[a.id][idx], "unit": a.unit})
            )
        la_df = pd.concat(la, ignore_index=True).sort_values(["lot", "k"], kind="stable")
        t["lot_attributes.csv"] = _frame(
            "lot_attributes.csv",
            {
                "lot_id": lot["id"].to_numpy()[la_df["lot"].to_numpy()],
                "attribute_id": la_df["attribute_id"].to_numpy(),
                "value": la_df["value"].to_numpy(),
                "unit": la_df["unit"].to_numpy(),
            },
        )

        # parameter values (one actual per batch and parameter); ~1 % written in another unit
        pv_parts = []
        for stage, plist, ids in (("gran", _GRAN_P, self.g_id), ("comp", _COMP_P, self.c_id)):
            size = len(ids)
            for k, p in enumerate(plist):
                pv_parts.append(
                    pd.DataFrame(
                        {
                            "b": np.arange(size),
                            "k": k,
                            "stage": 0 if stage == "gran" else 1,
                            "batch_id": ids,
                            "parameter_id": p.id,
                            "value": self.pv[p.id],
                            "unit": p.unit,
                            "t": self.param_time[p.id],
                        }
                    )
                )
        pv = (
            pd.concat(pv_parts, ignore_index=True)
            .sort_values(["stage", "b", "k"], kind="stable")
            .reset_index(drop=True)
        )
        value = pv["value"].to_numpy().astype(float)
        unit = pv["unit"].to_numpy().astype(object)
        alt = rng.random(len(pv)) < 0.01
        for p in _PARAMS:
            if p.alt is None:
                continue
            m = alt & (pv["parameter_id"].to_numpy() == p.id)
            au, factor, offset, dec = p.alt
            value[m] = np.round(value[m] * factor + offset, dec)
            unit[m] = au
        t["parameter_values.csv"] = _frame(
            "parameter_values.csv",
            {
                "batch_id": pv["batch_id"].to_numpy(),
                "parameter_id": pv["parameter_id"].to_numpy(),
                "value": value,
                "unit": unit,
                "time": _iso(pv["t"].to_numpy()),
            },
        )

        t["results.csv"] = _frame(
            "results.csv",
            {
                "sample_id": r["sample_id"].to_numpy(),
                "batch_id": r["batch_id"].to_numpy(),
                "lot_id": r["lot_id"].to_numpy(),
                "attribute_id": r["attribute_id"].to_numpy(),
                "value": r["value"].to_numpy(),
                "unit": r["unit"].to_numpy(),
                "time": _iso(r["t"].to_numpy()),
                "instrument_id": r["instrument_id"].to_numpy(),
                "analyst": r["analyst"].to_numpy(),
                "status": np.full(len(r), "valid", dtype=object),
            },
        )

        d = self.dev
        t["deviations.csv"] = _frame(
            "deviations.csv",
            {
                "id": d["id"].to_numpy(),
                "batch_id": d["batch_id"].to_numpy(),
                "equipment_id": d["equipment_id"].to_numpy(),
                "attribute_id": d["attribute_id"].to_numpy(),
                "category": d["category"].to_numpy(),
                "severity": d["severity"].to_numpy(),
                "opened": _iso(d["t"].to_numpy()),
                "closed": _iso(d["closed_t"].to_numpy()),
                "description": d["description"].to_numpy(),
            },
        )

        e = self.events
        t["equipment_events.csv"] = _frame(
            "equipment_events.csv",
            {
                "id": e["id"].to_numpy(),
                "equipment_id": e["equipment_id"].to_numpy(),
                "type": e["type"].to_numpy(),
                "time": _iso(e["t"].to_numpy()),
                "description": e["description"].to_numpy(),
                "outcome": e["outcome"].to_numpy(),
            },
        )

        # shipments: released finished lots, 1-3 consignments to customers in several markets
        # (drawn for every lot, used for the released ones: a lot's shipments do not depend on the others)
        n_ship_all = rng.choice(3, n, p=[0.5, 0.35, 0.15]) + 1
        split_all = rng.gamma(4.0, 1.0, (n, 3))
        cust_all = rng.integers(0, len(_CUSTOMERS), n)
        delay_all = rng.uniform(1, 12, (n, 3)) + np.arange(3) * rng.uniform(3, 15, (n, 3))
        rel = np.flatnonzero(released)
        n_ship = n_ship_all[rel]
        lot_i = np.repeat(rel, n_ship)
        nth = np.arange(n_ship.sum()) - np.repeat(np.cumsum(n_ship) - n_ship, n_ship)
        g = split_all[lot_i, nth]
        owner = np.repeat(np.arange(len(rel)), n_ship)
        share = g / np.bincount(owner, g, len(rel))[owner]
        qty = np.floor(share * self.c_tablets[lot_i] / 1000) * 1000
        cust = (cust_all[lot_i] + nth * 3) % len(_CUSTOMERS)  # distinct customers per lot
        shipped = release[lot_i] + np.round(delay_all[lot_i, nth] * _DAY).astype(np.int64)
        keep = shipped <= self.as_of
        t["shipments.csv"] = _frame(
            "shipments.csv",
            {
                "lot_id": self.cl_id[lot_i[keep]],
                "customer": np.asarray([c[0] for c in _CUSTOMERS], dtype=object)[cust[keep]],
                "market": np.asarray([c[1] for c in _CUSTOMERS], dtype=object)[cust[keep]],
                "quantity": qty[keep].astype(np.int64),
                "unit": np.full(keep.sum(), "{tbl}", dtype=object),
                "shipped": _iso(shipped[keep]),
            },
        )

    # -- ground truth ---------------------------------------------------------------------------
    def _truth(self) -> dict[str, Any]:
        def iso1(m: int) -> str | None:
            return None if m >= np.iinfo(np.int64).max // 8 or m == _NA else str(_iso(np.array([m]))[0])

        settings: dict[str, Any] = {}
        if "wet_excipient_supplier" in self.on:
            settings["wet_excipient_supplier"] = {
                "supplier": self.wet_supplier,
                "material_id": "MAT-MCC",
                "attribute_id": "Q-MCC-WATER",
                "water_mean_pct": _WET_WATER,
                "normal_water_mean_pct": 4.0,
                "spec_high_pct": 6.0,
                "lots": [str(x) for x in self.wet_lot_ids],
                "effect": f"equilibrium granule LOD +{_MCC_LOD} % per % excess MCC water; dissolution -{_DISS_SLOPE:g} % per % LOD above {_DISS_HINGE} %",
            }
        if "drifting_dryer_sensor" in self.on:
            s, e = self.drift_episodes
            settings["drifting_dryer_sensor"] = {
                "unit_id": _UNITS["dry"][0][self.drift_dryer],
                "sensor_id": self.drift_sensor,
                "parameter_id": "P-DRY-TIN",
                "episodes": [
                    {
                        "start": iso1(int(a)),
                        "detected": iso1(int(b)) if int(b) in self.drift_detect_t else None,
                        "peak_offset_cel": _DRIFT_PEAK,
                    }
                    for a, b in zip(s, e, strict=True)
                ],
                "effect": f"true inlet temperature = recorded + drift (recorded stays inside NOR); the drying rate follows the true temperature (Arrhenius, Ea {_DRY_EA / 1000:g} kJ/mol): over-dried granule, softer tablets",
            }
        if "worn_press_tooling" in self.on:
            s, e = self.wear_episodes
            settings["worn_press_tooling"] = {
                "press_id": _UNITS["press"][0][self.worn_press],
                "episodes": [
                    {
                        "tooling_id": self.tool_ids[i],
                        "wear_start": iso1(int(a)),
                        "replaced": iso1(int(b)) if b <= self.as_of else None,
                    }
                    for i, (a, b) in enumerate(zip(s, e, strict=True))
                ],
                "effect": f"weight RSD +{_WEAR_WV}*w^1.5 %, content uniformity AV +{_WEAR_CU:g}*w^2 (w: wear 0..1 over the episode)",
            }
        if "api_particle_size" in self.on:
            settings["api_particle_size"] = {
                "lots": [str(self.lot["id"].iat[i]) for i in self.api_lots],
                "d50_um": [float(self.coa["Q-API-D50"][i]) for i in self.api_lots],
                "history_mean_um": 35.0,
                "spec_um": [20.0, 60.0],
                "attribute_id": "Q-API-D50",
                "effect": "content uniformity AV +15 x share of the lot in the batch",
            }
        if "granulation_water" in self.on:
            settings["granulation_water"] = {
                "parameter_id": "P-GRN-WATER",
                "nor_high": 32.0,
                "par_high": 35.0,
                "batches": [
                    {"batch_id": str(self.g_id[i]), "value": float(self.water_exc[i])} for i in self.water_batches
                ],
                "effect": "hardness +6 N and dissolution -2.5 % per % water above the NOR",
            }
        ev = self.events
        devs: dict[str, Any] = {}
        d = self.dev
        for did, b, a, m, c in zip(d["id"], d["batch_id"], d["attribute_id"], d["mechanism"], d["cause"], strict=True):
            devs[str(did)] = {
                "mechanism": None if m is None or (isinstance(m, float) and np.isnan(m)) else str(m),
                "cause": c,
                "batch_id": str(b),
                "attribute_id": None if a is None or (isinstance(a, float) and np.isnan(a)) else str(a),
            }
        return {
            "generator": "pharmakg.demo._generate",
            "format": 1,
            "batches": self.n,
            "granulation_batches": self.ng,
            "seed": self.seed,
            "mechanisms": [m for m in MECHANISMS if m in self.on],
            "as_of": iso1(self.as_of),
            "settings": settings,
            "distractors": {
                "cpp_excursions_on_passing_batches": self.cpp_excursions,
                "noncritical_excursions": self.nc_excursions,
                "failed_calibrations": ev.loc[ev["key"] == -2, "id"].tolist(),
                "out_of_spec_cma_lots": self.oos_cma_lots,
                "noise_oos": [
                    {"batch_id": str((self.g_id if a == "Q-GRN-LOD" else self.c_id)[i]), "attribute_id": a}
                    for a, i in self.noise_oos
                ],
            },
            "impacts": {
                "active": [[s, q] for s, q, _, _, act in _IMPACTS if act],
                "inert": [[s, q] for s, q, _, _, act in _IMPACTS if not act],
            },
            "deviations": devs,
        }


def _fmt_quantities(kg: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Quantities as text: masses with up to 2 decimals, tablet counts as integers."""
    a = pd.Series(np.round(kg.astype(float), 2)).astype(str).to_numpy(dtype=object)
    b = counts.astype(np.int64).astype(str).astype(object)
    return np.r_[a, b]


def _objects(items: list[Any]) -> np.ndarray:
    """A 1-d object array (numpy would otherwise try to unpack dicts or lists)."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out
