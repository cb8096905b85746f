"""SHACL validation: fast compiled checks on staged data, full pyshacl on demand (layer L3).

Two engines, one report type:

* ``compiled`` compiles the shapes of ontology/shapes.ttl (a deliberate subset
  of SHACL Core: targetClass, single-IRI paths, min/maxCount, datatype, class,
  in, nodeKind, min/maxInclusive) into vectorised DataFrame joins over the
  staged triples (see ``_shacl_frame``). Ingest uses it: on a million triples
  it costs about a second, where pyshacl costs minutes.
* ``pyshacl`` runs the reference implementation over the whole store; that
  is what ``pharmakg validate`` does. A test checks both engines agree on the
  demo plant and on broken data.
"""

from __future__ import annotations

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
    "check_triples",
    "compile_shapes",
    "ntriples_frame",
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
    engine: str = "compiled"
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


@lru_cache(maxsize=1)
def _subclass_pairs() -> tuple[tuple[str, str], ...]:
    """(class, superclass) for every rdfs:subClassOf+ pair of the ontology: the SHACL 'instance of'."""
    store = ox.Store()
    store.load(path=str(ONTOLOGY_PATH), format=ox.RdfFormat.TURTLE)
    q = f"SELECT DISTINCT ?c ?sup WHERE {{ ?c <{T.subClassOf}>+ ?sup FILTER(isIRI(?c) && isIRI(?sup)) }}"
    result = store.query(q)
    assert isinstance(result, ox.QuerySolutions)
    pairs = {(row["c"].value, row["sup"].value) for row in result}
    named = store.query(f"SELECT DISTINCT ?c WHERE {{ ?c a <{T.OWL}Class> FILTER(isIRI(?c)) }}")
    assert isinstance(named, ox.QuerySolutions)
    classes = {c for pair in pairs for c in pair} | {row["c"].value for row in named}
    return tuple(sorted(pairs | {(c, c) for c in classes}))


def check_triples(
    staged: pd.DataFrame,
    context: pd.DataFrame | None = None,
    refs: pd.DataFrame | None = None,
    *,
    limit: int = 20,
    shapes_path: Path = SHAPES_PATH,
) -> ValidationReport:
    """The compiled engine over triple tables (columns s, p, o as N-Triples terms).

    ``staged`` is judged; ``context`` (the store's triples about staged subjects)
    completes their descriptions; ``refs`` (types of referenced nodes) only
    answers sh:class. ``shapes_path`` names another shapes file (a package's own copy).
    """
    from ._shacl_frame import check_frames

    empty = pd.DataFrame(columns=["s", "p", "o"])
    violations = check_frames(
        staged,
        context if context is not None else empty,
        refs if refs is not None else empty,
        compile_shapes(shapes_path),
        _subclass_pairs(),
        limit=limit,
    )
    return ValidationReport(
        conforms=not violations,
        violations=tuple(violations),
        engine="compiled",
        checked_nodes=int(staged["s"].nunique()),
    )


def ntriples_frame(data: bytes) -> pd.DataFrame:
    """Parse N-Triples into a table of N-Triples terms (for checking a whole store)."""
    rows = [(str(t.subject), str(t.predicate), str(t.object)) for t in ox.parse(data, format=ox.RdfFormat.N_TRIPLES)]
    return pd.DataFrame(rows, columns=["s", "p", "o"])


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
