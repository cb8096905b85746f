"""Traceability benchmark: the public trace API vs a raw property-path query, same lots, same run.

    python benchmarks/trace.py --store demo-store          # an existing on-disk store
    python benchmarks/trace.py --batches 10000             # build a demo plant first (temp dir)
    python benchmarks/trace.py --batches 2000 --rdflib     # also the naive rdflib baseline

Prints p50/p95 of upstream and downstream traces of random lots through
``pharmakg.trace.trace`` (result object with kinds, labels and attributes),
the same for a raw pyoxigraph property-path query returning the edges, their
ratio, and the time of one supplier's recall scope over a year.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import pharmakg
from pharmakg.kg import PREFIXES
from pharmakg.trace import _DOWN_EDGES, _DOWN_PATH, _UP_EDGES, _UP_PATH, recall_scope, trace


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000, q))


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--store", type=Path)
    ap.add_argument("--batches", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--rdflib", action="store_true", help="also time an rdflib in-memory property path (slow)")
    ap.add_argument("--remote", action="store_true", help="also time the API against oxigraph serve on the same data")
    args = ap.parse_args()
    if args.store is None:
        from pharmakg.demo import build_demo

        work = Path(tempfile.mkdtemp(prefix="pharmakg-trace-"))
        args.store = work / "store"
        with pharmakg.open(args.store) as kg:
            build_demo(kg, batches=args.batches, seed=1, out_dir=work / "demo", parts=max(1, args.batches // 10000))
            kg.optimize()
    kg = pharmakg.open(args.store, read_only=True)
    raw_store = kg.store._store  # the pyoxigraph Store underneath, for the raw baseline
    n_quads = len(raw_store)
    rng = np.random.default_rng(0)
    lots = kg.query("SELECT ?lot ?kind WHERE { ?lot a pkg:MaterialLot ; pkg:material/pkg:materialKind ?kind }")
    finished = lots[lots["kind"].str.endswith("DrugProduct")]["lot"].to_numpy()
    raw = lots[~lots["kind"].str.endswith(("DrugProduct", "Intermediate"))]["lot"].to_numpy()
    up_lots = rng.choice(finished, size=min(args.samples, len(finished)), replace=False)
    down_lots = rng.choice(raw, size=min(args.samples, len(raw)), replace=False)
    print(f"store: {args.store} ({n_quads:,} quads); {len(up_lots)} finished lots up, {len(down_lots)} raw lots down")

    def raw_query(root: str, path: str, edges: str) -> int:
        """One hand-written query returning the same columns: edges plus each node's id, type,
        material, supplier and status (what the API's result carries)."""
        q = (
            PREFIXES
            + f"""SELECT ?src ?dst ?rel ?id ?type ?material ?supplier ?status WHERE {{
  {{ SELECT DISTINCT ?src ?dst ?rel WHERE {{ <{root}> {path} ?x . {edges} }} }}
  ?src dcterms:identifier ?id ; a ?type .
  OPTIONAL {{ ?src pkg:material|pkg:product ?m . ?m dcterms:identifier ?material }}
  OPTIONAL {{ ?src pkg:supplier/rdfs:label ?supplier }}
  OPTIONAL {{ ?src pkg:lotStatus|pkg:status ?status }} }}"""
        )
        res = raw_store.query(q, use_default_graph_as_union=True)
        return len(list(res))

    for label, sample, direction, path, edges in (
        ("upstream", up_lots, "up", _UP_PATH, _UP_EDGES),
        ("downstream", down_lots, "down", _DOWN_PATH, _DOWN_EDGES),
    ):
        api = [timed(lambda lot=lot, d=direction: trace(kg, lot, direction=d)) for lot in sample]
        rawq = [timed(lambda lot=lot, p=path, e=edges: raw_query(lot, p, e)) for lot in sample]
        sizes = [len(trace(kg, lot, direction=direction, details=False)) for lot in sample[:50]]
        print(
            f"{label:>10}: API p50 {pct(api, 50):6.2f} ms  p95 {pct(api, 95):6.2f} ms | raw query, same columns "
            f"p50 {pct(rawq, 50):6.2f} ms  p95 {pct(rawq, 95):6.2f} ms | ratio p95 {pct(api, 95) / pct(rawq, 95):.1f}x "
            f"| median nodes {statistics.median(sizes):.0f}, max {max(sizes)}"
        )

    suppliers = kg.query(
        "SELECT ?s (COUNT(?l) AS ?n) (MIN(?r) AS ?first) WHERE { ?l pkg:supplier/rdfs:label ?s ; pkg:receivedDate ?r } "
        "GROUP BY ?s ORDER BY DESC(?n) LIMIT 1"
    )
    name, first = suppliers["s"][0], suppliers["first"][0]
    t = time.perf_counter()
    scope = recall_scope(
        kg, supplier=name, received_from=str(first)[:10], received_to=str(first + np.timedelta64(365, "D"))[:10]
    )
    recall_s = time.perf_counter() - t
    print(
        f"recall scope of {name!r} over a year: {len(scope.suspect_lots)} suspect lots -> "
        f"{len(scope.finished_lots)} finished lots, {len(scope.shipments)} shipments in {recall_s:.2f} s (target < 0.5 s)"
    )
    if args.rdflib:
        import rdflib

        data = kg.export(format="nq")
        ds = rdflib.Dataset(default_union=True)
        t = time.perf_counter()
        ds.parse(data=data.decode(), format="nquads")
        print(f"rdflib: parsed {len(ds):,} quads in {time.perf_counter() - t:.1f} s")
        sample = up_lots[:20]
        rd = []
        for lot in sample:
            q = PREFIXES + f"SELECT DISTINCT ?src ?dst ?rel WHERE {{ <{lot}> {_UP_PATH} ?x . {_UP_EDGES} }}"
            rd.append(timed(lambda q=q: list(ds.query(q))))
        api = [timed(lambda lot=lot: trace(kg, lot)) for lot in sample]
        print(
            f"rdflib upstream p50 {pct(rd, 50):.1f} ms vs API p50 {pct(api, 50):.2f} ms: speed-up {pct(rd, 50) / pct(api, 50):.0f}x"
        )
    kg.close()
    if args.remote:
        import os

        from pharmakg.testing import oxigraph_server

        live = Path(args.store) / os.readlink(Path(args.store) / "current")
        with oxigraph_server(live) as url:
            remote = pharmakg.connect(url + "/query")
            for label, sample, direction in (("upstream", up_lots, "up"), ("downstream", down_lots, "down")):
                times = [timed(lambda lot=lot, d=direction: trace(remote, lot, direction=d)) for lot in sample]
                print(f"{label:>10} via oxigraph serve: API p50 {pct(times, 50):6.2f} ms  p95 {pct(times, 95):6.2f} ms")


if __name__ == "__main__":
    main()
