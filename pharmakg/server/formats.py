"""Content negotiation and native serialisation of answers (layer L6).

pyoxigraph serialises solutions (JSON, XML, CSV, TSV) and graphs (Turtle,
N-Triples, JSON-LD, RDF/XML) in Rust, which keeps the Python share of a
request small; this module only maps media types to those formats and
enforces the row cap. The cap is checked without decoding in the common
case: an answer shorter than ``cap x (smallest possible row)`` bytes cannot
hold more than ``cap`` rows; only longer ones are counted.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import pyoxigraph as ox

__all__ = [
    "GRAPH_TYPES",
    "SOLUTION_TYPES",
    "Answer",
    "NotAcceptable",
    "RowCapExceeded",
    "negotiate",
    "serialize_result",
]

#: media type -> pyoxigraph format, for SELECT and ASK answers (first is the default)
SOLUTION_TYPES: dict[str, ox.QueryResultsFormat] = {
    "application/sparql-results+json": ox.QueryResultsFormat.JSON,
    "application/json": ox.QueryResultsFormat.JSON,
    "application/sparql-results+xml": ox.QueryResultsFormat.XML,
    "application/xml": ox.QueryResultsFormat.XML,
    "text/xml": ox.QueryResultsFormat.XML,
    "text/csv": ox.QueryResultsFormat.CSV,
    "text/tab-separated-values": ox.QueryResultsFormat.TSV,
}
#: media type -> pyoxigraph format, for CONSTRUCT and DESCRIBE answers (first is the default)
GRAPH_TYPES: dict[str, ox.RdfFormat] = {
    "text/turtle": ox.RdfFormat.TURTLE,
    "application/x-turtle": ox.RdfFormat.TURTLE,
    "application/n-triples": ox.RdfFormat.N_TRIPLES,
    "text/plain": ox.RdfFormat.N_TRIPLES,
    "application/ld+json": ox.RdfFormat.JSON_LD,
    "application/rdf+xml": ox.RdfFormat.RDF_XML,
    "application/xml": ox.RdfFormat.RDF_XML,
    "application/json": ox.RdfFormat.JSON_LD,
}
# fewest bytes one solution can take in each format (an empty row)
_MIN_ROW_BYTES = {
    ox.QueryResultsFormat.JSON: 3,  # {},
    ox.QueryResultsFormat.XML: 17,  # <result></result>
    ox.QueryResultsFormat.CSV: 2,  # \r\n
    ox.QueryResultsFormat.TSV: 1,  # \n
}

Kind = Literal["solutions", "graph"]


class NotAcceptable(Exception):
    """No media type in the Accept header can carry this kind of answer (HTTP 406)."""

    def __init__(self, kind: Kind) -> None:
        types = SOLUTION_TYPES if kind == "solutions" else GRAPH_TYPES
        super().__init__(f"this answer can be sent as: {', '.join(types)}")


class RowCapExceeded(Exception):
    def __init__(self, cap: int, what: str) -> None:
        super().__init__(
            f"the answer has more than {cap} {what}, this server's cap; page through it with LIMIT and OFFSET"
        )


@dataclass(frozen=True)
class Answer:
    body: bytes
    media_type: str


@lru_cache(maxsize=512)
def negotiate(accept: str | None, kind: Kind) -> str:
    """The media type to answer with, honouring q-values, ``type/*`` and ``*/*`` (raises NotAcceptable)."""
    types = SOLUTION_TYPES if kind == "solutions" else GRAPH_TYPES
    default = next(iter(types))
    if not accept:
        return default
    ranges: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept.split(",")):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        q = 1.0
        for param in fields[1:]:
            if param.lower().startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if media and q > 0:
            ranges.append((-q, i, media))
    for _, _, media in sorted(ranges):
        if media == "*/*":
            return default
        if media.endswith("/*"):
            major = media[:-1]
            match = next((t for t in types if t.startswith(major)), None)
            if match:
                return match
        elif media in types:
            return media
    raise NotAcceptable(kind)


def _charset(media: str) -> str:
    return media if media.startswith("application/sparql-results+json") else f"{media}; charset=utf-8"


def serialize_result(
    result: ox.QuerySolutions | ox.QueryBoolean | Iterable[ox.Triple], accept: str | None, row_cap: int
) -> Answer:
    """Serialise a query result (or any iterable of triples) for the client.

    Raises NotAcceptable or RowCapExceeded."""
    if not isinstance(result, ox.QuerySolutions | ox.QueryBoolean):
        media = negotiate(accept, "graph")
        triples = list(itertools.islice(result, row_cap + 1))
        if len(triples) > row_cap:
            raise RowCapExceeded(row_cap, "triples")
        return Answer(ox.serialize(triples, format=GRAPH_TYPES[media]) or b"", _charset(media))
    media = negotiate(accept, "solutions")
    fmt = SOLUTION_TYPES[media]
    body = result.serialize(format=fmt) or b""
    if isinstance(result, ox.QuerySolutions) and len(body) > row_cap * _MIN_ROW_BYTES[fmt]:
        if count_rows(body, fmt) > row_cap:
            raise RowCapExceeded(row_cap, "solutions")
    return Answer(body, _charset(media))


def count_rows(body: bytes, fmt: ox.QueryResultsFormat) -> int:
    """Solutions in a serialised SELECT answer (exact for every format)."""
    if fmt == ox.QueryResultsFormat.TSV:  # literals escape their newlines in TSV
        return max(body.count(b"\n") - 1, 0)
    if fmt == ox.QueryResultsFormat.XML:  # markup in values is escaped
        return body.count(b"<result>")
    if fmt == ox.QueryResultsFormat.CSV:
        return max(sum(1 for _ in csv.reader(io.StringIO(body.decode("utf-8")))) - 1, 0)
    return len(json.loads(body)["results"]["bindings"])
