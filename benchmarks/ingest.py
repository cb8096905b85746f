"""Ingest benchmark: end-to-end load of the demo bundle vs a raw pyoxigraph bulk_load of the same triples.

    python benchmarks/ingest.py [--batches 10000] [--seed 1]

Prints triples/s for both, their ratio (target >= 0.35), the time of
``import pharmakg`` (target < 0.5 s), and a query timing before/after
``optimize()``. Everything is measured in this one run on this machine.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batches", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pharmakg-bench-"))

    t = time.perf_counter()
    plant = generate_bundle(work / "bundle", batches=args.batches, seed=args.seed)
    gen_s = time.perf_counter() - t

    kg = pharmakg.open(work / "store")
    t = time.perf_counter()
    (report,) = kg.load(plant.bundle, reason="benchmark")
    load_s = time.perf_counter() - t
    triples = report.triples_added
    data = kg.export(format="nt", graph=report.graph)

    raw = ox.Store(str(work / "raw"))
    t = time.perf_counter()
    raw.bulk_load(data, format=ox.RdfFormat.N_TRIPLES)
    raw.flush()
    raw_s = time.perf_counter() - t
    raw_n = len(raw)
    del raw
    # the same triples into one named graph, as pharmakg stores them (named-graph
    # quads are indexed in six orders, default-graph triples in three)
    raw_g = ox.Store(str(work / "raw-graph"))
    t = time.perf_counter()
    raw_g.bulk_load(data, format=ox.RdfFormat.N_TRIPLES, to_graph=ox.NamedNode(report.graph))
    raw_g.flush()
    raw_g_s = time.perf_counter() - t
    del raw_g

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

    imp = import_time()
    e2e = triples / load_s
    raw_rate = raw_n / raw_s
    print(f"demo plant: {args.batches} batches, seed {args.seed}; generated in {gen_s:.1f} s")
    print(
        f"pharmakg load (stage + validate + commit, on disk): {triples} triples in {load_s:.1f} s = {e2e:,.0f} triples/s"
    )
    print(
        f"raw pyoxigraph bulk_load of the same N-Triples:      {raw_n} triples in {raw_s:.1f} s = {raw_rate:,.0f} triples/s"
    )
    raw_g_rate = raw_n / raw_g_s
    print(f"raw bulk_load of the same N-Triples into one named graph: {raw_g_s:.1f} s = {raw_g_rate:,.0f} triples/s")
    print(f"ratio end-to-end / raw (default graph): {e2e / raw_rate:.2f}  (target >= 0.35)")
    print(f"ratio end-to-end / raw (named graph):   {e2e / raw_g_rate:.2f}")
    print(
        f"join query: {before_opt * 1000:.0f} ms before optimize(), {after_opt * 1000:.0f} ms after ({opt_s:.1f} s to optimize)"
    )
    print(f"import pharmakg: {imp:.3f} s median of 5  (target < 0.5 s)")


if __name__ == "__main__":
    main()
