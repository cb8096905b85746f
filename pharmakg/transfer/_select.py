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

from collections.abc import Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field, fields

import pandas as pd

from .. import audit
from .. import terms as T
from ..kg import KnowledgeGraph

__all__ = ["Core", "Selection", "lines_frame", "select_core", "split_ntriples", "with_history"]

_RECIPE_TYPES = f"<{T.GeneralRecipe}> <{T.SiteRecipe}> <{T.MasterRecipe}>"
#: predicates that would drag site-private or unexported nodes (lots, control recipes, people, instruments) along
_HISTORY_KINDS = f"<{T.ParameterValue}> <{T.TestResult}> <{T.Sample}>"
_HISTORY_DROPS = (T.consumed, T.produced, T.recipe, T.analyst, T.instrument, T.lot)


def _values(iris: list[str] | set[str] | tuple[str, ...]) -> str:
    return " ".join(f"<{i}>" for i in sorted(iris))


def _column(kg: KnowledgeGraph, sparql: str, var: str = "x") -> set[str]:
    return {r[var] for r in kg.rows(sparql) if var in r}


def _sorted_lines(*chunks: bytes) -> bytes:
    lines = {line for chunk in chunks for line in chunk.splitlines() if line.strip()}
    return b"".join(line + b"\n" for line in sorted(lines))


@dataclass(frozen=True)
class Core:
    """The product's knowledge without its batch history: what ``select_core`` found."""

    product: str
    product_id: str
    chain: tuple[str, ...]
    knowledge: bytes
    twins: tuple[str, ...]
    counts: dict[str, int]


@dataclass(frozen=True)
class Selection(Core):
    """The core plus the history as sorted N-Triples lines, and what they hold."""

    history: bytes
    history_frame: pd.DataFrame = field(repr=False)
    triples: pd.DataFrame = field(repr=False)  # knowledge then history as s, p, o: split once, read twice


def select_core(kg: KnowledgeGraph, product: str) -> Core:
    """The product's chain and knowledge (everything but the batch history): a few small queries."""
    iri = kg.resolve(product)
    if not kg.ask(f"ASK {{ <{iri}> a pkg:Material }}"):
        raise ValueError(f"{product!r} is not a material (a product is exported by its material id)")
    pid = kg.rows(f"SELECT ?id WHERE {{ <{iri}> dcterms:identifier ?id }}")[0]["id"]
    chain = [iri]
    frontier = [iri]
    inputs: set[str] = set()
    while frontier:  # two small queries per level: a single join of batches x lots x recipes explodes
        consumed = _column(
            kg,
            f"""SELECT DISTINCT ?x WHERE {{ VALUES ?p {{ {_values(frontier)} }}
  ?b a pkg:Batch ; pkg:product ?p ; pkg:consumed ?l . ?l pkg:material ?x }}""",
        )
        inputs |= consumed
        made = (
            _column(
                kg,
                f"""SELECT DISTINCT ?x WHERE {{ VALUES ?x {{ {_values(consumed)} }} VALUES ?rt {{ {_RECIPE_TYPES} }}
  ?r a ?rt ; pkg:product ?x }}""",
            )
            if consumed
            else set()
        )
        frontier = sorted(made - set(chain))
        chain += frontier
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
    knowledge = kg.ntriples(
        f"""CONSTRUCT {{ ?s ?p ?o }} WHERE {{ VALUES ?s {{ {_values(subjects)} }}
  GRAPH ?g {{ ?s ?p ?o }} FILTER(?g NOT IN ({_excluded(kg)})) }}"""
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
    }
    return Core(
        product=iri,
        product_id=pid,
        chain=tuple(chain),
        knowledge=_sorted_lines(_closed(knowledge, subjects, kg.base)),
        twins=tuple(sorted(twins)),
        counts=counts,
    )


def _excluded(kg: KnowledgeGraph) -> str:
    """The graphs no package reads from: the audit trail, provenance, the ontology and the package registry."""
    graphs = (audit.audit_graph(kg.base), audit.provenance_graph(kg.base), T.ONTOLOGY_GRAPH, registry_graph(kg.base))
    return ", ".join(f"<{g}>" for g in graphs)


#: subjects per history CONSTRUCT: small enough to spread over the pool's threads
_CHUNK = 2000


def with_history(kg: KnowledgeGraph, core: Core, *, history: int, pool: Executor | None = None) -> Selection:
    """``core`` plus the last ``history`` batches of each chain product (batches, actuals, samples, results).

    The history is read in chunks of subjects; with a ``pool`` the chunks run on its
    threads (pyoxigraph releases the GIL while it evaluates and serialises, so two
    chunks in flight nearly halve the read on two cores).
    """
    chain = list(core.chain)
    batches = _last_batches(kg, chain, history)
    hist: list[bytes] = []
    if batches:
        wanted = set(batches)

        def records_of(product: str) -> list[dict[str, str]]:  # a VALUES join over thousands of batches is slower
            return kg.rows(
                f"""SELECT ?x ?b WHERE {{ VALUES ?k {{ {_HISTORY_KINDS} }} ?b pkg:product <{product}> . ?x a ?k ; pkg:batch ?b }}"""
            )

        per_product = list(pool.map(records_of, chain)) if pool is not None else [records_of(p) for p in chain]
        records = {r["x"] for rows in per_product for r in rows if r["b"] in wanted}
        drops = ", ".join(f"<{p}>" for p in _HISTORY_DROPS)
        keep = f"FILTER(?p NOT IN ({drops}) && ?g NOT IN ({_excluded(kg)}))"
        subjects = sorted(set(batches) | records)

        def read(chunk: list[str]) -> bytes:  # subjects first, then their triples: oxigraph joins VALUES ?s best
            return kg.ntriples(
                f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ VALUES ?s {{ {_values(chunk)} }} GRAPH ?g {{ ?s ?p ?o }} {keep} }}"
            )

        chunks = [subjects[i : i + _CHUNK] for i in range(0, len(subjects), _CHUNK)]
        hist = list(pool.map(read, chunks)) if pool is not None else [read(c) for c in chunks]
    history_nt = _sorted_lines(*hist)
    knowledge_t, history_t = split_ntriples(core.knowledge), split_ntriples(history_nt)
    return Selection(
        **{f.name: getattr(core, f.name) for f in fields(Core)}
        | {"counts": core.counts | {"history batches": len(batches)}},
        history=history_nt,
        history_frame=_history_frame(history_t, knowledge_t),
        triples=pd.concat([knowledge_t, history_t], ignore_index=True),
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


_LEX = r'^"((?:[^"\\]|\\.)*)"'


def _history_frame(frame: pd.DataFrame, knowledge: pd.DataFrame) -> pd.DataFrame:
    """One row per exported batch: id, product, times, status, each parameter actual and result (mean).

    Built from the history triples themselves (already selected), not by querying again.
    """
    cols = ["batch", "product", "start", "end", "status"]
    if frame.empty:
        return pd.DataFrame(columns=cols)
    ids = pd.concat([frame, knowledge])
    ids = ids[ids["p"] == f"<{T.identifier}>"]
    name = dict(zip(ids["s"], ids["o"].str.extract(_LEX, expand=False), strict=True))
    by_predicate = dict(tuple(frame.groupby("p", sort=False)))

    def column(pred: str, as_name: bool = False, raw: bool = False) -> pd.Series:
        rows = by_predicate.get(f"<{pred}>", frame.iloc[:0])  # lexical forms only where read: a third of the rows
        values = rows["o"].map(name) if as_name else rows["o"] if raw else rows["o"].str.extract(_LEX, expand=False)
        return pd.Series(values.to_numpy(), index=rows["s"].to_numpy())

    batches = frame.loc[(frame["p"] == f"<{T.type_}>") & (frame["o"] == f"<{T.Batch}>"), "s"].drop_duplicates()
    head = pd.DataFrame({"s": batches.to_numpy()})
    for col, pred, by_name in (
        ("batch", T.identifier, False),
        ("product", T.product, True),
        ("start", T.startTime, False),
        ("end", T.endTime, False),
        ("status", T.status, False),
    ):
        head[col] = head["s"].map(column(pred, by_name).groupby(level=0).first())
    what = pd.concat([column(T.parameter, True), column(T.attribute, True)])
    what = what.groupby(level=0).first()
    rec = pd.DataFrame({"b": column(T.batch, raw=True).groupby(level=0).first()})
    rec = rec.join(what.rename("name")).join(
        pd.to_numeric(column(T.value), errors="coerce").groupby(level=0).first().rename("value")
    )
    rec = rec.dropna(subset=["name", "value"])
    rec["batch"] = rec["b"].map(dict(zip(head["s"], head["batch"], strict=True)))
    head = head.drop(columns="s")
    if rec.empty:
        return head.sort_values("batch").reset_index(drop=True)
    wide = rec.pivot_table(index="batch", columns="name", values="value", aggfunc="mean").reset_index()
    wide.columns.name = None
    return head.merge(wide, on="batch", how="left").sort_values(["product", "start", "batch"]).reset_index(drop=True)


def split_ntriples(ntriples: bytes) -> pd.DataFrame:
    """s, p, o of N-Triples lines written by pyoxigraph (no spaces inside a subject or predicate).

    Only for lines pyoxigraph serialised itself, where splitting on the first two spaces is
    exact; plain str.split beats building terms one by one (and pandas' string methods).
    """
    return lines_frame(line for line in ntriples.decode("utf-8").split("\n") if line)  # U+2028 is data


def lines_frame(lines: Iterable[str]) -> pd.DataFrame:
    """s, p, o of N-Triples lines already decoded (see split_ntriples for when this is exact)."""
    rows = [line[:-2].split(" ", 2) for line in lines if line.endswith(" .")]
    return pd.DataFrame(rows, columns=["s", "p", "o"], dtype=object)
