"""Real data: the Žagar & Mihelič tablet dataset as a CSV bundle (layer L3).

J. Žagar, J. Mihelič, "Big data collection in pharmaceutical manufacturing and
its use for product quality predictions", *Scientific Data* 9, 99 (2022),
doi:10.1038/s41597-022-01203-x; the data are on figshare (linked from the
paper). 1 005 batches of one film-coated tablet in 25 product codes (strength x
batch size), with the lots of API, SMCC, lactose and starch that went into each
batch, their incoming tests, in-process controls, final QC results and
per-batch features of the tablet-press time series.

``zagar_bundle(data_dir, out_dir)`` reads ``Laboratory.csv``, ``Process.csv``,
``Normalization.csv`` and (for batch run times only) ``Process/{code}.csv``
and writes a CSV bundle that ``kg.load`` takes as it is. The historian series
themselves are imported afterwards with ``kg.load_series`` (tags ``main_comp``
-> ``P{code}-MAIN`` kN, ``tbl_fill`` -> ``P{code}-FILL`` mm, ``pre_comp`` ->
``P{code}-PRE`` kN, equipment ``PRESS-{code}``).

Mapping (source column -> bundle file: column). ``c`` is the product code,
``n`` a lot number as given; an attribute or parameter id made "from the
column" is the prefix plus the column name upper-cased, with ``_`` and spaces
turned into ``-`` (``resodual_solvent`` becomes ``Q-RESIDUAL-SOLVENT``)::

    Laboratory.csv
      batch                    batches: id (as given: "203")
      code                     batches: recipe_id MR-c, product_id TAB-c;
                               materials TAB-c (drug_product), recipes MR-c (master)
                               with one step COMP (UnitProcedure "Compression"),
                               equipment PRESS-c (Unit under SITE-ZM), batch_equipment
                               (batch, COMP, PRESS-c)
      strength                 materials: TAB-c, extra column strength ("20M" as given)
      size                     batches: extra column size_tablets
      start ("nov.18")         batches: extra column start_month ("2018-11"); not start
      api_batch                lots: API-n (material API, drug_substance); consumption (batch, API-n)
      api_code                 consumption: extra column api_code on the API row
      smcc_batch               lots: SMCC-n (SMCC, raw); consumption
      lactose_batch            lots: LAC-n (LACTOSE, raw); consumption
      starch_batch             lots: STA-n (STARCH, raw); consumption
      api_* smcc_* lactose_*   quality_attributes: Q-<column> (CMA of API/SMCC/LACTOSE/STARCH);
      starch_* (tests)         results: sample <lot>-T<k> with lot_id, one sample per distinct
                               set of test values of the lot (k in order of the first batch
                               reporting it); consumption: extra column lot_test_sample
      tbl_* fct_* (IPC)        quality_attributes Q-<column>; results: samples <batch>-TBL
                               (core tablets) and <batch>-FCT (film-coated)
      tbl_yield batch_yield    quality_attributes Q-<column>; results: sample <batch>-YIELD
      dissolution_av/_min,     quality_attributes Q-<column> (CQA); results: sample <batch>-QC
      resodual_solvent, impurities_total, impurity_o, impurity_l
    Process.csv
      main_CompForce_median    parameter_values: P{c}-MAIN (main compression force, CPP, kN)
      tbl_fill_mean            parameter_values: P{c}-FILL (fill depth, CPP, mm)
      pre_CompForce_mean       parameter_values: P{c}-PRE (pre-compression force, kN)
      every other numeric one  parameters PF-<column> (no recipe); parameter_values
      weekend                  batches: extra column weekend (yes/no)
      Drug release ... Impurity L   not mapped: the same results as Laboratory.csv (checked)
    Normalization.csv          materials: TAB-c, extra columns batch_size_tablets, normalisation_factor
    Process/{c}.csv            batch_equipment: start, end = first and last point of the batch
                               (local time, Europe/Ljubljana); the points: kg.load_series

Not in the data, so not in the bundle: suppliers, lot quantities and dates,
consumed quantities, finished-goods lots, spec limits, a registered NOR, the
risk assessment. The NOR of ``P{c}-MAIN`` and ``P{c}-FILL`` is *observed*: the
5th to 95th percentile of the product code's batch values (codes with at least
five batches), said so in the extra column ``nor_basis``. Cells holding only
whitespace, and Excel's ``#N/A``, are empty. docs/design.md ("Real data") gives the reasons.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import IngestError, Where
from ..ingest._read import LINE, read_table

__all__ = ["zagar_bundle"]

#: The plant's time zone (the authors' plant is in Slovenia; month names in the data are Slovene).
TIMEZONE = "Europe/Ljubljana"

# -- the mapping as data ------------------------------------------------------------------------
#: Raw materials: Laboratory.csv lot column -> (material id, name, kind, lot prefix, test column prefix).
_MATERIALS = (
    ("api_batch", "API", "API (anonymised cholesterol-lowering drug substance)", "drug_substance", "API", "api_"),
    ("smcc_batch", "SMCC", "Silicified microcrystalline cellulose", "raw", "SMCC", "smcc_"),
    ("lactose_batch", "LACTOSE", "Lactose", "raw", "LAC", "lactose_"),
    ("starch_batch", "STARCH", "Starch", "raw", "STA", "starch_"),
)
#: Laboratory.csv test columns -> (name, unit). Units the data do not state are left empty.
_LAB_TESTS: dict[str, tuple[str, str]] = {
    "api_water": ("API water content", "%"),
    "api_total_impurities": ("API total impurities", "%"),
    "api_l_impurity": ("API impurity L", "%"),
    "api_content": ("API assay", "%"),
    "api_ps01": ("API particle size d(0.1)", "um"),
    "api_ps05": ("API particle size d(0.5)", "um"),
    "api_ps09": ("API particle size d(0.9)", "um"),
    "lactose_water": ("Lactose water content", "%"),
    "lactose_sieve0045": ("Lactose sieve analysis, 45 um", "%"),
    "lactose_sieve015": ("Lactose sieve analysis, 150 um", "%"),
    "lactose_sieve025": ("Lactose sieve analysis, 250 um", "%"),
    "smcc_water": ("SMCC water content", "%"),
    "smcc_td": ("SMCC tapped density", "g/mL"),
    "smcc_bd": ("SMCC bulk density", "g/mL"),
    "smcc_ps01": ("SMCC particle size d(0.1)", "um"),
    "smcc_ps05": ("SMCC particle size d(0.5)", "um"),
    "smcc_ps09": ("SMCC particle size d(0.9)", "um"),
    "starch_ph": ("Starch pH", ""),
    "starch_water": ("Starch water content", "%"),
}
#: Batch samples: Laboratory.csv columns -> (sample suffix, attribute kind, name, unit).
_BATCH_TESTS: dict[str, tuple[str, str, str, str]] = {
    "tbl_min_thickness": ("TBL", "", "Core tablet thickness, min", "mm"),
    "tbl_max_thickness": ("TBL", "", "Core tablet thickness, max", "mm"),
    "fct_min_thickness": ("FCT", "", "Film-coated tablet thickness, min", "mm"),
    "fct_max_thickness": ("FCT", "", "Film-coated tablet thickness, max", "mm"),
    "tbl_min_weight": ("TBL", "", "Core tablet weight, min", "mg"),
    "tbl_max_weight": ("TBL", "", "Core tablet weight, max", "mg"),
    "tbl_rsd_weight": ("TBL", "", "Core tablet weight, RSD", "%"),
    "fct_rsd_weight": ("FCT", "", "Film-coated tablet weight, RSD", "%"),
    "tbl_min_hardness": ("TBL", "", "Core tablet hardness, min", "N"),
    "tbl_max_hardness": ("TBL", "", "Core tablet hardness, max", "N"),
    "tbl_av_hardness": ("TBL", "", "Core tablet hardness, mean", "N"),
    "fct_min_hardness": ("FCT", "", "Film-coated tablet hardness, min", "N"),
    "fct_max_hardness": ("FCT", "", "Film-coated tablet hardness, max", "N"),
    "fct_av_hardness": ("FCT", "", "Film-coated tablet hardness, mean", "N"),
    "tbl_max_diameter": ("TBL", "", "Core tablet diameter, max", "mm"),
    "fct_max_diameter": ("FCT", "", "Film-coated tablet diameter, max", "mm"),
    "tbl_tensile": ("TBL", "", "Core tablet tensile strength", "MPa"),
    "fct_tensile": ("FCT", "", "Film-coated tablet tensile strength", "MPa"),
    "tbl_yield": ("YIELD", "", "Tableting yield", "%"),
    "batch_yield": ("YIELD", "", "Batch yield", "%"),
    "dissolution_av": ("QC", "CQA", "Dissolution (drug release), mean", "%"),
    "dissolution_min": ("QC", "CQA", "Dissolution (drug release), min", "%"),
    "resodual_solvent": ("QC", "CQA", "Residual solvent", "%"),
    "impurities_total": ("QC", "CQA", "Total impurities", "%"),
    "impurity_o": ("QC", "CQA", "Impurity O", "%"),
    "impurity_l": ("QC", "CQA", "Impurity L", "%"),
}
#: Process.csv columns that are the actual of a product code's own press parameter: suffix, name, criticality, unit.
_PRESS_PARAMETERS: dict[str, tuple[str, str, str, str]] = {
    "main_CompForce_median": ("MAIN", "Main compression force", "CPP", "kN"),
    "tbl_fill_mean": ("FILL", "Fill depth", "CPP", "mm"),
    "pre_CompForce_mean": ("PRE", "Pre-compression force", "non-critical", "kN"),
}
#: Every other numeric Process.csv column: a product-independent batch feature PF-<column> (name, unit).
_PRESS_FEATURES: dict[str, tuple[str, str]] = {
    "tbl_speed_mean": ("Tablet press speed, mean", ""),
    "tbl_speed_change": ("Tablet press speed, changes", ""),
    "tbl_speed_0_duration": ("Tablet press speed, time at zero", ""),
    "total_waste": ("Waste, total", ""),
    "startup_waste": ("Waste at start-up", ""),
    "fom_mean": ("Fill-o-matic speed, mean", ""),
    "fom_change": ("Fill-o-matic speed, changes", ""),
    "SREL_startup_mean": ("SREL at start-up, mean", ""),
    "SREL_production_mean": ("SREL in production, mean", ""),
    "SREL_production_max": ("SREL in production, max", ""),
    "main_CompForce mean": ("Main compression force, mean", "kN"),
    "main_CompForce_sd": ("Main compression force, SD", "kN"),
    "tbl_fill_sd": ("Fill depth, SD", "mm"),
    "cyl_height_mean": ("Cylindrical height, mean", "mm"),
    "stiffness_mean": ("Stiffness, mean", ""),
    "stiffness_max": ("Stiffness, max", ""),
    "stiffness_min": ("Stiffness, min", ""),
    "ejection_mean": ("Ejection force, mean", "N"),
    "ejection_max": ("Ejection force, max", "N"),
    "ejection_min": ("Ejection force, min", "N"),
    "Startup_tbl_fill_maxDifference": ("Fill depth at start-up, max difference", "mm"),
    "Startup_main_CompForce_mean": ("Main compression force at start-up, mean", "kN"),
    "Startup_tbl_fill_mean": ("Fill depth at start-up, mean", "mm"),
}
#: Process.csv final QC columns: the same results as these Laboratory.csv columns.
_PROCESS_QC = {
    "Drug release average (%)": "dissolution_av",
    "Drug release min (%)": "dissolution_min",
    "Residual solvent": "resodual_solvent",
    "Total impurities": "impurities_total",
    "Impurity O": "impurity_o",
    "Impurity L": "impurity_l",
}
_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "maj": 5, "jun": 6,
    "jul": 7, "avg": 8, "sep": 9, "okt": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_INTEGER = re.compile(r"^\d+$")
_NOR_MIN_BATCHES = 5
#: Spreadsheet markers for a missing value (Process.csv has Excel's ``#N/A`` where QC results are absent).
_MISSING = "#N/A"


def _ident(prefix: str, column: str) -> str:
    fixed = column.replace("resodual", "residual")
    return prefix + re.sub(r"[\s_]+", "-", fixed.strip()).upper()


# -- reading --------------------------------------------------------------------------------------
def _read(path: Path, required: Sequence[str]) -> pd.DataFrame:
    if not path.is_file():
        raise IngestError(Where(str(path)), "does not exist: the Žagar & Mihelič data folder is incomplete")
    frame = read_table(path, label=path.name)
    frame.attrs["label"] = path.name
    data = frame.columns != LINE
    frame.loc[:, data] = frame.loc[:, data].replace(_MISSING, "")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise IngestError(Where(path.name, 1, missing[0]), f"required column {missing[0]!r} is missing")
    return frame


def _fail(frame: pd.DataFrame, mask: pd.Series, column: str, problem: str) -> IngestError:
    bad = frame.loc[mask]
    first = bad.iloc[0]
    more = len(bad) - 1
    suffix = f" ({more} more row{'s' if more > 1 else ''} like it)" if more else ""
    value = first[column]
    return IngestError(
        Where(frame.attrs["label"], int(first[LINE]), column), f"{problem}: {value!r}{suffix}", value=value
    )


def _check_numbers(frame: pd.DataFrame, columns: Iterable[str]) -> None:
    for column in columns:
        cells = frame[column]
        bad = (cells != "") & ~cells.str.match(_NUMBER)
        if bad.any():
            raise _fail(frame, bad, column, "not a number (write it with '.' as the decimal point, or leave it empty)")


def _check_ids(frame: pd.DataFrame, columns: Iterable[str], *, required: bool) -> None:
    for column in columns:
        cells = frame[column]
        bad = ~cells.str.match(_INTEGER) & ((cells != "") | required)
        if bad.any():
            what = "a required number is missing or not a whole number" if required else "not a whole number"
            raise _fail(frame, bad, column, what)


def _unique_batches(frame: pd.DataFrame) -> None:
    dup = frame["batch"].duplicated()
    if dup.any():
        first = frame.loc[frame["batch"] == frame.loc[dup, "batch"].iloc[0], LINE].iloc[0]
        raise _fail(frame, dup, "batch", f"batch appears twice (first at line {int(first)})")


def _month(frame: pd.DataFrame) -> pd.Series:
    parts = frame["start"].str.extract(r"^([a-z]{3})\.(\d{2})$")
    month = parts[0].map(_MONTHS)
    bad = (frame["start"] != "") & month.isna()
    if bad.any():
        raise _fail(frame, bad, "start", "not a month like 'nov.18' (Slovene month abbreviations)")
    text = "20" + parts[1].fillna("00") + "-" + month.map(lambda m: f"{int(m):02d}" if pd.notna(m) else "")
    return text.where(month.notna(), "")


# -- mapping ----------------------------------------------------------------------------------------
def _lot_tests(lab: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """One sample per distinct set of test values of a lot, numbered by first batch; and each row's sample id."""
    results = []
    sample_of: dict[str, pd.Series] = {}
    for lot_col, _material, _name, _kind, prefix, test_prefix in _MATERIALS:
        tests = [c for c in _LAB_TESTS if c.startswith(test_prefix)]
        rows = lab[lab[lot_col] != ""]
        signature = rows[[lot_col, *tests]].copy()
        signature["_order"] = rows["batch"].astype(int)
        signature = signature.sort_values("_order", kind="stable")
        filled = (signature[tests] != "").any(axis=1)
        distinct = signature[filled].drop_duplicates([lot_col, *tests])
        distinct = distinct.assign(k=distinct.groupby(lot_col).cumcount() + 1)
        distinct["sample"] = prefix + "-" + distinct[lot_col] + "-T" + distinct["k"].astype(str)
        merged = signature.reset_index().merge(distinct[[lot_col, *tests, "sample"]], on=[lot_col, *tests], how="left")
        sample_of[lot_col] = merged.set_index("index")["sample"].fillna("").reindex(lab.index, fill_value="")
        long = distinct.melt(id_vars=["sample", lot_col], value_vars=tests, var_name="column", value_name="value")
        long = long[long["value"] != ""]
        results.append(
            pd.DataFrame(
                {
                    "sample_id": long["sample"],
                    "batch_id": "",
                    "lot_id": prefix + "-" + long[lot_col],
                    "attribute_id": long["column"].map(lambda c: _ident("Q-", c)),
                    "value": long["value"],
                    "unit": long["column"].map(lambda c: _LAB_TESTS[c][1]),
                }
            )
        )
    frame = pd.concat(results, ignore_index=True)
    return frame.sort_values(["sample_id", "attribute_id"], kind="stable"), sample_of


def _batch_results(lab: pd.DataFrame) -> pd.DataFrame:
    columns = list(_BATCH_TESTS)
    long = lab.melt(id_vars=["batch"], value_vars=columns, var_name="column", value_name="value")
    long = long[long["value"] != ""]
    return pd.DataFrame(
        {
            "sample_id": long["batch"] + "-" + long["column"].map(lambda c: _BATCH_TESTS[c][0]),
            "batch_id": long["batch"],
            "lot_id": "",
            "attribute_id": long["column"].map(lambda c: _ident("Q-", c)),
            "value": long["value"],
            "unit": long["column"].map(lambda c: _BATCH_TESTS[c][3]),
        }
    )


def _observed_nor(values: pd.Series) -> tuple[str, str, int]:
    """5th and 95th percentile of a product code's batch values, and how many batches they come from."""
    nums = pd.to_numeric(values[values != ""])
    if len(nums) < _NOR_MIN_BATCHES:
        return "", "", len(nums)
    low, high = np.percentile(nums.to_numpy(), [5, 95])
    return f"{low:.3g}", f"{high:.3g}", len(nums)


def _runs(data_dir: Path, codes: Iterable[int], lab_codes: dict[str, str]) -> pd.DataFrame:
    """First and last historian point of each batch in Process/{code}.csv, as ISO 8601 with offset."""
    out = []
    for code in codes:
        path = data_dir / "Process" / f"{code}.csv"
        if not path.is_file():
            continue
        label = f"Process/{code}.csv"
        # only three columns of up to 10^5 rows are needed: pandas' reader, not the strict row-by-row one
        # (no quoted line breaks in these files, so row i is physical line i + 2; blank lines are kept as rows)
        with open(path, encoding="utf-8-sig") as f:
            header = [h.strip() for h in f.readline().split(";")]
        for column in ("timestamp", "batch", "code"):
            if column not in header:
                raise IngestError(Where(label, 1, column), f"required column {column!r} is missing")
        try:
            frame = pd.read_csv(
                path,
                sep=";",
                usecols=["timestamp", "batch", "code"],
                dtype=str,
                keep_default_na=False,
                skip_blank_lines=False,
            )
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise IngestError(Where(label), f"malformed CSV: {exc}") from exc
        frame = frame.apply(lambda col: col.str.strip())
        frame[LINE] = np.arange(2, len(frame) + 2)
        frame.attrs["label"] = label
        _check_ids(frame, ["batch", "code"], required=True)
        foreign = frame["code"] != str(code)
        if foreign.any():
            raise _fail(frame, foreign, "code", f"a row of another product code in the file of code {code}")
        unknown = frame["batch"].map(lab_codes) != str(code)
        if unknown.any():
            raise _fail(frame, unknown, "batch", f"not a batch of product code {code} in Laboratory.csv")
        local = pd.to_datetime(frame["timestamp"], format="%Y-%m-%d %H:%M:%S", errors="coerce")
        if local.isna().any():
            raise _fail(frame, local.isna(), "timestamp", "not a time like 2018-11-18 22:28:52")
        times = local.dt.tz_localize(TIMEZONE, ambiguous="NaT", nonexistent="NaT")
        if times.isna().any():
            raise _fail(
                frame, times.isna(), "timestamp", f"a local time that does not exist or is ambiguous in {TIMEZONE}"
            )
        runs = times.groupby(frame["batch"]).agg(["min", "max"])
        out.append(
            pd.DataFrame(
                {
                    "batch": runs.index,
                    "start": runs["min"].map(lambda t: t.isoformat()),
                    "end": runs["max"].map(lambda t: t.isoformat()),
                }
            )
        )
    if not out:
        return pd.DataFrame(columns=["batch", "start", "end"])
    return pd.concat(out, ignore_index=True)


def _write(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")


def zagar_bundle(data_dir: str | Path, out_dir: str | Path, *, products: Iterable[int] | None = None) -> Path:
    """Write the Žagar & Mihelič tablet data as a CSV bundle into ``out_dir``; returns the folder.

    ``products`` keeps only the batches of those product codes (1-25) and the
    lots, tests and equipment they use; ids and sample numbers do not depend on
    it, so bundles of different product sets load into one store. A cell that
    is not a number where one is expected, a missing id, a duplicate batch or a
    Process.csv row that contradicts Laboratory.csv raises ``IngestError``
    naming the file, line and column. The mapping is in the module docstring.
    """
    data = Path(data_dir)
    lab = _read(data / "Laboratory.csv", ["batch", "code", "strength", "size", "start", "api_code"])
    lot_cols = [m[0] for m in _MATERIALS]
    for column in [*lot_cols, *_LAB_TESTS, *_BATCH_TESTS]:
        if column not in lab.columns:
            raise IngestError(Where("Laboratory.csv", 1, column), f"required column {column!r} is missing")
    _check_ids(lab, ["batch", "code"], required=True)
    _check_ids(lab, [*lot_cols, "size", "api_code"], required=False)
    _check_numbers(lab, [*_LAB_TESTS, *_BATCH_TESTS])
    _unique_batches(lab)
    month = _month(lab)

    proc = _read(data / "Process.csv", ["batch", "code", "weekend", *_PRESS_PARAMETERS, *_PRESS_FEATURES])
    _check_ids(proc, ["batch", "code"], required=True)
    _check_numbers(proc, [*_PRESS_PARAMETERS, *_PRESS_FEATURES, *[c for c in _PROCESS_QC if c in proc.columns]])
    _unique_batches(proc)
    lab_codes = dict(zip(lab["batch"], lab["code"], strict=True))
    unknown = ~proc["batch"].isin(lab_codes)
    if unknown.any():
        raise _fail(proc, unknown, "batch", "no such batch in Laboratory.csv")
    other = proc["code"] != proc["batch"].map(lab_codes)
    if other.any():
        raise _fail(proc, other, "code", "the product code differs from Laboratory.csv")
    lab_by_batch = lab.set_index("batch")
    for column, lab_column in _PROCESS_QC.items():
        if column not in proc.columns:
            continue
        theirs = pd.to_numeric(proc[column].where(proc[column] != ""))
        ours = pd.to_numeric(proc["batch"].map(lab_by_batch[lab_column]).where(lambda s: s != ""))
        differs = theirs.notna() & ours.notna() & ~np.isclose(theirs, ours)
        if differs.any():
            raise _fail(proc, differs, column, f"differs from Laboratory.csv column {lab_column!r}")

    norm = _read(data / "Normalization.csv", ["Product code", "Batch Size (tablets)", "Normalisation factor"])
    _check_ids(norm, ["Product code", "Batch Size (tablets)"], required=True)
    _check_numbers(norm, ["Normalisation factor"])

    all_codes = sorted({int(c) for c in lab["code"]})
    if products is None:
        codes = all_codes
    else:
        codes = sorted({int(c) for c in products})
        absent = [c for c in codes if c not in all_codes]
        if absent:
            raise ValueError(f"no batches of product code(s) {absent} in Laboratory.csv; the codes are {all_codes}")
    # numbered over the whole file, so that ids do not depend on ``products``
    lot_results, sample_of = _lot_tests(lab)
    wanted = lab["code"].astype(int).isin(codes)
    sel = lab[wanted]
    psel = proc[proc["code"].astype(int).isin(codes)]

    runs = _runs(data, codes, lab_codes).set_index("batch")  # the last input that can be wrong
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    code_str = [str(c) for c in codes]

    # equipment, materials, recipes, steps
    equipment = [("SITE-ZM", "Tablet plant (anonymised, Žagar & Mihelič 2022)", "Site", "", "")]
    equipment += [
        (f"PRESS-{c}", f"Tablet press of product code {c}", "Unit", "SITE-ZM", "RotaryTabletPress") for c in code_str
    ]
    _write(
        pd.DataFrame(equipment, columns=["id", "name", "level", "parent_id", "equipment_class"]), out / "equipment.csv"
    )

    norm_by_code = norm.set_index("Product code")
    strength = sel.groupby("code")["strength"].first()
    materials = [(m[1], m[2], m[3], "", "", "") for m in _MATERIALS]
    for c in code_str:
        size = norm_by_code["Batch Size (tablets)"].get(c, "")
        factor = norm_by_code["Normalisation factor"].get(c, "")
        materials.append(
            (
                f"TAB-{c}",
                f"Film-coated tablet {strength[c]}, product code {c}",
                "drug_product",
                strength[c],
                size,
                factor,
            )
        )
    _write(
        pd.DataFrame(
            materials, columns=["id", "name", "kind", "strength", "batch_size_tablets", "normalisation_factor"]
        ),
        out / "materials.csv",
    )
    _write(
        pd.DataFrame(
            {
                "id": [f"MR-{c}" for c in code_str],
                "name": [f"Product code {c}" for c in code_str],
                "type": "master",
                "product_id": [f"TAB-{c}" for c in code_str],
            }
        ),
        out / "recipes.csv",
    )
    _write(
        pd.DataFrame(
            {
                "recipe_id": [f"MR-{c}" for c in code_str],
                "step_id": "COMP",
                "parent_step_id": "",
                "level": "UnitProcedure",
                "name": "Compression",
                "equipment_class": "RotaryTabletPress",
                "seq": 1,
            }
        ),
        out / "recipe_steps.csv",
    )

    # parameters: each code's press CPPs (observed NOR), then the product-independent features
    params = []
    for c in code_str:
        batches_of_code = proc[proc["code"] == c]
        for column, (suffix, name, criticality, unit) in _PRESS_PARAMETERS.items():
            low = high = basis = ""
            if criticality == "CPP":
                low, high, counted = _observed_nor(batches_of_code[column])
                if low:
                    basis = (
                        f"observed, not registered: 5th-95th percentile of Process.csv {column} "
                        f"over the {counted} batches of product code {c}"
                    )
            params.append((f"P{c}-{suffix}", f"MR-{c}", "COMP", name, criticality, low, high, unit, basis))
    for column, (name, unit) in _PRESS_FEATURES.items():
        params.append((_ident("PF-", column), "", "", f"{name} (Process.csv {column})", "", "", "", unit, ""))
    _write(
        pd.DataFrame(
            params,
            columns=["id", "recipe_id", "step_id", "name", "criticality", "nor_low", "nor_high", "unit", "nor_basis"],
        ),
        out / "parameters.csv",
    )

    # quality attributes
    attributes = []
    for _lot_col, material, _name, _kind, _prefix, test_prefix in _MATERIALS:
        for column, (name, unit) in _LAB_TESTS.items():
            if column.startswith(test_prefix):
                attributes.append((_ident("Q-", column), material, name, "CMA", unit, f"Laboratory.csv {column}"))
    for column, (_sample, kind, name, unit) in _BATCH_TESTS.items():
        attributes.append((_ident("Q-", column), "", name, kind, unit, f"Laboratory.csv {column}"))
    _write(
        pd.DataFrame(attributes, columns=["id", "material_id", "name", "kind", "unit", "source_column"]),
        out / "quality_attributes.csv",
    )

    # batches and where they ran
    weekend = proc.set_index("batch")["weekend"]
    _write(
        pd.DataFrame(
            {
                "id": sel["batch"],
                "recipe_id": "MR-" + sel["code"],
                "product_id": "TAB-" + sel["code"],
                "start_month": month[wanted],
                "size_tablets": sel["size"],
                "weekend": sel["batch"].map(weekend).fillna(""),
            }
        ),
        out / "batches.csv",
    )
    _write(
        pd.DataFrame(
            {
                "batch_id": sel["batch"],
                "step_id": "COMP",
                "equipment_id": "PRESS-" + sel["code"],
                "start": sel["batch"].map(runs["start"]).fillna(""),
                "end": sel["batch"].map(runs["end"]).fillna(""),
            }
        ),
        out / "batch_equipment.csv",
    )

    # lots and what each batch consumed
    consumption = []
    for lot_col, material, _name, _kind, prefix, _tests in _MATERIALS:
        used = sel[sel[lot_col] != ""]
        consumption.append(
            pd.DataFrame(
                {
                    "batch_id": used["batch"],
                    "lot_id": prefix + "-" + used[lot_col],
                    "_material": material,
                    "api_code": used["api_code"] if lot_col == "api_batch" else "",
                    "lot_test_sample": sample_of[lot_col][used.index],
                }
            )
        )
    cons = pd.concat(consumption, ignore_index=True)
    lots = cons[["lot_id", "_material"]].drop_duplicates("lot_id")
    lots = lots.assign(_n=lots["lot_id"].str.extract(r"(\d+)$")[0].astype(int)).sort_values(["_material", "_n"])
    _write(lots.rename(columns={"lot_id": "id", "_material": "material_id"})[["id", "material_id"]], out / "lots.csv")
    _write(cons.drop(columns="_material"), out / "consumption.csv")

    # results: the lot tests the selected batches report, then the batches' own samples
    reported = set(cons["lot_test_sample"]) - {""}
    results = pd.concat([lot_results[lot_results["sample_id"].isin(reported)], _batch_results(sel)], ignore_index=True)
    _write(results, out / "results.csv")

    # parameter actuals
    values = []
    for column, (suffix, _name, _crit, unit) in _PRESS_PARAMETERS.items():
        rows = psel[psel[column] != ""]
        values.append(
            pd.DataFrame(
                {
                    "batch_id": rows["batch"],
                    "parameter_id": "P" + rows["code"] + "-" + suffix,
                    "value": rows[column],
                    "unit": unit,
                }
            )
        )
    for column, (_name, unit) in _PRESS_FEATURES.items():
        rows = psel[psel[column] != ""]
        values.append(
            pd.DataFrame(
                {"batch_id": rows["batch"], "parameter_id": _ident("PF-", column), "value": rows[column], "unit": unit}
            )
        )
    _write(pd.concat(values, ignore_index=True), out / "parameter_values.csv")
    return out
