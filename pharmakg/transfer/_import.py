"""Import a verified package into the receiving site's graph, in one transaction.

Versions and what queries see: each imported version is kept in its own named
graph ``{base}graph/package/{product}/v{N}`` as reified statements
(rdf:Statement with rdf:subject/predicate/object), which every SPARQL tool can
read but which asserts nothing. The knowledge of the **current** version, the
highest version number imported, is asserted in ``{base}graph/package/{product}``,
which an import of a higher version replaces (drop and insert, same
transaction). So a default-graph query sees exactly one version's CPP ranges,
and every earlier version stays queryable and diffable. Importing a lower
version than the current one keeps it without making it current. The batch
history accumulates in ``{base}graph/package/{product}/history``.
``{base}graph/packages`` records each version (TransferPackage: manifest
sha256, signer, meaning, time, key, current or not).

Before anything is written: the package is verified against the trust
directory, the knowledge is checked against what the store asserts elsewhere
(a CPP range or spec held differently outside the package graphs is a
conflict), the sending site's units are matched to the receiving site's units
(same equipment class, closest capacity), and every twin is re-instantiated
from the package's own triples and must reproduce its reference predictions.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from .. import audit
from .. import terms as T
from ..errors import PackageError
from ..kg import KnowledgeGraph
from ..store.base import sparql_string
from ._package import Package, verify_package
from ._select import registry_graph
from ._summary import knowledge_store

__all__ = ["ImportReport", "current_graph", "import_package", "version_graph"]

#: single-valued knowledge that must not be held differently outside the package graphs
_GUARDED = (T.target, T.norLow, T.norHigh, T.parLow, T.parHigh, T.specLow, T.specHigh, T.unit, T.criticality)
#: reproduction tolerance for twin reference predictions (relative, with an absolute floor)
RTOL, ATOL = 1e-6, 1e-9


def _pid(product: str) -> str:
    return quote(product, safe="")


def current_graph(base: str, product: str) -> str:
    """The graph asserting the current version of ``product``'s package."""
    return f"{base}graph/package/{_pid(product)}"


def version_graph(base: str, product: str, version: int) -> str:
    """The graph keeping version ``version`` of ``product``'s package (reified, not asserted)."""
    return f"{current_graph(base, product)}/v{version}"


def history_graph(base: str, product: str) -> str:
    return f"{current_graph(base, product)}/history"


@dataclass(frozen=True)
class ImportReport:
    """What an import did: where the version went, whether it is current, equipment and twin checks."""

    package: str
    product: str
    version: int
    graph: str
    current: bool
    already_imported: bool
    triples_added: int
    equipment: pd.DataFrame = field(repr=False)
    twins: pd.DataFrame = field(repr=False)
    seconds: float = 0.0

    @property
    def unmatched(self) -> pd.DataFrame:
        """Sending units with no unit of their class at the receiving site."""
        return self.equipment[self.equipment["receiving_unit"].isna()]

    def __str__(self) -> str:
        if self.already_imported:
            return f"{self.product} v{self.version} was already imported (same manifest): nothing written"
        state = "current" if self.current else "kept, not current (a higher version is)"
        return (
            f"imported {self.product} v{self.version} into <{self.graph}> ({state}): {self.triples_added} triples; "
            f"equipment {len(self.equipment) - len(self.unmatched)}/{len(self.equipment)} units matched; "
            f"{len(self.twins)} twin(s) reproduced; {self.seconds:.1f} s"
        )

    def _repr_html_(self) -> str:
        return (
            f"<p>{self}</p><h4>Equipment mapping</h4>{self.equipment.to_html(index=False, na_rep='—')}"
            f"<h4>Twins re-run</h4>{self.twins.to_html(index=False)}"
        )


def _triples(ntriples: bytes) -> list[tuple[str, str, str]]:
    import pyoxigraph as ox

    return [
        (str(t.subject), str(t.predicate), str(t.object)) for t in ox.parse(ntriples, format=ox.RdfFormat.N_TRIPLES)
    ]


def _versions(kg: KnowledgeGraph, product_iri: str) -> dict[int, tuple[str, bool]]:
    rows = kg.rows(
        f"""SELECT ?v ?sha ?cur WHERE {{ GRAPH <{registry_graph(kg.base)}> {{
  ?pk a pkg:TransferPackage ; pkg:product <{product_iri}> ; pkg:packageVersion ?v ; pkg:sha256 ?sha ; pkg:current ?cur }} }}"""
    )
    return {int(r["v"]): (r["sha"], r["cur"] == "true") for r in rows}


def _check_conflicts(kg: KnowledgeGraph, triples: list[tuple[str, str, str]], product: str, package: str) -> None:
    guarded = {f"<{p}>" for p in _GUARDED}
    mine = {(s, p): o for s, p, o in triples if p in guarded}
    if not mine:
        return
    subjects = " ".join(sorted({s for s, _ in mine}))
    prefix = f"{kg.base}graph/package/{_pid(product)}"
    rows = kg.rows(
        f"""SELECT ?s ?p ?o ?id ?g WHERE {{ VALUES ?s {{ {subjects} }} VALUES ?p {{ {" ".join(sorted(guarded))} }}
  GRAPH ?g {{ ?s ?p ?o }} OPTIONAL {{ ?s dcterms:identifier ?id }}
  FILTER(!STRSTARTS(STR(?g), {sparql_string(prefix)}) && ?g != <{T.ONTOLOGY_GRAPH}>) }}"""
    )
    from ..ingest._nt import plain

    for r in rows:
        key = (f"<{r['s']}>", f"<{r['p']}>")
        term = mine.get(key)
        if term is None:
            continue
        theirs = term[1:-1] if term.startswith("<") else plain(term)
        if theirs != r["o"] and _as_float(theirs) != _as_float(r["o"]):
            raise PackageError(
                package,
                f"{r.get('id', r['s'])} {r['p'].rsplit('#', 1)[-1]}: the package says {theirs!r} but the "
                f"store holds {r['o']!r} in <{r['g']}>; resolve the difference (an audited update with a reason) "
                "before importing",
            )


def _as_float(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _map_equipment(kg: KnowledgeGraph, scratch: KnowledgeGraph, *, product: str, site: str | None) -> pd.DataFrame:
    """Each sending unit (class, capacity) → the receiving unit of the same class with the closest capacity."""
    from ..units import convert

    sending = scratch.rows(
        """SELECT ?u ?id ?class ?cap ?unit WHERE { ?u a pkg:Unit ; dcterms:identifier ?id ; pkg:equipmentClass ?class .
  OPTIONAL { ?u pkg:capacity ?cap } OPTIONAL { ?u pkg:unit ?unit } } ORDER BY ?id"""
    )
    where_site = ""
    if site is not None:
        where_site = f"?u pkg:partOf+ <{kg.resolve(site)}> ."
    prefix = f"{kg.base}graph/package/"
    receiving = kg.rows(
        f"""SELECT DISTINCT ?u ?id ?class ?cap ?unit WHERE {{ GRAPH ?g {{ ?u a pkg:Unit ; dcterms:identifier ?id ;
  pkg:equipmentClass ?class }} {where_site} OPTIONAL {{ ?u pkg:capacity ?cap }} OPTIONAL {{ ?u pkg:unit ?unit }}
  FILTER(!STRSTARTS(STR(?g), {sparql_string(prefix)})) }} ORDER BY ?id"""
    )
    by_class: dict[str, list[dict[str, str]]] = {}
    for r in receiving:
        by_class.setdefault(r["class"], []).append(r)
    out = []
    for s in sending:
        cands = by_class.get(s["class"], [])
        best: dict[str, str] | None = None
        ratio = math.nan
        scored: list[tuple[float, str, dict[str, str], float]] = []
        for c in cands:
            scale = math.nan
            if "cap" in s and "cap" in c:
                theirs = float(c["cap"])
                if s.get("unit") and c.get("unit") and s["unit"] != c["unit"]:
                    try:
                        theirs = float(convert(np.array([theirs]), c["unit"], s["unit"])[0])
                    except ValueError:
                        theirs = math.nan
                scale = theirs / float(s["cap"]) if float(s["cap"]) else math.nan
            scored.append((abs(math.log(scale)) if scale > 0 else math.inf, c["id"], c, scale))
        if scored:
            _, _, best, ratio = min(scored, key=lambda x: (x[0], x[1]))
        out.append(
            {
                "sending_unit": s["id"],
                "equipment_class": s["class"],
                "sending_capacity": float(s["cap"]) if "cap" in s else math.nan,
                "unit": s.get("unit", ""),
                "receiving_unit": best["id"] if best else None,
                "receiving_capacity": float(best["cap"]) if best and "cap" in best else math.nan,
                "scale_factor": ratio,
                "candidates": len(cands),
                "_sending_iri": s["u"],
                "_receiving_iri": best["u"] if best else None,
            }
        )
    frame = pd.DataFrame(
        out,
        columns=[
            "sending_unit",
            "equipment_class",
            "sending_capacity",
            "unit",
            "receiving_unit",
            "receiving_capacity",
            "scale_factor",
            "candidates",
            "_sending_iri",
            "_receiving_iri",
        ],
    )
    return frame


def _rerun_twins(pkg: Package, scratch: KnowledgeGraph) -> pd.DataFrame:
    """Re-instantiate each twin from the package's triples and compare with its reference predictions."""
    rows = []
    for ref in pkg.twin_references():
        name = f"twins/{ref['id']}-v{ref['version']}.json"
        try:
            twin = scratch.twins.load(ref["twin"])
        except Exception as exc:  # any failure to rebuild the model refuses the package
            raise PackageError(
                pkg.path, f"twin {ref['id']} v{ref['version']} cannot be re-instantiated: {exc}", member=name
            ) from None
        pred = twin.predict(pd.DataFrame(ref["inputs"]), warn=False)
        worst = 0.0
        for out, expected in ref["outputs"].items():
            got = pred[out].to_numpy(dtype=float)
            want = np.asarray(expected, dtype=float)
            if not np.allclose(got, want, rtol=RTOL, atol=ATOL):
                raise PackageError(
                    pkg.path,
                    f"twin {ref['id']} v{ref['version']} does not reproduce its reference predictions of {out!r}: "
                    f"{got.tolist()} vs {want.tolist()}",
                    member=name,
                )
            scale = np.maximum(np.abs(want), ATOL)
            worst = max(worst, float(np.max(np.abs(got - want) / scale)) if len(want) else 0.0)
        rows.append(
            {
                "twin": ref["id"],
                "version": ref["version"],
                "cases": len(next(iter(ref["inputs"].values()), [])),
                "max_relative_difference": worst,
                "reproduced": True,
            }
        )
    return pd.DataFrame(rows, columns=["twin", "version", "cases", "max_relative_difference", "reproduced"])


def _reified(triples: list[tuple[str, str, str]], graph: str) -> str:
    """The triples as rdf:Statement nodes (N-Triples lines): kept, queryable, not asserted."""
    rdf = T.RDF
    parts = []
    for s, p, o in triples:
        node = f"<{graph}/statement/{hashlib.sha256(f'{s} {p} {o}'.encode()).hexdigest()[:24]}>"
        parts.append(
            f"{node} <{rdf}type> <{rdf}Statement> .\n{node} <{rdf}subject> {s} .\n"
            f"{node} <{rdf}predicate> {p} .\n{node} <{rdf}object> {o} ."
        )
    return "\n".join(parts)


def import_package(
    kg: KnowledgeGraph,
    path: str | Path,
    *,
    trust: str | Path,
    reason: str,
    site: str | None = None,
) -> ImportReport:
    """Verify ``path`` against the signers in ``trust`` and import it in one audited transaction."""
    t0 = time.perf_counter()
    if not reason.strip():
        raise ValueError("an import changes recipes and specs: it needs a reason")
    verified = verify_package(path, trust=trust)
    pkg = verified.package
    product, version, product_iri = pkg.product, pkg.version, str(pkg.header["product_iri"])
    vgraph = version_graph(kg.base, product, version)
    known = _versions(kg, product_iri)
    empty_twins = pd.DataFrame(columns=["twin", "version", "cases", "max_relative_difference", "reproduced"])
    if version in known:
        if known[version][0] != pkg.manifest_sha256:
            raise PackageError(
                pkg.path,
                f"version {version} of {product} is already imported with a different manifest "
                f"(sha256 {known[version][0][:16]}…); a changed package needs a new version number",
            )
        return ImportReport(pkg.path, product, version, vgraph, known[version][1], True, 0, pd.DataFrame(), empty_twins)
    knowledge, history = pkg.knowledge(), pkg.history()
    triples = _triples(knowledge)
    _check_conflicts(kg, triples, product, pkg.path)
    scratch = knowledge_store(knowledge)
    try:
        equipment = _map_equipment(kg, scratch, product=product, site=site)
        twins = _rerun_twins(pkg, scratch)
    finally:
        scratch.close()
    highest = max(known, default=0)
    becomes_current = version > highest
    cgraph, hgraph, reg = current_graph(kg.base, product), history_graph(kg.base, product), registry_graph(kg.base)
    mapped = equipment.dropna(subset=["_receiving_iri"])
    sig = pkg.signature
    assert sig is not None  # verify_package refuses unsigned packages
    pk = f"<{kg.base}package/{_pid(product)}/v{version}>"
    xsd = T.XSD
    record = [
        f"{pk} <{T.type_}> <{T.TransferPackage}>",
        f"{pk} <{T.identifier}> {sparql_string(f'{product}@v{version}')}",
        f"{pk} <{T.product}> <{product_iri}>",
        f'{pk} <{T.packageVersion}> "{version}"^^<{xsd}integer>',
        f"{pk} <{T.sha256}> {sparql_string(pkg.manifest_sha256)}",
        f"{pk} <{T.signer}> {sparql_string(sig.signer)}",
        f"{pk} <{T.signatureMeaning}> {sparql_string(sig.meaning)}",
        f'{pk} <{T.signedAt}> "{sig.time}"^^<{xsd}dateTime>',
        f"{pk} <{T.keyId}> {sparql_string(sig.key_id)}",
        f"{pk} <{T.packageGraph}> <{vgraph}>",
        f'{pk} <{T.current}> "{"true" if becomes_current else "false"}"^^<{xsd}boolean>',
    ]
    earlier = [v for v in known if v < version]
    if earlier:
        record.append(f"{pk} <{T.PROV}wasRevisionOf> <{kg.base}package/{_pid(product)}/v{max(earlier)}>")
    history_lines = [line for line in history.decode().split("\n") if line.strip()]  # not splitlines: U+2028
    replacing = becomes_current and bool(known)  # an asserted current version exists and must go
    if replacing:  # the store's history graph already holds most of it: send only what is new
        have = audit.graph_lines(kg.store, hgraph)
        history_lines = [line for line in history_lines if line.encode() not in have]
    blocks: dict[str, list[str]] = {
        vgraph: [line for line in _reified(triples, vgraph).split("\n") if line],
        hgraph: history_lines,
        reg: record,
    }
    if becomes_current:
        blocks[cgraph] = [line for line in knowledge.decode().split("\n") if line.strip()] + [
            f"<{a}> <{T.mappedTo}> <{b}>" for a, b in zip(mapped["_sending_iri"], mapped["_receiving_iri"], strict=True)
        ]
    nquads = "".join(
        f"{line.rstrip().removesuffix(' .')} <{g}> .\n" for g, lines in blocks.items() for line in lines if line.strip()
    ).encode()
    added = nquads.count(b"\n")
    rec = audit.WriteRecord(
        action="import",
        user=kg.user,
        reason=reason,
        target_graph=vgraph,
        triples_added=added,
        digest=hashlib.sha256(nquads).hexdigest(),
        sources=(audit.SourceRecord.of_file(path),),
    )
    if not replacing:  # pure addition: one bulk N-Quads transaction
        # the history is the bulk of it, as lines pyoxigraph serialised: checkpoint it from them, not by a read-back
        # (blank nodes are renamed by the store, so such lines are read back instead)
        fresh = (
            {hgraph: lambda: audit.lines_state(hgraph, (line for line in history.splitlines() if line.strip()))}
            if b"_:" not in history
            else {}
        )
        audit.commit_add(kg.store, kg.base, rec, nquads, graphs=list(blocks), fresh=fresh)
    else:
        data = " ".join(
            f"GRAPH <{g}> {{ {' '.join(line.rstrip().removesuffix(' .') + ' .' for line in lines if line.strip())} }}"
            for g, lines in blocks.items()
        )
        audit.commit_update(
            kg.store,
            kg.base,
            rec,
            f"DROP SILENT GRAPH <{cgraph}> ;\n"
            f"DELETE {{ GRAPH <{reg}> {{ ?pk <{T.current}> ?c }} }} "
            f'INSERT {{ GRAPH <{reg}> {{ ?pk <{T.current}> "false"^^<{xsd}boolean> }} }} '
            f"WHERE {{ GRAPH <{reg}> {{ ?pk <{T.product}> <{product_iri}> ; <{T.current}> ?c }} }} ;\n"
            f"INSERT DATA {{ {data} }}",
        )
    return ImportReport(
        package=pkg.path,
        product=product,
        version=version,
        graph=vgraph,
        current=becomes_current,
        already_imported=False,
        triples_added=added,
        equipment=equipment.drop(columns=["_sending_iri", "_receiving_iri"]),
        twins=twins,
        seconds=time.perf_counter() - t0,
    )
