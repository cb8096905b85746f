"""Tech-transfer benchmark: export and import the demo product with 1 000 batches of history.

    python benchmarks/transfer.py                    # 1000 finished batches (seed 1), history 1000, 3 repeats
    python benchmarks/transfer.py --batches 300 --history 300 --repeat 5

The development plant is built once in an on-disk store, the drying twin is
fitted and validated there, and the store is compacted as after any big load
(``kg.optimize()``, CLI ``pharmakg optimize``); these times are printed for
information only. The
commercial site is a fresh on-disk store holding only its equipment.

1. export_package(kg, "MAT-TAB", history=N): select the knowledge by SPARQL,
   check it with SHACL, compute the twin's reference predictions, write the
   summary, then build, sign and write the zip. Target: < 10 s.
2. verify_package with the trust directory (no store). For information.
3. import_package into a fresh site store (verify, conflict check, equipment
   mapping, twin re-run, one transaction). Target: < 10 s.

Baseline, measured in the same run: dumping the development store's domain data
as N-Quads (``kg.domain_nquads()``: one pass over everything, no selection) and
bulk-loading that dump into a fresh on-disk store (``Store.add``: no checks, no
audit record). The ratios export / dump and import / bulk-load show what
selection, validation, signing and the import's checks cost over moving bytes.

Every timing is the median of ``--repeat`` runs; the slowest run is printed
beside it. Exit code 0 when both targets pass, 1 otherwise.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pharmakg
from pharmakg import transfer
from pharmakg.demo import build_demo, receiving_site_bundle
from pharmakg.twins import demo_twin, fit_twin

TARGET_S = 10.0


def timed(fn: Callable[[int], Any], repeat: int) -> tuple[float, float, Any]:
    """(median, slowest, last result) of ``repeat`` calls of fn(i)."""
    times, result = [], None
    for i in range(repeat):
        t0 = time.perf_counter()
        result = fn(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), max(times), result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=1000, help="finished-product batches of the demo plant")
    ap.add_argument("--history", type=int, default=1000, help="last N batches per product in the package")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pharmakg-bench-transfer-"))
    try:
        t0 = time.perf_counter()
        dev = pharmakg.open(work / "dev")
        build_demo(dev, batches=args.batches, seed=args.seed, out_dir=work / "plant")
        twin = dev.twins.attach("MR-GRAN-UP3-OP1-PH2", fit_twin(dev, demo_twin("drying")), id="TW-DRY", reason="bench")
        dev.twins.set_status(twin, "validated", reason="bench")
        dev.optimize()  # a plant's store in steady state: compacted after its big loads (`pharmakg optimize`)
        print(
            f"setup: demo plant of {args.batches} batches + validated drying twin, {len(dev)} quads, "
            f"{time.perf_counter() - t0:.1f} s (not timed)"
        )
        key, public = transfer.generate_keypair(work / "keys" / "bench.pem")
        trust = work / "trust"
        trust.mkdir()
        shutil.copy(public, trust)
        site_bundle = receiving_site_bundle(work / "site-bundle")

        # -- baseline: dump everything, bulk-load it
        dump_med, dump_max, dump = timed(lambda i: dev.domain_nquads(), args.repeat)

        def bulk(i: int) -> None:
            store = pharmakg.open(work / f"bulk-{i}")
            store.store.add(dump)
            store.close()

        bulk_med, bulk_max, _ = timed(bulk, args.repeat)

        # -- export
        def export(i: int) -> transfer.ExportReport:
            return transfer.export_package(
                dev, "MAT-TAB", work / f"tab-{i}.zip", key=key, signer="Bench Mark", history=args.history
            )

        exp_med, exp_max, report = timed(export, args.repeat)
        counts = report.counts
        size = sum(report.files.values())
        ver_med, ver_max, _ = timed(lambda i: transfer.verify_package(report.path, trust=trust), args.repeat)

        # -- import into fresh commercial-site stores
        def imp(i: int) -> transfer.ImportReport:
            site = pharmakg.open(work / f"site-{i}")
            site.load(site_bundle, reason="site equipment")
            t = time.perf_counter()
            out = transfer.import_package(site, report.path, trust=trust, reason="bench")
            imp_times.append(time.perf_counter() - t)
            site.close()
            return out

        imp_times: list[float] = []
        _, _, imported = timed(imp, args.repeat)
        imp_med, imp_max = statistics.median(imp_times), max(imp_times)
        dev.close()

        print(
            f"package: {counts['history batches']} history batches, {counts['process parameters']} parameters, "
            f"{counts['twins']} twin(s), {size / 1e6:.1f} MB in {len(report.files)} files; "
            f"import wrote {imported.triples_added} triples, {imported.twins['reproduced'].sum()} twin(s) reproduced"
        )
        print(
            f"domain dump (baseline):  median {dump_med:6.2f} s  (slowest {dump_max:.2f} s), {len(dump) / 1e6:.1f} MB"
        )
        print(f"bulk load (baseline):    median {bulk_med:6.2f} s  (slowest {bulk_max:.2f} s)")
        print(
            f"export_package:          median {exp_med:6.2f} s  (slowest {exp_max:.2f} s)  "
            f"target < {TARGET_S:.0f} s  ratio to dump {exp_med / dump_med:.1f}x"
        )
        print(f"verify_package:          median {ver_med:6.2f} s  (slowest {ver_max:.2f} s)")
        print(
            f"import_package:          median {imp_med:6.2f} s  (slowest {imp_max:.2f} s)  "
            f"target < {TARGET_S:.0f} s  ratio to bulk load {imp_med / bulk_med:.1f}x"
        )
        ok = exp_med < TARGET_S and imp_med < TARGET_S
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
