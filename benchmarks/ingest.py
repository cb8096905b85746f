"""Ingest benchmark: end-to-end load of the demo bundle vs a raw pyoxigraph bulk_load of the same triples.

    python benchmarks/ingest.py [--batches 10000] [--seed 1] [--repeat 1]

Prints triples/s for both, their ratio (target >= 0.35), the time of
``import pharmakg`` (target < 0.5 s), and a query timing before/after
``optimize()``. Everything is measured in this one run on this machine; with
``--repeat N`` the load and both raw loads run N times interleaved (a shared VM's
speed drifts over minutes) and the median ratio is reported.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyoxigraph as ox

import pharmakg
from pharmakg.demo import generate_bundle


def import_time(repeats: int = 5) -> float:
    code = "import time; t = time.perf_counter(); import pharmakg; print(time.perf_counter() - t)"
    runs = [float(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(repeats)]
    return statistics.median(runs)


def _load_once(bundle: Path, store: Path) -> tuple[float, int, str, pharmakg.KnowledgeGraph]:
    kg = pharmakg.open(store)
    t = time.perf_counter()
    (report,) = kg.load(bundle, reason="benchmark")
    return time.perf_counter() - t, report.triples_added, report.graph, kg


def _raw(data: bytes, directory: Path, graph: str | None) -> tuple[float, int]:
    store = ox.Store(str(directory))
    t = time.perf_counter()
    if graph is None:
        store.bulk_load(data, format=ox.RdfFormat.N_TRIPLES)
    else:  # the same triples into one named graph, as pharmakg stores them (six index orders, not three)
        store.bulk_load(data, format=ox.RdfFormat.N_TRIPLES, to_graph=ox.NamedNode(graph))
    store.flush()
    seconds = time.perf_counter() - t
    n = len(store)
    del store
    shutil.rmtree(directory, ignore_errors=True)
    return seconds, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batches", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="interleaved rounds (load, raw default-graph, raw named-graph); the ratios' median is reported",
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pharmakg-bench-"))

    t = time.perf_counter()
    plant = generate_bundle(work / "bundle", batches=args.batches, seed=args.seed)
    gen_s = time.perf_counter() - t

    rounds = []
    for n in range(args.repeat):
        load_s, triples, graph, kg = _load_once(plant.bundle, work / f"store-{n}")
        data = kg.export(format="nt", graph=graph)
        if n < args.repeat - 1:  # the last store stays open for the optimize() figures below
            kg.close()
            shutil.rmtree(work / f"store-{n}", ignore_errors=True)
        raw_s, raw_n = _raw(data, work / "raw", None)
        raw_g_s, _ = _raw(data, work / "raw-graph", graph)
        rounds.append((load_s, raw_s, raw_g_s, raw_n))

    q = "SELECT (COUNT(*) AS ?n) WHERE { ?b a pkg:Batch ; pkg:consumed ?l . ?l pkg:material ?m }"
    t = time.perf_counter()
    kg.query(q)
    before_opt = time.perf_counter() - t
    t = time.perf_counter()
    kg.optimize()
    opt_s = time.perf_counter() - t
    t = time.perf_counter()
    kg.query(q)
    after_opt = time.perf_counter() - t
    kg.close()
    shutil.rmtree(work, ignore_errors=True)

    imp = import_time()
    print(f"demo plant: {args.batches} batches, seed {args.seed}; generated in {gen_s:.1f} s")
    ratios, named = [], []
    for i, (load_s, raw_s, raw_g_s, raw_n) in enumerate(rounds, 1):
        e2e, raw_rate, raw_g_rate = triples / load_s, raw_n / raw_s, raw_n / raw_g_s
        ratios.append(e2e / raw_rate)
        named.append(e2e / raw_g_rate)
        print(f"round {i}:")
        print(
            f"  pharmakg load (stage + validate + commit, on disk): {triples} triples in {load_s:.1f} s = {e2e:,.0f} triples/s"
        )
        print(
            f"  raw pyoxigraph bulk_load of the same N-Triples:      {raw_n} triples in {raw_s:.1f} s = {raw_rate:,.0f} triples/s"
        )
        print(
            f"  raw bulk_load of the same N-Triples into one named graph: {raw_g_s:.1f} s = {raw_g_rate:,.0f} triples/s"
        )
        print(f"  ratio end-to-end / raw (default graph): {ratios[-1]:.2f}   / raw (named graph): {named[-1]:.2f}")
    print(
        f"ratio end-to-end / raw (default graph), median of {len(rounds)}: {statistics.median(ratios):.2f}  (target >= 0.35)"
    )
    print(f"ratio end-to-end / raw (named graph), median of {len(rounds)}:   {statistics.median(named):.2f}")
    print(
        f"join query: {before_opt * 1000:.0f} ms before optimize(), {after_opt * 1000:.0f} ms after ({opt_s:.1f} s to optimize)"
    )
    print(f"import pharmakg: {imp:.3f} s median of 5  (target < 0.5 s)")


if __name__ == "__main__":
    main()
