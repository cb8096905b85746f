"""What ingest needs to know about the store it loads into (layer L3).

Incremental loads reference lots, batches and recipes loaded days earlier,
so staging asks the store, in chunks of VALUES queries, for the few facts it
needs. Against an empty store every lookup answers at once without a query.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pandas as pd

from .. import terms as T
from ..store.base import Store, sparql_string

__all__ = ["StoreLookup", "encode_binding"]

CHUNK = 2000


def encode_binding(cell: dict[str, str]) -> str:
    """A SPARQL JSON binding as an N-Triples term."""
    kind = cell["type"]
    if kind == "uri":
        return f"<{cell['value']}>"
    if kind == "bnode":
        return f"_:{cell['value']}"
    value = cell["value"].replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    if "xml:lang" in cell:
        return f'"{value}"@{cell["xml:lang"]}'
    dt = cell.get("datatype")
    if dt and dt != T.XSD + "string":
        return f'"{value}"^^<{dt}>'
    return f'"{value}"'


class StoreLookup:
    """Chunked look-ups against one store, answering empty when the store is empty."""

    def __init__(self, store: Store, *, exclude_graphs: Iterable[str] = ()) -> None:
        self.store = store
        self.excluded = tuple(exclude_graphs)
        raw = store.query("ASK { ?s ?p ?o }")
        self.empty = not json.loads(raw.body)["boolean"]

    def _select(self, sparql: str) -> list[dict[str, dict[str, str]]]:
        rows: list[dict[str, dict[str, str]]] = json.loads(self.store.query(sparql).body)["results"]["bindings"]
        return rows

    def _chunks(self, iris: Iterable[str]) -> Iterable[str]:
        items = sorted(set(iris))
        for i in range(0, len(items), CHUNK):
            yield " ".join(f"<{x}>" for x in items[i : i + CHUNK])

    def types(self, iris: Iterable[str]) -> pd.DataFrame:
        """rdf:type of each IRI that has one: columns iri, type."""
        out: list[tuple[str, str]] = []
        if not self.empty:
            for values in self._chunks(iris):
                for r in self._select(f"SELECT ?x ?t WHERE {{ VALUES ?x {{ {values} }} ?x a ?t }}"):
                    out.append((r["x"]["value"], r["t"]["value"]))
        return pd.DataFrame(out, columns=["iri", "type"])

    def triples_about(self, iris: Iterable[str]) -> pd.DataFrame:
        """Every domain triple whose subject is one of ``iris``: columns s, p, o (N-Triples terms)."""
        out: list[tuple[str, str, str]] = []
        if not self.empty:
            skip = " ".join(f"<{g}>" for g in self.excluded)
            guard = f"FILTER(?g NOT IN ({', '.join(f'<{g}>' for g in self.excluded)}))" if skip else ""
            for values in self._chunks(iris):
                q = f"SELECT DISTINCT ?x ?p ?o WHERE {{ VALUES ?x {{ {values} }} GRAPH ?g {{ ?x ?p ?o }} {guard} }}"
                for r in self._select(q):
                    out.append((f"<{r['x']['value']}>", f"<{r['p']['value']}>", encode_binding(r["o"])))
        return pd.DataFrame(out, columns=["s", "p", "o"])

    def steps(self, step_ids: Iterable[str]) -> pd.DataFrame:
        """Recipe steps known to the store: columns recipe_id, step_id, iri."""
        ids = sorted(set(step_ids))
        out: list[tuple[str, str, str]] = []
        if not self.empty and ids:
            for i in range(0, len(ids), CHUNK):
                values = " ".join(sparql_string(x) for x in ids[i : i + CHUNK])
                q = (
                    f"SELECT ?rid ?sid ?step WHERE {{ VALUES ?sid {{ {values} }} "
                    f"?step <{T.identifier}> ?sid ; <{T.recipe}> ?r . ?r <{T.identifier}> ?rid }}"
                )
                for r in self._select(q):
                    out.append((r["rid"]["value"], r["sid"]["value"], r["step"]["value"]))
        return pd.DataFrame(out, columns=["recipe_id", "step_id", "iri"])

    def batches(self, iris: Iterable[str]) -> pd.DataFrame:
        """Recipe and product ids of batches in the store: columns iri, recipe_id, product_id."""
        out: list[tuple[str, str | None, str | None]] = []
        if not self.empty:
            for values in self._chunks(iris):
                q = (
                    f"SELECT ?b ?rid ?pid WHERE {{ VALUES ?b {{ {values} }} ?b a <{T.Batch}> . "
                    f"OPTIONAL {{ ?b <{T.recipe}>/<{T.identifier}> ?rid }} "
                    f"OPTIONAL {{ ?b <{T.product}>/<{T.identifier}> ?pid }} }}"
                )
                for r in self._select(q):
                    out.append((r["b"]["value"], r.get("rid", {}).get("value"), r.get("pid", {}).get("value")))
        return pd.DataFrame(out, columns=["iri", "recipe_id", "product_id"])

    def units(self, iris: Iterable[str]) -> pd.DataFrame:
        """Declared unit of parameters/attributes in the store: columns iri, unit."""
        out: list[tuple[str, str]] = []
        if not self.empty:
            for values in self._chunks(iris):
                q = f"SELECT ?x ?u WHERE {{ VALUES ?x {{ {values} }} ?x <{T.unit}> ?u }}"
                for r in self._select(q):
                    out.append((r["x"]["value"], r["u"]["value"]))
        return pd.DataFrame(out, columns=["iri", "unit"])
