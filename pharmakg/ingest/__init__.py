"""Ingest: CSV bundles and RDF files into the store, all-or-nothing (layer L3).

A load runs in two phases. *Stage*: read, type, convert units, resolve
references, find conflicts with the store and check the SHACL shapes, all
without writing. *Commit*: one atomic ``Store.add`` carrying the new domain
triples, the audit record and the PROV-O activity together. Any error in
staging raises before the commit; a crash during the commit is covered by
the backend's atomicity (see pharmakg.store.oxigraph).
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from .. import audit
from .. import terms as T
from ..errors import ConflictError, IngestError, ValidationError, Where
from ..store.base import Store
from ..store.oxigraph import EmbeddedStore, canonical_terms
from ..validate import ONTOLOGY_PATH, ValidationReport, check_triples
from ._lookup import StoreLookup
from ._nt import plain
from ._spec import SHORTCUT_CHECKS, ShortcutCheck
from ._triples import keep_rows, nt_lines, term_codes
from .batchml import is_batchml, stage_xml
from .bundle import MULTI_VALUED, stage_bundle
from .rdf import RDF_SUFFIXES, stage_rdf

__all__ = ["SHORTCUT_CHECKS", "LoadReport", "ShortcutCheck", "load_path", "source_graph"]


@dataclass(frozen=True)
class LoadReport:
    """What one load wrote."""

    source: str
    graph: str
    rows: dict[str, int]
    triples_added: int
    triples_already_present: int
    seconds: float
    validation: ValidationReport | None = field(default=None, repr=False)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(sorted(self.rows.items()), columns=["file", "rows"])

    def __str__(self) -> str:
        return (
            f"loaded {self.source} into <{self.graph}>: {sum(self.rows.values())} rows, "
            f"{self.triples_added} triples added, {self.triples_already_present} already present, "
            f"{self.seconds:.1f} s"
        )

    def _repr_html_(self) -> str:
        return f"<p>{self}</p>" + self.to_frame().to_html(index=False)


def source_graph(base: str, source: Path) -> str:
    """The named graph of a source: ``{base}graph/{folder or file name}``."""
    return f"{base}graph/{quote(source.name, safe='')}"


_TYPED = re.compile(r'^"(.*)"\^\^<([^>]*)>$', re.S)


def _normalise(o: pd.Series) -> pd.Series:
    """Compare literals by value: oxigraph returns canonical lexical forms ("500" for "500.0")."""
    if isinstance(o.dtype, pd.CategoricalDtype):
        o = o.astype(str)
    parts = o.str.extract(_TYPED)
    out = o.copy()
    dbl = parts[1].isin([T.XSD + "double", T.XSD + "float", T.XSD + "decimal", T.XSD + "integer"])
    if dbl.any():
        # as floats: a column of whole numbers alone would parse as int64 and "5000" would not match "5000.0"
        out[dbl] = "num:" + pd.to_numeric(parts.loc[dbl, 0], errors="coerce").astype(float).map(repr)
    dtm = parts[1] == T.XSD + "dateTime"
    if dtm.any():
        ts = pd.to_datetime(parts.loc[dtm, 0], format="ISO8601", utc=True, errors="coerce")
        out[dtm] = "dt:" + ts.map(lambda v: v.isoformat() if not pd.isna(v) else "")
    return out


def _diff_with_store(staged: pd.DataFrame, lookup: StoreLookup) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop what the store already holds; raise on single-valued properties it holds differently.

    Returns (new triples, the store's triples about the staged subjects).
    """
    if lookup.empty:
        return staged, pd.DataFrame(columns=["s", "p", "o"])
    subjects = pd.unique(staged["s"].str.slice(1, -1))
    known = lookup.types(subjects.tolist())
    existing = lookup.triples_about(pd.unique(known["iri"]).tolist())
    if existing.empty:
        return staged, existing
    staged = staged.assign(_n=_normalise(staged["o"]))
    existing = existing.assign(_n=_normalise(existing["o"]))
    present = staged.merge(
        existing[["s", "p", "_n"]].drop_duplicates(), on=["s", "p", "_n"], how="left", indicator=True
    )
    new = keep_rows(staged, (present["_merge"] == "left_only").to_numpy())
    single = new[~new["p"].isin(MULTI_VALUED)]
    clash = single.merge(existing[["s", "p", "o"]], on=["s", "p"], suffixes=("", "_store"))
    if not clash.empty:
        c = clash.iloc[0]
        raise ConflictError(
            Where(c["file"], None if pd.isna(c["line"]) else int(c["line"]), c["column"]),
            f"gives {c['s'][1:-1]} {plain(c['p'])} = {plain(c['o'])!r} but the store holds "
            f"{plain(c['o_store'])!r}; correct the store with an audited update (and a reason) rather than by re-loading",
            value=c["o"],
        )
    return new.drop(columns="_n"), existing.drop(columns="_n")


def _raise_for_violations(report: ValidationReport, staged: pd.DataFrame) -> None:
    v = report.violations[0]
    rows = staged[staged["s"] == f"<{v.focus}>"]
    at_path = rows[rows["p"] == f"<{v.path}>"]
    row = (at_path if not at_path.empty else rows).iloc[0] if not rows.empty else None
    if row is None:
        where = Where("(staged data)")
    else:
        line = None if pd.isna(row["line"]) else int(row["line"])
        column = row["column"] if isinstance(row["column"], str) else None
        where = Where(row["file"], line, column)
    more = len(report.violations) - 1
    suffix = f" ({more} more violation{'s' if more > 1 else ''})" if more else ""
    raise ValidationError(where, f"SHACL: {v}{suffix}", report=report)


def load_path(
    store: Store,
    path: str | Path,
    *,
    base: str,
    user: str,
    reason: str,
    graph: str | None = None,
    progress: Callable[[str], None] | None = None,
    schemas: str | Path | None = None,
) -> LoadReport:
    """Stage ``path`` (a bundle folder, an RDF file or a BatchML/B2MML ``.xml`` document) and commit it in one transaction.

    ``schemas`` (else ``$PHARMAKG_XML_SCHEMAS``) is a folder of XSDs that XML documents are validated against.
    """
    started_wall = audit.utc_now()
    t0 = time.perf_counter()
    path = Path(path)
    if not path.exists():
        raise IngestError(Where(str(path)), "does not exist")
    target = graph or source_graph(base, path)
    lookup = StoreLookup(store, exclude_graphs=(audit.audit_graph(base), audit.provenance_graph(base)))
    embedded = store if isinstance(store, EmbeddedStore) else None
    feed = None
    try:
        if path.is_dir():
            # into a store without data, nothing staged can already be there: the bulk load into the
            # store's copy reads the rows as they are mapped, and runs while they are checked
            feed = embedded.feed_add(target) if embedded is not None and lookup.empty else None
            staged = stage_bundle(
                path, base=base, lookup=lookup, progress=progress, feed=feed.write if feed is not None else None
            )
            n = len(staged.triples)  # one graph for every row: a Categorical, not a million copies of its IRI
            staged.triples["g"] = pd.Categorical.from_codes(
                np.zeros(n, dtype=np.int8), categories=pd.Index([f"<{target}>"])
            )
        elif path.suffix.lower() == ".xml" and is_batchml(path):
            staged = stage_xml(path, base=base, lookup=lookup, graph=target, schemas=schemas)
        elif path.suffix.lower() in RDF_SUFFIXES:
            staged = stage_rdf(path, base=base, graph=target)
        else:
            raise IngestError(
                Where(str(path)),
                "is neither a CSV bundle folder, an RDF file (.ttl .nt .nq .trig .jsonld .rdf) nor a BatchML/B2MML .xml document",
            )
        if progress:
            progress("checking against the store")
        triples = staged.triples
        before = len(triples)
        new, existing = _diff_with_store(triples, lookup)
        in_target = (new["g"] == f"<{target}>").to_numpy()
        main, other = keep_rows(new, in_target), keep_rows(new, ~in_target)
        first = None  # every line distinct
        if feed is not None and staged.fed_objects is not None and len(new) == before and other.empty:
            # what the copy is being filled with: the same triples, with their repeats
            ntriples, objects, first = feed.close(), staged.fed_objects, staged.fed_first
        else:
            ntriples, objects = nt_lines(main), main["o"]
        if embedded is not None:  # the big bulk load runs on a second thread while SHACL checks the same triples
            embedded.prepare_add(ntriples, target)
        fresh: dict[str, Callable[[], audit.GraphState]] = {}
        if embedded is not None and b"_:" not in ntriples and not audit.holds_data(store, target):
            # into a new graph: checkpoint it from the lines the store will hold rather than by reading it back,
            # worked out on a third thread while SHACL runs (a failed load leaves the thread to finish unheard)
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pharmakg-checkpoint")
            state = pool.submit(
                lambda: audit.lines_state(target, _stored_lines(ntriples, objects, first), distinct=True)
            )
            pool.shutdown(wait=False)
            fresh[target] = state.result
        if progress:
            progress("SHACL")
        refs = pd.DataFrame(
            {"s": "<" + staged.referenced["iri"] + ">", "p": f"<{T.type_}>", "o": "<" + staged.referenced["type"] + ">"}
        )
        report = check_triples(new, existing, refs)
        if not report.conforms:
            _raise_for_violations(report, new)
        payload = nt_lines(other, ("s", "p", "o", "g"))
        if lookup.empty or not _has_ontology(store):
            payload += _ontology_nquads()
        sources = tuple(audit.SourceRecord.of_file(f, staged.rows.get(f.name)) for f in staged.files)
        record = audit.load_record(
            user=user,
            reason=reason,
            target_graph=target,
            triples_added=len(new),
            written=ntriples + payload,
            sources=sources,
            started=started_wall,
        )
        if progress:
            progress("commit")
        graphs = set(other["g"].str.slice(1, -1)) | ({T.ONTOLOGY_GRAPH} if _ONTOLOGY_MARK in payload else set())
        audit.commit_add(store, base, record, payload, ntriples=ntriples, graph=target, graphs=graphs, fresh=fresh)
    except BaseException:
        if embedded is not None:
            embedded.discard_prepared()  # nothing was switched: the store is as it was
        raise
    return LoadReport(
        source=str(path),
        graph=target,
        rows=staged.rows,
        triples_added=len(new),
        triples_already_present=before - len(new),
        seconds=time.perf_counter() - t0,
        validation=report,
    )


_ONTOLOGY_MARK = f"<{T.ONTOLOGY_GRAPH}> .".encode()


#: a timezone the store writes as is: not +00:00 or -00:00 (written "Z"); no lookahead, so Arrow's RE2 runs it
_ZONE = r"(?:Z|[+-](?:[0-9][1-9]|[1-9]0):[0-9]{2}|[+-]00:(?:[0-9][1-9]|[1-9]0))?"
#: xsd:dateTime / xsd:date terms in the form the store writes them (no fraction, no 24:00, no +00:00):
#: the demo plant's 400 000 timestamps; a test holds every term it matches to the store's reading
_CANONICAL_DATES = (
    rf'"[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T(?:[01][0-9]|2[0-3]):[0-9]{{2}}:[0-9]{{2}}{_ZONE}"\^\^<{re.escape(T.XSD)}dateTime>'
    rf'|"[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}{_ZONE}"\^\^<{re.escape(T.XSD)}date>'
)
#: an object term the store serialises exactly as staged: an IRI, a plain literal without control
#: characters, or one of those dates
_VERBATIM = re.compile(rf'^(?:<[^>]*>|"[^\x00-\x1f\x7f]*"|{_CANONICAL_DATES})$')


def _stored_lines(ntriples: bytes, objects: pd.Series, first: np.ndarray | None = None) -> list[bytes]:
    """The distinct lines of ``ntriples`` (one per value of ``objects``, in order) as the embedded store will serialise them.

    IRIs and plain strings come back as written; typed literals are kept by value
    (``"5.0"^^xsd:double`` reads back as ``"5"``), so each distinct such object is
    read the store's way once (:func:`canonical_terms`) and only the lines whose
    object it changes are rewritten. ``first`` marks the first of each repeated
    line (all are distinct without it); lines can then only coincide where an
    object was rewritten to the text of another, so only those go through a set."""
    lines = ntriples.split(b"\n")[:-1]
    codes, terms = term_codes(objects)
    if len(lines) != len(codes):
        raise ValueError(f"{len(lines)} lines for {len(codes)} objects")
    keep = np.ones(len(codes), dtype=bool) if first is None else first
    used = np.zeros(len(terms), dtype=bool)
    used[codes] = True
    odd = np.flatnonzero(used & ~np.asarray(terms.str.match(_VERBATIM), dtype=bool))
    written = [str(t) for t in terms[odd]]
    changed = {
        int(code): (len(old.encode("utf-8")), new.encode("utf-8"))
        for code, old, new in zip(odd, written, canonical_terms(written) if written else [], strict=True)
        if new != old
    }
    if not changed:
        return lines if first is None else list(itertools.compress(lines, keep.tolist()))
    for row in np.flatnonzero(np.isin(codes, list(changed))).tolist():
        size, new = changed[int(codes[row])]
        line = lines[row]
        lines[row] = line[: len(line) - size - 2] + new + b" ."
    # a rewritten object may now read like another term (or another rewritten one): those lines may meet
    meeting = set(changed) | set(
        np.flatnonzero(np.asarray(terms.isin({new.decode("utf-8") for _, new in changed.values()}))).tolist()
    )
    may_meet = np.isin(codes, list(meeting))
    distinct = list(itertools.compress(lines, (keep & ~may_meet).tolist()))
    return distinct + list(set(itertools.compress(lines, (keep & may_meet).tolist())))


def _has_ontology(store: Store) -> bool:
    import json

    raw = store.query(f"ASK {{ GRAPH <{T.ONTOLOGY_GRAPH}> {{ ?s ?p ?o }} }}")
    return bool(json.loads(raw.body)["boolean"])


def _ontology_nquads() -> bytes:
    """The ontology itself, in its own graph, so queries can use rdfs:subClassOf*."""
    import pyoxigraph as ox

    quads = [
        ox.Quad(t.subject, t.predicate, t.object, ox.NamedNode(T.ONTOLOGY_GRAPH))
        for t in ox.parse(path=str(ONTOLOGY_PATH), format=ox.RdfFormat.TURTLE)
    ]
    return ox.serialize(quads, format=ox.RdfFormat.N_QUADS) or b""
