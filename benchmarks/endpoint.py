"""Endpoint benchmark: requests/s of `pharmakg serve` vs `oxigraph serve` on the same store, load and queries.

    python benchmarks/endpoint.py                          # build a 300-batch demo plant first (temp dir)
    python benchmarks/endpoint.py --store demo-store       # an existing pharmakg store folder
    python benchmarks/endpoint.py --seconds 15 --rounds 5  # longer, steadier figures

Both servers read the same RocksDB directory (the store's ``current``):
``oxigraph serve-read-only --union-default-graph`` is the baseline, next to
``pharmakg serve`` with its default settings and with ``--inline-ms 0`` (every
request through the thread pool: what a stream of distinct queries costs,
since the inline fast path only applies to a repeated identical request).

Two small queries, sent as GET ``?query=`` with ``Accept:
application/sparql-results+json``: "small", a lot's direct inputs (one
finished or intermediate lot that has inputs), and "1000 rows", a SELECT of
exactly 1000 rows. Both servers must return the same row count before any
timing (the run aborts otherwise).

The load is wrk (``wrk -t1 -c8 -dSECONDS --latency``: 8 keep-alive HTTP/1.1
connections from one client thread, a bounded run; Debian's ``wrk``) or, with
``--tool ab``, ApacheBench (``ab -k -c 8 -t SECONDS``). ab speaks HTTP/1.0, so
uvicorn closes each connection after one answer and every request pays a TCP
connect; its figures measure that instead, hence wrk by default. One server is
loaded at a time, after a 1-second unreported warm-up of each. Variants are
interleaved within each of ``--rounds`` rounds (the order rotates); the table
gives the median req/s, p50 and p99 latency over the rounds, and the ratio
pharmakg / oxigraph: the median over rounds of the ratio within each round
(both servers loaded back to back), since the machine's speed drifts by
10-25 % between rounds; the ratio of the req/s medians is printed too.
Target: ratio >= 0.5 on the small query (default variant).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyoxigraph

import pharmakg
from pharmakg.server import start
from pharmakg.testing import oxigraph_binary, oxigraph_server

ACCEPT = "application/sparql-results+json"
PKG = "https://w3id.org/pharmakg/ontology#"
SMALL = f"SELECT ?in WHERE {{ ?b <{PKG}produced> <{{lot}}> ; <{PKG}consumed> ?in }}"
ROWS_1000 = f"SELECT ?b ?p ?o WHERE {{ ?b a <{PKG}Batch> ; ?p ?o }} LIMIT 1000"
PICK_LOT = """SELECT ?lot ?kind (COUNT(?in) AS ?inputs) WHERE {
  ?b pkg:produced ?lot ; pkg:consumed ?in . ?lot pkg:material/pkg:materialKind ?kind
  FILTER(?kind IN (pkg:DrugProduct, pkg:Intermediate)) } GROUP BY ?lot ?kind ORDER BY ?kind ?lot LIMIT 1"""
BASELINE = "oxigraph serve"
VARIANTS = (BASELINE, "pharmakg serve", "pharmakg serve --inline-ms 0")


@dataclass(frozen=True)
class Run:
    rps: float
    requests: int
    p50: float  # ms
    p99: float  # ms


def _field(text: str, label: str, default: str | None = None) -> str:
    found = re.search(rf"^{re.escape(label)}:?\s+([\d.]+)", text, re.MULTILINE)
    if found is None:
        if default is None:
            raise RuntimeError(f"load tool output has no {label!r} line:\n{text}")
        return default
    return found.group(1)


def _run(cmd: list[str], url: str) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({out.returncode}) on {url[:80]}...:\n{out.stderr.strip()}\n{out.stdout}")
    return out.stdout


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, seconds: int, connections: int) -> Run:
    """One bounded wrk run (HTTP/1.1 keep-alive); aborts on any error or non-2xx answer."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", f"Accept: {ACCEPT}", url]
    text = _run(cmd, url)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if bad or (errors and any(int(x) for x in errors.groups())):
        raise SystemExit(f"wrk saw errors on {url[:80]}:\n{text}")
    pct = {
        m.group(1): float(m.group(2)) * _UNITS[m.group(3)]
        for m in re.finditer(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\b", text, re.MULTILINE)
    }
    total = re.search(r"(\d+) requests in", text)
    return Run(float(_field(text, "Requests/sec")), int(total.group(1)) if total else 0, pct["50"], pct["99"])


def ab(url: str, seconds: int, concurrency: int) -> Run:
    """One bounded ApacheBench run (HTTP/1.0: a connection per request); aborts on failures."""
    cmd = ["ab", "-k", "-c", str(concurrency), "-t", str(seconds), "-n", "10000000", "-H", f"Accept: {ACCEPT}", url]
    text = _run(cmd, url)
    failed = int(_field(text, "Failed requests"))
    non2xx = int(_field(text, "Non-2xx responses", "0"))
    detail = re.search(r"\(Connect: (\d+), Receive: (\d+), Length: (\d+), Exceptions: (\d+)\)", text)
    length = int(detail.group(3)) if detail else 0  # answers of varying length count as "failed" in ab
    if non2xx or failed - length:
        raise SystemExit(f"ab saw {non2xx} non-2xx responses and {failed} failed requests on {url[:80]}:\n{text}")
    table = {m.group(1): float(m.group(2)) for m in re.finditer(r"^\s+(\d+)%\s+(\d+)", text, re.MULTILINE)}
    return Run(
        float(_field(text, "Requests per second")), int(_field(text, "Complete requests")), table["50"], table["99"]
    )


def row_count(url: str, query: str) -> int:
    r = httpx.get(url, params={"query": query}, headers={"Accept": ACCEPT}, timeout=60)
    r.raise_for_status()
    return len(json.loads(r.content)["results"]["bindings"])


def get_url(url: str, query: str) -> str:
    return f"{url}?query={urllib.parse.quote(query, safe='')}"


def version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except OSError:
        return "?"
    return ((out.stdout or out.stderr).strip().splitlines() or ["?"])[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, help="an existing pharmakg store folder (default: build a demo plant)")
    ap.add_argument("--batches", type=int, default=300, help="demo plant size when --store is not given")
    ap.add_argument("--seconds", type=int, default=8, help="length of each timed run")
    ap.add_argument("--tool", choices=("wrk", "ab"), default="wrk", help="load generator (default wrk: keep-alive)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=8, help="concurrent connections")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="pharmakg serve worker processes")
    ap.add_argument("--target", type=float, default=0.5, help="pharmakg / oxigraph req/s target on the small query")
    args = ap.parse_args()
    if shutil.which(args.tool) is None:
        package = "wrk" if args.tool == "wrk" else "apache2-utils"
        raise SystemExit(f"{args.tool} is not installed: apt-get install {package}")
    load = wrk if args.tool == "wrk" else ab

    with contextlib.ExitStack() as cleanup:
        if args.store is None:
            from pharmakg.demo import build_demo

            work = Path(tempfile.mkdtemp(prefix="pharmakg-endpoint-"))
            cleanup.callback(shutil.rmtree, work, ignore_errors=True)
            args.store = work / "store"
            t = time.perf_counter()
            with pharmakg.open(args.store) as kg:
                build_demo(kg, batches=args.batches, seed=1, out_dir=work / "demo", reason="endpoint benchmark")
            print(f"built a {args.batches}-batch demo plant in {time.perf_counter() - t:.1f} s")
        if not (args.store / "current").is_symlink():
            raise SystemExit(f"{args.store} is not a pharmakg store folder (no 'current' symlink)")
        live = (args.store / "current").resolve()

        with pharmakg.open(args.store, read_only=True) as kg:
            triples = len(kg)
            picked = kg.query(PICK_LOT)
        if picked.empty:
            raise SystemExit("no finished or intermediate lot with inputs in this store")
        lot, kind, inputs = picked["lot"][0], picked["kind"][0], int(picked["inputs"][0])
        queries = {"small": SMALL.replace("{lot}", lot), "1000 rows": ROWS_1000}

        print(
            f"machine: {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), "
            f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; Python {sys.version.split()[0]}"
        )
        print(
            f"pyoxigraph {pyoxigraph.__version__}; {version([oxigraph_binary(), '--version'])} CLI; "
            f"{version(['wrk', '-v'] if args.tool == 'wrk' else ['ab', '-V']).removeprefix('This is ')}"
        )
        print(f"store: {args.store} -> {live.name}, {triples:,} triples (quads in named graphs)")
        print(f"pharmakg serve: {args.workers} worker(s); oxigraph serve-read-only --union-default-graph")
        print(
            f"load: {args.tool}, {args.concurrency} connections, {args.seconds} s per run, {args.rounds} round(s), "
            "variants interleaved, one server loaded at a time, 1 s warm-up each"
        )
        print(f'query "small": direct inputs of {lot} ({kind.rsplit("#", 1)[-1]}, {inputs} input lots)')
        print('query "1000 rows": ?b ?p ?o of batches, LIMIT 1000')

        urls = {BASELINE: cleanup.enter_context(oxigraph_server(live, read_only=True)) + "/query"}
        for name, extra in (("pharmakg serve", ()), ("pharmakg serve --inline-ms 0", ("--inline-ms", "0"))):
            server = start(args.store, workers=args.workers, extra_args=extra)
            cleanup.callback(server.log_path.unlink, missing_ok=True)
            cleanup.callback(server.stop)
            urls[name] = server.sparql_url

        for qname, query in queries.items():
            counts = {v: row_count(urls[v], query) for v in VARIANTS}
            print(f'rows for "{qname}": ' + ", ".join(f"{v} {n}" for v, n in counts.items()))
            if len(set(counts.values())) != 1:
                raise SystemExit(f'row counts differ on "{qname}": {counts}')
            if qname == "small" and counts[BASELINE] == 0:
                raise SystemExit(f"{lot} has no inputs through the servers")
            if qname == "1000 rows" and counts[BASELINE] != 1000:
                raise SystemExit(f'"1000 rows" returns {counts[BASELINE]} rows (the store is too small)')

        for query in queries.values():  # warm-up, not reported
            for v in VARIANTS:
                load(get_url(urls[v], query), 1, args.concurrency)
        runs: dict[tuple[str, str], list[Run]] = {(q, v): [] for q in queries for v in VARIANTS}
        for r in range(args.rounds):
            order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
            for qname, query in queries.items():
                for v in order:
                    runs[qname, v].append(load(get_url(urls[v], query), args.seconds, args.concurrency))

    print()
    verdict = ""
    for qname in queries:
        print(f'"{qname}"')
        print(
            f"  {'server':<30} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'requests':>9}  {'ratio':>5}  "
            "req/s per round (ratio to oxigraph in that round)"
        )
        base_runs = runs[qname, BASELINE]
        for v in VARIANTS:
            rs = runs[qname, v]
            rps = statistics.median(x.rps for x in rs)
            p50 = statistics.median(x.p50 for x in rs)
            p99 = statistics.median(x.p99 for x in rs)
            paired = [x.rps / b.rps for x, b in zip(rs, base_runs, strict=True)]
            ratio = "" if v == BASELINE else f"{statistics.median(paired):5.2f}"
            each = " ".join(
                f"{x.rps:.0f}" if v == BASELINE else f"{x.rps:.0f} ({r:.2f})" for x, r in zip(rs, paired, strict=True)
            )
            print(f"  {v:<30} {rps:8.0f} {p50:7.2f} {p99:7.2f} {sum(x.requests for x in rs):9d}  {ratio:>5}  {each}")
            if qname == "small" and v == "pharmakg serve":
                mid = statistics.median(paired)
                verdict = (
                    f"{'PASS' if mid >= args.target else 'FAIL'}: pharmakg serve / oxigraph serve on the small query "
                    f"{mid:.2f} (median of {len(paired)} rounds, lowest {min(paired):.2f}; ratio of the req/s "
                    f"medians {rps / statistics.median(b.rps for b in base_runs):.2f}; target >= {args.target})"
                )
    print(
        "ratio: median over rounds of pharmakg req/s / oxigraph req/s, each round's servers loaded back to back "
        "(the machine's speed drifts between rounds); p50/p99: medians over rounds"
    )
    print(verdict)


if __name__ == "__main__":
    main()
