"""Historian-series benchmark: a year of one tag at 1 s into Parquet, with its batch features in the graph.

    python benchmarks/sources.py                # 365 days at 1 s (31.5 M points), batches of 8 h
    python benchmarks/sources.py --quick        # 14 days (1.2 M points)
    python benchmarks/sources.py --days 60 --reads 50 --dir /tmp/series-bench --keep

Everything is built in a temporary folder (``--dir``), nothing is downloaded:

- an on-disk store holding one tablet press, its compression-force CPP (NOR,
  PAR, an impact on a CQA) and one batch per 8 h with its press run (a
  batch_equipment row), loaded as a CSV bundle;
- a historian export of the force as one long Parquet file (tag, timestamp,
  value, unit) at 1 s, with drift, noise and short excursions above the NOR.
  Synthetic on purpose: the shared real press series (10 s, 16 batches) is
  far too small for this; tests/test_series.py imports it.

1. Import: ``kg.load_series(export)`` end to end, points per second, the
   split of its time (reported by its progress steps), peak RSS of the process,
   the triples it added and the pkg:TimeSeries nodes (target: exactly one per
   batch x tag, none per point).
2. One-batch window read, ``kg.series(batch, tag)`` for ``--reads`` random
   batches (a whole ~8 h batch, 28 800 points) and a 1 h window inside one;
   median and p95. Target: < 100 ms. Baseline, measured in the same run: what
   one does without the per-batch layout, ``pandas.read_parquet`` of the whole
   export followed by the same selection (median of ``--baseline-reads``).
3. Check: the batch features in the graph for one batch equal the ones
   recomputed with numpy from the window read back.

Exit code 0 when every target passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import pharmakg

TARGET_READ_MS = 100.0
BATCH_HOURS = 8
TAG = "PRESS1.COMP.FORCE.PV"
NOR = (10.0, 14.0)
START = pd.Timestamp("2026-01-01T06:00:00+01:00")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def rss_gib() -> float:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def build_bundle(folder: Path, batches: int) -> None:
    """The plant: one press, one CPP with a CQA impact, ``batches`` back-to-back batches of 8 h on the press."""
    folder.mkdir(parents=True)
    (folder / "equipment.csv").write_text(
        "id,name,level,parent_id,equipment_class\nSITE,Site,Site,,\nPRESS-1,Tablet press 1,Unit,SITE,tablet_press\n"
    )
    (folder / "materials.csv").write_text("id,name,kind\nTAB,Tablets,drug_product\n")
    (folder / "recipes.csv").write_text("id,name,type,product_id\nMR-TAB,Tablets,master,TAB\n")
    (folder / "recipe_steps.csv").write_text(
        "recipe_id,step_id,parent_step_id,level,name,equipment_class,seq\n"
        "MR-TAB,UP-COMP,,UnitProcedure,Compression,tablet_press,1\n"
    )
    (folder / "parameters.csv").write_text(
        "id,recipe_id,step_id,name,criticality,target,nor_low,nor_high,par_low,par_high,unit\n"
        f"P-FORCE,MR-TAB,UP-COMP,Main compression force,CPP,12,{NOR[0]},{NOR[1]},8,16,kN\n"
    )
    (folder / "quality_attributes.csv").write_text(
        "id,material_id,name,kind,spec_low,spec_high,unit\nTAB-HARD,TAB,Hardness,CQA,60,120,N\n"
    )
    (folder / "impacts.csv").write_text("source_id,cqa_id,severity,rationale\nP-FORCE,TAB-HARD,8,Force sets hardness\n")
    starts = START + pd.to_timedelta(np.arange(batches) * BATCH_HOURS, unit="h")
    ends = starts + pd.Timedelta(hours=BATCH_HOURS) - pd.Timedelta(seconds=1)
    ids = [f"B{i:05d}" for i in range(batches)]
    iso_s, iso_e = [t.isoformat() for t in starts], [t.isoformat() for t in ends]
    pd.DataFrame({"id": ids, "product_id": "TAB", "start": iso_s, "end": iso_e, "status": "released"}).to_csv(
        folder / "batches.csv", index=False
    )
    pd.DataFrame(
        {"batch_id": ids, "step_id": "UP-COMP", "equipment_id": "PRESS-1", "start": iso_s, "end": iso_e}
    ).to_csv(folder / "batch_equipment.csv", index=False)


def write_export(path: Path, seconds: int, seed: int) -> int:
    """A long-format Parquet export of the force at 1 s, written a day at a time (bounded memory)."""
    rng = np.random.default_rng(seed)
    schema = pa.schema(
        [
            ("tag", pa.dictionary(pa.int8(), pa.string())),
            ("timestamp", pa.timestamp("us", tz="UTC")),
            ("value", pa.float64()),
            ("unit", pa.dictionary(pa.int8(), pa.string())),
        ]
    )
    t0 = int(START.tz_convert("UTC").value // 1000)
    day = 86_400
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for first in range(0, seconds, day):
            n = min(day, seconds - first)
            k = np.arange(first, first + n)
            batch_phase = (k % (BATCH_HOURS * 3600)) / 3600.0  # hours into the batch
            values = 12 + 0.08 * batch_phase + 0.3 * np.sin(k / 900) + rng.normal(0, 0.25, n)
            spikes = rng.random(n) < 2e-4
            values[spikes] += 3.0
            chunk = pa.Table.from_arrays(
                [
                    pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int8)), pa.array([TAG])),
                    pa.array(t0 + k * 1_000_000, type=pa.timestamp("us", tz="UTC")),
                    pa.array(values),
                    pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int8)), pa.array(["kN"])),
                ],
                schema=schema,
            )
            writer.write_table(chunk, row_group_size=1 << 20)
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=float, default=365.0, help="days of 1 s data (default 365)")
    ap.add_argument("--quick", action="store_true", help="14 days instead of --days")
    ap.add_argument("--reads", type=int, default=100, help="timed one-batch reads (default 100)")
    ap.add_argument("--baseline-reads", type=int, default=3, help="timed whole-file pandas reads (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    days = 14.0 if args.quick else args.days
    seconds = int(days * 86_400)
    batches = seconds // (BATCH_HOURS * 3600)
    seconds = batches * BATCH_HOURS * 3600  # whole batches only
    work = args.dir or Path(tempfile.mkdtemp(prefix="pharmakg-sources-"))
    work.mkdir(parents=True, exist_ok=True)
    checks: list[bool] = []
    started = time.perf_counter()
    try:
        print(f"{days:g} days at 1 s: {seconds:,} points, {batches} batches of {BATCH_HOURS} h, work folder {work}")
        t = time.perf_counter()
        build_bundle(work / "plant", batches)
        export = work / "historian.parquet"
        write_export(export, seconds, args.seed)
        (work / "map.csv").write_text(f"tag,parameter_id,equipment_id,unit\n{TAG},P-FORCE,PRESS-1,kN\n")
        kg = pharmakg.open(work / "store")
        kg.load(work / "plant", reason="benchmark plant")
        print(
            f"setup (info only): plant bundle loaded and export written ({export.stat().st_size / 2**20:.0f} MiB) "
            f"in {time.perf_counter() - t:.1f} s; RSS so far {rss_gib():.2f} GiB",
            flush=True,
        )

        print("\n1. import: kg.load_series(export) into an on-disk store (Parquet per batch x tag, features in graph)")
        steps: list[tuple[str, float]] = []
        quads_before = len(kg)
        t = time.perf_counter()
        report = kg.load_series(
            export,
            mapping=work / "map.csv",
            reason="benchmark",
            progress=lambda s: steps.append((s, time.perf_counter())),
        )
        import_s = time.perf_counter() - t
        marks = [*steps, ("end", time.perf_counter())]
        split = ", ".join(f"{name} {end - begin:.1f} s" for (name, begin), (_, end) in itertools.pairwise(marks))
        nodes = int(kg.query("SELECT (COUNT(*) AS ?n) WHERE { ?x a pkg:TimeSeries }")["n"].iloc[0])
        ok_nodes = nodes == batches == len(report.series)
        ok_points = report.points == seconds
        checks += [ok_nodes, ok_points]
        folder_mib = sum(p.stat().st_size for p in kg.series_dir.rglob("*.parquet")) / 2**20
        print(f"  {report.points:,} points in {import_s:.1f} s = {report.points / import_s:,.0f} points/s")
        print(f"  time split: {split}")
        print(f"  peak RSS of the process: {rss_gib():.2f} GiB; Parquet written: {folder_mib:.0f} MiB in {nodes} files")
        print(
            f"  triples added: {report.triples_added:,} ({report.triples_added / max(nodes, 1):.0f} per batch x tag), "
            f"{len(kg) - quads_before - report.triples_added} audit/provenance quads; {len(report.features)} feature values"
        )
        print(
            f"  pkg:TimeSeries nodes: {nodes} for {batches} batches x 1 tag: one per batch x tag  {verdict(ok_nodes)};"
            f" every point imported {verdict(ok_points)}",
            flush=True,
        )

        print(f"\n2. one-batch window read (target < {TARGET_READ_MS:g} ms), {args.reads} random batches")
        rng = np.random.default_rng(args.seed)
        picks = [f"B{i:05d}" for i in rng.integers(0, batches, args.reads)]
        kg.series(picks[0], TAG)  # warm-up: imports, first file open
        whole: list[float] = []
        for b in picks:
            t = time.perf_counter()
            frame = kg.series(b, TAG)
            whole.append(time.perf_counter() - t)
            assert len(frame) == BATCH_HOURS * 3600
        hour: list[float] = []
        for b in picks:
            k = int(b[1:])
            lo = START + pd.Timedelta(hours=k * BATCH_HOURS + 3)
            t = time.perf_counter()
            frame = kg.series(b, TAG, lo, lo + pd.Timedelta(hours=1))
            hour.append(time.perf_counter() - t)
            assert len(frame) == 3601
        med, p95 = statistics.median(whole) * 1e3, float(np.percentile(whole, 95)) * 1e3
        med_h, p95_h = statistics.median(hour) * 1e3, float(np.percentile(hour, 95)) * 1e3
        ok_read = p95 < TARGET_READ_MS
        checks.append(ok_read)
        base: list[float] = []
        b = picks[0]
        k = int(b[1:])
        lo = (START + pd.Timedelta(hours=k * BATCH_HOURS)).tz_convert("UTC")
        hi = lo + pd.Timedelta(hours=BATCH_HOURS) - pd.Timedelta(seconds=1)
        for _ in range(max(1, args.baseline_reads)):
            t = time.perf_counter()
            everything = pd.read_parquet(export)
            selected = everything[(everything["timestamp"] >= lo) & (everything["timestamp"] <= hi)]
            base.append(time.perf_counter() - t)
            assert len(selected) == BATCH_HOURS * 3600
            del everything, selected
        base_ms = statistics.median(base) * 1e3
        print(f"  kg.series(batch, tag), whole batch ({BATCH_HOURS * 3600:,} points): median {med:.1f} ms, p95 {p95:.1f} ms"
              f"  {verdict(ok_read)}")  # fmt: skip
        print(
            f"  kg.series(batch, tag, start, end), 1 h window (3 601 points): median {med_h:.1f} ms, p95 {p95_h:.1f} ms"
        )
        print(f"  baseline: pandas.read_parquet(whole export) + the same selection: median {base_ms:,.0f} ms")
        print(
            f"  ratio baseline / kg.series: {base_ms / med:,.0f}x (whole batch), {base_ms / med_h:,.0f}x (1 h window)"
        )

        print("\n3. check: the graph's batch features equal numpy on the points read back")
        frame = kg.series(picks[0], TAG)
        v = frame["value"].to_numpy()
        got = {
            f: float(
                kg.query(
                    f"SELECT ?v WHERE {{ ?x pkg:batch/dcterms:identifier '{picks[0]}' ; "
                    f"pkg:parameter/dcterms:identifier 'P-FORCE:{f}' ; pkg:value ?v }}"
                )["v"].iloc[0]
            )
            for f in ("mean", "min", "max", "time_above_nor")
        }
        want = {"mean": v.mean(), "min": v.min(), "max": v.max(), "time_above_nor": (v > NOR[1]).sum() / 60}
        ok_features = all(abs(got[f] - want[f]) <= 1e-9 * max(1.0, abs(want[f])) for f in want)
        checks.append(ok_features)
        print(
            "  " + ", ".join(f"{f} {got[f]:.6g}" for f in got) + f"  {verdict(ok_features)}",
        )
        kg.close()
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    passed = all(checks)
    print(f"\nall targets {verdict(passed)}; total run time {time.perf_counter() - started:.1f} s")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
