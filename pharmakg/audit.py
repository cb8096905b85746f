"""Audit and provenance records for every write (layer L3).

Every write path (load, update, demo) asks this module for the quads that
describe the write and commits them *in the same transaction* as the data,
so there is never data without its record nor a record without its data.
Records go to ``{base}graph/audit`` and ``{base}graph/provenance``, graphs
that exports of domain data and "nothing changed" checks leave out.
Hash-chaining and e-signatures build on these records (see docs/design.md).
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import json
import logging
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import terms as T
from .errors import QueryError
from .store.base import Store

__all__ = ["WriteRecord", "audit_graph", "current_user", "provenance_graph", "record_insert", "record_quads", "utc_now"]

log = logging.getLogger(__name__)


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

    @classmethod
    def of_file(cls, path: str | Path, rows: int | None = None) -> SourceRecord:
        """The record of a file as it is now on disk (its sha256 read from it)."""
        return cls(str(path), file_sha256(str(path)), rows)


@dataclass(frozen=True)
class GraphState:
    """A named graph's content at a checkpoint: triple count and an order-free digest.

    ``digest`` is the sum, modulo 2**256, of the sha256 of every N-Triples line
    of the graph (a multiset hash): independent of dump order, and changed by
    any added, removed or edited triple. For an update's effect, ``added`` and
    ``removed`` count what the update changed in this graph.
    """

    graph: str
    triples: int
    digest: str
    added: int | None = None
    removed: int | None = None


@dataclass(frozen=True)
class WriteRecord:
    """Who wrote what, when and why; once numbered, one link of the hash chain."""

    action: str  # load | update | import | demo | restore | checkpoint | sign
    user: str
    reason: str
    target_graph: str | None
    triples_added: int
    digest: str  # sha256 of the N-Quads (or update text) written
    sources: tuple[SourceRecord, ...] = ()
    started: str = ""
    ended: str = ""
    triples_removed: int = 0
    number: int = 0  # position in the chain (1, 2, ...); 0: not chained
    previous: str = ""  # recordHash of record number - 1 ("" for the first)
    about: str | None = None  # the record a checkpoint or signature is about (IRI)
    graphs: tuple[GraphState, ...] = ()  # checkpoints: graph states after the write
    added_nt: str = ""  # an update's added triples (N-Triples), kept so a value's history can be shown
    removed_nt: str = ""
    signature: dict[str, str] | None = None  # e-signature fields (see sign_record)

    def content(self) -> str:
        """The canonical JSON the record hash covers (every field but ``started``)."""
        fields = asdict(self)
        fields.pop("started")
        fields["sources"] = [asdict(s) for s in self.sources]
        fields["graphs"] = [asdict(g) for g in self.graphs]
        return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def hash(self) -> str:
        return hashlib.sha256(self.content().encode("utf-8")).hexdigest()

    def iri(self, base: str) -> str:
        if self.number:
            return f"{base}audit/{self.number:09d}"
        key = hashlib.sha256(f"{self.ended}|{self.user}|{self.digest}".encode()).hexdigest()[:20]
        return f"{base}audit/{key}"


def load_record(
    *,
    user: str,
    reason: str,
    target_graph: str,
    triples_added: int,
    written: bytes,
    sources: tuple[SourceRecord, ...],
    started: str,
) -> WriteRecord:
    """The record of a load (bundle, RDF, XML or series): its digest is the sha256 of the bytes ``written``."""
    return WriteRecord(
        action="load",
        user=user,
        reason=reason,
        target_graph=target_graph,
        triples_added=triples_added,
        digest=hashlib.sha256(written).hexdigest(),
        sources=sources,
        started=started,
    )


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
    if not rec.ended:
        rec = replace(rec, ended=utc_now())
    ended = rec.ended
    key = rec.iri(base).rsplit("/", 1)[1]
    audit_g = f"<{audit_graph(base)}>"
    prov_g = f"<{provenance_graph(base)}>"
    dt = f"^^<{T.XSD}dateTime>"
    integer = f"^^<{T.XSD}integer>"
    rid = f"<{rec.iri(base)}>"
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
    if rec.number:
        lines += [
            f'{rid} <{T.recordNumber}> "{rec.number}"{integer} {audit_g} .',
            f"{rid} <{T.previousHash}> {_lit(rec.previous)} {audit_g} .",
            f"{rid} <{T.recordHash}> {_lit(rec.hash())} {audit_g} .",
            f"{rid} <{T.recordContent}> {_lit(rec.content())} {audit_g} .",
            f'{rid} <{T.triplesRemoved}> "{rec.triples_removed}"{integer} {audit_g} .',
        ]
    if rec.about:
        lines.append(f"{rid} <{T.aboutRecord}> <{rec.about}> {audit_g} .")
    if rec.added_nt:
        lines.append(f"{rid} <{T.addedTriples}> {_lit(rec.added_nt)} {audit_g} .")
    if rec.removed_nt:
        lines.append(f"{rid} <{T.removedTriples}> {_lit(rec.removed_nt)} {audit_g} .")
    if rec.signature:
        sig = rec.signature
        lines += [
            f"{rid} <{T.signer}> {_lit(sig['signer'])} {audit_g} .",
            f"{rid} <{T.signatureMeaning}> {_lit(sig['meaning'])} {audit_g} .",
            f"{rid} <{T.signedAt}> {_lit(sig['time'])}{dt} {audit_g} .",
            f"{rid} <{T.keyId}> {_lit(sig['key_id'])} {audit_g} .",
        ]
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


# -- the hash chain -----------------------------------------------------------------------------
#: an update's changed triples are kept inline in its effect record up to this size (larger: counts and digest only)
INLINE_DELTA_BYTES = 1 << 20
_MOD = 1 << 256


def _select(store: Store, sparql: str) -> list[dict[str, str]]:
    raw = store.query(sparql)
    return [{k: v["value"] for k, v in b.items()} for b in json.loads(raw.body)["results"]["bindings"]]


def chain_head(store: Store, base: str) -> tuple[int, str]:
    """(number, hash) of the last chained record; (0, "") for an empty trail."""
    rows = _select(
        store,
        f"SELECT ?n ?h WHERE {{ GRAPH <{audit_graph(base)}> {{ ?r <{T.recordNumber}> ?n ; <{T.recordHash}> ?h }} }} "
        "ORDER BY DESC(?n) LIMIT 1",
    )
    return (int(rows[0]["n"]), rows[0]["h"]) if rows else (0, "")


def numbered(store: Store, base: str, rec: WriteRecord) -> WriteRecord:
    """``rec`` as the next link of the chain (number, previous hash, end time)."""
    number, previous = chain_head(store, base)
    return replace(rec, number=number + 1, previous=previous, ended=rec.ended or utc_now())


def graph_lines(store: Store, graph: str) -> set[bytes]:
    """The graph's triples as a set of N-Triples lines, as the store serialises them."""
    return {line.strip() for line in store.dump(format="nt", graph=graph).splitlines() if line.strip()}


_DIGEST = operator.methodcaller("digest")
_BIG_ENDIAN = functools.partial(int.from_bytes, byteorder="big")


def multiset_digest(lines: Iterable[bytes]) -> str:
    """Sum of the lines' sha256 modulo 2**256, as 64 hex digits (order-free; see GraphState)."""
    # iterators of C functions all the way: no bytecode per line (millions of lines on a load)
    total = sum(map(_BIG_ENDIAN, map(_DIGEST, map(hashlib.sha256, lines))))
    return f"{total % _MOD:064x}"


def graph_state(store: Store, graph: str, lines: set[bytes] | None = None) -> GraphState:
    return _state_of(graph, graph_lines(store, graph) if lines is None else lines)


def data_graphs(store: Store, base: str) -> list[str]:
    """Every named graph but the audit trail itself (which the chain protects)."""
    rows = _select(store, "SELECT DISTINCT ?g WHERE { GRAPH ?g { } }")
    names = sorted(r["g"] for r in rows if r["g"] != audit_graph(base))
    # a cleared graph can stay listed (empty): only graphs holding data count
    return [g for g in names if holds_data(store, g)]


_NAMED = re.compile(
    r"(?:\bGRAPH|\bINTO|\bWITH|\bCLEAR|\bDROP|\bCREATE|\bTO)\s+(?:SILENT\s+)?(?:GRAPH\s+)?<([^>]+)>", re.I
)
_ANY_GRAPH = re.compile(
    r"\bGRAPH\s*[?$]|\b(?:CLEAR|DROP|ADD|MOVE|COPY)\s+(?:SILENT\s+)?(?:ALL|NAMED|DEFAULT)\b|\bUSING\b|\bWITH\b", re.I
)
#: Left to right, what is kept of an update (IRIs and comments, in which quotes are not strings) and
#: its string literals. Unterminated strings run to the end (of the line, for short ones) and the
#: loops are possessive, so every quote starts one match that always succeeds: linear in the text.
_TOKENS = re.compile(
    r"(?P<iri><[^<>\"{}|^`\\\s]*>)"
    r"|(?P<comment>#[^\n\r]*)"
    r'|"""(?:[^"\\]|\\.|"(?!""))*+(?:"""|\\?\Z)'
    r"|'''(?:[^'\\]|\\.|'(?!''))*+(?:'''|\\?\Z)"
    r'|"(?:[^"\\\n\r]|\\.)*+"?'
    r"|'(?:[^'\\\n\r]|\\.)*+'?",
    re.DOTALL,
)


def _code(sparql: str, *, keywords_only: bool = False) -> str:
    """The update with every string literal emptied (words inside strings are not syntax); with
    ``keywords_only`` IRIs are blanked and comments dropped too (a "graph" in an IRI is no GRAPH)."""

    def kept(m: re.Match[str]) -> str:
        if m.lastgroup is None:
            return '""'
        if not keywords_only:
            return m.group(0)
        return "<>" if m.lastgroup == "iri" else ""

    return _TOKENS.sub(kept, sparql)


#: a graph named by a prefixed name (``GRAPH ex:g``), which the lexical reading cannot resolve
_PREFIXED_GRAPH = re.compile(r"\bGRAPH\s+(?![<?$])", re.I)


def touched_graphs(store: Store, base: str, sparql: str) -> list[str]:
    """The graphs an update may change: those it names, or every data graph when it names them by variable.

    An update without any GRAPH writes the default graph, which a union-default store
    shows through every query: it is checked like all the rest. Without rdflib's reading
    (``update_shape``) the lexical one errs on the side of more graphs: graph IRIs are
    looked for in the raw text too (one named inside a string costs a read, never a miss).
    """
    named = {g for g in _NAMED.findall(sparql) if g != audit_graph(base)}
    shape = update_shape(sparql)
    if shape is not None:  # graphs named by a prefixed name too (GRAPH ex:g), which the pattern above misses
        named |= shape.graphs - {audit_graph(base)}
        return sorted(set(data_graphs(store, base)) | named) if shape.any_graph else sorted(named)
    code = _code(sparql, keywords_only=True)
    writes = re.search(r"\b(?:INSERT|DELETE)\b", code, re.I) is not None
    if (
        _ANY_GRAPH.search(sparql)
        or _ANY_GRAPH.search(code)
        or _PREFIXED_GRAPH.search(code)
        or (writes and not re.search(r"\bGRAPH\b", code, re.I))
    ):
        return sorted(set(data_graphs(store, base)) | named)
    return sorted(named)


def writes_default_graph(sparql: str) -> bool:
    """Whether an update may write the default graph, where no record could name what it changed."""
    shape = update_shape(sparql)
    if shape is not None:
        return shape.default_graph
    code = _code(sparql, keywords_only=True)
    return (
        re.search(r"\b(?:INSERT|DELETE)\b", code, re.I) is not None
        and not re.search(r"\bGRAPH\b", code, re.I)
        and not re.search(r"\bWITH\b", code, re.I)
    )


def commit_add(
    store: Store,
    base: str,
    record: WriteRecord,
    nquads: bytes,
    *,
    ntriples: bytes = b"",
    graph: str | None = None,
    graphs: Iterable[str] = (),
    fresh: Mapping[str, Callable[[], GraphState]] | None = None,
) -> WriteRecord:
    """Add data and its (chained) record in one transaction, then checkpoint ``graphs``.

    ``fresh`` names graphs that this write fills from nothing, each with a function
    giving the state the write leaves it in, from the exact N-Triples lines the store
    will serialise it as (:func:`lines_state`). A graph found empty before the write
    is then checkpointed from those lines instead of being read back: reading a large
    graph from disk costs more than the write itself. The functions run on a second
    thread while the store writes (a bulk load releases the GIL); a caller may have
    started the work earlier still. A graph that is not empty is read back as usual.
    Were the lines not what the store holds, ``verify_trail`` would report the
    checkpoint as broken: a false alarm, never a silent pass.
    """
    producers = {g: state for g, state in (fresh or {}).items() if not holds_data(store, g)}
    rec = numbered(store, base, record)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = {g: pool.submit(state) for g, state in producers.items()}
        store.add(nquads + record_quads(base, rec).encode("utf-8"), ntriples=ntriples, graph=graph)
    known = {}
    for g, future in pending.items():
        try:
            known[g] = future.result()
        except Exception:  # the write has committed: its checkpoint reads the graph back instead
            log.warning("could not compute the state of <%s> from the lines written; reading it back", g, exc_info=True)
    touched = set(graphs) | ({graph} if graph else set()) | ({rec.target_graph} if rec.target_graph else set())
    names = sorted(touched | {provenance_graph(base)})
    checkpoint(store, base, user=rec.user, graphs=names, about=rec.iri(base), known=known)
    return rec


def lines_state(graph: str, lines: Iterable[bytes], *, distinct: bool = False) -> GraphState:
    """The state of ``graph`` holding exactly these N-Triples lines (repeats fold, as in the store).

    ``distinct``: the caller knows there are no repeats (a set of four million lines costs a second)."""
    if distinct and isinstance(lines, list):
        return GraphState(graph, len(lines), multiset_digest(lines))
    return _state_of(graph, set(lines))


def _state_of(graph: str, lines: set[bytes]) -> GraphState:
    return GraphState(graph, len(lines), multiset_digest(lines))


def holds_data(store: Store, graph: str) -> bool:
    """Whether ``graph`` holds any triple (an emptied graph may stay listed)."""
    return bool(json.loads(store.query(f"ASK {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}").body)["boolean"])


def commit_update(store: Store, base: str, record: WriteRecord, sparql: str) -> WriteRecord:
    """Run ``sparql`` and its chained record in one transaction, then record what it changed.

    What the update may change is read before and after, so the effect record names
    every triple added and removed (inline up to INLINE_DELTA_BYTES) and checkpoints
    the graphs' new states. An update whose every template names its subject
    (``INSERT DATA``, ``DELETE DATA``, ``DELETE WHERE { <s> ... }``, an edit of one
    node's values) can only change the triples of those subjects: only those are
    read, and each graph's new state is its recorded one plus the change (the
    digest is a multiset hash). Anything else reads the graphs it may touch whole,
    which takes minutes on a graph of millions of triples.
    """
    if writes_default_graph(sparql):
        raise QueryError(
            "this update writes the default graph: pharmakg keeps every triple in a named graph (its source), "
            "so that its audit record can name what changed; put the triples in GRAPH <...> { } or use WITH <...>",
            query=sparql,
        )
    scope = None if record.sources or record.action == "load" else update_scope(sparql)
    states = None
    if scope is not None:
        read: Callable[[], dict[str, set[bytes]]] = lambda: {  # noqa: E731
            g: v for g, v in _scoped_lines(store, scope).items() if g != audit_graph(base)
        }
        before = read()
        named = {g for g, _, _ in scope if g is not None} - {audit_graph(base)}
        states = _recorded_states(store, base, set(before) | named)
    if scope is None or states is None:
        graphs = touched_graphs(store, base, sparql)
        if record.sources or record.action == "load":  # its PROV-O activity goes to the provenance graph
            graphs = sorted(set(graphs) | {provenance_graph(base)})
        read = lambda: {g: graph_lines(store, g) for g in graphs}  # noqa: E731
        before = read()
    rec = numbered(store, base, record)
    store.update(sparql.rstrip().rstrip(";") + " ;\n" + record_insert(base, rec))
    now = read()
    new_states, added, removed = [], [], []
    for g in sorted(set(before) | set(now)):
        plus, minus = now.get(g, set()) - before.get(g, set()), before.get(g, set()) - now.get(g, set())
        added += [f"{line.decode()} # <{g}>" for line in sorted(plus)]
        removed += [f"{line.decode()} # <{g}>" for line in sorted(minus)]
        if states is None:
            state = graph_state(store, g, now[g])
        elif g in states:
            state = _moved(states[g], plus, minus)
        else:  # held data that no record describes: read it whole
            state = graph_state(store, g)
        new_states.append(replace(state, added=len(plus), removed=len(minus)))
    added_nt, removed_nt = "\n".join(added), "\n".join(removed)
    delta = hashlib.sha256(f"{added_nt}\n--\n{removed_nt}".encode()).hexdigest()
    if len(added_nt) + len(removed_nt) > INLINE_DELTA_BYTES:
        added_nt = removed_nt = ""
    _write_chained(
        store,
        base,
        WriteRecord(
            action="effect",
            user=rec.user,
            reason=f"what record {rec.number} changed",
            target_graph=None,
            triples_added=len(added),
            triples_removed=len(removed),
            digest=delta,
            about=rec.iri(base),
            graphs=tuple(s for s in new_states if s.added or s.removed or s.triples),
            added_nt=added_nt,
            removed_nt=removed_nt,
        ),
    )
    return replace(rec, triples_added=len(added), triples_removed=len(removed))


#: (graph, subject, predicate) patterns an update's templates cover; graph None: any graph, predicate None: any
Scope = tuple[tuple[str | None, str, str | None], ...]


#: updates longer than this outside their string literals are not parsed for their shape: rdflib's
#: translation grows with the square of the triples (5 s for 1 000); they take the path that reads
#: the touched graphs whole
PARSE_AT_MOST = 20_000
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]*$")
#: a \\uXXXX or \\UXXXXXXXX escape: an odd run of backslashes (an even one is escaped backslashes,
#: which rdflib's expansion turns into another escape or a parse error, never a different structure)
_CODEPOINT_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\[uU][0-9A-Fa-f]{4}")


@dataclass(frozen=True)
class UpdateShape:
    """What an INSERT/DELETE update's templates name (read off rdflib's parse)."""

    scope: (
        Scope | None
    )  # (graph, subject, predicate) of every triple it may change, when each template names its subject
    graphs: frozenset[str]  # the graphs the templates name
    any_graph: bool  # a template's graph is a variable
    default_graph: bool  # a template writes the default graph


@functools.lru_cache(maxsize=16)  # one update asks three times (default graph, scope, graphs touched)
def update_shape(sparql: str) -> UpdateShape | None:
    """The shape of a plain INSERT/DELETE update; None when it is not one (LOAD, CLEAR, DROP, ADD, MOVE,
    COPY, CREATE), is longer than PARSE_AT_MOST outside its string literals, or rdflib reads it otherwise
    than an IRI-for-IRI match with the store (a relative or escaped IRI, a \\uXXXX escape): the caller then
    falls back to the lexical reading."""
    if len(sparql) > PARSE_AT_MOST and len(_code(sparql)) > PARSE_AT_MOST:
        return None  # string literals do not count: rdflib reads a long one (a JSON snapshot) quickly
    if _CODEPOINT_ESCAPE.search(sparql):
        return None  # rdflib expands \uXXXX before parsing, the store inside strings only: they can disagree
    from rdflib import URIRef, Variable
    from rdflib.plugins.sparql.algebra import translateUpdate
    from rdflib.plugins.sparql.parser import parseUpdate
    from rdflib.plugins.sparql.parserutils import CompValue

    try:
        update = translateUpdate(parseUpdate(sparql))
    except Exception:  # the store's own parser gives the user's error; this is only a shortcut
        return None
    found: list[tuple[str | None, str, str | None]] = []
    graphs: set[str] = set()
    any_graph = default = unnamed = False
    for op in update.algebra:
        if op.name in ("InsertData", "DeleteData", "DeleteWhere"):
            clauses = [op]
        elif op.name == "Modify":
            clauses = [c for c in (op.get("delete"), op.get("insert")) if isinstance(c, CompValue)]
        else:
            return None
        for clause in clauses:
            quads = dict(clause.get("quads") or {})
            if clause.get("triples"):
                with_graph = op.get("withClause") if op.name == "Modify" else None
                if not isinstance(with_graph, URIRef):
                    default = True
                    continue
                quads.setdefault(with_graph, []).extend(clause["triples"])
            for graph, triples in quads.items():
                if isinstance(graph, Variable):
                    any_graph = True
                elif isinstance(graph, URIRef) and _ABSOLUTE.match(graph):
                    graphs.add(str(graph))
                else:
                    return None
                for s, p, _ in triples:
                    if not (isinstance(s, URIRef) and _ABSOLUTE.match(s)):
                        unnamed = True
                        continue
                    if isinstance(p, URIRef) and not _ABSOLUTE.match(p):
                        return None
                    g = str(graph) if isinstance(graph, URIRef) else None
                    found.append((g, str(s), str(p) if isinstance(p, URIRef) else None))
    scope = (
        None
        if unnamed or default or not found
        else tuple(sorted(set(found), key=lambda t: (t[0] or "", t[1], t[2] or "")))
    )
    return UpdateShape(scope, frozenset(graphs), any_graph, default)


def update_scope(sparql: str) -> Scope | None:
    """The (graph, subject, predicate) of every triple ``sparql`` may add or remove; None when a template's
    subject is not named (a variable or a blank node), a template writes the default graph, or the update
    is not a plain INSERT/DELETE."""
    shape = update_shape(sparql)
    return shape.scope if shape is not None else None


def _scoped_lines(store: Store, scope: Scope) -> dict[str, set[bytes]]:
    """The triples within ``scope``, by graph, as N-Triples lines the way the store serialises them."""

    def values(patterns: Iterable[tuple[str, str | None]]) -> str:
        rows = " ".join(f"(<{s}> {f'<{p}>' if p else 'UNDEF'})" for s, p in sorted(set(patterns), key=str))
        return f"VALUES (?s ?p) {{ {rows} }}"

    by_graph: dict[str, list[tuple[str, str | None]]] = {}
    anywhere = [(s, p) for g, s, p in scope if g is None]
    if anywhere:
        for r in _select(store, f"SELECT DISTINCT ?g WHERE {{ {values(anywhere)} GRAPH ?g {{ ?s ?p ?o }} }}"):
            by_graph.setdefault(r["g"], []).extend(anywhere)
    for g, s, p in scope:
        if g is not None:
            by_graph.setdefault(g, []).append((s, p))
    out: dict[str, set[bytes]] = {}
    for g, patterns in by_graph.items():
        body = store.query(f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH <{g}> {{ {values(patterns)} ?s ?p ?o }} }}").body
        out[g] = {line.strip() for line in body.splitlines() if line.strip()}
    return out


def _recorded_states(store: Store, base: str, graphs: set[str]) -> dict[str, GraphState] | None:
    """The newest state this chain records for each of ``graphs`` (those an update may touch).

    None when the store holds another chain (its writes would not show here) or a
    graph with data has no recorded state: the caller then reads the graphs whole."""
    chains = _select(store, f"SELECT DISTINCT ?a WHERE {{ GRAPH ?a {{ ?r <{T.recordNumber}> ?n }} }}")
    if [r["a"] for r in chains] not in ([], [audit_graph(base)]):
        return None
    states: dict[str, GraphState] = {}
    for g in sorted(graphs):
        if not holds_data(store, g):
            states[g] = GraphState(g, 0, f"{0:064x}")
            continue
        needle = json.dumps({"graph": g}, ensure_ascii=False, separators=(",", ":"))[1:-1]
        rows = _select(
            store,
            f"SELECT ?n ?c WHERE {{ GRAPH <{audit_graph(base)}> {{ ?r <{T.recordNumber}> ?n ; <{T.recordContent}> ?c }} "
            f"FILTER(CONTAINS(?c, {_lit(needle)})) }} ORDER BY DESC(?n)",
        )
        for r in rows:
            recorded = [x for x in json.loads(r["c"]).get("graphs") or [] if x.get("graph") == g]
            if recorded:
                states[g] = GraphState(g, int(recorded[0]["triples"]), str(recorded[0]["digest"]))
                break
        else:
            return None
    return states


def _moved(state: GraphState, plus: set[bytes], minus: set[bytes]) -> GraphState:
    """``state`` after adding ``plus`` and removing ``minus`` (the multiset digest moves by their hashes)."""
    total = int(state.digest, 16) + int(multiset_digest(plus), 16) - int(multiset_digest(minus), 16)
    return GraphState(state.graph, state.triples + len(plus) - len(minus), f"{total % _MOD:064x}")


def _write_chained(store: Store, base: str, record: WriteRecord) -> WriteRecord:
    rec = numbered(store, base, record)
    store.add(record_quads(base, rec).encode("utf-8"))
    return rec


def checkpoint(
    store: Store,
    base: str,
    *,
    user: str,
    graphs: Iterable[str] | None = None,
    about: str | None = None,
    reason: str = "",
    known: Mapping[str, GraphState] | None = None,
) -> WriteRecord:
    """Record the current state (count and digest) of ``graphs`` (default: every data graph) as a chained record.

    ``known`` gives some graphs' states computed from the lines written (see commit_add).
    """
    names = data_graphs(store, base) if graphs is None else sorted(set(graphs))
    known = known or {}
    states = tuple(known[g] if g in known else graph_state(store, g) for g in names)
    return _write_chained(
        store,
        base,
        WriteRecord(
            action="checkpoint",
            user=user,
            reason=reason or (f"graph states after {about.rsplit('/', 1)[-1]}" if about else "checkpoint"),
            target_graph=None,
            triples_added=0,
            digest=multiset_digest(s.digest.encode() for s in states),
            about=about,
            graphs=states,
        ),
    )


def sign_record(
    store: Store, base: str, record: str | int, *, key: str, signer: str, meaning: str, user: str
) -> WriteRecord:
    """An e-signature on a chained record, bound to its hash (§11.70), itself a chained record."""
    from . import signing

    target = _record_row(store, base, record)
    sig = signing.sign_digest(target["hash"], key=key, signer=signer, meaning=meaning)
    public = signing.load_private_key(key).public_key()
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    fields = {
        "record": target["r"],
        "digest": sig.digest,
        "signer": sig.signer,
        "meaning": sig.meaning,
        "time": sig.time,
        "key_id": sig.key_id,
        "value": sig.value,
        "public_key": raw.hex(),
    }
    return _write_chained(
        store,
        base,
        WriteRecord(
            action="sign",
            user=user,
            reason=f"{meaning} by {signer}",
            target_graph=None,
            triples_added=0,
            digest=target["hash"],
            about=target["r"],
            signature=fields,
        ),
    )


def _record_row(store: Store, base: str, record: str | int) -> dict[str, str]:
    if isinstance(record, int) or str(record).isdigit():
        where = f'?r <{T.recordNumber}> "{int(record)}"^^<{T.XSD}integer> .'
    else:
        where = f"VALUES ?r {{ <{record}> }}"
    rows = _select(
        store,
        f"SELECT ?r ?n ?hash WHERE {{ GRAPH <{audit_graph(base)}> {{ {where} ?r <{T.recordNumber}> ?n ; "
        f"<{T.recordHash}> ?hash }} }}",
    )
    if not rows:
        raise KeyError(f"no chained audit record {record!r}")
    return rows[0]


# -- verification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditReport:
    """The result of checking the trail: records checked and every problem found (empty: intact)."""

    records: int
    unchained: int
    head: str
    graphs_checked: int
    signatures: int
    problems: tuple[tuple[str, str], ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        lines = [
            f"audit trail: {self.records} chained records, head {self.head[:16]}…, {self.graphs_checked} graphs "
            f"checked against their last checkpoint, {self.signatures} signatures"
            + (f", {self.unchained} records from before the chain" if self.unchained else "")
        ]
        lines.append("intact" if self.ok else f"{len(self.problems)} problem(s):")
        lines += [f"  {where}: {what}" for where, what in self.problems]
        return "\n".join(lines)


def verify_trail(store: Store, base: str, *, trust: Mapping[str, object] | None = None) -> AuditReport:
    """Check the chain (edited, deleted, reordered or inserted records), signatures and the data's checkpoints."""
    ag = f"<{audit_graph(base)}>"
    rows = _select(
        store,
        f"""SELECT ?r ?n ?content ?hash ?action ?user ?reason WHERE {{ GRAPH {ag} {{ ?r a <{T.AuditRecord}> .
  OPTIONAL {{ ?r <{T.recordNumber}> ?n }} OPTIONAL {{ ?r <{T.recordContent}> ?content }}
  OPTIONAL {{ ?r <{T.recordHash}> ?hash }} OPTIONAL {{ ?r <{T.action}> ?action }}
  OPTIONAL {{ ?r <{T.user}> ?user }} OPTIONAL {{ ?r <{T.reason}> ?reason }} }} }}""",
    )
    problems: list[tuple[str, str]] = []
    by_record: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_record.setdefault(r["r"], []).append(r)
    chained: list[tuple[int, str, dict[str, Any], str]] = []
    unchained = 0
    hashes: dict[str, str] = {}
    for iri, variants in sorted(by_record.items()):
        name = iri.rsplit("/", 1)[-1]
        if len(variants) > 1:
            problems.append((name, "holds two values for one field (edited in place?)"))
        r = variants[0]
        if "n" not in r:
            unchained += 1
            continue
        content = r.get("content", "")
        if hashlib.sha256(content.encode("utf-8")).hexdigest() != r.get("hash"):
            problems.append((name, "its content does not match its hash (edited)"))
        try:
            fields = json.loads(content)
        except ValueError:
            problems.append((name, "its content is not readable"))
            continue
        for key in ("action", "user", "reason"):
            if fields.get(key) != r.get(key):
                problems.append((name, f"{key} reads {r.get(key)!r} but was recorded as {fields.get(key)!r} (edited)"))
        if fields.get("number") != int(r["n"]):
            problems.append((name, f"numbered {r['n']} but recorded as {fields.get('number')}"))
        chained.append((int(r["n"]), iri, fields, r.get("hash", "")))
        hashes[iri] = r.get("hash", "")
    chained.sort(key=lambda c: c[0])
    expected, previous = 1, ""
    for number, iri, fields, h in chained:
        name = iri.rsplit("/", 1)[-1]
        if number > expected:
            problems.append((name, f"records {expected}..{number - 1} are missing (deleted)"))
        elif number < expected:
            problems.append((name, f"a second record numbered {number} (inserted, or two writers at once)"))
        if fields.get("previous") != previous:
            problems.append((name, "does not follow the record before it (reordered, or one before it was changed)"))
        expected, previous = number + 1, h
    # checkpoints: the newest state recorded for each graph must be the graph's state now
    latest: dict[str, tuple[int, dict[str, Any]]] = {}
    signatures = 0
    for number, iri, fields, _ in chained:
        for g in fields.get("graphs", []) or []:
            assert isinstance(g, dict)
            latest[str(g["graph"])] = (number, g)
        sig = fields.get("signature")
        if isinstance(sig, dict):
            signatures += 1
            problems += _check_signature(iri, sig, hashes, trust)
    for graph, (number, state) in sorted(latest.items()):
        now = graph_state(store, graph)
        if (now.triples, now.digest) != (state["triples"], state["digest"]):
            problems.append(
                (
                    graph,
                    f"changed outside the audited path after record {number}: {state['triples']} triples "
                    f"then, {now.triples} now, digests differ",
                )
            )
    if chained:
        for graph in data_graphs(store, base):
            if graph not in latest:
                problems.append((graph, "holds data written outside the audited path (no checkpoint ever)"))
    return AuditReport(
        records=len(chained),
        unchained=unchained,
        head=chained[-1][3] if chained else "",
        graphs_checked=len(latest),
        signatures=signatures,
        problems=tuple(problems),
    )


def _check_signature(
    iri: str, sig: dict[str, Any], hashes: dict[str, str], trust: Mapping[str, object] | None
) -> list[tuple[str, str]]:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from . import signing

    name = iri.rsplit("/", 1)[-1]
    signed = str(sig.get("record", ""))
    if hashes.get(signed) != sig.get("digest"):
        return [(name, f"signs a record whose hash is no longer {str(sig.get('digest'))[:16]}… (record changed)")]
    record = signing.Signature(
        str(sig["digest"]),
        str(sig["signer"]),
        str(sig["meaning"]),
        str(sig["time"]),
        str(sig["key_id"]),
        str(sig["value"]),
    )
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(str(sig["public_key"])))
        if signing.key_id(public) != record.key_id:
            return [(name, "the signature's key id does not match its public key")]
        import base64

        public.verify(base64.b64decode(record.value), record.payload())
    except (InvalidSignature, ValueError):
        return [(name, f"the signature of {record.signer!r} does not verify")]
    if trust is not None and record.key_id not in trust:
        return [(name, f"signed by {record.signer!r} with key {record.key_id}, which is not trusted")]
    return []


# -- reading the trail -------------------------------------------------------------------------


def trail(store: Store, base: str) -> list[dict[str, str]]:
    """Every chained record, oldest first: number, time, user, action, reason, counts, what it is about, signature."""
    ag = f"<{audit_graph(base)}>"
    return _select(
        store,
        f"""SELECT ?number ?time ?user ?action ?reason ?target ?added ?removed ?about ?signer ?meaning ?record
WHERE {{ GRAPH {ag} {{ ?record <{T.recordNumber}> ?number ; <{T.PROV}endedAtTime> ?time ; <{T.user}> ?user ;
  <{T.action}> ?action ; <{T.reason}> ?reason ; <{T.tripleCount}> ?added ; <{T.triplesRemoved}> ?removed .
  OPTIONAL {{ ?record <{T.targetGraph}> ?target }} OPTIONAL {{ ?record <{T.aboutRecord}> ?a . ?a <{T.recordNumber}> ?about }}
  OPTIONAL {{ ?record <{T.signer}> ?signer ; <{T.signatureMeaning}> ?meaning }} }} }} ORDER BY ?number""",
    )


def record_life(store: Store, base: str, node: str) -> list[dict[str, str]]:
    """The life of one node: the loads that wrote its graph, each update that changed it (old and new values), signatures."""
    ag = f"<{audit_graph(base)}>"
    graphs = [r["g"] for r in _select(store, f"SELECT DISTINCT ?g WHERE {{ GRAPH ?g {{ <{node}> ?p ?o }} }}")]
    values = " ".join(f"<{g}>" for g in graphs)
    rows: list[dict[str, str]] = []
    if graphs:
        rows += _select(
            store,
            f"""SELECT ?number ?time ?user ?action ?reason ?record WHERE {{ GRAPH {ag} {{
  ?record <{T.recordNumber}> ?number ; <{T.PROV}endedAtTime> ?time ; <{T.user}> ?user ; <{T.action}> ?action ;
  <{T.reason}> ?reason ; <{T.targetGraph}> ?g . VALUES ?g {{ {values} }} }} }}""",
        )
    needle = f"<{node}> "
    effects = _select(
        store,
        f"""SELECT ?number ?time ?user ?action ?reason ?record ?added ?removed WHERE {{ GRAPH {ag} {{
  ?effect <{T.aboutRecord}> ?record ; <{T.action}> "effect" .
  OPTIONAL {{ ?effect <{T.addedTriples}> ?added }} OPTIONAL {{ ?effect <{T.removedTriples}> ?removed }}
  FILTER(CONTAINS(COALESCE(?added, ""), {_lit(needle)}) || CONTAINS(COALESCE(?removed, ""), {_lit(needle)}))
  ?record <{T.recordNumber}> ?number ; <{T.PROV}endedAtTime> ?time ; <{T.user}> ?user ; <{T.action}> ?action ;
  <{T.reason}> ?reason }} }}""",
    )
    for e in effects:
        e["change"] = _describe(node, e.pop("removed", ""), e.pop("added", ""))
        rows.append(e)
    signed = {r["record"] for r in rows}
    if signed:
        for s in _select(
            store,
            f"""SELECT ?about ?signer ?meaning ?time WHERE {{ GRAPH {ag} {{ ?s <{T.action}> "sign" ;
  <{T.aboutRecord}> ?about ; <{T.signer}> ?signer ; <{T.signatureMeaning}> ?meaning ; <{T.signedAt}> ?time }} }}""",
        ):
            for r in rows:
                if r["record"] == s["about"]:
                    r["signatures"] = "; ".join(
                        x for x in (r.get("signatures", ""), f"{s['meaning']} by {s['signer']} at {s['time']}") if x
                    )
    return sorted(rows, key=lambda r: int(r["number"]))


#: A value longer than this is shortened in a node's history (a JSON snapshot would drown the other changes).
_SHOWN_AT_MOST = 300


def _describe(node: str, removed: str, added: str) -> str:
    """'norLow: 57 -> 58' from an update's removed and added lines about ``node``."""
    import pyoxigraph as ox

    def about(text: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for line in text.split("\n"):  # not splitlines: U+2028 or U+0085 in a literal is data
            if not line.startswith(f"<{node}> "):
                continue
            triple = line.rsplit(" # <", 1)[0]
            try:
                t = next(iter(ox.parse(triple.encode(), format=ox.RdfFormat.N_TRIPLES)))
            except (SyntaxError, StopIteration):
                continue
            o = t.object
            shown = o.value if isinstance(o, ox.Literal | ox.NamedNode) else str(o)
            if len(shown) > _SHOWN_AT_MOST:  # a JSON snapshot: the effect record keeps it whole
                shown = f"{shown[: _SHOWN_AT_MOST // 2]}… ({len(shown)} characters)"
            out.setdefault(t.predicate.value.rsplit("#", 1)[-1].rsplit("/", 1)[-1], []).append(shown)
        return out

    old, new = about(removed), about(added)
    parts = []
    for prop in sorted(set(old) | set(new)):
        before, after = ", ".join(old.get(prop, [])) or "(none)", ", ".join(new.get(prop, [])) or "(none)"
        parts.append(f"{prop}: {before} -> {after}")
    return "; ".join(parts)
