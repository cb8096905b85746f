"""Twins inside SPARQL: ``pkgf:predict`` and ``pkgf:twinSigma`` as extension functions.

    PREFIX pkgf: <https://w3id.org/pharmakg/function#>
    SELECT ?batch ?lod ?predicted WHERE {
      ?r pkg:attribute ?a ; pkg:batch ?b ; pkg:value ?lod . ?a dcterms:identifier "Q-GRN-LOD" .
      ?b dcterms:identifier ?batch .
      BIND(pkgf:predict("TW-DRY", ?b) AS ?predicted)
      FILTER(ABS(?lod - ?predicted) > 3 * pkgf:twinSigma("TW-DRY"))
    }

``pkgf:predict(twin, batch [, output])``: the twin's prediction (xsd:double)
for the batch from its recorded inputs, or unbound when the batch lacks an
input; ``twin`` is a twin id (its current version) or a version IRI, and
``output`` an output port name (default: the first). ``pkgf:twinSigma(twin
[, output])``: the twin's held-out RMSE, the sigma of its drift charts.

Why precompute: a query calls the function once per solution, so the first
call for a twin loads it and predicts every batch with one history read;
later calls are dictionary lookups. The cache lives for one query.
Evaluated by the embedded store and by ``pharmakg serve`` on a store folder.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyoxigraph as ox

from ..kg import FUNCTION_NAMESPACE
from ..terms import XSD
from .fitting import predict_batches
from .model import Twin

if TYPE_CHECKING:
    from ..kg import KnowledgeGraph

__all__ = ["functions"]

_DOUBLE = ox.NamedNode(XSD + "double")


def functions(kg: KnowledgeGraph) -> dict[str, Callable[..., Any]]:
    """The twin functions bound to ``kg``, with a cache that lives as long as the dict (one query)."""
    twins: dict[str, Twin | None] = {}
    predictions: dict[tuple[str, str], dict[str, float]] = {}

    def twin_of(term: Any) -> Twin | None:
        key = str(term.value)
        if key not in twins:
            try:
                twins[key] = kg.twins.load(key)
            except Exception:  # an unknown twin leaves the value unbound, as SPARQL does for errors
                twins[key] = None
        return twins[key]

    def output_of(twin: Twin, term: Any) -> str | None:
        name = twin.outputs[0].name if term is None else str(term.value)
        return name if name in {p.name for p in twin.outputs} else None

    def predict(twin_term: Any, batch_term: Any, output_term: Any = None) -> ox.Literal | None:
        twin = twin_of(twin_term)
        if twin is None:
            return None
        name = output_of(twin, output_term)
        if name is None:
            return None
        key = (str(twin.iri), name)
        if key not in predictions:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a draft twin's status is on the twin, not in each row
                frame = predict_batches(kg, twin)
            predictions[key] = dict(zip(frame["iri"], frame[f"{name}_predicted"], strict=True))
        value = predictions[key].get(str(batch_term.value))
        return None if value is None else ox.Literal(repr(float(value)), datatype=_DOUBLE)

    def sigma(twin_term: Any, output_term: Any = None) -> ox.Literal | None:
        twin = twin_of(twin_term)
        if twin is None or twin.fit_report is None:
            return None
        name = output_of(twin, output_term)
        if name is None:
            return None
        value = twin.fit_report.test_rmse.get(name) or twin.fit_report.rmse.get(name)
        return None if value is None else ox.Literal(repr(float(value)), datatype=_DOUBLE)

    return {FUNCTION_NAMESPACE + "predict": predict, FUNCTION_NAMESPACE + "twinSigma": sigma}
