"""Which part of the graph is a product's process knowledge.

Starting from the product, the *chain* is the product and every intermediate
its batches consumed that is itself made here (it has a general, site or
master recipe), recursively: a tablet package carries the granulation too.
For the chain it takes the materials consumed and made, their quality
attributes (CQAs and CMAs with specs), the general/site/master recipes with
every procedural element and process parameter (criticality, target, NOR,
PAR), the risk-assessment ``Impact`` links between them, control strategies
that name any of them, every *validated* twin bound to them (ports, parameters,
fit provenance) and the sending site's units the product ran on (class and
capacity, for equipment mapping at the receiving site). The last N batches of
each chain product travel as a history: batch, parameter actuals, samples and
results, without lots, people or instruments (they do not leave the site).

Everything is selected by SPARQL on the store, so it works on a remote store too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .. import audit
from .. import terms as T
from ..kg import KnowledgeGraph

__all__ = ["Selection", "select_knowledge"]

_RECIPE_TYPES = f"<{T.GeneralRecipe}> <{T.SiteRecipe}> <{T.MasterRecipe}>"
#: predicates that would drag site-private or unexported nodes (lots, control recipes, people, instruments) along
_HISTORY_KINDS = f"<{T.ParameterValue}> <{T.TestResult}> <{T.Sample}>"
_HISTORY_DROPS = (T.consumed, T.produced, T.recipe, T.analyst, T.instrument, T.lot)


@dataclass(frozen=True)
class Selection:
    """The product's knowledge and history as sorted N-Triples lines, and what they hold."""

    product: str
    product_id: str
    chain: tuple[str, ...]
    knowledge: bytes
    history: bytes
    history_frame: pd.DataFrame = field(repr=False)
    twins: tuple[str, ...]
    counts: dict[str, int]


def _values(iris: list[str] | set[str] | tuple[str, ...]) -> str:
    return " ".join(f"<{i}>" for i in sorted(iris))


def _column(kg: KnowledgeGraph, sparql: str, var: str = "x") -> set[str]:
    return {r[var] for r in kg.rows(sparql) if var in r}


def _sorted_lines(*chunks: bytes) -> bytes:
    lines = {line for chunk in chunks for line in chunk.splitlines() if line.strip()}
    return b"".join(line + b"\n" for line in sorted(lines))


def select_knowledge(kg: KnowledgeGraph, product: str, *, history: int = 50) -> Selection:
    """Collect ``product``'s knowledge (business id or IRI) and its last ``history`` batches per chain product."""
    iri = kg.resolve(product)
    if not kg.ask(f"ASK {{ <{iri}> a pkg:Material }}"):
        raise ValueError(f"{product!r} is not a material (a product is exported by its material id)")
    pid = kg.rows(f"SELECT ?id WHERE {{ <{iri}> dcterms:identifier ?id }}")[0]["id"]
    chain = [iri]
    frontier = [iri]
    while frontier:
        found = _column(
            kg,
            f"""SELECT DISTINCT ?x WHERE {{ VALUES ?p {{ {_values(frontier)} }} VALUES ?rt {{ {_RECIPE_TYPES} }}
  ?b a pkg:Batch ; pkg:product ?p ; pkg:consumed ?l . ?l pkg:material ?x . ?r a ?rt ; pkg:product ?x }}""",
        )
        frontier = sorted(found - set(chain))
        chain += frontier
    inputs = _column(
        kg,
        f"""SELECT DISTINCT ?x WHERE {{ VALUES ?p {{ {_values(chain)} }}
  ?b a pkg:Batch ; pkg:product ?p ; pkg:consumed ?l . ?l pkg:material ?x }}""",
    )
    materials = set(chain) | inputs
    recipes = _column(
        kg,
        f"SELECT DISTINCT ?x WHERE {{ VALUES ?p {{ {_values(chain)} }} VALUES ?rt {{ {_RECIPE_TYPES} }} ?x a ?rt ; pkg:product ?p }}",
    )
    elements = (
        _column(kg, f"SELECT DISTINCT ?x WHERE {{ VALUES ?r {{ {_values(recipes)} }} ?x pkg:recipe ?r }}")
        if recipes
        else set()
    )
    params = (
        _column(kg, f"SELECT DISTINCT ?x WHERE {{ VALUES ?x {{ {_values(elements)} }} ?x a pkg:ProcessParameter }}")
        if elements
        else set()
    )
    attributes = _column(
        kg,
        f"SELECT DISTINCT ?x WHERE {{ VALUES ?m {{ {_values(materials)} }} ?x a pkg:QualityAttribute ; pkg:material ?m }}",
    )
    known = params | attributes
    impacts = {
        r["i"]
        for r in kg.rows(
            f"""SELECT DISTINCT ?i ?s ?t WHERE {{ VALUES ?t {{ {_values(attributes) or "<urn:none>"} }}
  ?i a pkg:Impact ; pkg:impactTarget ?t ; pkg:impactSource ?s }}"""
        )
        if r["s"] in known
    }
    anchors = known | materials
    strategies = _column(
        kg, f"SELECT DISTINCT ?x WHERE {{ VALUES ?a {{ {_values(anchors)} }} ?x a pkg:ControlStrategy ; ?p ?a }}"
    )
    twins = _column(
        kg,
        f"""SELECT DISTINCT ?x WHERE {{ VALUES ?a {{ {_values(anchors)} }} ?x a pkg:Twin ; pkg:twinStatus pkg:Validated .
  {{ ?x pkg:describes ?a }} UNION {{ ?x pkg:input|pkg:output ?port . ?port pkg:boundTo ?a }} }}""",
    )
    twin_parts = (
        _column(
            kg,
            f"SELECT DISTINCT ?x WHERE {{ VALUES ?t {{ {_values(twins)} }} ?t pkg:input|pkg:output|pkg:modelParameter ?x }}",
        )
        if twins
        else set()
    )
    units = _column(
        kg,
        f"SELECT DISTINCT ?x WHERE {{ VALUES ?p {{ {_values(chain)} }} ?b a pkg:Batch ; pkg:product ?p ; pkg:usedEquipment ?x }}",
    )
    if units:
        units |= _column(kg, f"SELECT DISTINCT ?x WHERE {{ VALUES ?u {{ {_values(units)} }} ?u pkg:partOf+ ?x }}")
    subjects = materials | recipes | elements | attributes | impacts | strategies | twins | twin_parts | units
    excluded = ", ".join(
        f"<{g}>"
        for g in (
            audit.audit_graph(kg.base),
            audit.provenance_graph(kg.base),
            T.ONTOLOGY_GRAPH,
            registry_graph(kg.base),
        )
    )
    knowledge = kg.ntriples(
        f"""CONSTRUCT {{ ?s ?p ?o }} WHERE {{ VALUES ?s {{ {_values(subjects)} }}
  GRAPH ?g {{ ?s ?p ?o }} FILTER(?g NOT IN ({excluded})) }}"""
    )
    knowledge = _closed(knowledge, subjects, kg.base)
    batches = _last_batches(kg, chain, history)
    drops = ", ".join(f"<{p}>" for p in _HISTORY_DROPS)
    hist = b""
    if batches:
        keep = f"FILTER(?p NOT IN ({drops}) && ?g NOT IN ({excluded}))"
        hist = kg.ntriples(
            f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ VALUES ?s {{ {_values(batches)} }} GRAPH ?g {{ ?s ?p ?o }} {keep} }}"
        ) + kg.ntriples(
            f"""CONSTRUCT {{ ?s ?p ?o }} WHERE {{ VALUES ?b {{ {_values(batches)} }} VALUES ?k {{ {_HISTORY_KINDS} }} ?s pkg:batch ?b ; a ?k .
  GRAPH ?g {{ ?s ?p ?o }} {keep} }}"""
        )
    counts = {
        "products (chain)": len(chain),
        "materials": len(materials),
        "recipes": len(recipes),
        "procedural elements": len(elements - params),
        "process parameters": len(params),
        "quality attributes": len(attributes),
        "impacts": len(impacts),
        "control strategies": len(strategies),
        "twins": len(twins),
        "equipment": len(units),
        "history batches": len(batches),
    }
    return Selection(
        product=iri,
        product_id=pid,
        chain=tuple(chain),
        knowledge=_sorted_lines(knowledge),
        history=_sorted_lines(hist),
        history_frame=_history_frame(kg, batches),
        twins=tuple(sorted(twins)),
        counts=counts,
    )


def _closed(ntriples: bytes, subjects: set[str], base: str) -> bytes:
    """Drop links to data nodes the package does not carry (an intermediate's CMA -> the tablet's CQA).

    Links recording where a twin was fitted (batch IRIs) stay: they are provenance, not structure.
    """
    import pyoxigraph as ox

    keep_dangling = {T.PKG + "fittedOn", T.PKG + "testedOn"}
    out = []
    for t in ox.parse(ntriples, format=ox.RdfFormat.N_TRIPLES):
        o = t.object
        if (
            isinstance(o, ox.NamedNode)
            and o.value.startswith(base)
            and o.value not in subjects
            and t.predicate.value not in keep_dangling
        ):
            continue
        out.append(f"{t.subject} {t.predicate} {o} .\n")
    return "".join(out).encode()


def registry_graph(base: str) -> str:
    """The graph that lists the packages imported into a store (and which version is current)."""
    return f"{base}graph/packages"


def _last_batches(kg: KnowledgeGraph, chain: list[str], n: int) -> list[str]:
    if n <= 0:
        return []
    rows = kg.rows(
        f"""SELECT ?b ?p ?t WHERE {{ VALUES ?p {{ {_values(chain)} }} ?b a pkg:Batch ; pkg:product ?p ; pkg:startTime ?t }}"""
    )
    frame = pd.DataFrame(rows, columns=["b", "p", "t"])
    if frame.empty:
        return []
    frame = frame.sort_values(["p", "t", "b"])
    return sorted(frame.groupby("p", sort=True).tail(n)["b"])


def _history_frame(kg: KnowledgeGraph, batches: list[str]) -> pd.DataFrame:
    """One row per exported batch: id, product, times, status, each parameter actual and result (mean)."""
    if not batches:
        return pd.DataFrame(columns=["batch", "product", "start", "end", "status"])
    head = kg.query(
        f"""SELECT ?batch ?product ?start ?end ?status WHERE {{ VALUES ?b {{ {_values(batches)} }}
  ?b dcterms:identifier ?batch ; pkg:product/dcterms:identifier ?product .
  OPTIONAL {{ ?b pkg:startTime ?start }} OPTIONAL {{ ?b pkg:endTime ?end }} OPTIONAL {{ ?b pkg:status ?status }} }}"""
    )
    values = kg.query(
        f"""SELECT ?batch ?name (AVG(?v) AS ?value) WHERE {{ VALUES ?b {{ {_values(batches)} }}
  ?b dcterms:identifier ?batch . ?x pkg:batch ?b ; pkg:value ?v .
  {{ ?x pkg:parameter/dcterms:identifier ?name }} UNION {{ ?x pkg:attribute/dcterms:identifier ?name }}
  FILTER(isNumeric(?v)) }} GROUP BY ?batch ?name"""
    )
    if values.empty:
        return head.sort_values("batch").reset_index(drop=True)
    wide = values.pivot(index="batch", columns="name", values="value").reset_index()
    wide.columns.name = None
    return head.merge(wide, on="batch", how="left").sort_values(["product", "start", "batch"]).reset_index(drop=True)
