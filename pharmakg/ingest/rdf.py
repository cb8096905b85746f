"""Stage RDF files (Turtle, N-Triples, N-Quads, TriG, JSON-LD, RDF/XML) (layer L3).

pyoxigraph parses the whole file before anything is written, so a syntax
error anywhere leaves the store untouched and is reported with its line and
column. Triples of the file's default graph go to the source's named graph;
quads keep their graph. Blank nodes are replaced by IRIs numbered in order of
appearance, so loading the same file twice gives the same quads.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pandas as pd
import pyoxigraph as ox

from ..errors import IngestError, Where
from .bundle import StagedBundle

__all__ = ["RDF_SUFFIXES", "stage_rdf"]

RDF_SUFFIXES = {
    ".ttl": ox.RdfFormat.TURTLE,
    ".nt": ox.RdfFormat.N_TRIPLES,
    ".nq": ox.RdfFormat.N_QUADS,
    ".trig": ox.RdfFormat.TRIG,
    ".jsonld": ox.RdfFormat.JSON_LD,
    ".json": ox.RdfFormat.JSON_LD,
    ".rdf": ox.RdfFormat.RDF_XML,
    ".owl": ox.RdfFormat.RDF_XML,
    ".xml": ox.RdfFormat.RDF_XML,
    ".n3": ox.RdfFormat.N3,
}
_POS = re.compile(r"line (\d+) column (\d+)")


def stage_rdf(path: Path, *, base: str, graph: str) -> StagedBundle:
    """Parse ``path`` completely; return its triples as N-Triples terms with target graphs."""
    fmt = RDF_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise IngestError(
            Where(str(path)),
            f"unknown RDF file type {path.suffix!r}; expected one of {', '.join(sorted(RDF_SUFFIXES))}",
        )
    data = path.read_bytes()
    try:
        quads = list(ox.parse(data, format=fmt, base_iri=path.resolve().as_uri()))
    except SyntaxError as exc:
        m = _POS.search(str(exc))
        line = int(m.group(1)) if m else None
        col = m.group(2) if m else None
        detail = str(exc).split(": ", 1)[-1]
        raise IngestError(
            Where(str(path), line, f"character {col}" if col else None), f"malformed {fmt.name}: {detail}"
        ) from exc
    prefix = f"{base}.well-known/genid/{hashlib.sha256(data).hexdigest()[:16]}-"
    bnodes: dict[str, str] = {}

    def term(t: object) -> str:
        if isinstance(t, ox.BlankNode):
            if t.value not in bnodes:
                bnodes[t.value] = f"<{prefix}{len(bnodes)}>"
            return bnodes[t.value]
        return str(t)

    target = f"<{graph}>"
    rows = []
    for q in quads:
        g = target if isinstance(q.graph_name, ox.DefaultGraph) else term(q.graph_name)
        rows.append((term(q.subject), str(q.predicate), term(q.object), g))
    frame = pd.DataFrame(rows, columns=["s", "p", "o", "g"])
    frame["file"] = str(path)
    frame["line"] = None
    frame["column"] = None
    frame = frame.drop_duplicates(subset=["s", "p", "o", "g"]).reset_index(drop=True)
    return StagedBundle(triples=frame, rows={path.name: len(quads)}, files=[path])
