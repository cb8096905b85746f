"""Root-cause accuracy benchmark: ``investigate`` vs a naive limit-excursion list, on generated plants.

    python benchmarks/rootcause.py                          # 30 plants (seeds 1..30), 200 batches each
    python benchmarks/rootcause.py --plants 5 --verbose     # fewer plants, print every miss
    python benchmarks/rootcause.py --first-seed 11 --plants 10 --batches 400
    python benchmarks/rootcause.py --store S --deviations 10   # runtime on a big on-disk plant
    python benchmarks/rootcause.py --store S --after-writes 200 # what a write costs the next investigation

Each plant is a demo bundle from ``generate_bundle`` with its own mix of
injected mechanisms: plant ``seed`` gets all of ``MECHANISMS`` when
``seed % 3 == 0``, otherwise 2-4 of them drawn with
``numpy.random.default_rng(seed)``. The bundle is loaded into an in-memory
store through the ordinary ingest path, and every deviation in the
generator's ground truth is investigated.

Deviations are grouped by category: the mechanism that caused them; for
deviations with no mechanism, the kind of their cause ("event (no mechanism)"
for an equipment failure during a batch, "parameter (no mechanism)" for a
recorded actual outside its PAR); "no cause" for the injected noise results.

* pharmakg: ``pharmakg.rootcause.investigate(kg, deviation)``; a hit at k when
  the true cause's (kind, business id) is among the top k causes. On "no
  cause" deviations success is ``not inv.strong`` ("says no strong candidate").
* naive baseline, from the same ``facts(kg)`` tables (values are already in
  canonical units in the graph): walk the deviation batch's genealogy upstream
  (all upstream batches, itself included) and list every recorded parameter
  actual outside its PAR, every consumed lot's CoA value outside its
  attribute's spec, and every failed calibration (event type ending in
  "Calibration", outcome "fail") on equipment those batches used or on
  anything mounted on it (calibrations are recorded on sensors, which are
  control modules of the units). Excursions score by their distance outside
  the limit over the width of the band (a one-sided limit uses the limit's
  magnitude as width); calibrations score 0 so they rank after excursions;
  ties by id. A candidate met on several batches keeps its best score. On
  "no cause" deviations the baseline succeeds when it lists nothing. The
  baseline only ever names parameters, lots and events: it cannot name a
  supplier or a unit, so it scores 0 on mechanisms whose cause is one.

It prints per category n, top-1 and top-3 for both; the mechanism-weighted
averages (the injected mechanisms only, each weighted equally) against the
targets top-1 >= 0.80 and top-3 >= 0.95; the "no strong candidate" rate; and
seconds per ``investigate`` call, the first call per plant ("cold", it loads
the plant tables) apart from the rest ("warm").
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import pharmakg
from pharmakg.demo import generate_bundle
from pharmakg.demo._generate import MECHANISMS
from pharmakg.kg import KnowledgeGraph
from pharmakg.rootcause import Investigation, _Facts, _upstream, facts, investigate
from pharmakg.rootcause._keep import _disk_folder, finish_keeping
from pharmakg.twins import DEMO_SPECS, demo_twin, fit_twin

TARGET_TOP1 = 0.80
TARGET_TOP3 = 0.95
NO_CAUSE = "no cause"
#: Compact names for the per-plant mix lines.
SHORT = {
    "wet_excipient_supplier": "wet",
    "drifting_dryer_sensor": "dryer",
    "worn_press_tooling": "tooling",
    "api_particle_size": "api",
    "granulation_water": "water",
}

Candidate = tuple[str, str]  # (kind, business id)


@dataclass
class Tally:
    """Outcomes of one category over all plants."""

    n: int = 0
    top1: int = 0
    top3: int = 0
    base_top1: int = 0
    base_top3: int = 0
    no_strong: int = 0  # "no cause" only: pharmakg says no strong candidate
    base_empty: int = 0  # "no cause" only: the baseline lists nothing


def mix_for(seed: int) -> list[str]:
    """All mechanisms when ``seed % 3 == 0``, else 2-4 of them drawn from ``default_rng(seed)`` (in fixed order)."""
    if seed % 3 == 0:
        return list(MECHANISMS)
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 5))
    chosen = set(rng.choice(np.array(MECHANISMS, dtype=object), size=k, replace=False).tolist())
    return [m for m in MECHANISMS if m in chosen]


def category(truth: dict[str, Any]) -> str:
    if truth.get("mechanism"):
        return str(truth["mechanism"])
    cause = truth.get("cause")
    if not cause:
        return NO_CAUSE
    return f"{cause['kind']} (no mechanism)"


def _outside(value: pd.Series, low: pd.Series, high: pd.Series) -> pd.Series:
    """Distance outside [low, high] over the band width (0 inside; a missing side is open)."""
    width = (high - low).where(low.notna() & high.notna())
    width = width.fillna(high.abs().where(high.notna(), low.abs())).replace(0.0, 1.0).fillna(1.0)
    above = (value - high).where(high.notna() & (value > high), 0.0)
    below = (low - value).where(low.notna() & (value < low), 0.0)
    return (above.fillna(0.0) + below.fillna(0.0)) / width


class Baseline:
    """The naive list: limit excursions and failed calibrations in the batch's upstream genealogy."""

    def __init__(self, f: _Facts) -> None:
        self.f = f
        self.params = f.params.drop_duplicates("iri")[["iri", "par_low", "par_high"]]
        self.attrs = f.attrs.drop_duplicates("iri")[["iri", "spec_low", "spec_high"]]
        cal = f.events[
            f.events["type"].fillna("").str.endswith("Calibration")
            & (f.events["outcome"].fillna("").str.lower() == "fail")
        ]
        self.failed_cal = cal[["iri", "equipment"]]
        children: dict[str, set[str]] = defaultdict(set)
        for iri, parent in f.equipment.dropna(subset=["parent"])[["iri", "parent"]].itertuples(index=False):
            children[str(parent)].add(str(iri))
        self.children = children

    def _mounted(self, units: set[str]) -> set[str]:
        """The units and everything part of them, at any depth."""
        out, todo = set(units), list(units)
        while todo:
            for child in self.children.get(todo.pop(), ()):
                if child not in out:
                    out.add(child)
                    todo.append(child)
        return out

    def rank(self, deviation_iri: str) -> list[Candidate]:
        f = self.f
        row = f.deviations[f.deviations["iri"] == deviation_iri]
        if row.empty or not isinstance(row["batch"].iloc[0], str):
            return []
        batches = set(_upstream(f, row["batch"].iloc[0]))
        scores: dict[Candidate, float] = {}

        def add(kind: str, iris: pd.Series, score: pd.Series) -> None:
            for iri, s in zip(iris, score, strict=True):
                key = (kind, f.ids.get(str(iri), str(iri)))
                scores[key] = max(scores.get(key, -1.0), float(s))

        pv = f.pvalues[f.pvalues["batch"].isin(batches)].merge(self.params, left_on="parameter", right_on="iri")
        pv = pv.assign(score=_outside(pv["value"], pv["par_low"], pv["par_high"]))
        pv = pv[pv["score"] > 0]
        add("parameter", pv["parameter"], pv["score"])

        lots = set(f.consumed[f.consumed["batch"].isin(batches)]["lot"])
        la = f.lotattr[f.lotattr["lot"].isin(lots)].merge(self.attrs, left_on="attribute", right_on="iri")
        la = la.assign(score=_outside(la["value"], la["spec_low"], la["spec_high"]))
        la = la[la["score"] > 0]
        add("lot", la["lot"], la["score"])

        used = self._mounted(set(f.uses[f.uses["batch"].isin(batches)]["equipment"]))
        cal = self.failed_cal[self.failed_cal["equipment"].isin(used)]
        add("event", cal["iri"], pd.Series(0.0, index=cal.index))
        return sorted(scores, key=lambda c: (-scores[c], c[1], c[0]))


def rank_of(truth: Candidate, ranked: list[Candidate]) -> int | None:
    return ranked.index(truth) + 1 if truth in ranked else None


def fmt_rate(k: int, n: int) -> str:
    return f"{k / n:6.2f}" if n else "   n/a"


def run_plant(
    seed: int,
    mix: list[str],
    args: argparse.Namespace,
    work: Path,
    tallies: dict[str, Tally],
    timing: dict[str, list[float]],
) -> tuple[int, float]:
    t0 = time.perf_counter()
    out = work / f"plant-{seed}"
    plant = generate_bundle(out, batches=args.batches, seed=seed, mechanisms=mix)
    truth_doc = json.loads(plant.ground_truth.read_text(encoding="utf-8"))
    devs: dict[str, dict[str, Any]] = truth_doc["deviations"]
    kg: KnowledgeGraph = pharmakg.open()
    try:
        kg.load(plant.bundle, reason="rootcause benchmark")
        timing["load"].append(time.perf_counter() - t0)
        if args.twins:  # the demo's drying and compaction twins, fitted on the plant and attached
            for name in ("drying", "compaction"):
                fitted = fit_twin(kg, demo_twin(name))
                node = DEMO_SPECS[name]["attach"]
                kg.twins.attach(node, fitted, id=f"TW-{name.upper()}", reason="rootcause benchmark")
        shutil.rmtree(out, ignore_errors=True)
        baseline: Baseline | None = None
        for i, (dev_id, truth) in enumerate(sorted(devs.items())):
            cat = category(truth)
            t = time.perf_counter()
            inv: Investigation = investigate(kg, dev_id)
            timing["cold" if i == 0 else "warm"].append(time.perf_counter() - t)
            f = facts(kg)
            if baseline is None:
                baseline = Baseline(f)
            t = time.perf_counter()
            base = baseline.rank(kg.resolve(dev_id))
            timing["baseline"].append(time.perf_counter() - t)
            ranked = [(c.kind, c.id) for c in inv.causes]
            tally = tallies[cat]
            tally.n += 1
            cause = truth.get("cause")
            if not cause:
                tally.no_strong += not inv.strong
                tally.base_empty += not base
                if args.verbose and inv.strong:
                    top = ", ".join(f"{c.kind} {c.id} ({c.score:.1f})" for c in inv.causes[:3])
                    print(f"    miss seed {seed} {dev_id} [{cat}] on {truth['batch_id']}: strong candidate {top}")
                continue
            true = (str(cause["kind"]), str(cause["id"]))
            r, br = rank_of(true, ranked), rank_of(true, base)
            tally.top1 += r == 1
            tally.top3 += r is not None and r <= 3
            tally.base_top1 += br == 1
            tally.base_top3 += br is not None and br <= 3
            if args.verbose and r != 1:
                top = ", ".join(f"{c.kind} {c.id} ({c.score:.2f})" for c in inv.causes[:3]) or "nothing"
                btop = ", ".join(f"{k} {x}" for k, x in base[:3]) or "nothing"
                print(
                    f"    miss seed {seed} {dev_id} [{cat}] batch {truth['batch_id']} attr {truth['attribute_id']}: "
                    f"true {true[0]} {true[1]} at rank {r or '-'} of {len(ranked)}; top 3: {top}"
                    f"{'' if inv.strong else ' (no strong candidate)'}; baseline rank {br or '-'}, top 3: {btop}"
                )
    finally:
        kg.close()
        shutil.rmtree(out, ignore_errors=True)
    return len(devs), time.perf_counter() - t0


def runtime_on_store(path: str, n: int) -> None:
    """Runtime on an existing on-disk plant (e.g. ``pharmakg --store S demo --batches 100000``), read-only.

    The plant tables (``facts``) are read once per state of the store: queried,
    or read from ``<store>/cache`` when an earlier process kept them; the first
    investigation also builds the lookups on them; the rest is the per-deviation
    cost. Deviations are every 40th of the first 40 x n, so they spread over the plant."""
    kg = pharmakg.open(path, read_only=True)
    try:
        kept = _disk_folder(kg)
        source = "kept in " + str(kept) if kept is not None and kept.exists() else "queried from the store"
        t = time.perf_counter()
        facts(kg)
        cold = time.perf_counter() - t
        rows = kg.rows(
            f"SELECT ?id WHERE {{ ?d a pkg:Deviation ; dcterms:identifier ?id }} ORDER BY ?id LIMIT {40 * max(n, 1)}"
        )
        ids = [r["id"] for r in rows][::40][:n]
        if not ids:
            raise SystemExit(f"{path}: no deviations to investigate")
        times = []
        for dev in ids:
            t = time.perf_counter()
            inv = investigate(kg, dev, top=3)
            times.append(time.perf_counter() - t)
            best = f"{inv.causes[0].kind} {inv.causes[0].id}" if inv.causes else "no candidate"
            print(f"  {dev}  {times[-1]:6.2f} s  best: {best}", flush=True)
        print(f"plant tables (facts, once per store revision)  {cold:7.1f} s  ({source})")
        print(f"first investigation (builds the lookups)       {times[0]:7.2f} s")
        rest = times[1:] or times
        print(
            f"per deviation after that ({len(rest)})               median {statistics.median(rest):.2f} s  max {max(rest):.2f} s"
        )
        print(f"target < 2 s per deviation: {'PASS' if max(rest) < 2 else 'FAIL'} (after the tables are read)")
    finally:
        kg.close()


def _retests(kg: KnowledgeGraph, n: int) -> pd.DataFrame:
    """A results.csv of ``n`` retests: recorded results again, a day later and 0.1 higher, under new sample ids."""
    rows = kg.rows(
        "SELECT ?rid ?batch ?lot ?attr ?value ?unit ?time ?instr ?analyst ?status WHERE { ?r a pkg:TestResult ; "
        "dcterms:identifier ?rid ; pkg:batch/dcterms:identifier ?batch ; pkg:attribute/dcterms:identifier ?attr ; "
        "pkg:value ?value ; pkg:unit ?unit ; pkg:time ?time OPTIONAL { ?r pkg:lot/dcterms:identifier ?lot } "
        "OPTIONAL { ?r pkg:instrument/dcterms:identifier ?instr } OPTIONAL { ?r pkg:analyst/dcterms:identifier "
        f"?analyst }} OPTIONAL {{ ?r pkg:status ?status }} }} LIMIT {n}"
    )
    return pd.DataFrame(
        {
            "sample_id": [r["rid"].split("/")[0] + "-R1" for r in rows],
            "batch_id": [r["batch"] for r in rows],
            "lot_id": [r.get("lot", "") for r in rows],
            "attribute_id": [r["attr"] for r in rows],
            "value": [round(float(r["value"]) + 0.1, 6) for r in rows],
            "unit": [r["unit"] for r in rows],
            "time": [(pd.Timestamp(r["time"]) + pd.Timedelta(days=1)).isoformat() for r in rows],
            "instrument_id": [r.get("instr", "") for r in rows],
            "analyst": [r.get("analyst", "") for r in rows],
            "status": [r.get("status", "valid") for r in rows],
        }
    )


def after_writes_on_store(path: str, retests: int) -> None:
    """What a write costs the next investigation, on a copy of an on-disk plant (the store is left alone).

    The copy is a backup beside the store (hard links: instant, no space). In one
    process, after the plant tables of the copy's state are at hand: (1) a root
    cause accepted through the audited path, (2) a load of a day's LIMS results:
    ``retests`` of recorded results (a bundle holding only results.csv). After
    each write: the write itself, bringing the tables forward (``facts``), and the
    next investigation. The baseline, in the same run: reading the tables from the
    whole store, as every write required before."""
    from pharmakg.rootcause import accept_cause
    from pharmakg.rootcause._facts import _TABLES, _read

    copy = Path(path).with_name(Path(path).name + ".after-writes")
    shutil.rmtree(copy, ignore_errors=True)
    with pharmakg.open(path, read_only=True) as source:
        source.backup(copy)
    if (Path(path) / "cache").exists():
        shutil.copytree(Path(path) / "cache", copy / "cache")
    kg = pharmakg.open(copy)
    try:
        t = time.perf_counter()
        facts(kg)
        print(f"plant tables for the copy's state                {time.perf_counter() - t:7.1f} s")
        ids = [
            r["id"]
            for r in kg.rows("SELECT ?id WHERE { ?d a pkg:Deviation ; dcterms:identifier ?id } ORDER BY ?id LIMIT 200")
        ]
        inv = investigate(kg, ids[0], top=3)

        def after(what: str, seconds: float, dev: str) -> None:
            t = time.perf_counter()
            facts(kg)
            forward = time.perf_counter() - t
            t = time.perf_counter()
            investigate(kg, dev, top=3)
            nxt = time.perf_counter() - t
            print(
                f"{what:<48} {seconds:7.2f} s; tables brought forward {forward:6.2f} s; next investigation {nxt:5.2f} s"
            )

        t = time.perf_counter()
        accept_cause(
            kg, inv, inv.causes[0], reason="benchmark: accepted after review", capa="CAPA-BENCH: retrain, revise SOP"
        )
        after(f"accept the top cause of {ids[0]}", time.perf_counter() - t, ids[len(ids) // 3])
        with tempfile.TemporaryDirectory() as work:
            rows = _retests(kg, retests)
            rows.to_csv(Path(work) / "results.csv", index=False)
            t = time.perf_counter()
            kg.load(Path(work), reason="benchmark: a day's LIMS results (retests)")
            after(f"load a day's LIMS results ({len(rows)} retests)", time.perf_counter() - t, ids[2 * len(ids) // 3])
        held = facts(kg)
        t = time.perf_counter()
        whole = _read(kg)
        full = time.perf_counter() - t
        print(f"baseline: tables read from the whole store        {full:7.1f} s")
        same = len(held.ids) == len(whole.ids) and all(len(getattr(held, n)) == len(getattr(whole, n)) for n in _TABLES)
        print(f"tables brought forward have the full read's row counts: {'yes' if same else 'NO'}")
    finally:
        finish_keeping()
        kg.close()
        shutil.rmtree(copy, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plants", type=int, default=30)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--verbose", action="store_true", help="print every miss (true cause, its rank, the top 3)")
    ap.add_argument("--twins", action="store_true", help="fit and attach the demo's twins first (twin evidence)")
    ap.add_argument("--store", help="measure runtime on this on-disk plant instead (no accuracy figures)")
    ap.add_argument("--deviations", type=int, default=10, help="with --store: how many deviations to investigate")
    ap.add_argument(
        "--after-writes",
        type=int,
        metavar="N",
        help="with --store: the cost of writes to the next investigation (N retests)",
    )
    args = ap.parse_args()
    if args.store and args.after_writes:
        after_writes_on_store(args.store, args.after_writes)
        return
    if args.store:
        runtime_on_store(args.store, args.deviations)
        return
    started = time.perf_counter()
    tallies: dict[str, Tally] = defaultdict(Tally)
    timing: dict[str, list[float]] = defaultdict(list)
    legend = ", ".join(f"{v}={k}" for k, v in SHORT.items())
    print(f"{args.plants} plants, seeds {args.first_seed}..{args.first_seed + args.plants - 1}, {args.batches} batches")
    print(f"mechanisms: {legend}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="pharmakg-rootcause-"))
    try:
        for seed in range(args.first_seed, args.first_seed + args.plants):
            mix = mix_for(seed)
            n, secs = run_plant(seed, mix, args, work, tallies, timing)
            tag = "all" if len(mix) == len(MECHANISMS) else "+".join(SHORT.get(m, m) for m in mix)
            print(f"  seed {seed:>3}  mix {tag:<26} {n:>4} deviations  {secs:6.1f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    order = [m for m in MECHANISMS if m in tallies]
    order += sorted(c for c in tallies if c not in MECHANISMS and c != NO_CAUSE)
    order += [NO_CAUSE] if NO_CAUSE in tallies else []
    width = max(len(c) for c in [*order, "category"])
    print()
    print(f"{'category':<{width}}  {'n':>5}  {'pkg top1':>8} {'pkg top3':>8}  {'base top1':>9} {'base top3':>9}")
    for cat in order:
        t = tallies[cat]
        if cat == NO_CAUSE:
            print(f"{cat:<{width}}  {t.n:>5}  {'see below':>17}  {'':>19}")
            continue
        print(
            f"{cat:<{width}}  {t.n:>5}  {fmt_rate(t.top1, t.n):>8} {fmt_rate(t.top3, t.n):>8}  "
            f"{fmt_rate(t.base_top1, t.n):>9} {fmt_rate(t.base_top3, t.n):>9}"
        )
    mechs = [m for m in MECHANISMS if tallies.get(m) and tallies[m].n]
    missing = [m for m in MECHANISMS if m not in mechs]
    if mechs:

        def weighted(attr: str) -> float:
            return statistics.fmean(getattr(tallies[m], attr) / tallies[m].n for m in mechs)

        top1, top3 = weighted("top1"), weighted("top3")
        b1, b3 = weighted("base_top1"), weighted("base_top3")
        n_mech = sum(tallies[m].n for m in mechs)
        print(
            f"\nmechanism-weighted ({len(mechs)} mechanisms, {n_mech} deviations, each mechanism weighted equally):"
            + (f" (no deviations for {', '.join(missing)})" if missing else "")
        )
        print(f"  pharmakg  top-1 {top1:.3f}  top-3 {top3:.3f}")
        print(f"  baseline  top-1 {b1:.3f}  top-3 {b3:.3f}")
        ratio1 = f"{top1 / b1:.2f}x" if b1 else "n/a (baseline 0)"
        ratio3 = f"{top3 / b3:.2f}x" if b3 else "n/a (baseline 0)"
        print(f"  pharmakg / baseline: top-1 {ratio1}, top-3 {ratio3}")
        caused = [c for c in order if c != NO_CAUSE]
        n_all = sum(tallies[c].n for c in caused)
        if n_all:
            pooled = (sum(tallies[c].top1 for c in caused) / n_all, sum(tallies[c].top3 for c in caused) / n_all)
            bpooled = (
                sum(tallies[c].base_top1 for c in caused) / n_all,
                sum(tallies[c].base_top3 for c in caused) / n_all,
            )
            print(
                f"  all {n_all} deviations with a cause, pooled: pharmakg top-1 {pooled[0]:.3f} top-3 {pooled[1]:.3f}; "
                f"baseline top-1 {bpooled[0]:.3f} top-3 {bpooled[1]:.3f}"
            )
        print(
            f"target top-1 >= {TARGET_TOP1:.2f} (mechanisms weighted equally): {top1:.3f} {'PASS' if top1 >= TARGET_TOP1 else 'FAIL'}"
        )
        print(
            f"target top-3 >= {TARGET_TOP3:.2f} (mechanisms weighted equally): {top3:.3f} {'PASS' if top3 >= TARGET_TOP3 else 'FAIL'}"
        )
    if NO_CAUSE in tallies:
        t = tallies[NO_CAUSE]
        print(
            f"no-cause deviations ({t.n}): pharmakg says no strong candidate {t.no_strong / t.n:.3f} "
            f"({t.no_strong} of {t.n}); baseline lists nothing {t.base_empty / t.n:.3f} ({t.base_empty} of {t.n})"
        )
    print()
    for name, label in (("cold", "investigate, cold (1st per plant, loads facts)"), ("warm", "investigate, warm")):
        ts = timing.get(name, [])
        if ts:
            print(f"{label:<48} median {statistics.median(ts):7.3f} s  max {max(ts):7.3f} s  ({len(ts)} calls)")
    if timing.get("baseline"):
        ts = timing["baseline"]
        print(f"{'baseline (facts cached)':<48} median {statistics.median(ts):7.3f} s  max {max(ts):7.3f} s")
    if timing.get("load"):
        ts = timing["load"]
        print(f"{'generate + load per plant':<48} median {statistics.median(ts):7.1f} s  max {max(ts):7.1f} s")
    print(f"total run time {time.perf_counter() - started:.1f} s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
