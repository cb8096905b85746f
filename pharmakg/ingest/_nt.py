"""Vectorised N-Triples term encoding (layer L3).

Building one pyoxigraph object per term would cost more than the store's
own bulk load; string operations over whole pandas columns keep the mapping
within a small factor of it.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pandas as pd

from ..terms import XSD

__all__ = ["encode_ids", "escape_column", "iri", "iri_column", "literal_column", "mint", "plain"]


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
    ids = ids.astype(object)
    unsafe = ids.str.contains(_UNSAFE, regex=True, na=False)
    if not unsafe.any():
        return ids
    out = ids.copy()
    out[unsafe] = ids[unsafe].map(lambda v: quote(str(v), safe=""))
    return out


def mint(base: str, kind: str, ids: pd.Series) -> pd.Series:
    """Stable IRIs ``{base}{kind}/{percent-encoded id}`` (``/`` inside an id is encoded too)."""
    return f"{base}{kind}/" + encode_ids(ids)


def iri_column(iris: pd.Series) -> pd.Series:
    """``<iri>`` for each IRI; missing stays missing."""
    s = iris.astype(object)
    return ("<" + s.fillna("") + ">").where(s.notna())
