"""Traceability benchmark: the public trace API vs raw SPARQL on the same lots, in the same run.

    python benchmarks/trace.py --store demo-store          # an existing on-disk store
    python benchmarks/trace.py --batches 10000             # build a demo plant first (temp dir)
    python benchmarks/trace.py --batches 10000 --rdflib    # also the naive rdflib baseline
    python benchmarks/trace.py --store S --remote          # also the API against `oxigraph serve` on S

For upstream traces of random finished lots and downstream traces of random
raw-material lots it prints p50/p95 of

* the API: ``pharmakg.trace.trace`` end to end, result object (networkx graph
  with kind, id, label, material, material kind, supplier, status, start)
  built; and with ``details=True`` (equipment, deviations, OOS results);
* "raw, same columns": one hand-written SPARQL query through pyoxigraph
  returning the edges and the same node columns (joins and OPTIONALs), rows
  fetched into Python;
* "raw, API's SPARQL": the two queries the API sends, through pyoxigraph
  directly (so the ratio shows what the Python layer costs);
* "raw closure": the bare property path returning node IRIs only (the floor);
* "raw, same columns, 1 query": what a SPARQL user would write, edges and
  attributes in one query; timed on a couple of lots only, as oxigraph takes
  seconds to minutes on it.

Each lot is timed once per variant, variants interleaved, after one untimed
warm-up pass, so the page cache treats them alike. Then the recall scope of
one supplier over a year (seven runs after a warm-up: median, min, max), and
optionally an rdflib in-memory baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import pharmakg
from pharmakg.kg import PREFIXES
from pharmakg.trace import (
    Direction,
    _path,
    _shipments_linked,
    _step_relations,
    closure_query,
    node_query,
    recall_scope,
    trace,
    walk_query,
)

NAMES_QUERY = """SELECT ?m ?p ?o WHERE {{ VALUES ?m {{ {refs} }} ?m ?p ?o
  FILTER(?p IN (dcterms:identifier, rdfs:label, pkg:materialKind)) }}"""


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000, q))


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def same_columns_query(root: str, path: str, direction: str) -> str:
    """What a SPARQL user would write for "the genealogy with its attributes" in one query."""
    edges = (
        "{ ?x pkg:consumed ?src . BIND(?x AS ?dst) } UNION { ?src pkg:produced ?x . BIND(?x AS ?dst) }"
        " UNION { ?x pkg:sublotOf ?src . BIND(?x AS ?dst) }"
    )
    if direction == "down":
        edges = (
            "{ ?dst pkg:consumed ?x . BIND(?x AS ?src) } UNION { ?x pkg:produced ?dst . BIND(?x AS ?src) }"
            " UNION { ?dst pkg:sublotOf ?x . BIND(?x AS ?src) }"
        )
    return f"""SELECT ?src ?dst ?id ?type ?label ?material ?mkind ?supplier ?status ?start WHERE {{
  {{ SELECT DISTINCT ?src ?dst WHERE {{ <{root}> {path} ?x . {edges} }} }}
  ?src dcterms:identifier ?id ; a ?type . OPTIONAL {{ ?src rdfs:label ?label }}
  OPTIONAL {{ ?src pkg:material|pkg:product ?m . ?m dcterms:identifier ?material ; pkg:materialKind ?mkind }}
  OPTIONAL {{ ?src pkg:supplier/rdfs:label ?supplier }}
  OPTIONAL {{ ?src pkg:lotStatus|pkg:status ?status }} OPTIONAL {{ ?src pkg:startTime ?start }} }}"""


def rdflib_walk(ds: Any, root: str, direction: Direction) -> None:
    """The API's walk queries (over every step relation), run by rdflib: one query upstream,
    the closure then the nodes' triples downstream."""
    if direction == "up":
        list(ds.query(PREFIXES + walk_query(root, direction)))
        return
    nodes = [str(r[0]) for r in ds.query(PREFIXES + closure_query(root, direction))]
    list(ds.query(PREFIXES + node_query(nodes, direction)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path)
    ap.add_argument("--batches", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--rdflib", action="store_true", help="also time an rdflib in-memory Dataset (slow to load)")
    ap.add_argument("--remote", action="store_true", help="also time the API against oxigraph serve on the same data")
    ap.add_argument(
        "--same-columns",
        type=int,
        default=2,
        help="lots to time the one-query baseline on (oxigraph takes seconds to minutes per lot; 0 skips it)",
    )
    args = ap.parse_args()
    if args.store is None:
        from pharmakg.demo import build_demo

        work = Path(tempfile.mkdtemp(prefix="pharmakg-trace-"))
        args.store = work / "store"
        with pharmakg.open(args.store) as kg:
            build_demo(kg, batches=args.batches, seed=1, out_dir=work / "demo", parts=max(1, args.batches // 10000))
            kg.optimize()
    kg = pharmakg.open(args.store, read_only=True)
    raw_store = kg.store._store  # the pyoxigraph Store underneath, for the raw baselines

    def raw(sparql: str) -> list[object]:
        return list(raw_store.query(PREFIXES + sparql, use_default_graph_as_union=True))

    steps = _step_relations(kg)

    def raw_api_sparql(root: str, direction: Direction) -> None:
        """The API's queries (the walk: one query upstream, the closure then the nodes' triples
        downstream; then names), one after the other."""
        if direction == "up":
            rows = raw(walk_query(root, direction, steps))
        else:
            nodes = [s["x"].value for s in raw(closure_query(root, direction, steps))]  # type: ignore[index, union-attr]
            rows = raw(node_query(nodes, direction, steps))
        refs = {s["o"] for s in rows if s["p"].value in ("material", "product", "supplier")}  # type: ignore[index, union-attr]
        if refs:
            raw(NAMES_QUERY.format(refs=" ".join(str(r) for r in refs)))

    n_quads = len(raw_store)
    rng = np.random.default_rng(0)
    lots = kg.query("SELECT ?lot ?kind WHERE { ?lot a pkg:MaterialLot ; pkg:material/pkg:materialKind ?kind }")
    finished = lots[lots["kind"].str.endswith("DrugProduct")]["lot"].to_numpy()
    raw_lots = lots[~lots["kind"].str.endswith(("DrugProduct", "Intermediate"))]["lot"].to_numpy()
    up_lots = rng.choice(finished, size=min(args.samples, len(finished)), replace=False)
    down_lots = rng.choice(raw_lots, size=min(args.samples, len(raw_lots)), replace=False)
    print(f"store: {args.store} ({n_quads:,} quads); {len(up_lots)} finished lots up, {len(down_lots)} raw lots down")

    for label, sample, direction, path in (
        ("upstream", up_lots, "up", _path("up", steps)),
        ("downstream", down_lots, "down", _path("down", steps)),
    ):
        variants: dict[str, Callable[[str], object]] = {
            "API": lambda lot, d=direction: trace(kg, lot, direction=d),
            "API details=True": lambda lot, d=direction: trace(kg, lot, direction=d, details=True),
            "raw, API's SPARQL": lambda lot, d=direction: raw_api_sparql(lot, d),
            "raw closure (IRIs only)": lambda lot, p=path: raw(f"SELECT ?x WHERE {{ <{lot}> {p} ?x }}"),
        }
        for lot in sample:  # warm-up: the same pages for every variant
            for fn in variants.values():
                fn(lot)
        times: dict[str, list[float]] = {k: [] for k in variants}
        for i, lot in enumerate(sample):
            order = list(variants) if i % 2 == 0 else list(reversed(variants))
            for k in order:
                times[k].append(timed(lambda f=variants[k], lot=lot: f(lot)))
        sizes = [len(trace(kg, lot, direction=direction)) for lot in sample]
        print(
            f"{label}: nodes per trace median {statistics.median(sizes):.0f}, p95 {np.percentile(sizes, 95):.0f}, max {max(sizes)}"
        )
        base = times["API"]
        for k, ts in times.items():
            ratio = (
                ""
                if k == "API"
                else f"   API/this p50 {pct(base, 50) / pct(ts, 50):4.2f}x  p95 {pct(base, 95) / pct(ts, 95):4.2f}x"
            )
            print(f"  {k:<28} p50 {pct(ts, 50):7.2f} ms  p95 {pct(ts, 95):7.2f} ms{ratio}")
        slow = [
            timed(lambda lot=lot, p=path, d=direction: raw(same_columns_query(lot, p, d)))
            for lot in sample[: args.same_columns]
        ]
        if slow:
            print(
                f"  {'raw, same columns, 1 query':<28} {', '.join(f'{s:.1f} s' for s in slow)} on {len(slow)} lot(s)"
                " (edges subquery joined with OPTIONAL attributes: oxigraph evaluates the joins store-wide)"
            )

    suppliers = kg.query(
        "SELECT ?s (COUNT(?l) AS ?n) (MIN(?r) AS ?first) WHERE { ?l pkg:supplier/rdfs:label ?s ; pkg:receivedDate ?r } "
        "GROUP BY ?s ORDER BY DESC(?n) LIMIT 1"
    )
    name, first = suppliers["s"][0], suppliers["first"][0]
    window = (str(first)[:10], str(first + np.timedelta64(365, "D"))[:10])
    recall_scope(kg, supplier=name, received_from=window[0], received_to=window[1])  # warm-up
    recall_times = []
    for _ in range(7):
        t = time.perf_counter()
        scope = recall_scope(kg, supplier=name, received_from=window[0], received_to=window[1])
        recall_times.append(time.perf_counter() - t)
    linked = "via pkg:shippedIn links" if _shipments_linked(kg) else "links missing: shipments found by type"
    print(
        f"recall scope of {name!r} over a year: {len(scope.suspect_lots)} suspect lots -> "
        f"{len(scope.finished_lots)} finished lots, {len(scope.shipments)} shipments ({linked}): "
        f"median {statistics.median(recall_times):.3f} s, min {min(recall_times):.3f} s, "
        f"max {max(recall_times):.3f} s over {len(recall_times)} runs (target < 0.5 s)"
    )
    if args.rdflib:
        import rdflib

        data = kg.export(format="nq")
        ds = rdflib.Dataset(default_union=True)
        t = time.perf_counter()
        ds.parse(data=data.decode(), format="nquads")
        print(f"rdflib: parsed {len(ds):,} quads in {time.perf_counter() - t:.1f} s")
        for label, sample, direction in (("upstream", up_lots[:20], "up"), ("downstream", down_lots[:20], "down")):
            rd = [timed(lambda lot=lot, d=direction: rdflib_walk(ds, lot, d)) for lot in sample]
            api = [timed(lambda lot=lot, d=direction: trace(kg, lot, direction=d)) for lot in sample]
            print(
                f"rdflib {label} (the API's walk queries) p50 {pct(rd, 50):.1f} ms vs API p50 {pct(api, 50):.2f} ms: "
                f"API {pct(rd, 50) / pct(api, 50):.0f}x faster"
            )
    kg.close()
    if args.remote:
        from pharmakg.testing import oxigraph_server

        live = Path(args.store) / os.readlink(Path(args.store) / "current")
        with oxigraph_server(live) as url:
            remote = pharmakg.connect(url + "/query")
            for label, sample, direction in (("upstream", up_lots, "up"), ("downstream", down_lots, "down")):
                for lot in sample:
                    trace(remote, lot, direction=direction)
                times = [timed(lambda lot=lot, d=direction: trace(remote, lot, direction=d)) for lot in sample]
                print(f"{label:>10} via oxigraph serve: API p50 {pct(times, 50):6.2f} ms  p95 {pct(times, 95):6.2f} ms")


if __name__ == "__main__":
    main()
