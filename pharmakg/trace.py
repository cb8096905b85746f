"""Lot and batch genealogy: what went into a lot, where a lot went, and recall scope (layer L4).

A walk reads the nodes a SPARQL property path reaches and the triples a
genealogy needs of them (type, id, label, status, start, material, supplier
and the step relations, which give the edges in material-flow direction:
input lot -> batch -> output lot, parent lot -> sublot): in one query
upstream, where walks are small; downstream, which fans out, as the path's
closure then a VALUES query of the nodes' triples, read in two halves on two
threads for a big walk. One more small VALUES query gives the names of the
materials and suppliers met (kept per store revision). All of it runs
unchanged on a remote SPARQL 1.1 server.
Distances, depth limits, stop rules and time windows are applied in Python on that small graph (a networkx
DiGraph), which also gives paths and drawing for free. Equipment, deviations
and out-of-specification results are opt-in (``details=True``).

Upstream step relations:   lot -> batch that produced it (^pkg:produced),
                           batch -> lots it consumed (pkg:consumed),
                           sublot -> parent lot (pkg:sublotOf),
                           assembled lot -> its component lots (pkg:assembledFrom, from B2MML).
Downstream is the inverse of each.
"""

from __future__ import annotations

import html
import os
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar

import networkx as nx
import pandas as pd

from .errors import PharmaKGWarning
from .store.base import sparql_string
from .terms import DCTERMS, PKG, RDF, RDFS

if TYPE_CHECKING:
    from .kg import KnowledgeGraph

__all__ = [
    "Genealogy",
    "RecallScope",
    "batches_on",
    "mass_balance",
    "recall_scope",
    "trace",
    "trace_downstream",
    "trace_upstream",
    "closure_query",
    "node_query",
    "walk_query",
]

Direction = Literal["up", "down"]
T = TypeVar("T")

#: The step relations of a genealogy, each read upstream (from a product towards what went into it):
#: lot -> the batch that produced it, batch -> the lots it consumed, sublot -> its parent lot,
#: assembled lot -> its component lots (B2MML). Downstream is the inverse of each.
_UPSTREAM_STEPS = {
    "pkg:consumed": "pkg:consumed",
    "pkg:produced": "^pkg:produced",
    "pkg:sublotOf": "pkg:sublotOf",
    "pkg:assembledFrom": "pkg:assembledFrom",
}
STEP_RELATIONS = tuple(_UPSTREAM_STEPS)
#: Columns of Genealogy.to_frame(), the documented output contract of ``pharmakg trace``.
NODE_COLUMNS = [
    "id",
    "kind",
    "distance",
    "label",
    "material",
    "material_kind",
    "supplier",
    "status",
    "start",
    "equipment",
    "deviations",
    "oos",
    "iri",
]
#: Columns holding lists of business ids (joined by spaces in CSV output).
LIST_COLUMNS = ("equipment", "deviations", "oos")


@dataclass(frozen=True)
class Genealogy:
    """The genealogy of one lot or batch.

    ``graph`` is a networkx DiGraph whose edges follow the material
    (input lot -> batch -> output lot); each node carries ``kind`` (lot or
    batch), ``id`` (the business id as loaded), ``label``, ``distance``
    (edges from the start) and the attributes of ``to_frame``.
    """

    root: str
    direction: Direction
    graph: nx.DiGraph = field(repr=False)

    def to_frame(self) -> pd.DataFrame:
        """One row per node, nearest first; columns as in NODE_COLUMNS."""
        rows = [{**{c: data.get(c) for c in NODE_COLUMNS}, "iri": n} for n, data in self.graph.nodes(data=True)]
        frame = pd.DataFrame(rows, columns=NODE_COLUMNS)
        return frame.sort_values(["distance", "kind", "id"], kind="stable").reset_index(drop=True)

    def node(self, ref: str) -> str:
        """The node IRI for a business id or IRI in this genealogy."""
        if ref in self.graph:
            return ref
        hits = [n for n, d in self.graph.nodes(data=True) if d.get("id") == ref]
        if not hits:
            raise KeyError(f"{ref!r} is not in this genealogy")
        return hits[0]

    def paths_to(self, ref: str) -> list[list[str]]:
        """Every path (as business ids) between the start and ``ref``, in material-flow order."""
        target = self.node(ref)
        src, dst = (target, self.root) if self.direction == "up" else (self.root, target)
        paths = nx.all_simple_paths(self.graph, src, dst) if src != dst else iter([[src]])
        return [[self.graph.nodes[n]["id"] for n in p] for p in paths]

    def lots(self) -> pd.DataFrame:
        frame = self.to_frame()
        return frame[frame["kind"] == "lot"].reset_index(drop=True)

    def batches(self) -> pd.DataFrame:
        frame = self.to_frame()
        return frame[frame["kind"] == "batch"].reset_index(drop=True)

    def to_dot(self) -> str:
        """Graphviz DOT text, left to right in material-flow order."""
        lines = ["digraph genealogy {", "  rankdir=LR;"]
        for _, d in self.graph.nodes(data=True):
            shape = "box" if d.get("kind") == "batch" else "ellipse"
            lines.append(f'  "{d["id"]}" [shape={shape}];')
        for a, b in self.graph.edges():
            lines.append(f'  "{self.graph.nodes[a]["id"]}" -> "{self.graph.nodes[b]["id"]}";')
        lines.append("}")
        return "\n".join(lines) + "\n"

    def __len__(self) -> int:
        return int(self.graph.number_of_nodes())

    def _repr_html_(self) -> str:
        frame = self.to_frame()
        head = (
            f"<b>{'Upstream' if self.direction == 'up' else 'Downstream'} genealogy of "
            f"{html.escape(str(self.graph.nodes[self.root]['id']))}</b>: "
            f"{(frame['kind'] == 'lot').sum()} lots, {(frame['kind'] == 'batch').sum()} batches"
        )
        shown = frame.drop(columns=["iri"]).head(200)
        more = f"<p>... {len(frame) - 200} more rows (use .to_frame())</p>" if len(frame) > 200 else ""
        return f"<p>{head}</p>" + shown.to_html(index=False, na_rep="") + more


def trace(
    kg: KnowledgeGraph,
    ref: str,
    *,
    direction: Direction = "up",
    max_depth: int | None = None,
    stop_at: Iterable[str] = (),
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    details: bool = False,
) -> Genealogy:
    """Genealogy of a lot or batch (business id or IRI) in one direction.

    ``max_depth`` counts edges from the start (lot -> batch is one).
    ``stop_at`` names material kinds (``raw``, ``intermediate``, ...) whose lots
    are kept but not walked past. ``start``/``end`` keep only batches that
    started in that window (lots they reach through other batches stay).
    ``details`` adds, per node, the equipment each batch used, the deviations
    raised on it and the out-of-specification results of the lot or batch
    (three more queries: off by default so a plain trace stays one query upstream,
    two downstream, plus one for material and supplier names not met before).
    """
    root = kg.resolve(ref)
    steps = _step_relations(kg)
    graph = _genealogy_graph(kg, root, _walk_props(kg, root, direction, steps))
    if not nx.is_directed_acyclic_graph(graph):
        cycle = [str(n) for n, _ in nx.find_cycle(graph)]
        warnings.warn(
            f"genealogy of {ref!r} has a cycle (a lot that is its own ancestor): {' -> '.join(cycle)}; "
            "the data are wrong, the walk stopped there",
            PharmaKGWarning,
            stacklevel=2,
        )
    kinds = {_kind_code(k) for k in stop_at}
    window = (_utc(start) if start is not None else None, _utc(end) if end is not None else None)
    keep = _walk(graph, root, direction, max_depth, kinds, window)
    sub = graph.subgraph(keep).copy() if len(keep) < graph.number_of_nodes() else graph
    for n, dist in keep.items():
        sub.nodes[n]["distance"] = dist
    if details:
        _add_details(kg, sub)
    return Genealogy(root=root, direction=direction, graph=sub)


def walk_query(root: str, direction: Direction, steps: Sequence[str] = STEP_RELATIONS) -> str:
    """The SPARQL (prefixes as in ``kg.PREFIXES``) of a whole walk in one query: the nodes reached
    from ``root`` (``?n``; ``?x`` in ``closure_query``) joined to the triples ``node_query`` reads of them.

    How ``trace`` walks upstream. A lot's ancestry is small (fan-in is bounded by the
    recipes' inputs: 12 nodes median, 16 at most at 100 000 batches), and one query costs
    less than two there even though each row decodes its node's IRI: on 200 finished lots,
    p50 2.67 -> 2.38 ms and p95 3.74 -> 3.33 ms. Downstream, which fans out (37 nodes median),
    is read as ``closure_query`` then ``node_query`` in keyed halves on two threads: that wins
    there (p50 5.7 against 6.4 ms in one query). A node reached but with no triple among the
    properties read has no row (see ``_walk_props``)."""
    where = _node_where(direction, steps).replace("{values}", f"{_closure(root, direction, steps)} ?n .")
    return f"SELECT ?n ?p ?o WHERE {{ {where} }}"


def _closure(root: str, direction: Direction, steps: Sequence[str]) -> str:
    if not steps:
        raise ValueError("a walk needs at least one step relation")
    return f"<{root}> {_path(direction, steps)}"


def closure_query(root: str, direction: Direction, steps: Sequence[str] = STEP_RELATIONS) -> str:
    """The SPARQL (prefixes as in ``kg.PREFIXES``) of the nodes reached from ``root``, itself included:
    a property path over the step relations ``steps`` (see ``_step_relations``)."""
    return f"SELECT ?x WHERE {{ {_closure(root, direction, steps)} ?x }}"


def node_query(nodes: Sequence[str], direction: Direction, steps: Sequence[str] = STEP_RELATIONS) -> str:
    """The SPARQL (prefixes as in ``kg.PREFIXES``) of the triples a genealogy reads of the ``nodes``
    (a walk's closure): ``?k`` is the node's position in ``nodes``, ``?p`` the property's local name
    (``type``, ``identifier``, ``produced``...; see ``_CODE_IRI``), ``?o`` the value.

    Separate from the closure, and keyed, because oxigraph decodes every term of every row
    from RocksDB (~6 us each) and a walk reads five or six triples per node: a small integer
    key is kept inline, where the node's IRI would be decoded on each of its rows (one
    query joining the path to the triples, ``walk_query``, took 6.5 ms for 204 rows where
    the two take ~5: it pays only on small walks, upstream).
    The step triples among the nodes are the genealogy's edges, whichever the direction.
    Downstream, a reached batch's
    ``pkg:consumed`` lists every lot it used, most of them not reached (a tablet batch
    consumes the granulate that led here and five excipients), so lot -> batch edges are read
    from the lot's side, as ``(lot, "consumedBy", batch)``: a name of this module's, not a
    term of the ontology."""
    return _keyed_query("?p ?o", _node_where(direction, steps), nodes)


def _node_where(direction: Direction, steps: Sequence[str]) -> str:
    """``node_query``'s WHERE, ``{values}`` standing for the keyed nodes (see ``_node_table``)."""
    reads = [*_ATTRIBUTES, *(s for s in steps if direction == "up" or s != "pkg:consumed")]
    triples = _triples(reads)
    if direction == "down" and "pkg:consumed" in steps:
        triples = f'{{ {triples} }} UNION {{ ?o pkg:consumed ?n BIND("consumedBy" AS ?p) }}'
    return f"{{values}} {triples}"


def _triples(reads: Sequence[str]) -> str:
    """The triples of ``?n`` with a property among ``reads``: ``?p`` the property's local name,
    ``?o`` the value. ``_decoded`` turns a row's property back into its IRI.

    Type and lot-status IRIs were coded as short literals too (``IF(?o = pkg:Batch, ...)``),
    to spare their decoding: each IRI constant in a query is looked up in RocksDB when the
    query is prepared, and the seven more cost more than the decoding they spared (node
    query p50 3.39 -> 2.80 ms downstream, 1.01 -> 0.86 upstream, without them). For the same
    reason each property is named once: the chain ends in an unbound variable, an error that
    leaves ``?p`` unbound for any other property, rather than repeating the list in a
    ``FILTER(?q IN (...))`` (upstream node query p50 1.64 -> 1.41 ms)."""
    code = "?unread"
    for prop in reversed(reads):
        code = f'IF(?q = {prop}, "{prop.split(":")[1]}", {code})'
    return f"?n ?q ?o BIND({code} AS ?p) FILTER(BOUND(?p))"


def _decoded(row: dict[str, str]) -> tuple[str, str]:
    """The property IRI and the value of a ``_triples`` row."""
    return _CODE_IRI[row["p"]], row.get("o", "")  # rows() leaves an empty literal out


def _walk_props(
    kg: KnowledgeGraph, root: str, direction: Direction, steps: Sequence[str]
) -> dict[str, dict[str, list[str]]]:
    """The nodes a walk reaches as node IRI -> property IRI -> values, every node present:
    ``walk_query`` upstream, ``closure_query`` then ``node_query`` downstream (see ``walk_query``)."""
    if direction == "down":
        nodes = [r["x"] for r in kg.rows(closure_query(root, direction, steps))]
        return _node_props(kg, nodes, direction, steps)
    props = _grouped((r["n"], r) for r in kg.rows(walk_query(root, direction, steps)))
    # a node reached with no triple among those read has no row: it is the object of a step
    # taken forward from a node that has (upstream: consumed, sublotOf, assembledFrom)
    forward = [_CODE_IRI[s.split(":")[1]] for s in steps if not _UPSTREAM_STEPS[s].startswith("^")]
    reached = {o for p in props.values() for s in forward for o in p.get(s, ())}
    for o in sorted(reached - props.keys()):  # sorted: the same node order on every run
        props[o] = {}
    return props


def _node_props(
    kg: KnowledgeGraph, nodes: Sequence[str], direction: Direction, steps: Sequence[str]
) -> dict[str, dict[str, list[str]]]:
    """``node_query``'s triples as node IRI -> property IRI -> values (decoded), every node present.

    A big walk (the p95 of downstream walks) is read in two halves on two threads."""
    idle = _WALK_IDLE.acquire(blocking=False)  # another thread's walk has the worker: read this one whole
    try:
        pool = _walk_pool() if idle else None
        rows = _node_table(kg, pool, nodes, "?p ?o", _node_where(direction, steps), at=_WALK_SPLIT_AT)
    finally:
        if idle:
            _WALK_IDLE.release()
    return _grouped(rows, nodes)


def _grouped(rows: Iterable[tuple[str, dict[str, str]]], nodes: Iterable[str] = ()) -> dict[str, dict[str, list[str]]]:
    """``_triples`` rows, each paired with its node, as node IRI -> property IRI -> values;
    ``nodes`` are present even without a row."""
    props: dict[str, dict[str, list[str]]] = {n: {} for n in nodes}
    for n, r in rows:
        p, o = _decoded(r)
        props.setdefault(n, {}).setdefault(p, []).append(o)
    return props


def trace_upstream(kg: KnowledgeGraph, ref: str, **options: object) -> Genealogy:
    """Everything a lot or batch descends from: batches, lots, materials, suppliers."""
    return trace(kg, ref, direction="up", **options)  # type: ignore[arg-type]


def trace_downstream(kg: KnowledgeGraph, ref: str, **options: object) -> Genealogy:
    """Every batch and lot (intermediate and finished) a lot or batch reached."""
    return trace(kg, ref, direction="down", **options)  # type: ignore[arg-type]


def _kind_code(kind: str) -> str:
    return kind.strip().lower().replace(" ", "_").replace("-", "_")


_KIND_NAMES = {
    "RawMaterial": "raw",
    "Intermediate": "intermediate",
    "DrugSubstance": "drug_substance",
    "DrugProduct": "drug_product",
    "PackagingMaterial": "packaging",
}


def _walk(
    graph: nx.DiGraph,
    root: str,
    direction: Direction,
    max_depth: int | None,
    stop_kinds: set[str],
    window: tuple[pd.Timestamp | None, pd.Timestamp | None],
) -> dict[str, int]:
    """Breadth-first distances from the root, honouring depth, stop kinds and the time window."""
    step = graph.predecessors if direction == "up" else graph.successors
    lo, hi = window
    dist = {root: 0}
    queue = deque([root])
    while queue:
        n = queue.popleft()
        d = dist[n]
        data = graph.nodes[n]
        if n != root and data.get("kind") == "lot" and data.get("material_kind") in stop_kinds:
            continue
        if max_depth is not None and d >= max_depth:
            continue
        for m in step(n):
            if m in dist:
                continue
            md = graph.nodes[m]
            if md.get("kind") == "batch" and (lo is not None or hi is not None):
                t = md.get("start")
                if t is None or pd.isna(t) or (lo is not None and t < lo) or (hi is not None and t >= hi):
                    continue
            dist[m] = d + 1
            queue.append(m)
    return dist


def _values(nodes: Iterable[str]) -> str:
    return " ".join(f"<{n}>" for n in nodes)


def _path(direction: Direction, steps: Sequence[str]) -> str:
    """The property path of a walk over ``steps``: ``(^pkg:produced|pkg:consumed)*`` upstream."""
    up = [_UPSTREAM_STEPS[s] for s in steps]
    if direction == "down":  # each step the other way round
        up = [p.removeprefix("^") if p.startswith("^") else f"^{p}" for p in up]
    return f"({'|'.join(up)})*"


def _step_relations(kg: KnowledgeGraph) -> tuple[str, ...]:
    """The step relations the store uses: consumed and produced, and sublotOf and assembledFrom
    only if some triple has them (absent from most plants).

    Each relation in a walk's path is an index lookup per node reached, used or not: on 200
    downstream walks at 100 000 batches two instead of four took p50 6.5 -> 5.1 ms. The
    probe (two index seeks) is kept in ``kg.cache``; a remote store, which keeps no cache,
    is walked over all four rather than probed on every walk."""
    if kg.store.revision is None:  # a remote store: a probe per walk would cost a round trip
        return STEP_RELATIONS

    def probe() -> tuple[str, ...]:
        used = kg.rows(
            "SELECT ?p WHERE { VALUES ?p { pkg:sublotOf pkg:assembledFrom } FILTER EXISTS { ?child ?p ?parent } }"
        )
        found = {"pkg:" + r["p"].removeprefix(PKG) for r in used}
        return tuple(s for s in STEP_RELATIONS if s in found or s in ("pkg:consumed", "pkg:produced"))

    return kg.cached("trace.steps", probe)


#: What a walk reads of every node it reaches besides the step relations, which give the edges.
_ATTRIBUTES = (
    "rdf:type",
    "dcterms:identifier",
    "rdfs:label",
    "pkg:lotStatus",
    "pkg:status",
    "pkg:startTime",
    "pkg:material",
    "pkg:product",
    "pkg:supplier",
)
#: what a recall reads of each finished lot
_LOT_PROPERTIES = ("dcterms:identifier", "pkg:material", "pkg:quantity", "pkg:unit", "pkg:lotStatus")
#: a lot -> the batch that consumed it, in a downstream walk's rows (not a term of the ontology)
_CONSUMED_BY = "urn:pharmakg:trace:consumedBy"
_PREFIXES = {"rdf": RDF, "rdfs": RDFS, "dcterms": DCTERMS, "pkg": PKG}


#: a walk's rows name each property by its local name, a literal of at most 15 bytes that
#: oxigraph keeps inline, where an IRI is a RocksDB read to decode on every row: on 200
#: downstream walks at 100 000 batches, p50 10.7 -> 9.5 ms and p95 16.1 -> 14.0 ms
def _local_names(reads: Sequence[str]) -> dict[str, str]:
    """Local name -> IRI of prefixed names (``pkg:lot`` -> ``lot``: ``https://w3id.org/pharmakg/ontology#lot``)."""
    return {p.split(":")[1]: _PREFIXES[p.split(":")[0]] + p.split(":")[1] for p in reads}


_CODE_IRI = _local_names((*_ATTRIBUTES, *STEP_RELATIONS, *_LOT_PROPERTIES)) | {"consumedBy": _CONSUMED_BY}


_TYPE, _ID, _LABEL = RDF + "type", DCTERMS + "identifier", RDFS + "label"
_MATERIAL, _PRODUCT, _SUPPLIER, _START = PKG + "material", PKG + "product", PKG + "supplier", PKG + "startTime"
_LOT_STATUS, _BATCH_STATUS, _MATERIAL_KIND = PKG + "lotStatus", PKG + "status", PKG + "materialKind"
_REFS = (_MATERIAL, _PRODUCT, _SUPPLIER)
_NO_NAMES: dict[str, str] = {}
_BATCH, _LOT = PKG + "Batch", PKG + "MaterialLot"
#: step triple (s, p, o) with both ends reached -> edge in material-flow order, and its name
_STEPS = {
    PKG + "consumed": (False, "consumed"),
    _CONSUMED_BY: (True, "consumed"),
    PKG + "produced": (True, "produced"),
    PKG + "sublotOf": (False, "sublot"),
    PKG + "assembledFrom": (False, "assembled into"),  # B2MML material lot assembly: component -> assembly
}


def _genealogy_graph(kg: KnowledgeGraph, root: str, props: dict[str, dict[str, list[str]]]) -> nx.DiGraph:
    """The DiGraph of one walk from its nodes' properties (see ``_walk_props``), nodes annotated.

    Material and supplier names come from one more small query over the few
    materials and suppliers met (joining them into the walk query costs a
    lookup per row; a VALUES query costs one per material). Written for speed: this
    Python was a tenth of an upstream trace."""
    props = {root: {}, **props}
    refs = {v for p in props.values() for k in _REFS for v in p.get(k, ())}
    names = _names(kg, refs)
    nodes = []
    edges = []
    for n, p in props.items():
        first = {k: min(v) for k, v in p.items() if k not in _STEPS}  # min: one value, the same on every run
        types = p.get(_TYPE, ())
        kind = "batch" if _BATCH in types else "lot" if _LOT in types else "other"
        material = names.get(first.get(_MATERIAL) or first.get(_PRODUCT) or "", _NO_NAMES)
        mkind = material.get(_MATERIAL_KIND)
        started = first.get(_START) if kind == "batch" else None
        status = first.get(_LOT_STATUS) or first.get(_BATCH_STATUS)
        nodes.append(
            (
                n,
                {
                    "kind": kind,
                    "id": first.get(_ID) or n.rsplit("/", 1)[-1],
                    "label": first.get(_LABEL),
                    "material": material.get(_ID),
                    "material_kind": _KIND_NAMES.get(_local(mkind)) if mkind else None,
                    "supplier": names.get(first.get(_SUPPLIER) or "", _NO_NAMES).get(_LABEL),
                    "status": _status(status),
                    "start": _utc(started) if started else None,
                },
            )
        )
        for step, (forward, rel) in _STEPS.items():
            for o in p.get(step, ()):
                if o in props:
                    edges.append((n, o, {"rel": rel}) if forward else (o, n, {"rel": rel}))
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)  # at once: networkx clears its caches on every add
    graph.add_edges_from(edges)
    return graph


def _names(kg: KnowledgeGraph, refs: Iterable[str]) -> dict[str, dict[str, str]]:
    """Business id, label and material kind of a few referenced nodes (materials, suppliers, customers).

    Kept in ``kg.cache`` (emptied on every write; never kept for remote
    stores): this master data is shared by every trace, and the query costs
    a millisecond, a fifth of an upstream trace."""
    cache: dict[str, dict[str, str]] = kg.cache.setdefault("trace.names", {})
    wanted = set(refs)
    missing = sorted(wanted - cache.keys())
    if missing:
        found: dict[str, dict[str, str]] = {m: {} for m in missing}
        for r in kg.rows(
            f"SELECT ?m ?p ?o WHERE {{ VALUES ?m {{ {_values(missing)} }} ?m ?p ?o "
            "FILTER(?p IN (dcterms:identifier, rdfs:label, pkg:materialKind)) }"
        ):
            found[r["m"]][r["p"]] = r["o"]
        cache.update(found)
    return {m: cache[m] for m in wanted}


def _identifiers(kg: KnowledgeGraph, iris: Iterable[str]) -> dict[str, str]:
    """Business ids of many nodes (lots reached): one VALUES query, not cached like ``_names``' master data."""
    wanted = sorted(set(iris))
    if not wanted:
        return {}
    rows = kg.rows(f"SELECT ?x ?id WHERE {{ VALUES ?x {{ {_values(wanted)} }} ?x dcterms:identifier ?id }}")
    return {r["x"]: r["id"] for r in rows}


def _local(iri: str) -> str:
    return iri.rsplit("#", 1)[-1]


def _status(iri: str | None) -> str | None:
    """pkg:Released -> "released" (lot and batch statuses are IRIs)."""
    return _local(iri).lower() if iri else None


def _add_details(kg: KnowledgeGraph, graph: nx.DiGraph) -> None:
    """Equipment and deviations of the batches, out-of-specification results of lots and batches.

    Separate VALUES queries, and the spec comparison in Python: oxigraph plans
    a UNION of them, or a FILTER over the OPTIONAL spec limits, as a scan of
    the whole store (seconds instead of milliseconds)."""
    nodes = list(graph.nodes)
    batches = [n for n in nodes if graph.nodes[n]["kind"] == "batch"]
    found: dict[tuple[str, str], set[str]] = {}
    for r in kg.rows(
        f"""SELECT ?n ?v ?x ?lo ?hi WHERE {{ VALUES ?n {{ {_values(nodes)} }}
  ?r pkg:lot|pkg:batch ?n ; pkg:attribute ?a ; pkg:value ?x ; dcterms:identifier ?v .
  OPTIONAL {{ ?a pkg:specLow ?lo }} OPTIONAL {{ ?a pkg:specHigh ?hi }} }}"""
    ):
        if _out_of_spec(r):
            found.setdefault((r["n"], "oos"), set()).add(r["v"])
    if batches:
        values = _values(batches)
        for col, q in (
            (
                "equipment",
                f"SELECT ?n ?v WHERE {{ VALUES ?n {{ {values} }} ?n pkg:usedEquipment/dcterms:identifier ?v }}",
            ),
            (
                "deviations",
                f"SELECT ?n ?v WHERE {{ VALUES ?n {{ {values} }} ?d pkg:batch ?n ; a pkg:Deviation ; dcterms:identifier ?v }}",
            ),
        ):
            for r in kg.rows(q):
                found.setdefault((r["n"], col), set()).add(r["v"])
    for n in nodes:
        for col in LIST_COLUMNS:
            if col == "oos" or graph.nodes[n]["kind"] == "batch":
                graph.nodes[n][col] = sorted(found.get((n, col), ()))


def _out_of_spec(row: dict[str, str]) -> bool:
    """Whether a result row's value lies outside its attribute's spec limits (a limit may be one-sided)."""
    try:
        x = float(row["x"])
        return ("lo" in row and x < float(row["lo"])) or ("hi" in row and x > float(row["hi"]))
    except ValueError:
        return False


@dataclass(frozen=True)
class RecallScope:
    """What a recall of suspect lots would have to cover."""

    suspect_lots: pd.DataFrame
    finished_lots: pd.DataFrame
    shipments: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        """Finished lots with where they went (one row per shipment, or per lot when unshipped)."""
        return self.finished_lots.merge(self.shipments, on="lot", how="left")

    def _repr_html_(self) -> str:
        markets = sorted(self.shipments["market"].dropna().unique()) if len(self.shipments) else []
        head = (
            f"<b>Recall scope</b>: {len(self.suspect_lots)} suspect lot(s) reach {len(self.finished_lots)} "
            f"finished lot(s), {len(self.shipments)} shipment(s) to {self.shipments['customer'].nunique() if len(self.shipments) else 0} "
            f"customer(s) in {', '.join(markets) or 'no market'}"
        )
        return f"<p>{head}</p>" + self.to_frame().head(200).to_html(index=False, na_rep="")


def recall_scope(
    kg: KnowledgeGraph,
    *,
    lots: Sequence[str] = (),
    supplier: str | None = None,
    material: str | None = None,
    received_from: str | None = None,
    received_to: str | None = None,
) -> RecallScope:
    """Finished-goods lots reached by suspect lots, with quantities and shipments.

    Suspect lots are ``lots`` (business ids or IRIs) plus, when ``supplier``
    (the name as written in lots.csv) or ``material`` is given, every lot of
    that supplier/material received in [received_from, received_to).

    Queries over many nodes are split across two threads: pyoxigraph (and an
    HTTP store) answers them outside the GIL, so the halves overlap.
    """
    columns = ["lot", "material", "supplier", "received"]
    empty_lots = pd.DataFrame(columns=["lot", "material", "quantity", "unit", "status", "via"])
    empty_ship = pd.DataFrame(columns=["lot", "customer", "market", "shipped_quantity", "shipped_unit", "shipped"])
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="pharmakg-recall") as pool:
        found = pd.DataFrame(columns=["l", *columns])
        if supplier is not None or material is not None:
            found = _suspects_by(kg, supplier, material, received_from, received_to, pool)
        named = {kg.resolve(x) for x in lots} - set(found["l"])
        # after the first query: a read-only store has by then seen the latest commit, and kg.cache with it
        linked = pool.submit(_shipments_linked, kg)
        if named:
            found = pd.concat([found, _suspect_rows(kg, sorted(named))], ignore_index=True)
        suspect_frame = found[columns].sort_values("lot").reset_index(drop=True)
        reached = _finished_reached(kg, set(found["l"]), pool)
        names = dict(zip(found["l"], found["lot"], strict=True))
        via: dict[str, set[str]] = {}
        for root, finished_lots in reached.items():
            for f in finished_lots:
                via.setdefault(f, set()).add(names.get(root, root))
        if not via:
            return RecallScope(suspect_frame, empty_lots, empty_ship)
        finished, shipments = _finished_and_shipped(kg, via, pool, linked.result())
    return RecallScope(suspect_frame, finished, shipments)


def _suspect_rows(kg: KnowledgeGraph, lots: Sequence[str]) -> pd.DataFrame:
    """IRI ``l``, business id, material id, supplier name and received date of the lots."""
    return kg.query(
        f"""SELECT ?l ?lot ?material ?supplier ?received WHERE {{ VALUES ?l {{ {_values(lots)} }}
  ?l dcterms:identifier ?lot . OPTIONAL {{ ?l pkg:material/dcterms:identifier ?material }}
  OPTIONAL {{ ?l pkg:supplier/rdfs:label ?supplier }} OPTIONAL {{ ?l pkg:receivedDate ?received }} }}"""
    )


def _suspects_by(
    kg: KnowledgeGraph,
    supplier: str | None,
    material: str | None,
    received_from: str | None,
    received_to: str | None,
    pool: ThreadPoolExecutor | None = None,
) -> pd.DataFrame:
    """The lots of a supplier and/or material received in the window, with their recall columns.

    With a window, the received dates are scanned first (one index range:
    ~60 ms for 81 000 lots) and only then the supplier and material tested,
    in a subquery so oxigraph keeps that order: the other way round looks up
    the date of each of a busy supplier's 13 000 lots (0.25 s). Dates and
    date-times (what ingest writes) compare as typed values, each against
    bounds of its own type; testing the datatype first (``DATATYPE()``, or
    ``STR()`` for a lexical comparison) made the scan three times slower.
    The window is widened by a day or more each way, as a date-time without
    time zone is only ordered against one with a zone 14 hours apart; the
    exact test is done on the rows in pandas. The columns come from a second
    query over the few lots found.

    The supplier and material are looked up first, so each lot in the window costs
    one lookup for them, not two (by way of the supplier's name). The date scan runs in
    two halves of the named graphs (every triple is in one: docs/design.md), the second on
    the pool: oxigraph keeps an index by graph, so each half reads only its graphs'
    dates. On the 100 000-batch plant (81 000 lots in 20 graphs) the scan took 84 ms
    over the union and 45 ms over half the graphs; the suspects 101 -> 80 ms (medians
    of ten, interleaved). A store of one graph scans it whole, as before.
    """
    conds = []
    for prop, name, value in (
        ("pkg:supplier", "rdfs:label", supplier),
        ("pkg:material", "dcterms:identifier", material),
    ):
        if value is not None:
            iris = [r["x"] for r in kg.rows(f"SELECT DISTINCT ?x WHERE {{ ?x {name} {sparql_string(value)} }}")]
            conds.append(f"VALUES ?{prop[4:]} {{ {_values(iris)} }} ?l {prop} ?{prop[4:]} .")
    window = None
    if received_from is not None or received_to is not None:
        as_time, as_date = [], []
        for op, value, margin in ((">=", received_from, -1), ("<", received_to, 2)):
            if value is not None:  # a whole day's margin or more: a date-time without zone is +-14 h
                day = (_utc(value) + pd.Timedelta(days=margin)).date()
                as_time.append(f'?r {op} "{day}T00:00:00Z"^^xsd:dateTime')
                as_date.append(f'?r {op} "{day}"^^xsd:date')
        window = f"({' && '.join(as_time)}) || ({' && '.join(as_date)})"
    if window is None:
        hits = sorted({r["l"] for r in kg.rows(f"SELECT ?l WHERE {{ {' '.join(conds)} }}")})
    else:

        def scan(graphs: Sequence[str]) -> list[str]:
            dated = f"?l pkg:receivedDate ?r FILTER({window})"
            if graphs:  # none listed (an engine that lists no graphs): the union, whole
                dated = f"VALUES ?g {{ {_values(graphs)} }} GRAPH ?g {{ {dated} }}"
            return [
                r["l"] for r in kg.rows(f"SELECT ?l WHERE {{ {{ SELECT ?l WHERE {{ {dated} }} }} {' '.join(conds)} }}")
            ]

        hits = sorted(set(_split(pool, _named_graphs(kg), scan, at=2)))
    found = _suspect_rows(kg, hits) if hits else pd.DataFrame(columns=["l", "lot", "material", "supplier", "received"])
    if received_from is None and received_to is None:
        return found
    when = pd.to_datetime(found["received"], utc=True, errors="coerce")
    mask = pd.Series(True, index=found.index)
    if received_from is not None:
        mask &= when >= _utc(received_from)
    if received_to is not None:
        mask &= when < _utc(received_to)
    return found[mask.fillna(False)].reset_index(drop=True)


def _named_graphs(kg: KnowledgeGraph) -> list[str]:
    """The store's named graphs (kept in ``kg.cache``)."""
    return kg.cached(
        "trace.graphs", lambda: sorted(r["g"] for r in kg.rows("SELECT DISTINCT ?g WHERE { GRAPH ?g { } }"))
    )


#: below this many nodes a VALUES query runs whole; above, in halves on two threads
_SPLIT_AT = 64
_WALK_SPLIT_AT = 16


def _split(
    pool: ThreadPoolExecutor | None,
    nodes: Sequence[str],
    run: Callable[[Sequence[str]], list[T]],
    at: int | None = None,
) -> list[T]:
    """``run(nodes)``, from ``at`` (default ``_SPLIT_AT``) nodes on as two halves: the second on the pool while this thread runs the first.

    pyoxigraph (and an HTTP store) answers outside the GIL, so the halves overlap.
    Measured on the 100 000-batch plant: a query over 1 029 lots took 0.32 s
    whole and 0.16-0.21 s in two halves, and a whole recall scope 0.82 s
    unsplit against 0.45-0.65 s split (medians of eight interleaved runs).
    Call it from the thread that owns the pool, never from one of its tasks
    (a task waiting on a task can deadlock)."""
    if pool is None or len(nodes) < (_SPLIT_AT if at is None else at):
        return run(nodes)
    half = len(nodes) // 2
    try:
        second = pool.submit(run, nodes[half:])
    except RuntimeError:  # the interpreter is shutting down (executors refuse new work): read it whole
        return run(nodes)
    return run(nodes[:half]) + second.result()


def _keyed_query(select: str, where: str, nodes: Sequence[str]) -> str:
    """``SELECT ?k {select} WHERE {where}``, ``{values}`` in ``where`` replaced by ``VALUES (?n ?k)``
    rows giving each node its position in ``nodes``."""
    keyed = " ".join(f"(<{n}> {i})" for i, n in enumerate(nodes))
    return f"SELECT ?k {select} WHERE {{ {where.replace('{values}', f'VALUES (?n ?k) {{ {keyed} }}')} }}"


_WALK_POOL: list[ThreadPoolExecutor] = []
_WALK_IDLE = threading.Semaphore()  # held by the walk whose second half the worker reads
os.register_at_fork(after_in_child=_WALK_POOL.clear)  # a forked child has the pool but not its thread


def _walk_pool() -> ThreadPoolExecutor:
    """The thread that reads the second half of a big walk, kept for the next walk.

    Starting one per walk cost ~0.1-0.3 ms: 200 downstream walks at 100 000 batches,
    interleaved, p50 7.4 -> 6.6 ms and p95 12.9 -> 10.7 ms. Walks from several threads
    share it, one at a time (``_WALK_IDLE``): a walk that finds it busy is read whole
    rather than queue its second half behind another caller's."""
    if not _WALK_POOL:
        _WALK_POOL.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="pharmakg-trace"))
    return _WALK_POOL[0]


def _node_table(
    kg: KnowledgeGraph,
    pool: ThreadPoolExecutor | None,
    nodes: Sequence[str],
    select: str,
    where: str,
    at: int | None = None,
) -> list[tuple[str, dict[str, str]]]:
    """Rows of ``SELECT ?k {select} WHERE {where}`` over the nodes, each paired with its node.

    ``{values}`` in ``where`` stands for ``VALUES (?n ?k) {...}``: ``?n`` is the node,
    ``?k`` its position, which the rows carry instead of the node. oxigraph decodes every
    IRI of every row from RocksDB (~6-12 us each on the 2-core test machine), where a small
    integer is kept inline: 300 nodes of a recall's reach read in 18.6 ms keyed against
    21.5 ms with the node's IRI on each row. Split across the pool as ``_split`` does."""

    def run(part: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
        rows = kg.rows(_keyed_query(select, where, part))
        return [(part[int(r.pop("k"))], r) for r in rows]

    return _split(pool, nodes, run, at)


def _shipments_linked(kg: KnowledgeGraph) -> bool:
    """Whether every shipment has its lot's ``pkg:shippedIn`` link (ingest writes one per shipment row).

    A store loaded by an earlier pharmakg, or shipments loaded as RDF without
    the link, make a recall fall back to finding shipments among all the
    records naming a lot, which is slower but complete. Two counts (two index
    scans, ~0.1 s at 160 000 shipments), kept in ``kg.cache`` until the next
    write (a remote store counts on every recall).
    """

    def count() -> bool:
        row = kg.rows(
            "SELECT ?shipments ?links WHERE { { SELECT (COUNT(*) AS ?shipments) WHERE { ?r a pkg:Shipment } } "
            "{ SELECT (COUNT(*) AS ?links) WHERE { ?f pkg:shippedIn ?r } } }"
        )[0]
        return row["shipments"] == row["links"]

    return kg.cached("trace.shipments_linked", count)


def _finished_and_shipped(
    kg: KnowledgeGraph, via: dict[str, set[str]], pool: ThreadPoolExecutor, linked: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The finished lots found (quantity from the lot, else its production record) and their shipments.

    Shipments come through each lot's ``pkg:shippedIn`` links when ``linked``
    (one index range per lot); a shipment whose own ``pkg:lot`` names another
    lot (moved by an update, its link left behind) is not this lot's. Otherwise they are picked among the records
    naming the lot by type, with ``a ?t FILTER(?t IN (...))``: a constant
    class instead makes oxigraph scan every shipment first (2 s instead of
    35 ms for 70 lots at 3 000 batches; 74 s at 100 000), and the per-record
    type lookups (a lot has five test results and a sample per shipment)
    cost 0.2 s for 1 029 lots at 100 000 batches. The record test is a
    subquery so each record's values are read only once it passed.

    A link whose shipment names another lot is stale (an update moved the shipment
    and left the link): the shipment counts for the lot it names, when that one is in
    scope. A shipment comes as one row with its values as columns (OPTIONAL each; two
    values of one property, which SHACL rejects, make two rows): its IRI is never
    decoded. Concatenating each property's values per record (GROUP BY) was half
    as fast again (500 lots, 775 shipments: 85 ms against 131 ms), and reading the
    records first, then their triples, 81 ms against 68 ms. The lots come
    one row per triple, keyed (36 ms for 500 lots against 55 ms with a column per
    property: one index range per lot instead of a lookup per property).
    Production records are read only for the lots that carry no quantity
    themselves. Each query runs in two halves, the second on the pool.
    """
    finished_iris = sorted(via)

    def records_about(kind: str, lots: Sequence[str], select: str, columns: str) -> list[tuple[str, dict[str, str]]]:
        """``select`` of the records of one class naming the lots (``columns``: patterns over the record ``?r``).

        A shipment must name the lot the link came from: a link left behind when an update
        moved the shipment to another lot is stale."""
        if kind == "Shipment" and linked:  # ?moved: the lot the shipment names instead (decoded only then)
            match, select = (
                '?n pkg:shippedIn ?r . ?r pkg:lot ?to BIND(IF(?to = ?n, "", ?to) AS ?moved)',
                f"{select} ?moved",
            )
        else:
            match = f"?r pkg:lot ?n ; a ?t FILTER(?t IN (pkg:{kind}))"
        where = f"{{ SELECT ?n ?k ?r ?moved WHERE {{ {{values}} {match} }} }} {columns}"
        rows = _node_table(kg, pool, lots, select, where)
        wanted = set(lots)
        return [(r.pop("moved", n), r) for n, r in rows if r.get("moved", n) in wanted]

    lot_rows = _node_table(kg, pool, finished_iris, "?p ?o", f"{{values}} {_triples(_LOT_PROPERTIES)}")
    shipped = records_about(
        "Shipment",
        finished_iris,
        "?customer ?market ?shipped_quantity ?shipped_unit ?shipped",
        "OPTIONAL { ?r pkg:customer ?customer } OPTIONAL { ?r pkg:market ?market } "
        "OPTIONAL { ?r pkg:quantity ?shipped_quantity } OPTIONAL { ?r pkg:unit ?shipped_unit } "
        "OPTIONAL { ?r pkg:shippedDate ?shipped }",
    )
    # a lot without a business id cannot be named in a recall (nor told from another)
    # each property's least value, the same on every run (two quantities of one lot are bad data, which SHACL rejects)
    lots = {f: {k: min(v) for k, v in p.items()} for f, p in _grouped(lot_rows).items() if _ID in p}
    unmeasured = [f for f, p in lots.items() if PKG + "quantity" not in p]
    made: dict[str, dict[str, str]] = {}
    if unmeasured:  # one whole record per lot (the least, for a lot made by several), not columns of several
        for f, r in records_about(
            "MaterialProduction",
            unmeasured,
            "?quantity ?unit",
            "?r pkg:quantity ?quantity OPTIONAL { ?r pkg:unit ?unit }",
        ):
            if f not in made or (r["quantity"], r.get("unit", "")) < (made[f]["quantity"], made[f].get("unit", "")):
                made[f] = r
    names = _names(
        kg,
        {r["customer"] for _, r in shipped if "customer" in r}
        | {p[PKG + "material"] for p in lots.values() if PKG + "material" in p},
    )
    finished_rows = []
    for f, p in lots.items():
        own = {k.removeprefix(PKG): v for k, v in p.items() if k in (PKG + "quantity", PKG + "unit")}
        q = own if "quantity" in own else made.get(f, {})
        finished_rows.append(
            {
                "lot": p[_ID],
                "material": names.get(p.get(PKG + "material", ""), {}).get(_ID),
                "quantity": float(q["quantity"]) if "quantity" in q else None,
                "unit": q.get("unit"),
                "status": _status(p.get(PKG + "lotStatus")),
                "via": " ".join(sorted(via.get(f, ()))),
            }
        )
    finished = pd.DataFrame(finished_rows, columns=["lot", "material", "quantity", "unit", "status", "via"])
    finished = finished.sort_values("lot").drop_duplicates("lot").reset_index(drop=True)
    ship_rows = [
        {
            "lot": lots[f][_ID],
            "customer": names.get(r.get("customer", ""), {}).get(_LABEL),
            "market": r.get("market"),
            "shipped_quantity": float(r["shipped_quantity"]) if "shipped_quantity" in r else None,
            "shipped_unit": r.get("shipped_unit"),
            "shipped": r.get("shipped"),
        }
        for f, r in shipped
        if f in lots
    ]
    shipments = pd.DataFrame(
        ship_rows, columns=["lot", "customer", "market", "shipped_quantity", "shipped_unit", "shipped"]
    )
    shipments["shipped"] = pd.to_datetime(shipments["shipped"], utc=True, format="ISO8601")
    shipments = shipments.sort_values(["lot", "shipped"]).drop_duplicates().reset_index(drop=True)
    return finished, shipments


def _finished_reached(
    kg: KnowledgeGraph, roots: Iterable[str], pool: ThreadPoolExecutor | None = None
) -> dict[str, set[str]]:
    """The drug-product lots downstream of each root lot or batch (a root that is one counts too).

    One property path from every root, lot to lot (``^pkg:consumed/pkg:produced``: through a
    batch that consumed it and produced them; sublots and assembly components too when the
    store has any), keyed by the root's position and kept to lots of a drug product by
    their material, in two halves on two threads. On the 100 000-batch plant a busy
    supplier's year (134 lots -> 1 176 root/lot pairs) took 0.4-0.66 s as one path per root
    that tested every node it met, batches included; 0.15-0.17 s as a walk of all roots at
    once, one VALUES query per level (each level's lots decoded, then looked up again as the
    next level's VALUES, and their materials decoded); 0.10 s this way, where only the
    finished lots found are decoded. Roots that share descendants walk them each: a recall's
    suspects rarely do. The materials are matched against the store's drug products, listed
    in the query (up to ``_PRODUCTS_INLINE``: 106 ms against 123 ms looking up each
    material's kind).
    """
    roots = sorted(set(roots))
    if not roots:
        return {}
    used = [s for s in _step_relations(kg) if s not in ("pkg:consumed", "pkg:produced")]
    step = "|".join(["^pkg:consumed/pkg:produced", *(f"^{p}" for p in used)])
    products = _drug_products(kg)
    if len(products) <= _PRODUCTS_INLINE:
        finished = f"FILTER(?m IN ({', '.join(f'<{m}>' for m in products)}))"
    else:
        finished = ". ?m pkg:materialKind pkg:DrugProduct"
    where = f"{{values}} ?n (pkg:produced?)/({step})* ?y . ?y pkg:material ?m {finished}"  # a root may be a batch
    reached: dict[str, set[str]] = {}
    for root, r in _node_table(kg, pool, roots, "?y", where):
        reached.setdefault(root, set()).add(r["y"])
    return reached


#: a store with more drug products than this has them looked up rather than listed in each query
_PRODUCTS_INLINE = 256


def _drug_products(kg: KnowledgeGraph) -> list[str]:
    """The materials of kind pkg:DrugProduct (kept in ``kg.cache``)."""
    return kg.cached(
        "trace.products",
        lambda: sorted(r["m"] for r in kg.rows("SELECT ?m WHERE { ?m pkg:materialKind pkg:DrugProduct }")),
    )


def _utc(value: str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def batches_on(
    kg: KnowledgeGraph,
    equipment: str,
    *,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    by_class: bool = False,
    fed_into: bool = True,
) -> pd.DataFrame:
    """Batches that ran on a unit (or any unit of its equipment class), the lots they produced
    and, with ``fed_into``, the finished-goods lots those lots went into (the question after
    an equipment failure or a calibration found out of tolerance).

    ``equipment`` is an equipment id, or with ``by_class`` an equipment class
    as written in equipment.csv. Units below the one named (its equipment and
    control modules) count as the unit. ``start``/``end`` keep batches that
    started in [start, end).
    """
    if by_class:
        match = f"?e pkg:equipmentClass {sparql_string(equipment)} . ?u pkg:partOf* ?e ."
    else:
        match = f"?u pkg:partOf* <{kg.resolve(equipment)}> ."
    window = ""
    if start is not None:
        window += f' FILTER(?start >= "{_utc(start).isoformat()}"^^xsd:dateTime)'
    if end is not None:
        window += f' FILTER(?start < "{_utc(end).isoformat()}"^^xsd:dateTime)'
    frame = kg.query(
        f"""SELECT ?b ?batch ?equipment ?start ?end (GROUP_CONCAT(DISTINCT ?lot_id; separator=" ") AS ?produced) WHERE {{
  {match}
  ?b pkg:usedEquipment ?u ; dcterms:identifier ?batch . ?u dcterms:identifier ?equipment .
  OPTIONAL {{ ?b pkg:startTime ?start }} OPTIONAL {{ ?b pkg:endTime ?end }} {window}
  OPTIONAL {{ ?b pkg:produced/dcterms:identifier ?lot_id }}
}} GROUP BY ?b ?batch ?equipment ?start ?end ORDER BY ?start ?batch"""
    )
    if fed_into:
        reached = _finished_reached(kg, set(frame["b"])) if len(frame) else {}
        ids = _identifiers(kg, set().union(*reached.values()))
        frame["fed_into"] = [" ".join(sorted(ids[f] for f in reached.get(b, ()) if f in ids)) for b in frame["b"]]
    return frame.drop(columns="b").reset_index(drop=True)


def mass_balance(
    kg: KnowledgeGraph,
    batches: Sequence[str] = (),
    *,
    min_yield: float = 0.90,
    max_yield: float = 1.02,
) -> pd.DataFrame:
    """Inputs vs outputs per batch, and whether the reconciliation closes.

    Quantities are summed per unit as stored (kg for mass, L for volume, 1 for
    counts). ``yield`` is output / input when both are in the same unit;
    a batch ``closes`` when its yield lies in [min_yield, max_yield].
    Batches whose inputs or outputs lack quantities, or are in different
    units (tablets out, kilograms in), get ``closes`` = None and a ``note``
    rather than a guess. ``batches`` limits the check (business ids or IRIs).
    """
    only = f"VALUES ?b {{ {_values(kg.resolve(b) for b in batches)} }}" if batches else ""
    inputs = kg.rows(
        f"SELECT ?b ?unit (SUM(?q) AS ?qty) (COUNT(?c) AS ?n) WHERE {{ {only} ?c a pkg:MaterialConsumption ; pkg:batch ?b . "
        "OPTIONAL { ?c pkg:quantity ?q ; pkg:unit ?unit } } GROUP BY ?b ?unit"
    )
    outputs = kg.rows(
        f"SELECT ?b ?unit (SUM(?q) AS ?qty) (COUNT(?p) AS ?n) WHERE {{ {only} ?p a pkg:MaterialProduction ; pkg:batch ?b . "
        "OPTIONAL { ?p pkg:quantity ?q ; pkg:unit ?unit } } GROUP BY ?b ?unit"
    )
    ids = {
        r["b"]: r["id"] for r in kg.rows(f"SELECT ?b ?id WHERE {{ {only} ?b a pkg:Batch ; dcterms:identifier ?id }}")
    }
    per: dict[str, dict[str, object]] = {
        b: {"batch": i, "inputs": {}, "outputs": {}, "missing": False} for b, i in ids.items()
    }
    for side, rows in (("inputs", inputs), ("outputs", outputs)):
        for r in rows:
            entry = per.setdefault(
                r["b"], {"batch": r["b"].rsplit("/", 1)[-1], "inputs": {}, "outputs": {}, "missing": False}
            )
            if "unit" not in r:
                entry["missing"] = True
                continue
            entry[side][r["unit"]] = float(r.get("qty", 0.0))  # type: ignore[index]
    records = []
    for entry in per.values():
        ins: dict[str, float] = entry["inputs"]  # type: ignore[assignment]
        outs: dict[str, float] = entry["outputs"]  # type: ignore[assignment]
        common = set(ins) & set(outs)
        note = ""
        yld = None
        closes: bool | None = None
        if not ins or not outs:
            note = "no quantities recorded on one side"
        elif len(common) == 1 and len(ins) == 1 and len(outs) == 1:
            unit = common.pop()
            yld = outs[unit] / ins[unit] if ins[unit] else None
            closes = None if yld is None else bool(min_yield <= yld <= max_yield)
            if entry["missing"]:
                note = "some rows have no quantity"
        else:
            note = f"inputs in {', '.join(sorted(ins))}, outputs in {', '.join(sorted(outs))}: not comparable"
        records.append(
            {
                "batch": entry["batch"],
                "inputs": "; ".join(f"{v:g} {u}" for u, v in sorted(ins.items())),
                "outputs": "; ".join(f"{v:g} {u}" for u, v in sorted(outs.items())),
                "yield": yld,
                "closes": closes,
                "note": note,
            }
        )
    frame = pd.DataFrame(records, columns=["batch", "inputs", "outputs", "yield", "closes", "note"])
    return frame.sort_values("batch").reset_index(drop=True)
