"""The ``pharmakg`` command line: a thin shell over the Python API (layer L6).

Every subcommand accepts ``--store PATH`` (default ``$PHARMAKG_STORE``, else
``./pharmakg-store``) or ``--endpoint URL`` in any position. Errors print one
line on stderr and exit non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

EXIT_ERROR = 1
EXIT_USAGE = 2


def _common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    d: Any = argparse.SUPPRESS if suppress else None
    g = parser.add_argument_group("store")
    g.add_argument(
        "--store", metavar="PATH", default=d, help="on-disk store (default $PHARMAKG_STORE, else ./pharmakg-store)"
    )
    g.add_argument(
        "--endpoint", metavar="URL", default=d, help="query URL of a SPARQL 1.1 server instead of a local store"
    )
    g.add_argument("--update-endpoint", metavar="URL", default=d, help="update URL of that server (writes)")
    g.add_argument("--base", metavar="IRI", default=d, help="base IRI for minted ids (one per enterprise/site)")
    g.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS if suppress else False, help="show tracebacks"
    )


def _format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="output format (json: a list of objects, one per row)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pharmakg", description="Knowledge-graph workbench for pharmaceutical manufacturing."
    )
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        _common(p, suppress=True)
        return p

    p = add("demo", "generate the demo plant (a CSV bundle) and load it")
    p.add_argument("--batches", type=int, default=200, help="finished-product batches (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", metavar="DIR", help="where to write the bundle (default: beside the store)")
    p.add_argument("--parts", type=int, default=1, help="load as N time-ordered increments (for very large plants)")
    p.add_argument("--reason", default="demo plant", help="why (recorded in the audit trail)")

    p = add("load", "load CSV bundle folders, RDF files and BatchML/B2MML .xml documents, each in one transaction")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--graph", metavar="IRI", help="named graph to load into (default: one per source)")
    p.add_argument("--reason", default="", help="why (recorded in the audit trail)")
    p.add_argument(
        "--schemas",
        metavar="DIR",
        help="folder of BatchML/B2MML XSDs that .xml documents must validate against (default $PHARMAKG_XML_SCHEMAS)",
    )

    p = add("query", "run a SPARQL SELECT/ASK (or CONSTRUCT with --format nt/ttl)")
    p.add_argument("sparql", help="the query text, or - to read it from stdin, or @FILE")
    p.add_argument("--format", choices=("table", "csv", "json", "nt", "ttl"), default="table")

    p = add("update", "run a SPARQL update (audited)")
    p.add_argument("sparql", help="the update text, or - for stdin, or @FILE")
    p.add_argument("--reason", required=True, help="why the data changes (required)")

    p = add("validate", "check the store against the SHACL shapes")
    p.add_argument(
        "--engine",
        choices=("pyshacl", "compiled"),
        default="pyshacl",
        help="pyshacl (reference, default) or compiled (fast)",
    )
    _format(p)

    p = add("info", "counts per class, named graphs, store size")
    _format(p)

    p = add("export", "write the store or one named graph as N-Quads, TriG or Turtle")
    p.add_argument("--format", choices=("nq", "trig", "ttl", "nt"), default="nq")
    p.add_argument("--graph", metavar="IRI", help="only this named graph")
    p.add_argument("--out", metavar="FILE", help="write here instead of stdout")

    p = add("backup", "write a consistent on-disk copy of the store")
    p.add_argument("target", metavar="DIR")

    p = add("restore", "restore a backup into a new store path")
    p.add_argument("backup", metavar="DIR")
    p.add_argument("target", metavar="DIR", nargs="?", help="default: --store")

    p = add("optimize", "compact the store after big loads (queries get faster)")

    p = add("trace", "lot/batch genealogy: what went into ID (default) or where it went (--down)")
    p.add_argument("id", help="business id (lot or batch number) or IRI")
    p.add_argument("--down", action="store_true", help="downstream: every batch and lot it reached")
    p.add_argument("--depth", type=int, help="at most N edges from the start (lot -> batch is one)")
    p.add_argument(
        "--stop-at",
        action="append",
        default=[],
        metavar="KIND",
        help="material kind not to walk past (raw, intermediate, ...)",
    )
    p.add_argument(
        "--format",
        choices=("table", "csv", "json", "dot"),
        default="table",
        help="csv/json: one node per row/object: id, kind, distance, label, material, material_kind, supplier, "
        "status, start, equipment, deviations, oos (out-of-spec results), iri; dot: Graphviz",
    )

    p = add("rootcause", "rank the candidate causes of a deviation, with evidence and explanation")
    p.add_argument("id", help="deviation id (or a batch id with --attribute)")
    p.add_argument("--attribute", metavar="ID", help="the failing quality attribute, when ID is a batch")
    p.add_argument("--top", type=int, default=10, help="show the K best causes (default 10)")
    p.add_argument(
        "--shifts",
        type=_hours,
        default=(6, 14, 22),
        metavar="H,H,...",
        help="wall-clock hours at which shifts start, for the shift factor (default 6,14,22)",
    )
    p.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="json: a list ordered best first, each with id, kind, score, p, prior, link, evidence, explanation, iri",
    )
    p.add_argument("--report", metavar="FILE.html", help="also write the investigation as a self-contained HTML report")
    p.add_argument(
        "--accept",
        type=int,
        metavar="RANK",
        help="record the cause at this rank as the root cause, with a snapshot of its evidence (audited)",
    )
    p.add_argument("--reason", default="", help="--accept: why (required; recorded in the audit trail)")
    p.add_argument(
        "--capa", metavar="TEXT", help="--accept: the CAPA decided (text or CAPA record number); else the CAPA is kept"
    )
    p.add_argument("--sign", metavar="KEYFILE", help="--accept: e-sign the recorded root cause with your private key")
    p.add_argument("--signer", metavar="NAME", help="--accept --sign: your full name")

    p = add("serve", "serve the store over SPARQL 1.1 (Protocol and Graph Store Protocol) at /sparql and /store")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7878, help="TCP port (default 7878)")
    p.add_argument("--workers", type=int, default=0, help="worker processes (default: one per CPU)")
    p.add_argument(
        "--update-token-file",
        metavar="FILE",
        help="accept updates from clients sending 'Authorization: Bearer <first line of FILE>' "
        "(default $PHARMAKG_UPDATE_TOKEN; none: read-only); the token is one user's credential (--token-user)",
    )
    p.add_argument(
        "--token-user",
        metavar="NAME",
        help="the person (or interface account) the update token belongs to: the audit trail records writes "
        "made with it under this name (default: your login name)",
    )
    p.add_argument("--token-role", choices=("author", "approver"), default="author", help="that user's role")
    p.add_argument(
        "--token-proxy",
        action="store_true",
        help="the token is held by a front end that authenticates people itself and names them in "
        "X-PharmaKG-User (the Jupyter extension); not for people",
    )
    p.add_argument(
        "--users",
        metavar="FILE",
        help="per-user tokens with roles reader/author/approver (CSV made by 'pharmakg user add'); "
        "the audit trail records each write under its user's name",
    )
    p.add_argument("--private", action="store_true", help="queries need a user token too (default: open reads)")
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds a query or update may run (default 60)")
    p.add_argument("--row-cap", type=int, default=100_000, help="most solutions or triples per answer (default 100000)")
    p.add_argument("--max-body", type=int, default=16 * 1024 * 1024, help="largest request body in bytes (16 MiB)")
    p.add_argument(
        "--allow-service",
        action="append",
        default=[],
        metavar="IRI",
        help="IRI prefix that SERVICE and LOAD may reach (repeatable; default: none)",
    )
    p.add_argument(
        "--inline-ms",
        type=float,
        default=5.0,
        help="a repeated request that took less than this on unchanged data runs without a thread hop (0: never)",
    )
    p.add_argument("--cors", action="append", default=[], metavar="ORIGIN", help="allow browser calls from ORIGIN")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))

    p = add("package", "tech-transfer packages: keygen, export, verify, import, diff (signed RO-Crate zips)")
    pk = p.add_subparsers(dest="package_action", required=True, metavar="ACTION")
    q = pk.add_parser("keygen", help="write a new Ed25519 key pair (KEYFILE and KEYFILE.pub.pem)")
    q.add_argument("keyfile", metavar="KEYFILE")
    q = pk.add_parser("export", help="export a product's process knowledge as a signed package")
    _common(q, suppress=True)
    q.add_argument("--product", required=True, metavar="ID", help="the product's material id")
    q.add_argument("--out", required=True, metavar="FILE.zip")
    q.add_argument("--version", type=int, default=1, help="package version (default 1)")
    q.add_argument("--history", type=int, default=50, metavar="N", help="last N batches per product (default 50)")
    q.add_argument("--sign", required=True, metavar="KEYFILE", help="the signer's private key (PEM)")
    q.add_argument("--signer", required=True, metavar="NAME", help="the signer's full name")
    q.add_argument("--meaning", default="approved for transfer", help="what the signature means")
    q = pk.add_parser("verify", help="check a package without a store: checksums, signature, SHACL")
    q.add_argument("package", metavar="FILE.zip")
    q.add_argument("--trust", metavar="KEYS_DIR", help="folder of trusted signers' public keys (PEM)")
    q = pk.add_parser("import", help="verify and import a package into the store (one transaction)")
    _common(q, suppress=True)
    q.add_argument("package", metavar="FILE.zip")
    q.add_argument("--trust", required=True, metavar="KEYS_DIR")
    q.add_argument("--site", metavar="SITE_ID", help="map equipment to units of this site only")
    q.add_argument("--reason", required=True, help="why (recorded in the audit trail)")
    q = pk.add_parser("diff", help="what knowledge changed between two package versions")
    q.add_argument("before", metavar="A.zip")
    q.add_argument("after", metavar="B.zip")
    q.add_argument("--html", metavar="FILE", help="also write the differences as an HTML page")
    _format(q)

    p = add("audit", "the hash-chained audit trail: log, verify, sign, checkpoint")
    au = p.add_subparsers(dest="audit_action", required=True, metavar="ACTION")
    q = au.add_parser(
        "log", help="every record, or the life of one node (ID): loads, corrections (old -> new), signatures"
    )
    _common(q, suppress=True)
    q.add_argument("id", nargs="?", help="business id or IRI of a node")
    _format(q)
    q = au.add_parser("verify", help="check the chain, its signatures and every graph against its last checkpoint")
    _common(q, suppress=True)
    q.add_argument("--trust", metavar="KEYS_DIR", help="signatures must come from these public keys")
    q = au.add_parser("sign", help="e-sign a record (its number) with your private key: signer, meaning, UTC time")
    _common(q, suppress=True)
    q.add_argument("record", help="the record number (see 'audit log')")
    q.add_argument("--key", required=True, metavar="KEYFILE", help="your private key (PEM)")
    q.add_argument("--signer", required=True, metavar="NAME", help="your full name")
    q.add_argument("--meaning", required=True, help="authored, reviewed, approved, ...")
    q = au.add_parser("checkpoint", help="record the state of every data graph in the chain")
    _common(q, suppress=True)
    q.add_argument("--reason", default="checkpoint", help="why (recorded)")

    p = add("user", "endpoint users: add a named user with a role; the token is printed once")
    p.add_argument("action", choices=("add", "list"))
    p.add_argument("name", nargs="?", help="add: the person's user name (no shared accounts)")
    p.add_argument("--role", choices=("reader", "author", "approver"), default="reader")
    p.add_argument("--users", required=True, metavar="FILE", help="the users file (created if absent)")

    p = add("twin", "process models on graph nodes: list, show, fit, predict, drift, status")
    p.add_argument("action", choices=("list", "show", "fit", "predict", "drift", "status"))
    p.add_argument("id", nargs="?", help="twin id (or a version IRI)")
    p.add_argument("batches", nargs="*", metavar="BATCH", help="predict: these batches only")
    p.add_argument("--version", type=int, help="a given version (default: the current one)")
    p.add_argument("--spec", metavar="FILE", help="fit: a new twin from this JSON spec (README, 'Twins')")
    p.add_argument("--preset", choices=("drying", "compaction"), help="fit: a new twin of the demo plant")
    p.add_argument("--attach", metavar="NODE", help="fit: the step/unit/equipment a new twin describes")
    p.add_argument("--holdout", type=float, default=0.2, help="fit: share of batches held out (default 0.2)")
    p.add_argument("--output", help="drift: which output (default: the first)")
    p.add_argument("--to", dest="status", choices=("validated", "retired"), help="status: the new status")
    p.add_argument("--reason", default="", help="fit/status: why (recorded in the audit trail)")
    _format(p)

    p = add("recall", "recall scope: finished lots and shipments reached by suspect lots")
    p.add_argument("--lot", action="append", default=[], metavar="ID", help="a suspect lot (repeatable)")
    p.add_argument("--supplier", help="all lots of this supplier (name as in lots.csv)")
    p.add_argument("--material", help="all lots of this material id")
    p.add_argument("--from", dest="received_from", metavar="DATE", help="received on or after")
    p.add_argument("--to", dest="received_to", metavar="DATE", help="received before")
    _format(p)

    p = add("recipe", "recipes as BatchML: export one as a BatchML V0700 document")
    actions = p.add_subparsers(dest="recipe_action", required=True, metavar="ACTION")
    q = actions.add_parser(
        "export",
        help="write a recipe (its header, parameters with NOR/PAR, elements and procedure logic) as BatchML V0700",
        description="Write recipe RECIPE_ID as a BatchML V0700 BatchInformation document (stdout unless --out).",
    )
    _common(q, suppress=True)
    q.add_argument("recipe_id", metavar="RECIPE_ID", help="recipe business id or IRI")
    q.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    q.add_argument("--schemas", metavar="DIR", help="validate the document against the XSDs of DIR before writing it")

    p = add(
        "series", "historian time series: load a file (Parquet beside the store, features in the graph) or show one"
    )
    actions = p.add_subparsers(dest="series_action", required=True, metavar="ACTION")
    q = actions.add_parser(
        "load",
        help="import a historian file (CSV or Parquet, long or wide) for the batches in the store",
        description="Import a historian file: points to Parquet per batch x tag, one node per batch x tag and the "
        "batch features (P:mean, P:min, P:max, P:time_above_nor, P:time_below_nor, P:slope) into the graph, "
        "in one audited transaction.",
    )
    _common(q, suppress=True)
    q.add_argument(
        "file",
        metavar="FILE",
        help="long (tag, timestamp, value[, unit][, batch]) or wide (timestamp, one column per tag)",
    )
    q.add_argument("--map", required=True, metavar="MAPPING.csv", help="columns tag, parameter_id, equipment_id, unit")
    q.add_argument("--reason", default="", help="why (recorded in the audit trail)")
    q.add_argument("--timezone", metavar="TZ", help="zone of times written without UTC offset, e.g. Europe/Ljubljana")
    q.add_argument("--drop-outside", action="store_true", help="keep only points inside batch runs (default: refuse)")
    q.add_argument("--series-dir", metavar="DIR", help="Parquet folder (default: series/ in the store folder)")
    q = actions.add_parser("show", help="the points of one tag in one batch", description="The points of TAG in BATCH.")
    _common(q, suppress=True)
    q.add_argument("batch", metavar="BATCH", help="batch id or IRI")
    q.add_argument("tag", metavar="TAG")
    q.add_argument("--start", metavar="TIME", help="from this time (ISO 8601 with offset)")
    q.add_argument("--end", metavar="TIME", help="up to this time (ISO 8601 with offset)")
    q.add_argument("--series-dir", metavar="DIR", help="Parquet folder (default: series/ in the store folder)")
    q.add_argument("--verify", action="store_true", help="check the file's sha256 against the graph first")
    _format(q)
    return parser


def _read_text(arg: str) -> str:
    if arg == "-":
        return sys.stdin.read()
    if arg.startswith("@"):
        return Path(arg[1:]).read_text(encoding="utf-8")
    return arg


def _store_path(args: argparse.Namespace) -> str:
    return args.store or os.environ.get("PHARMAKG_STORE") or "pharmakg-store"


def _open(args: argparse.Namespace, *, read_only: bool = False) -> Any:
    import pharmakg

    base = args.base or pharmakg.DEFAULT_BASE
    series_dir = getattr(args, "series_dir", None)
    if args.endpoint:
        return pharmakg.connect(args.endpoint, args.update_endpoint, base=base, series_dir=series_dir)
    path = _store_path(args)
    if read_only and not Path(path).exists():
        raise pharmakg.NotAStoreError(path, "no store here (create one with 'pharmakg demo' or 'pharmakg load')")
    return pharmakg.open(path, base=base, read_only=read_only, series_dir=series_dir)


def _print_frame(frame: Any, fmt: str) -> None:
    if fmt == "csv":
        sys.stdout.write(frame.to_csv(index=False))
    elif fmt == "json":
        sys.stdout.write(frame.to_json(orient="records", date_format="iso", force_ascii=False, indent=1) + "\n")
    else:
        import pandas as pd

        with pd.option_context("display.max_rows", 500, "display.max_columns", 50, "display.width", 200):
            sys.stdout.write(frame.to_string(index=False) + "\n")


def _run(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "restore":
        import pharmakg

        pharmakg.restore(args.backup, args.target or _store_path(args))
        print(f"restored {args.backup} into {args.target or _store_path(args)}", file=sys.stderr)
        return 0
    if cmd == "serve":
        return _serve(args)
    if cmd == "package":
        return _package(args)
    if cmd == "audit":
        return _audit(args)
    if cmd == "user":
        from .server.config import add_user, read_users

        if args.action == "add":
            if not args.name:
                raise ValueError("user add needs a name")
            token = add_user(args.users, args.name, args.role)
            print(token)
            print(
                f"added {args.name} ({args.role}); the token above is shown once: give it to {args.name}",
                file=sys.stderr,
            )
        else:
            for name, role, _ in read_users(args.users):
                print(f"{name}\t{role}")
        return 0
    read_only = (
        cmd
        in (
            "query",
            "validate",
            "info",
            "export",
            "trace",
            "recall",
        )
        or (cmd == "rootcause" and not args.accept)
        or (cmd == "twin" and args.action in ("list", "show", "predict", "drift"))
    )  # backup flushes: read-write
    read_only = read_only or (cmd == "series" and args.series_action == "show")
    read_only = read_only or cmd == "recipe"
    with _open(args, read_only=read_only) as kg:
        if cmd == "demo":
            from .demo import build_demo

            out = args.out or (
                None if args.endpoint else f"{_store_path(args).rstrip('/')}-bundle-{args.batches}-{args.seed}"
            )
            built = build_demo(
                kg,
                batches=args.batches,
                seed=args.seed,
                out_dir=out,
                parts=args.parts,
                reason=args.reason,
                progress=sys.stderr.isatty(),
            )
            print(str(built), file=sys.stderr)
        elif cmd == "load":
            for path in args.paths:
                (report,) = kg.load(
                    path, reason=args.reason, graph=args.graph, progress=sys.stderr.isatty(), schemas=args.schemas
                )
                print(str(report), file=sys.stderr)
        elif cmd == "recipe":
            from .ingest.batchml import export_batchml

            data = export_batchml(kg, args.recipe_id, schemas=args.schemas)
            if args.out:
                Path(args.out).write_bytes(data)
            else:
                sys.stdout.buffer.write(data)
        elif cmd == "query":
            text = _read_text(args.sparql)
            if args.format in ("nt", "ttl"):
                graph = kg.construct(text)
                sys.stdout.write(graph.serialize(format="nt" if args.format == "nt" else "turtle"))
            else:
                _print_frame(kg.query(text), args.format)
        elif cmd == "update":
            kg.update(_read_text(args.sparql), reason=args.reason)
        elif cmd == "validate":
            report = kg.validate(engine=args.engine)
            if args.format == "table":
                print("conforms" if report.conforms else f"{len(report.violations)} violation(s)")
                if not report.conforms:
                    _print_frame(report.to_frame(), "table")
            else:
                _print_frame(report.to_frame(), args.format)
            return 0 if report.conforms else 3
        elif cmd == "info":
            info = kg.info()
            if args.format == "table":
                print(str(info))
            elif args.format == "json":
                doc = {
                    "location": info.location,
                    "quads": info.quads,
                    "size_bytes": info.size_bytes,
                    "classes": json.loads(info.classes.to_json(orient="records")),
                    "graphs": json.loads(info.graphs.to_json(orient="records")),
                }
                print(json.dumps(doc, indent=1))
            else:
                _print_frame(info.classes, "csv")
        elif cmd == "export":
            data = kg.export(format=args.format, graph=args.graph)
            if args.out:
                Path(args.out).write_bytes(data)
            else:
                sys.stdout.buffer.write(data)
        elif cmd == "backup":
            kg.backup(args.target)
            print(f"backed up {kg.store.location} to {args.target}", file=sys.stderr)
        elif cmd == "optimize":
            kg.optimize()
        elif cmd == "trace":
            from .trace import LIST_COLUMNS, trace

            genealogy = trace(
                kg,
                args.id,
                direction="down" if args.down else "up",
                max_depth=args.depth,
                stop_at=args.stop_at,
                details=True,
            )
            if args.format == "dot":
                sys.stdout.write(genealogy.to_dot())
            else:
                frame = genealogy.to_frame()
                for col in LIST_COLUMNS:
                    frame[col] = frame[col].map(lambda v: " ".join(v) if isinstance(v, list) else v)
                _print_frame(frame if args.format != "table" else frame.drop(columns=["iri"]), args.format)
        elif cmd == "rootcause":
            from .rootcause import investigate

            if args.capa is not None and not args.accept:
                raise ValueError("--capa is recorded with --accept RANK")
            found = investigate(kg, args.id, attribute=args.attribute, top=args.top, shifts=args.shifts)
            if args.report:  # first as investigated: a path that cannot be written fails before any write
                Path(args.report).write_text(found.report_html(store=kg.store.location), encoding="utf-8")
            if args.accept:
                from .rootcause import accept_cause

                if not args.reason.strip():
                    raise ValueError("--accept needs --reason (why this is the root cause)")
                if not 1 <= args.accept <= len(found.causes):
                    raise ValueError(f"--accept takes a rank from 1 to {len(found.causes)}")
                rec = accept_cause(
                    kg,
                    found,
                    found.causes[args.accept - 1],
                    reason=args.reason,
                    capa=args.capa,
                    key=args.sign,
                    signer=args.signer,
                )
                print(f"root cause of {args.id} recorded (audit record {rec.number})", file=sys.stderr)
            if args.report and found.deviation:  # then with the outcome recorded on the deviation
                from .rootcause import outcome

                page = found.report_html(store=kg.store.location, outcome=outcome(kg, found.deviation))
                Path(args.report).write_text(page, encoding="utf-8")
            frame = found.to_frame().drop(columns=["rank"])
            if not found.strong:
                print(f"{args.id}: no strong candidate (best score below the threshold)", file=sys.stderr)
            if args.format == "json":
                sys.stdout.write(json.dumps(frame.to_dict(orient="records"), indent=1, ensure_ascii=False) + "\n")
            else:
                _print_frame(frame[["id", "kind", "score", "explanation"]], "table")
        elif cmd == "twin":
            return _twin(kg, args)
        elif cmd == "series":
            return _series(kg, args)
        elif cmd == "recall":
            from .trace import recall_scope

            if not (args.lot or args.supplier or args.material):
                raise ValueError("name suspect lots: --lot ID, --supplier NAME or --material ID")
            scope = recall_scope(
                kg,
                lots=args.lot,
                supplier=args.supplier,
                material=args.material,
                received_from=args.received_from,
                received_to=args.received_to,
            )
            print(
                f"{len(scope.suspect_lots)} suspect lot(s) -> {len(scope.finished_lots)} finished lot(s), "
                f"{len(scope.shipments)} shipment(s)",
                file=sys.stderr,
            )
            _print_frame(scope.to_frame(), args.format)
    return 0


def _audit(args: argparse.Namespace) -> int:
    action = args.audit_action
    kg = _open(args, read_only=action in ("log", "verify"))
    with kg:
        if action == "log":
            _print_frame(kg.history(args.id) if args.id else kg.audit_log(), args.format)
        elif action == "verify":
            report = kg.verify_audit(trust=args.trust)
            print(report)
            return 0 if report.ok else EXIT_ERROR
        elif action == "sign":
            rec = kg.sign(args.record, key=args.key, signer=args.signer, meaning=args.meaning)
            print(f"record {args.record} signed by {args.signer} ({args.meaning!r}) as record {rec.number}")
        else:
            rec = kg.checkpoint(reason=args.reason)
            print(f"checkpoint of {len(rec.graphs)} graphs as record {rec.number}")
    return 0


def _package(args: argparse.Namespace) -> int:
    from . import transfer

    action = args.package_action
    if action == "keygen":
        private, public = transfer.generate_keypair(args.keyfile)
        print(f"wrote {private} (private: keep it to yourself) and {public} (public: give it to receiving sites)")
        return 0
    if action == "verify":
        print(transfer.verify_package(args.package, trust=args.trust))
        return 0
    if action == "diff":
        diff = transfer.diff_packages(args.before, args.after)
        print(diff, file=sys.stderr)
        if args.html:
            Path(args.html).write_text(diff.to_html(), encoding="utf-8")
        _print_frame(diff.to_frame(), args.format)
        return 0
    kg = _open(args, read_only=action == "export")
    with kg:
        if action == "export":
            print(
                transfer.export_package(
                    kg,
                    args.product,
                    args.out,
                    key=args.sign,
                    signer=args.signer,
                    meaning=args.meaning,
                    version=args.version,
                    history=args.history,
                )
            )
        else:
            imported = transfer.import_package(kg, args.package, trust=args.trust, reason=args.reason, site=args.site)
            print(imported)
            if not imported.equipment.empty:
                _print_frame(imported.equipment, "table")
    return 0


def _twin(kg: Any, args: argparse.Namespace) -> int:
    import warnings

    from . import twins as tw

    def need(what: str, value: Any) -> Any:
        if not value:
            raise ValueError(f"twin {args.action} needs {what}")
        return value

    if args.action == "list":
        _print_frame(kg.twins.list().drop(columns=["iri"]) if args.format == "table" else kg.twins.list(), args.format)
        return 0
    twin_id = need("a twin id", args.id)
    if args.action == "fit":
        reason = need("--reason (why the model changes)", args.reason)
        if args.spec or args.preset:
            spec = json.loads(Path(args.spec).read_text()) if args.spec else tw.DEMO_SPECS[args.preset]
            node = need("--attach NODE (what the twin describes)", args.attach or spec.get("attach"))
            fitted = tw.fit_twin(kg, tw.twin_from_spec(spec), holdout=args.holdout)
            saved = kg.twins.attach(node, fitted, id=twin_id, reason=reason)
        else:
            saved = kg.twins.save(tw.fit_twin(kg, kg.twins.load(twin_id), holdout=args.holdout), reason=reason)
        print(tw.card_text(saved))
        return 0
    twin = kg.twins.load(twin_id, version=args.version)
    if args.action == "status":
        changed = kg.twins.set_status(twin, need("--to STATUS", args.status), reason=need("--reason", args.reason))
        print(f"twin {changed.meta.id} v{changed.version} is now {changed.status}", file=sys.stderr)
    elif args.action == "show":
        if args.format == "json":
            print(json.dumps(tw.card.card_facts(twin), indent=1, default=str))
        else:
            print(tw.card_text(twin))
    elif args.action == "predict":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = tw.predict_batches(kg, twin, args.batches or None)
        if twin.status != "validated":
            print(
                f"note: twin {twin.meta.id} v{twin.version} is {twin.status}: predictions not validated",
                file=sys.stderr,
            )
        keep = ["batch", "unit", "start"] + [
            c for p in twin.outputs for c in (p.name, f"{p.name}_predicted", f"{p.name}_residual")
        ]
        _print_frame(frame[keep], args.format)
    elif args.action == "drift":
        report = tw.drift(kg, twin, output=args.output)
        print(
            f"{report.twin}: {len(report.alarms)} drift alarm(s) on {report.output} (sigma {report.sigma:.4g})",
            file=sys.stderr,
        )
        _print_frame(report.alarms, args.format)
    return 0


def _series(kg: Any, args: argparse.Namespace) -> int:
    if args.series_action == "load":
        report = kg.load_series(
            args.file,
            mapping=args.map,
            reason=args.reason,
            timezone=args.timezone,
            outside="drop" if args.drop_outside else "error",
            progress=sys.stderr.isatty(),
        )
        print(str(report), file=sys.stderr)
        if report.ignored_columns:
            print(f"columns not mapped to a tag (ignored): {', '.join(report.ignored_columns)}", file=sys.stderr)
        return 0
    frame = kg.series(args.batch, args.tag, args.start, args.end, verify=args.verify)
    if args.format == "table":
        print(f"{args.tag} in batch {args.batch}: {len(frame)} points, unit {frame.attrs.get('unit')}", file=sys.stderr)
    _print_frame(frame, args.format)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .kg import DEFAULT_BASE
    from .server import ServerConfig, serve
    from .server.config import read_token, read_users, token_digest

    token = read_token(args.update_token_file)
    config = ServerConfig(
        store=None if args.endpoint else _store_path(args),
        endpoint=args.endpoint,
        update_endpoint=args.update_endpoint,
        base=args.base or DEFAULT_BASE,
        host=args.host,
        port=args.port,
        workers=args.workers,
        token_sha256=token_digest(token) if token else None,
        token_user=(args.token_user or ("" if args.token_proxy else getpass.getuser())) if token else "",
        token_role=args.token_role,
        token_proxy=args.token_proxy,
        time_limit=args.time_limit,
        row_cap=args.row_cap,
        max_body=args.max_body,
        allow_service=tuple(args.allow_service),
        cors_origins=tuple(args.cors),
        inline_ms=args.inline_ms,
        users=read_users(args.users) if args.users else (),
        private=args.private,
    )
    serve(config, log_level=args.log_level)
    return 0


def _hours(text: str) -> tuple[int, ...]:
    """``--shifts 6,18``: hours of the day, 0-23."""
    try:
        hours = tuple(sorted({int(h) for h in text.split(",") if h.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"hours such as 6,14,22, not {text!r}") from None
    if not hours or not all(0 <= h < 24 for h in hours):
        raise argparse.ArgumentTypeError(f"hours of the day (0-23) such as 6,14,22, not {text!r}")
    return hours


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .errors import PharmaKGError

    try:
        return _run(args)
    except (PharmaKGError, OSError, KeyError, ValueError) as exc:
        if args.debug:
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, KeyError):
            message = str(exc.args[0]) if exc.args else message
        print(f"pharmakg {args.command}: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("pharmakg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
