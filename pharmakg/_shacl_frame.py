"""SHACL, compiled to DataFrame operations (layer L3, used by validate).

The shapes of ontology/shapes.ttl use a deliberate subset of SHACL Core
(targetClass, single-IRI paths, min/maxCount, datatype, class, in, nodeKind,
min/maxInclusive). Each constraint kind becomes one vectorised join over a
table of triples in N-Triples form, so checking a million staged triples
costs about a second instead of the minutes pyshacl needs. The reference
(pyshacl) and this engine are checked against each other in the tests.

Scope: *focus nodes* are the subjects of the ``staged`` triples; their
descriptions are completed by ``context`` (what the store already says about
them); ``refs`` (types of referenced nodes held by the store) only answers
sh:class. Value constraints look at staged triples only, so what the store
already holds is not judged again.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import terms as T

if TYPE_CHECKING:
    from .validate import Violation, _Constraint

__all__ = ["check_frames"]

_TYPE = f"<{T.type_}>"
_LITERAL = re.compile(r'^"(?P<lex>.*)"(?:\^\^<(?P<dt>[^>]*)>|@(?P<lang>[A-Za-z0-9-]+))?$', re.S)
_NODE_KIND = {
    T.SH + "IRI": ("<",),
    T.SH + "Literal": ('"',),
    T.SH + "BlankNode": ("_:",),
    T.SH + "BlankNodeOrIRI": ("_:", "<"),
    T.SH + "IRIOrLiteral": ("<", '"'),
    T.SH + "BlankNodeOrLiteral": ("_:", '"'),
}


def _iri(x: str) -> str:
    return f"<{x}>"


def _plain(term: str) -> str:
    """The value a user reads: an IRI without brackets, a literal's lexical form."""
    if term.startswith("<"):
        return term[1:-1]
    m = _LITERAL.match(term)
    return m.group("lex") if m else term


def _typed(nodes: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """(node, class) for every type and superclass of each node; columns s, T."""
    types = nodes.loc[nodes["p"] == _TYPE, ["s", "o"]].drop_duplicates()
    return types.merge(pairs, left_on="o", right_on="sub")[["s", "sup"]].rename(columns={"sup": "T"}).drop_duplicates()


def check_frames(
    staged: pd.DataFrame,
    context: pd.DataFrame,
    refs: pd.DataFrame,
    constraints: tuple[_Constraint, ...],
    subclass_pairs: tuple[tuple[str, str], ...],
    *,
    limit: int = 20,
) -> list[Violation]:
    """Every violation (up to ``limit`` per constraint kind) of the staged triples."""
    from .validate import Violation

    cons = pd.DataFrame(
        [(_iri(c.target), _iri(c.path), c.kind, c.arg, i) for i, c in enumerate(constraints)],
        columns=["T", "p", "kind", "arg", "ci"],
    )
    targets = set(cons["T"])
    pairs = pd.DataFrame([(_iri(a), _iri(b)) for a, b in subclass_pairs], columns=["sub", "sup"])
    pairs = pd.concat([pairs, pd.DataFrame({"sub": sorted(targets), "sup": sorted(targets)})]).drop_duplicates()
    staged = staged[["s", "p", "o"]]
    described = pd.concat([staged, context[["s", "p", "o"]]], ignore_index=True).drop_duplicates()
    focus = _typed(described, pairs)
    focus = focus[focus["s"].isin(pd.unique(staged["s"])) & focus["T"].isin(targets)]
    found: list[tuple[int, str, str | None]] = []  # (constraint index, focus term, value term)

    def keep(rows: pd.DataFrame, with_value: bool) -> None:
        for r in rows.head(limit).itertuples(index=False):
            found.append((int(r.ci), r.s, r.o if with_value else None))

    # counts ------------------------------------------------------------------
    required = focus.merge(cons[cons["kind"] == "minCount"], on="T")
    if not required.empty:
        counts = described.groupby(["s", "p"], sort=False)["o"].nunique().rename("n").reset_index()
        have = required.merge(counts, on=["s", "p"], how="left")
        keep(have[have["n"].fillna(0) < have["arg"].astype(float)], False)
    limited = focus.merge(cons[cons["kind"] == "maxCount"], on="T")
    if not limited.empty:
        multi = described.groupby(["s", "p"], sort=False)["o"].nunique()
        multi = multi[multi > 1].rename("n").reset_index()
        if not multi.empty:
            over = limited.merge(multi, on=["s", "p"])
            keep(over[over["n"] > over["arg"].astype(float)], False)

    # values: staged triples of focus nodes, joined to the constraints on their path
    values = staged.merge(focus, on="s").merge(cons[~cons["kind"].isin(["minCount", "maxCount"])], on=["T", "p"])
    if not values.empty:
        for kind, rows in values.groupby("kind", sort=False):
            bad = _value_violations(str(kind), rows, described, refs, pairs)
            keep(bad, True)

    out = []
    for ci, s, o in found:
        c = constraints[ci]
        out.append(Violation(s[1:-1] if s.startswith("<") else s, c.path, c.kind, c.message, None if o is None else _plain(o), c.shape))
    return out


def _value_violations(kind: str, rows: pd.DataFrame, described: pd.DataFrame, refs: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    o = rows["o"]
    if kind == "nodeKind":
        ok = pd.Series(False, index=rows.index)
        for nk, prefixes in _NODE_KIND.items():
            sel = rows["arg"] == nk
            if sel.any():
                ok[sel] = o[sel].str.startswith(prefixes)
        return rows[~ok]
    if kind == "in":
        allowed = rows["arg"].map(lambda a: {f"<{v}>" for v in a})
        ok = np.fromiter((t in a for t, a in zip(o, allowed, strict=True)), dtype=bool, count=len(rows))
        return rows[~ok]
    if kind == "class":
        nodes = pd.concat([described, refs[["s", "p", "o"]]], ignore_index=True)
        typed = _typed(nodes, pairs).rename(columns={"s": "o", "T": "K"})
        want = rows.assign(K="<" + rows["arg"].astype(str) + ">")
        hit = want.merge(typed, on=["o", "K"], how="left", indicator=True)["_merge"].to_numpy() == "both"
        return rows[~hit]
    parts = o.str.extract(_LITERAL)
    is_lit = o.str.startswith('"')
    if kind == "datatype":
        dt = parts["dt"].where(parts["dt"].notna(), np.where(parts["lang"].notna(), T.RDF + "langString", T.XSD + "string"))
        return rows[~is_lit | (dt != rows["arg"])]
    if kind in ("minInclusive", "maxInclusive"):
        bound = rows["arg"].map(lambda lit: float(lit.value))
        num = pd.to_numeric(parts["lex"], errors="coerce")
        ok = num >= bound if kind == "minInclusive" else num <= bound
        return rows[~(is_lit & ok.fillna(False))]
    raise ValueError(f"unsupported SHACL constraint {kind}")
