"""Audit and provenance records for every write (layer L3).

Every write path (load, update, demo) asks this module for the quads that
describe the write and commits them *in the same transaction* as the data,
so there is never data without its record nor a record without its data.
Records go to ``{base}graph/audit`` and ``{base}graph/provenance``, graphs
that exports of domain data and "nothing changed" checks leave out.
Hash-chaining and e-signatures build on these records (see docs/design.md).
"""

from __future__ import annotations

import getpass
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from . import terms as T

__all__ = ["WriteRecord", "audit_graph", "current_user", "provenance_graph", "record_insert", "record_quads", "utc_now"]


def audit_graph(base: str) -> str:
    return f"{base}graph/audit"


def provenance_graph(base: str) -> str:
    return f"{base}graph/provenance"


def current_user() -> str:
    """The operating-system account running this process (no shared default)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _lit(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'


@dataclass(frozen=True)
class SourceRecord:
    """One input file of a load."""

    path: str
    sha256: str
    rows: int | None = None


@dataclass(frozen=True)
class WriteRecord:
    """Who wrote what, when and why."""

    action: str  # load | update | demo | restore
    user: str
    reason: str
    target_graph: str | None
    triples_added: int
    digest: str  # sha256 of the N-Quads (or update text) written
    sources: tuple[SourceRecord, ...] = ()
    started: str = ""
    ended: str = ""


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def record_quads(base: str, rec: WriteRecord) -> str:
    """N-Quads for the audit record and, for loads, the PROV-O activity."""
    return "".join(f"{triple} {graph} .\n" for graph, triple in _record_triples(base, rec))


def record_insert(base: str, rec: WriteRecord) -> str:
    """The same record as a SPARQL ``INSERT DATA`` operation (to append to an update)."""
    by_graph: dict[str, list[str]] = {}
    for graph, triple in _record_triples(base, rec):
        by_graph.setdefault(graph, []).append(triple + " .")
    return "INSERT DATA { " + " ".join(f"GRAPH {g} {{ {' '.join(t)} }}" for g, t in by_graph.items()) + " }"


def _record_triples(base: str, rec: WriteRecord) -> list[tuple[str, str]]:
    """(graph, 's p o') pairs of the audit record and, for loads, the PROV-O activity."""
    ended = rec.ended or utc_now()
    key = hashlib.sha256(f"{ended}|{rec.user}|{rec.digest}".encode()).hexdigest()[:20]
    audit_g = f"<{audit_graph(base)}>"
    prov_g = f"<{provenance_graph(base)}>"
    dt = f"^^<{T.XSD}dateTime>"
    rid = f"<{base}audit/{key}>"
    lines = [
        f"{rid} <{T.type_}> <{T.AuditRecord}> {audit_g} .",
        f"{rid} <{T.action}> {_lit(rec.action)} {audit_g} .",
        f"{rid} <{T.user}> {_lit(rec.user)} {audit_g} .",
        f"{rid} <{T.PROV}endedAtTime> {_lit(ended)}{dt} {audit_g} .",
        f"{rid} <{T.reason}> {_lit(rec.reason)} {audit_g} .",
        f'{rid} <{T.tripleCount}> "{rec.triples_added}"^^<{T.XSD}integer> {audit_g} .',
        f"{rid} <{T.sha256}> {_lit(rec.digest)} {audit_g} .",
    ]
    if rec.target_graph:
        lines.append(f"{rid} <{T.targetGraph}> <{rec.target_graph}> {audit_g} .")
    if rec.sources or rec.action == "load":
        act = f"<{base}load/{key}>"
        agent = f"<{base}person/{_quote(rec.user)}>"
        lines += [
            f"{act} <{T.type_}> <{T.LoadActivity}> {prov_g} .",
            f"{act} <{T.type_}> <{T.PROV}Activity> {prov_g} .",
            f"{act} <{T.PROV}startedAtTime> {_lit(rec.started or ended)}{dt} {prov_g} .",
            f"{act} <{T.PROV}endedAtTime> {_lit(ended)}{dt} {prov_g} .",
            f"{act} <{T.PROV}wasAssociatedWith> {agent} {prov_g} .",
            f"{agent} <{T.type_}> <{T.PROV}Agent> {prov_g} .",
            f"{agent} <{T.label}> {_lit(rec.user)} {prov_g} .",
            f"{act} <{T.reason}> {_lit(rec.reason)} {prov_g} .",
            f'{act} <{T.tripleCount}> "{rec.triples_added}"^^<{T.XSD}integer> {prov_g} .',
            f"{rid} <{T.PROV}wasGeneratedBy> {act} {audit_g} .",
        ]
        if rec.target_graph:
            lines.append(f"{act} <{T.targetGraph}> <{rec.target_graph}> {prov_g} .")
        for src in rec.sources:
            f_iri = f"<{base}source/{src.sha256}>"
            lines += [
                f"{act} <{T.PROV}used> {f_iri} {prov_g} .",
                f"{f_iri} <{T.type_}> <{T.SourceFile}> {prov_g} .",
                f"{f_iri} <{T.identifier}> {_lit(src.path)} {prov_g} .",
                f"{f_iri} <{T.sha256}> {_lit(src.sha256)} {prov_g} .",
            ]
            if src.rows is not None:
                lines.append(f'{f_iri} <{T.rowCount}> "{src.rows}"^^<{T.XSD}integer> {prov_g} .')
    out: list[tuple[str, str]] = []
    for line in lines:
        triple, graph = line[: -len(" .")].rsplit(" ", 1)
        out.append((graph, triple))
    return out


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")
