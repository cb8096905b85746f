"""Turn SPARQL results into pandas and rdflib objects (layer L2).

Both backends hand over SPARQL JSON, so one parser serves them; columns are
typed from the literals' datatypes (numbers as numbers, times as UTC
timestamps) so that a DataFrame from the graph plots and joins without
manual casting.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pandas as pd

from .terms import XSD

if TYPE_CHECKING:
    import rdflib

__all__ = ["json_to_frame", "json_to_bool", "ntriples_to_graph"]

_INTEGER = {
    XSD + t
    for t in (
        "integer",
        "int",
        "long",
        "short",
        "byte",
        "nonNegativeInteger",
        "positiveInteger",
        "negativeInteger",
        "nonPositiveInteger",
        "unsignedInt",
        "unsignedLong",
        "unsignedShort",
        "unsignedByte",
    )
}
_FLOAT = {XSD + "double", XSD + "float", XSD + "decimal"}
_TIME = {XSD + "dateTime", XSD + "dateTimeStamp", XSD + "date"}
_BOOL = XSD + "boolean"


def json_to_bool(body: bytes) -> bool:
    """The answer of an ASK query."""
    return bool(json.loads(body)["boolean"])


def json_to_frame(body: bytes) -> pd.DataFrame:
    """A DataFrame with one column per projected variable, typed by datatype."""
    doc = json.loads(body)
    if "boolean" in doc:
        return pd.DataFrame({"boolean": [bool(doc["boolean"])]})
    names: list[str] = doc["head"].get("vars", [])
    rows: list[dict[str, Any]] = doc["results"]["bindings"]
    columns: dict[str, Any] = {}
    for name in names:
        values: list[Any] = []
        kinds: set[str] = set()
        for row in rows:
            cell = row.get(name)
            if cell is None:
                values.append(None)
                continue
            values.append(cell["value"])
            if cell["type"] in ("literal", "typed-literal"):
                kinds.add(cell.get("datatype", XSD + "string"))
            else:
                kinds.add(cell["type"])
        columns[name] = _typed(values, kinds)
    return pd.DataFrame(columns, columns=names)


def _typed(values: list[Any], kinds: set[str]) -> Any:
    if kinds and kinds <= _INTEGER:
        return pd.array([None if v is None else int(v) for v in values], dtype="Int64")
    if kinds and kinds <= (_INTEGER | _FLOAT):
        return pd.to_numeric(pd.Series(values, dtype="object"), errors="coerce").astype("float64")
    if kinds and kinds <= _TIME:
        return pd.to_datetime(pd.Series(values, dtype="object"), utc=True, format="ISO8601", errors="coerce")
    if kinds == {_BOOL}:
        return pd.array([None if v is None else v in ("true", "1") for v in values], dtype="boolean")
    return pd.Series(values, dtype="object")


def ntriples_to_graph(body: bytes) -> rdflib.Graph:
    """Parse N-Triples into an rdflib Graph (rdflib imported only here)."""
    import rdflib

    graph = rdflib.Graph()
    if body:
        graph.parse(data=body.decode("utf-8"), format="nt")
    return graph
