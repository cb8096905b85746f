"""SHACL validation: fast compiled checks on staged data, full pyshacl on demand (layer L3).

Two engines, one report type:

* ``sparql`` compiles the shapes of ontology/shapes.ttl (a deliberate subset of
  SHACL Core: targetClass, single-IRI paths, min/maxCount, datatype, class,
  in, nodeKind, min/maxInclusive) into one SPARQL query per constraint and runs
  them on an in-memory pyoxigraph store holding only the staged data and the
  context it needs. Ingest uses it: on a million triples it costs seconds,
  where pyshacl costs minutes.
* ``pyshacl`` runs the reference implementation over the whole store; that
  is what ``pharmakg validate`` does. A test checks both engines agree on the
  demo plant and on broken data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import pyoxigraph as ox

from . import terms as T

__all__ = [
    "ONTOLOGY_PATH",
    "SHAPES_PATH",
    "ValidationReport",
    "Violation",
    "check_staged",
    "compile_shapes",
    "run_pyshacl",
]


def _ontology_dir() -> Path:
    """ontology/ of a source checkout, or the copy installed inside the package."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "ontology", here / "_ontology"):
        if (candidate / "pharmakg.ttl").exists():
            return candidate
    return Path(str(resources.files("pharmakg") / "_ontology"))


ONTOLOGY_PATH = _ontology_dir() / "pharmakg.ttl"
SHAPES_PATH = _ontology_dir() / "shapes.ttl"

STAGED = "urn:pharmakg:staged"
CONTEXT = "urn:pharmakg:context"


@dataclass(frozen=True)
class Violation:
    """One failed constraint on one focus node."""

    focus: str
    path: str
    constraint: str
    message: str
    value: str | None = None
    shape: str | None = None

    def __str__(self) -> str:
        val = f" (value {self.value})" if self.value is not None else ""
        return f"<{self.focus}> {_local(self.path)}: {self.message}{val}"


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of a SHACL run: conforms, and every violation found."""

    conforms: bool
    violations: tuple[Violation, ...] = ()
    engine: str = "sparql"
    checked_nodes: int | None = None
    text: str = field(default="", repr=False)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [(v.focus, _local(v.path), v.constraint, v.value, v.message) for v in self.violations],
            columns=["focus", "path", "constraint", "value", "message"],
        )

    def _repr_html_(self) -> str:
        head = "conforms" if self.conforms else f"{len(self.violations)} violation(s)"
        table = "" if self.conforms else self.to_frame().head(50).to_html(index=False)
        return f"<b>SHACL ({self.engine}): {head}</b>{table}"


def _local(iri: str) -> str:
    return iri.rsplit("#", 1)[-1].rsplit("/", 1)[-1]


@dataclass(frozen=True)
class _Constraint:
    shape: str
    target: str
    path: str
    kind: str
    arg: Any
    message: str


@lru_cache(maxsize=4)
def compile_shapes(shapes_path: Path = SHAPES_PATH) -> tuple[_Constraint, ...]:
    """Read the supported SHACL subset out of the shapes file (cached)."""
    store = ox.Store()
    store.load(path=str(shapes_path), format=ox.RdfFormat.TURTLE)
    q = f"""
    PREFIX sh: <{T.SH}>
    SELECT ?shape ?target ?path ?minCount ?maxCount ?datatype ?class ?nodeKind ?minInc ?maxInc ?message
           (GROUP_CONCAT(STR(?in); separator=" ") AS ?ins) (COUNT(?in) AS ?nin)
    WHERE {{
      ?shape sh:targetClass ?target ; sh:property ?prop .
      ?prop sh:path ?path .
      OPTIONAL {{ ?prop sh:minCount ?minCount }}
      OPTIONAL {{ ?prop sh:maxCount ?maxCount }}
      OPTIONAL {{ ?prop sh:datatype ?datatype }}
      OPTIONAL {{ ?prop sh:class ?class }}
      OPTIONAL {{ ?prop sh:nodeKind ?nodeKind }}
      OPTIONAL {{ ?prop sh:minInclusive ?minInc }}
      OPTIONAL {{ ?prop sh:maxInclusive ?maxInc }}
      OPTIONAL {{ ?prop sh:message ?message }}
      OPTIONAL {{ ?prop sh:in/<{T.RDF}rest>*/<{T.RDF}first> ?in }}
    }}
    GROUP BY ?shape ?target ?path ?prop ?minCount ?maxCount ?datatype ?class ?nodeKind ?minInc ?maxInc ?message
    """
    out: list[_Constraint] = []
    solutions = store.query(q)
    assert isinstance(solutions, ox.QuerySolutions)
    for row in solutions:
        shape, target, path = row["shape"].value, row["target"].value, row["path"].value
        msg = row["message"].value if row["message"] is not None else ""

        def add(
            kind: str,
            arg: Any,
            default: str,
            shape: str = shape,
            target: str = target,
            path: str = path,
            msg: str = msg,
        ) -> None:
            out.append(_Constraint(shape, target, path, kind, arg, msg or default))

        if row["minCount"] is not None:
            add("minCount", int(row["minCount"].value), f"needs at least {row['minCount'].value} value(s)")
        if row["maxCount"] is not None:
            add("maxCount", int(row["maxCount"].value), f"takes at most {row['maxCount'].value} value(s)")
        if row["datatype"] is not None:
            add("datatype", row["datatype"].value, f"value must be of type {_local(row['datatype'].value)}")
        if row["class"] is not None:
            add("class", row["class"].value, f"value must be a {_local(row['class'].value)}")
        if row["nodeKind"] is not None:
            add("nodeKind", row["nodeKind"].value, f"value must be a {_local(row['nodeKind'].value)}")
        if row["minInc"] is not None:
            add("minInclusive", row["minInc"], f"value must be >= {row['minInc'].value}")
        if row["maxInc"] is not None:
            add("maxInclusive", row["maxInc"], f"value must be <= {row['maxInc'].value}")
        if int(row["nin"].value):
            add("in", tuple(row["ins"].value.split()), "value is not one of the allowed concepts")
    return tuple(out)


def _constraint_query(c: _Constraint, focus_graph: str | None) -> str:
    focus = f"GRAPH <{focus_graph}> {{ ?s ?_fp ?_fo }}" if focus_graph else ""
    head = f"SELECT DISTINCT ?s ?o WHERE {{ {{ SELECT DISTINCT ?s WHERE {{ {focus} ?s a/<{T.subClassOf}>* <{c.target}> }} }} "
    p = f"<{c.path}>"
    if c.kind == "minCount":
        if c.arg == 1:
            return head + f"FILTER NOT EXISTS {{ ?s {p} ?_x }} }}"
        return f"SELECT ?s (COUNT(?o) AS ?n) WHERE {{ {{ SELECT DISTINCT ?s WHERE {{ {focus} ?s a/<{T.subClassOf}>* <{c.target}> }} }} OPTIONAL {{ ?s {p} ?o }} }} GROUP BY ?s HAVING(COUNT(?o) < {c.arg})"
    if c.kind == "maxCount":
        return f"SELECT ?s (COUNT(DISTINCT ?o) AS ?n) WHERE {{ {{ SELECT DISTINCT ?s WHERE {{ {focus} ?s a/<{T.subClassOf}>* <{c.target}> }} }} ?s {p} ?o }} GROUP BY ?s HAVING(COUNT(DISTINCT ?o) > {c.arg})"
    if c.kind == "datatype":
        return head + f"?s {p} ?o FILTER(!isLITERAL(?o) || DATATYPE(?o) != <{c.arg}>) }}"
    if c.kind == "class":
        return head + f"?s {p} ?o FILTER NOT EXISTS {{ ?o a/<{T.subClassOf}>* <{c.arg}> }} }}"
    if c.kind == "nodeKind":
        test = {
            T.SH + "IRI": "isIRI(?o)",
            T.SH + "Literal": "isLITERAL(?o)",
            T.SH + "BlankNode": "isBLANK(?o)",
            T.SH + "BlankNodeOrIRI": "(isBLANK(?o) || isIRI(?o))",
            T.SH + "IRIOrLiteral": "(isIRI(?o) || isLITERAL(?o))",
            T.SH + "BlankNodeOrLiteral": "(isBLANK(?o) || isLITERAL(?o))",
        }[c.arg]
        return head + f"?s {p} ?o FILTER(!{test}) }}"
    if c.kind in ("minInclusive", "maxInclusive"):
        op = "<" if c.kind == "minInclusive" else ">"
        lit = c.arg
        bound = f'"{lit.value}"^^<{lit.datatype.value}>'
        return head + f"?s {p} ?o FILTER(!(?o {'>=' if op == '<' else '<='} {bound})) }}"
    if c.kind == "in":
        allowed = ", ".join(f"<{v}>" for v in c.arg)
        return head + f"?s {p} ?o FILTER(?o NOT IN ({allowed})) }}"
    raise ValueError(f"unsupported SHACL constraint {c.kind}")


def _run(store: ox.Store, constraints: tuple[_Constraint, ...], focus_graph: str | None, limit: int) -> list[Violation]:
    found: list[Violation] = []
    for c in constraints:
        q = _constraint_query(c, focus_graph)
        if limit:
            q += f" LIMIT {limit}"
        result = store.query(q, use_default_graph_as_union=True)
        assert isinstance(result, ox.QuerySolutions)
        body = result.serialize(format=ox.QueryResultsFormat.JSON) or b"{}"
        for row in json.loads(body)["results"]["bindings"]:
            value = row.get("o", {}).get("value") if "o" in row else None
            found.append(Violation(row["s"]["value"], c.path, c.kind, c.message, value, c.shape))
    return found


def _ontology_store_data() -> bytes:
    return ONTOLOGY_PATH.read_bytes()


def check_staged(staged_nt: bytes, context_nt: bytes, *, limit: int = 20) -> ValidationReport:
    """Validate staged N-Triples; ``context_nt`` (existing descriptions, referenced types) is read, not checked."""
    store = ox.Store()
    store.load(staged_nt, format=ox.RdfFormat.N_TRIPLES, to_graph=ox.NamedNode(STAGED))
    if context_nt:
        store.load(context_nt, format=ox.RdfFormat.N_TRIPLES, to_graph=ox.NamedNode(CONTEXT))
    store.load(_ontology_store_data(), format=ox.RdfFormat.TURTLE, to_graph=ox.NamedNode(T.ONTOLOGY_GRAPH))
    violations = _run(store, compile_shapes(), STAGED, limit)
    return ValidationReport(conforms=not violations, violations=tuple(violations), engine="sparql")


def check_store_sparql(store: ox.Store, *, limit: int = 1000) -> ValidationReport:
    """The compiled engine over a whole pyoxigraph store (its union default graph)."""
    violations = _run(store, compile_shapes(), None, limit)
    return ValidationReport(conforms=not violations, violations=tuple(violations), engine="sparql")


def run_pyshacl(data_nt: bytes) -> ValidationReport:
    """The reference engine (pyshacl) over N-Triples, with the ontology for subclass reasoning."""
    import pyshacl
    import rdflib

    data = rdflib.Graph()
    data.parse(data=data_nt.decode("utf-8"), format="nt")
    shapes = rdflib.Graph().parse(SHAPES_PATH, format="turtle")
    ont = rdflib.Graph().parse(ONTOLOGY_PATH, format="turtle")
    conforms, graph, text = pyshacl.validate(
        data, shacl_graph=shapes, ont_graph=ont, inference="none", allow_warnings=True
    )
    sh = rdflib.Namespace(T.SH)
    violations = []
    for result in graph.subjects(rdflib.RDF.type, sh.ValidationResult):
        focus = graph.value(result, sh.focusNode)
        path = graph.value(result, sh.resultPath)
        comp = graph.value(result, sh.sourceConstraintComponent)
        value = graph.value(result, sh.value)
        msg = graph.value(result, sh.resultMessage)
        violations.append(
            Violation(
                str(focus),
                str(path) if path is not None else "",
                _local(str(comp)).replace("ConstraintComponent", "") if comp is not None else "",
                str(msg) if msg is not None else "",
                str(value) if value is not None else None,
                str(graph.value(result, sh.sourceShape)),
            )
        )
    return ValidationReport(conforms=bool(conforms), violations=tuple(violations), engine="pyshacl", text=str(text))
