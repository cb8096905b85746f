"""Vectorised N-Triples term encoding (layer L3).

Building one pyoxigraph object per term would cost more than the store's
own bulk load; string operations over whole pandas columns keep the mapping
within a small factor of it.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import quote

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..terms import XSD

__all__ = [
    "arrow_strings",
    "encode_ids",
    "escape_column",
    "iri",
    "iri_column",
    "literal_column",
    "member",
    "mint",
    "plain",
]


_LITERAL = re.compile(r'^"(?P<lex>.*)"(?:\^\^<[^>]*>|@[A-Za-z0-9-]+)?$', re.S)


def plain(term: str) -> str:
    """What a user reads for a term: an IRI's local name, a literal's lexical form."""
    if term.startswith("<"):
        return term[1:-1].rsplit("#", 1)[-1].rsplit("/", 1)[-1]
    m = _LITERAL.match(term)
    return m.group("lex") if m else term


def iri(value: str) -> str:
    return f"<{value}>"


def escape_column(values: pd.Series) -> pd.Series:
    """Escape a column of strings for an N-Triples quoted literal."""
    s = values.astype(str)
    if s.str.contains(r'[\\"\n\r]', regex=True).any():
        s = (
            s.str.replace("\\", "\\\\", regex=False)
            .str.replace('"', '\\"', regex=False)
            .str.replace("\n", "\\n", regex=False)
            .str.replace("\r", "\\r", regex=False)
        )
    return s


def literal_column(values: pd.Series, datatype: str | None = None) -> pd.Series:
    """``"v"`` or ``"v"^^<datatype>`` for each value (xsd:string is left implicit)."""
    body = '"' + escape_column(values) + '"'
    if datatype is None or datatype == XSD + "string":
        return body
    return body + f"^^<{datatype}>"


_UNSAFE = r"[^A-Za-z0-9._~-]"


def encode_ids(ids: pd.Series) -> pd.Series:
    """Percent-encode ids for use in an IRI path segment (``/`` too); most ids need nothing."""
    unsafe = ids.str.contains(_UNSAFE, regex=True, na=False)
    if not unsafe.any():
        return ids
    text = arrow_strings(ids)
    # the few distinct characters to encode, each replaced everywhere at once ('%' first, or it would be encoded twice)
    rest = pc.replace_substring_regex(pc.unique(text.filter(pc.is_valid(text))), _UNSAFE.replace("^", "", 1), "")
    chars = sorted(set("".join(v for v in rest.to_pylist() if v)), key=lambda c: c != "%")
    for c in chars:
        text = pc.replace_substring(text, c, quote(c, safe=""))
    return pd.Series(pd.array(text, dtype="str"), index=ids.index)


def mint(base: str, kind: str, ids: pd.Series) -> pd.Series:
    """Stable IRIs ``{base}{kind}/{percent-encoded id}`` (``/`` inside an id is encoded too)."""
    return f"{base}{kind}/" + encode_ids(ids)


def iri_column(iris: pd.Series) -> pd.Series:
    """``<iri>`` for each IRI; missing stays missing."""
    if iris.dtype.kind == "f":  # every value missing: pandas read the column as float, which takes no ""
        return pd.Series(pd.array([None] * len(iris), dtype="str"), index=iris.index)
    return ("<" + iris.fillna("") + ">").where(iris.notna())


def member(values: pd.Series, allowed: Collection[str]) -> pd.Series:
    """``values.isin(allowed)`` for big sets of strings, in Arrow.

    pandas' ``isin`` on Arrow strings converts every allowed value to an Arrow
    scalar in Python first (3 s for the ids of one bundle); missing values are never members.
    """
    if not len(allowed):
        return pd.Series(False, index=values.index)
    got = pc.is_in(
        arrow_strings(values),
        value_set=pa.array(list(allowed), type=pa.large_string()),
        skip_nulls=True,
    )
    return pd.Series(got.to_numpy(zero_copy_only=False), index=values.index).fillna(False).astype(bool)


def arrow_strings(values: pd.Series) -> pa.Array | pa.ChunkedArray:
    """A column of strings as Arrow large strings (zero-copy when it is Arrow already); missing stays null."""
    return pa.array(values, type=pa.large_string(), from_pandas=True)
