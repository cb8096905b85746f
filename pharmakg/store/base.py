"""The small store protocol every backend implements (layer L2).

A backend knows how to run SPARQL and how to add N-Quads atomically; nothing
else. Result parsing, ingest, validation and audit live above it, so a third
party backend (``pharmakg.stores`` entry point) implements five methods.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from ..errors import QueryError

__all__ = ["Functions", "RawResult", "Store", "as_nquads", "query_error", "sparql_string"]

ResultKind = Literal["json", "csv", "graph"]
#: How SELECT solutions come back: typed SPARQL JSON, or SPARQL CSV (plain strings, cheaper to produce and parse).
SelectFormat = Literal["json", "csv"]


@dataclass(frozen=True)
class RawResult:
    """A query answer as the backend serialised it.

    ``json`` bodies are SPARQL 1.1 JSON results (SELECT or ASK); ``csv`` bodies
    SPARQL 1.1 CSV results (SELECT, when asked for); ``graph`` bodies are
    N-Triples (CONSTRUCT or DESCRIBE). Parsing happens once, above the backend.
    """

    kind: ResultKind
    body: bytes


#: SPARQL extension functions: function IRI -> callable over pyoxigraph terms (None: unbound)
Functions = Mapping[str, Callable[..., Any]]


@runtime_checkable
class Store(Protocol):
    """What pharmakg needs from a graph store.

    The default graph seen by ``query`` is the union of all named graphs.
    ``add`` must be atomic: all of the data or none of it, also when the
    process dies midway.
    """

    location: str
    #: Changes whenever data may have changed through this object; None when other
    #: clients may write too (a remote server), so nothing derived from the data may be cached.
    revision: int | None

    def query(
        self, sparql: str, *, select_format: SelectFormat = "json", functions: Functions | None = None
    ) -> RawResult:
        """Run a query; SELECT solutions in ``select_format`` (a backend may answer JSON anyway).

        ``functions`` (function IRI -> callable over pyoxigraph terms) are SPARQL
        extension functions an embedded store evaluates; a remote store leaves
        them to the server (``pharmakg serve`` evaluates the same ones)."""
        ...

    def update(self, sparql: str) -> None: ...

    def add(self, nquads: bytes = b"", *, ntriples: bytes = b"", graph: str | None = None) -> None:
        """Add N-Quads as they are and N-Triples into ``graph``, in one transaction."""
        ...

    def dump(self, *, format: str, graph: str | None = None) -> bytes: ...

    def close(self) -> None: ...


_POSITION = re.compile(r"(?:error at |line )(\d+)[: ]+(?:column )?(\d+)")


def query_error(message: str, sparql: str) -> QueryError:
    """Build a QueryError from a parser message, pulling out ``line:column`` when present."""
    m = _POSITION.search(message)
    line, col = (int(m.group(1)), int(m.group(2))) if m else (None, None)
    detail = re.sub(r"^error at \d+:\d+: ", "", message.strip())
    return QueryError(detail, query=sparql, line=line, column=col)


def as_nquads(ntriples: bytes, graph: str) -> bytes:
    """N-Triples lines moved into ``graph`` (for backends that take one N-Quads payload)."""
    if not ntriples:
        return b""
    suffix = f" <{graph}> .".encode()
    return (
        b"\n".join(
            line[: line.rstrip().rfind(b".")].rstrip() + suffix for line in ntriples.splitlines() if line.strip()
        )
        + b"\n"
    )


_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"})


def sparql_string(text: str) -> str:
    """A SPARQL string literal for any text (quotes, backslashes, controls and non-BMP characters).

    Only the four characters the grammar forbids raw are escaped (STRING_LITERAL_QUOTE);
    other controls stay raw rather than ``\\uXXXX``, which SPARQL expands before parsing and
    which rdflib and the store therefore read differently (the audit then cannot trust
    rdflib's reading of the update, see ``audit.update_shape``)."""
    return '"' + text.translate(_ESCAPES) + '"'
