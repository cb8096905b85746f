"""Twin benchmark: fit the demo drying twin on its batch history, and a vectorised Monte Carlo design space.

    python benchmarks/twins.py                          # demo plant of 2000 batches (seed 0), 3 repeats
    python benchmarks/twins.py --batches 300 --repeat 5
    python benchmarks/twins.py --store demo-store       # an existing on-disk store (no build)

The demo plant is built once in an in-memory store (``build_demo``; its time
is printed for information only), or an on-disk store is opened read-only.
Every timing is the median of ``--repeat`` runs (the slowest run, usually the
first and cold one, is printed beside it).

1. Accuracy: ``fit_twin`` on ``demo_twin("drying")`` (output LOD) and on
   ``demo_twin("compaction")`` (output hardness): granulation batches in the
   history, batches used for training and held out (the fit's rule: batches
   with a deviation or suspect after a failed calibration are excluded,
   every 5th remaining one in start-time order is held out), and the
   held-out R^2. Target: held-out R^2 >= 0.9 for both end points.
2. Fit time of the drying twin, split in two: the history pull
   (``history(kg, twin)``, SPARQL, one query per port plus the calibration
   rule) and the fit itself (``twin.fit(train, test=test)`` on that frame:
   scipy ``least_squares``, robust two-pass, covariance, scoring); and
   ``fit_twin(kg, twin)`` end to end. Target: end to end < 10 s.
3. Design space of the fitted drying twin over T_inlet x time, 50 x 50 grid,
   1000 Monte Carlo draws per point (``design_space``, end to end including
   its graph reads: limits and the normal history). Target: < 5 s.
   Baseline, measured in the same run: the same Monte Carlo as a naive
   Python loop over draws, one ``twin.evaluate`` call per draw on the 2500
   grid points with that draw's parameter scalars and history row, then the
   specification check and a running count; timed on the first
   ``--loop-draws`` draws and extrapolated linearly to 1000. The draws are
   the ones ``design_space`` makes (same seed, same order: history rows, then
   ``_param_draws``), so the benchmark checks that (a) replaying the
   vectorised evaluation gives ``design_space``'s probability exactly and
   (b) the loop gives the vectorised outputs on the same draws within 1e-12
   and the same in-spec counts. Ratios: loop / ``design_space`` end to end
   and loop / the vectorised Monte Carlo core alone (no graph reads).
4. Scaling: the pure drying fit on the first 250, 500, 1000, 2000 batches
   of the history (start-time order, same exclusion and hold-out rule).

Exit code 0 when every target passes (and the loop agrees with the
vectorised evaluation), 1 otherwise.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

import pharmakg
from pharmakg.kg import KnowledgeGraph
from pharmakg.twins import DesignSpace, Twin, demo_twin, design_space, fit_twin, history
from pharmakg.twins.space import _normal_history, _param_draws, limits

TARGET_R2 = 0.9
TARGET_FIT_S = 10.0
TARGET_DS_S = 5.0
TOLERANCE = 1e-12
GRID = 50
DRAWS = 1000
HOLDOUT_STEP = 5  # fit_twin's default holdout=0.2: every 5th usable batch is held out
SCALING = (250, 500, 1000, 2000)

T = TypeVar("T")


def timed(fn: Callable[[], T], repeat: int) -> tuple[float, float, T]:
    """Median and maximum seconds over ``repeat`` calls, and the last call's result."""
    times: list[float] = []
    result: T
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), max(times), result


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and held-out rows by fit_twin's rule (no deviation, not suspect; every 5th held out)."""
    usable = frame[(frame["deviations"].to_numpy() == 0) & ~frame["suspect"].to_numpy(dtype=bool)]
    pos = np.arange(len(usable))
    held = pos % HOLDOUT_STEP == HOLDOUT_STEP - 1
    return usable[~held], usable[held]


def in_spec(out: Mapping[str, np.ndarray], specs: Mapping[str, tuple[float | None, float | None]]) -> np.ndarray:
    """Boolean array: every output within its specification (broadcast over the outputs' shape)."""
    shape = np.broadcast_shapes(*(np.shape(v) for v in out.values()))
    ok = np.ones(shape, dtype=bool)
    for name, (low, high) in specs.items():
        v = np.broadcast_to(out[name], shape)
        if low is not None:
            ok &= v >= low
        if high is not None:
            ok &= v <= high
    return ok


class Draws:
    """The Monte Carlo draws ``design_space`` makes for ``seed``: history rows, then parameter draws."""

    def __init__(self, kg: KnowledgeGraph, twin: Twin, ds: DesignSpace, draws: int, seed: int = 0) -> None:
        hist = _normal_history(kg, twin)
        rng = np.random.default_rng(seed)
        rows = hist.iloc[rng.integers(0, len(hist), draws)]
        self.twin = twin
        self.x, self.y = ds.x, ds.y
        gx, gy = np.meshgrid(ds.xs, ds.ys)
        self.gx, self.gy = gx.ravel(), gy.ravel()
        self.shape = gx.shape
        self.specs = ds.specs
        self.others = {p.name: rows[p.name].to_numpy(dtype=float) for p in twin.inputs if p.name not in (ds.x, ds.y)}
        self.params: dict[str, Any] = _param_draws(twin, draws, rng)

    def vectorised(self, k: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Outputs of the first ``k`` draws (all when None) in one evaluation, shape (draws, points); in-spec counts."""
        inputs = {n: v[:k, None] for n, v in self.others.items()}
        inputs[self.x], inputs[self.y] = self.gx[None, :], self.gy[None, :]
        params = {n: (v[:k] if isinstance(v, np.ndarray) else v) for n, v in self.params.items()}
        with np.errstate(all="ignore"):
            out = self.twin.evaluate(inputs, params)
        return out, in_spec(out, self.specs).sum(axis=0)

    def loop(self, k: int) -> tuple[dict[str, list[np.ndarray]], np.ndarray]:
        """The naive baseline: one evaluation per draw, with that draw's parameter scalars and history row."""
        counts = np.zeros(self.gx.size, dtype=np.int64)
        outs: dict[str, list[np.ndarray]] = {p.name: [] for p in self.twin.outputs}
        for i in range(k):
            inputs = {n: v[i : i + 1] for n, v in self.others.items()}
            inputs[self.x], inputs[self.y] = self.gx, self.gy
            params = {n: (float(v[i, 0]) if isinstance(v, np.ndarray) else v) for n, v in self.params.items()}
            with np.errstate(all="ignore"):
                out = self.twin.evaluate(inputs, params)
            counts += in_spec(out, self.specs)
            for n in outs:
                outs[n].append(np.broadcast_to(out[n], self.gx.shape))
        return outs, counts


def accuracy(kg: KnowledgeGraph, name: str, output: str, repeat: int) -> tuple[bool, float]:
    """Fit a demo twin end to end; print its history size, train/test counts and held-out R^2."""
    twin = demo_twin(name)
    secs, _, fitted = timed(lambda: fit_twin(kg, twin), repeat)
    rep = fitted.fit_report
    assert rep is not None
    n_hist = len(history(kg, twin))
    r2 = rep.test_r2.get(output, float("nan"))
    ok = bool(r2 >= TARGET_R2)
    print(
        f"  {name:<10} {output:<8} {n_hist:>9} {rep.n_train:>6} {rep.n_test:>5} {rep.excluded:>9} {rep.dropped:>8}"
        f"  {rep.r2.get(output, float('nan')):8.4f} {r2:8.4f} {rep.test_rmse.get(output, float('nan')):9.4g}"
        f"  {secs:13.2f} s   {verdict(ok)}"
    )
    return ok, secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=2000, help="demo plant size (compression batches)")
    ap.add_argument("--seed", type=int, default=0, help="demo plant seed")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (the median is reported)")
    ap.add_argument("--store", type=Path, help="open this on-disk store read-only instead of building the demo")
    ap.add_argument("--loop-draws", type=int, default=100, help="draws the per-draw loop baseline is timed on")
    args = ap.parse_args()
    repeat = max(1, args.repeat)
    started = time.perf_counter()
    checks: list[bool] = []

    work: Path | None = None
    if args.store is not None:
        kg = pharmakg.open(args.store, read_only=True)
        print(f"store: {args.store} (existing, read-only); {repeat} repeat(s), median reported")
    else:
        kg = pharmakg.open()
        work = Path(tempfile.mkdtemp(prefix="pharmakg-twins-"))
        t = time.perf_counter()
        built = build(kg, args.batches, args.seed, work)
        print(
            f"demo plant: {args.batches} batches, seed {args.seed}, {built:,} triples, in-memory store, "
            f"built in {time.perf_counter() - t:.1f} s (info only); {repeat} repeat(s), median reported",
            flush=True,
        )
    try:
        dry = demo_twin("drying")

        print("\n1. held-out accuracy (fit_twin; target held-out R^2 >= 0.9)")
        print(
            f"  {'twin':<10} {'output':<8} {'history':>9} {'train':>6} {'test':>5} {'excluded':>9} {'dropped':>8}"
            f"  {'R2 train':>8} {'R2 test':>8} {'RMSE test':>9}  {'fit_twin, 1 run':>15}"
        )
        for name, output in (("drying", "LOD"), ("compaction", "hardness")):
            ok, _ = accuracy(kg, name, output, 1)
            checks.append(ok)
        sys.stdout.flush()

        print("\n2. drying twin fit time (median, slowest run in brackets)")
        hist_s, hist_max, h = timed(lambda: history(kg, dry), repeat)
        train, test = split(h)
        fit_s, fit_max, _ = timed(lambda: dry.fit(train, test=test), repeat)
        e2e_s, e2e_max, fitted = timed(lambda: fit_twin(kg, dry), repeat)
        ok_fit = e2e_s < TARGET_FIT_S
        checks.append(ok_fit)
        print(f"  history pull   history(kg, twin)       {hist_s:7.3f} s  ({hist_max:.3f})   {len(h)} batches")
        print(
            f"  fit itself     twin.fit(train, test)   {fit_s:7.3f} s  ({fit_max:.3f})   "
            f"{len(train)} train, {len(test)} test"
        )
        print(
            f"  end to end     fit_twin(kg, twin)      {e2e_s:7.3f} s  ({e2e_max:.3f})   "
            f"target < {TARGET_FIT_S:g} s  {verdict(ok_fit)}  ({e2e_s / TARGET_FIT_S:.0%} of the budget)"
        )
        print(f"  history pull share of end to end: {hist_s / e2e_s:.0%}", flush=True)

        print(f"\n3. design space T_inlet x time, {GRID} x {GRID} grid, {DRAWS} draws per point")
        ds_s, ds_max, ds = timed(lambda: design_space(kg, fitted, "T_inlet", "time", grid=GRID, draws=DRAWS), repeat)
        reads_s, _, _ = timed(lambda: (limits(kg, fitted), _normal_history(kg, fitted)), repeat)
        draws = Draws(kg, fitted, ds, DRAWS)
        core_s, _, (_, counts) = timed(draws.vectorised, repeat)
        replay = counts.reshape(draws.shape) / DRAWS
        same_prob = bool(np.array_equal(replay, ds.probability))
        k = min(args.loop_draws, DRAWS)
        loop_s, _, (loop_out, loop_counts) = timed(lambda: draws.loop(k), repeat)
        loop_full = loop_s * DRAWS / k
        vec_out, vec_counts = draws.vectorised(k)
        diff = max(float(np.max(np.abs(np.stack(loop_out[n]) - vec_out[n]))) for n in loop_out)
        agree = diff <= TOLERANCE and bool(np.array_equal(loop_counts, vec_counts))
        ok_ds = ds_s < TARGET_DS_S
        checks += [ok_ds, agree, same_prob]
        p = ds.probability
        print(
            f"  P(in spec) from {p.min():.3f} to {p.max():.3f}; {np.mean(p >= 0.95):.0%} of the grid at P >= 0.95; "
            f"specs {ds.specs}"
        )
        print(
            f"  design_space end to end                     {ds_s:7.3f} s  ({ds_max:.3f})   "
            f"target < {TARGET_DS_S:g} s  {verdict(ok_ds)}  ({ds_s / TARGET_DS_S:.0%} of the budget)"
        )
        print(f"    of which graph reads (limits + history)   {reads_s:7.3f} s")
        print(f"    Monte Carlo core, vectorised (replayed)   {core_s:7.3f} s   {GRID * GRID * DRAWS:,} evaluations")
        print(
            f"  loop per draw (extrapolated)                {loop_full:7.3f} s   "
            f"timed on {k} draws: {loop_s:.3f} s, {loop_s / k * 1e3:.2f} ms per draw"
        )
        print(
            f"  speed-up vs loop: design_space end to end {loop_full / ds_s:.2f}x, "
            f"Monte Carlo core {loop_full / core_s:.1f}x"
        )
        print(
            f"  check: replayed vectorised draws give design_space's probability exactly: {same_prob}; "
            f"loop vs vectorised on the first {k} draws: max |diff| {diff:.2e} (<= {TOLERANCE:g}), "
            f"same in-spec counts {bool(np.array_equal(loop_counts, vec_counts))}  {verdict(agree)}",
            flush=True,
        )

        print("\n4. scaling of the pure drying fit (first n batches of the history, start-time order)")
        print(
            f"  {'batches':>8} {'train':>6} {'test':>5} {'fit':>9} {'ms/train batch':>15} {'vs smallest':>12} {'R2 test':>8}"
        )
        sizes = sorted({min(n, len(h)) for n in SCALING})
        first: float | None = None
        for n in sizes:
            tr, te = split(h.iloc[:n])

            def pure_fit(tr: pd.DataFrame = tr, te: pd.DataFrame = te) -> Twin:
                return dry.fit(tr, test=te)

            secs, _, f = timed(pure_fit, repeat)
            first = first or secs
            r2 = f.fit_report.test_r2.get("LOD", float("nan")) if f.fit_report else float("nan")
            print(
                f"  {n:>8} {len(tr):>6} {len(te):>5} {secs:7.3f} s {secs / len(tr) * 1e3:15.3f} "
                f"{secs / first:11.2f}x {r2:8.4f}"
            )
    finally:
        kg.close()
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)

    passed = all(checks)
    print(f"\nall targets {'PASS' if passed else 'FAIL'}; total run time {time.perf_counter() - started:.1f} s")
    sys.stdout.flush()
    sys.exit(0 if passed else 1)


def build(kg: KnowledgeGraph, batches: int, seed: int, work: Path) -> int:
    """Build the demo plant into ``kg`` (bundle written under ``work``); the number of triples added."""
    from pharmakg.demo import build_demo

    return build_demo(kg, batches=batches, seed=seed, out_dir=work / "demo").triples_added


if __name__ == "__main__":
    main()
