"""What the endpoint refuses before a request reaches the store (layer L6).

pyoxigraph executes ``SERVICE <http://...>`` and ``LOAD <http://...>`` by
making the HTTP request itself, so a public endpoint over it would fetch any
URL a client names. Queries are screened lexically first (no ``service`` and no
``\\u`` escape in the text: nothing to check, the hot path costs one regex
scan); only the rest are parsed, with rdflib's SPARQL parser, to find every
SERVICE target exactly. Updates are always parsed: besides LOAD and SERVICE,
they must not write to the audit and provenance graphs, whose whole value is
that nobody can rewrite them. ``CLEAR``/``DROP`` ``ALL``/``NAMED`` are
rewritten into one operation per unprotected graph, so they leave those graphs
as they are; an update whose templates write to a graph variable
(``GRAPH ?g``) is refused, since it could reach them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Refusal", "UpdatePlan", "check_query", "plan_update"]

_NEEDS_PARSE = re.compile(r"service|\\u", re.IGNORECASE)
_CLEAR_ALL = re.compile(r"\b(CLEAR|DROP)(\s+SILENT)?\s+(ALL|NAMED)\b", re.IGNORECASE)
NO_GRAPH = "urn:x-pharmakg:no-graph"  # target of an expanded CLEAR NAMED when there is no graph to clear


class Refusal(Exception):
    """A request the endpoint will not run: an HTTP status and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _walk(node: Any) -> Iterator[Any]:
    """Every rdflib algebra node (CompValue) below ``node``."""
    stack = [node]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            if hasattr(item, "name"):
                yield item
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


def _check_services(tree: Any, allowed: Callable[[str], bool]) -> None:
    from rdflib.term import URIRef

    for node in _walk(tree):
        if node.name != "ServiceGraphPattern":
            continue
        term = node.get("term")
        if not isinstance(term, URIRef):
            raise Refusal(403, f"SERVICE with a variable endpoint ({term}) is not allowed on this server")
        if not allowed(str(term)):
            raise Refusal(403, f"SERVICE <{term}> is not allowed on this server (not in its allow-list)")


def _parse_failure(exc: Exception, what: str, sparql: str, *, update: bool) -> Refusal:
    """A 400 that carries oxigraph's message and position when oxigraph also rejects the text.

    oxigraph may only parse it by running it on an empty in-memory store, which
    is safe when nothing in the text can fetch a URL."""
    if not re.search(r"service|load|\\u", sparql, re.IGNORECASE):
        import pyoxigraph as ox

        try:
            if update:
                ox.Store().update(sparql)
            else:
                ox.Store().query(sparql)
        except SyntaxError as ox_exc:
            return Refusal(400, str(ox_exc))
        except Exception:
            pass
    return Refusal(400, f"{what}: {exc}")


def check_query(sparql: str, allowed: Callable[[str], bool]) -> None:
    """Refuse a query that would make the server fetch a URL that is not allow-listed."""
    if not _NEEDS_PARSE.search(sparql):
        return
    from rdflib.plugins.sparql.algebra import translateQuery
    from rdflib.plugins.sparql.parser import parseQuery

    try:
        tree = translateQuery(parseQuery(sparql)).algebra
    except Exception as exc:  # rdflib raises pyparsing and assorted errors
        raise _parse_failure(exc, "the query mentions SERVICE and could not be checked", sparql, update=False) from None
    _check_services(tree, allowed)


@dataclass(frozen=True)
class UpdatePlan:
    """A checked update; ``render`` gives the text to run, with ALL/NAMED spelled out."""

    text: str
    expansions: int  # CLEAR/DROP ALL|NAMED operations to spell out
    protected: frozenset[str]

    @property
    def needs_graphs(self) -> bool:
        return self.expansions > 0

    def render(self, named_graphs: list[str]) -> str:
        if not self.expansions:
            return self.text
        graphs = [g for g in named_graphs if g not in self.protected]

        def spell(m: re.Match[str]) -> str:
            op, silent, scope = m.group(1).upper(), (m.group(2) or "").upper(), m.group(3).upper()
            parts = [f"{op}{silent} GRAPH <{g}>" for g in graphs]
            if scope == "ALL":
                parts.append(f"{op}{silent} DEFAULT")
            return " ;\n".join(parts) or f"{op} SILENT GRAPH <{NO_GRAPH}>"

        return _CLEAR_ALL.sub(spell, self.text)


def plan_update(sparql: str, *, allowed: Callable[[str], bool], protected: frozenset[str]) -> UpdatePlan:
    """Check an update against the allow-list and the protected graphs (raises :class:`Refusal`)."""
    from rdflib.plugins.sparql.algebra import translateUpdate
    from rdflib.plugins.sparql.parser import parseUpdate
    from rdflib.term import URIRef, Variable

    try:
        ops = translateUpdate(parseUpdate(sparql)).algebra
    except Exception as exc:
        raise _parse_failure(exc, "malformed update", sparql, update=True) from None

    def deny(graph: Any, what: str) -> None:
        if isinstance(graph, URIRef) and str(graph) in protected:
            raise Refusal(403, f"{what} <{graph}> is not allowed: the audit and provenance graphs are append-only")

    def templates(op: Any, *names: str) -> None:
        for name in names:
            clause = op.get(name)
            if clause is None:
                continue
            quads = clause.get("quads") if name in ("delete", "insert") else op.get("quads")
            for graph in quads or {}:
                if isinstance(graph, Variable):
                    raise Refusal(
                        403,
                        f"{op.name} writes to GRAPH ?{graph}, which could reach the audit or provenance graph; "
                        "name the graphs the update writes to",
                    )
                deny(graph, f"{op.name} into GRAPH")

    expansions = 0
    for op in ops:
        name = op.name
        _check_services(op.get("where"), allowed)
        if name in ("Clear", "Drop"):
            target = op.get("graphiri")
            if target in ("ALL", "NAMED"):
                expansions += 1
            else:
                deny(target, f"{name.upper()} GRAPH")
        elif name == "Create":
            deny(op.get("graphiri"), "CREATE GRAPH")
        elif name == "Load":
            source = str(op.get("iri"))
            if not allowed(source):
                raise Refusal(403, f"LOAD <{source}> is not allowed on this server (not in its allow-list)")
            deny(op.get("graphiri"), "LOAD INTO GRAPH")
        elif name in ("Add", "Copy", "Move"):
            source, target = op.get("graph")
            deny(target, f"{name.upper()} TO")
            if name == "Move":
                deny(source, "MOVE from")
        elif name in ("InsertData", "DeleteData", "DeleteWhere"):
            for graph in op.get("quads") or {}:
                if isinstance(graph, Variable):
                    raise Refusal(403, f"{name} on GRAPH ?{graph} is not allowed; name the graphs")
                deny(graph, f"{name} in GRAPH")
        elif name == "Modify":
            if op.get("delete") is not None or op.get("insert") is not None:
                deny(op.get("withClause"), "WITH")
            templates(op, "delete", "insert")
    if expansions and len(_CLEAR_ALL.findall(sparql)) != expansions:
        raise Refusal(400, "send CLEAR/DROP ALL or NAMED in an update of its own (it could not be located in the text)")
    return UpdatePlan(sparql, expansions, protected)
