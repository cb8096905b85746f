"""SHACL, compiled to DataFrame operations (layer L3, used by validate).

The shapes of ontology/shapes.ttl use a deliberate subset of SHACL Core
(targetClass, single-IRI paths, min/maxCount, datatype, class, in, nodeKind,
min/maxInclusive). Each constraint kind becomes one vectorised join over a
table of triples in N-Triples form, so checking a million staged triples
costs about a second instead of the minutes pyshacl needs. Whether a value
passes a value constraint depends on the constraint and the value alone, so
each such test runs once per distinct (path, value, test) and only the triples
whose value fails are joined to their focus nodes. The reference (pyshacl) and
this engine are checked against each other in the tests.

Scope: *focus nodes* are the subjects of the ``staged`` triples; their
descriptions are completed by ``context`` (what the store already says about
them); ``refs`` (types of referenced nodes held by the store) only answers
sh:class. Value constraints look at staged triples only, so what the store
already holds is not judged again.
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import terms as T

if TYPE_CHECKING:
    from .validate import Violation, _Constraint

__all__ = ["check_frames", "shared_terms"]

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


def _typed(nodes: pd.DataFrame, pairs: pd.DataFrame, type_code: int) -> pd.DataFrame:
    """(node, class) for every type and superclass of each node; columns s, T (term codes)."""
    types = nodes.loc[nodes["p"] == type_code, ["s", "o"]].drop_duplicates()
    return types.merge(pairs, left_on="o", right_on="sub")[["s", "sup"]].rename(columns={"sup": "T"}).drop_duplicates()


def shared_terms(frame: pd.DataFrame) -> pd.Index | None:
    """The one set of terms that ``frame``'s s, p and o are coded over, if they are (as ingest stages them)."""
    dtypes = [frame[c].dtype for c in ("s", "p", "o")]
    cats = [d.categories for d in dtypes if isinstance(d, pd.CategoricalDtype)]
    # identity, not equality: comparing two sets of a million terms would cost what the codes save
    if len(cats) == 3 and cats[0] is cats[1] is cats[2]:
        return cats[0]
    return None


class _Terms:
    """One integer code per distinct term, so joins compare ints rather than long IRI strings.

    A staged table whose s, p and o are Categoricals over one set of terms (as
    ingest assembles them) brings its codes along; only the other frames'
    terms are hashed then.
    """

    def __init__(self, frames: list[pd.DataFrame], extra: list[str]) -> None:
        first = frames[0]
        shared = shared_terms(first)
        if shared is not None:
            base = shared
            own = [first[c].cat.codes.to_numpy().astype(np.int64) for c in ("s", "p", "o")]
            frames = frames[1:]
        else:
            base, own = pd.Index([], dtype=object), []
        columns = [f[c].astype(object) for f in frames for c in ("s", "p", "o")]
        rest = pd.concat([*columns, pd.Series(extra, dtype=object)], ignore_index=True)
        codes = _positions(base, rest) if len(base) else np.full(len(rest), -1)
        new = codes < 0
        added, more = pd.factorize(rest[new])
        codes[new] = np.where(added >= 0, len(base) + added, -1)  # a missing term stays -1, matching nothing
        self.uniques = base.append(pd.Index(more, dtype=base.dtype)) if len(more) else base
        # the shapes' own terms, by name: looking them up in the index of a million terms hashes it again
        self._known = dict(zip(extra, codes[len(rest) - len(extra) :].tolist(), strict=True))
        offsets = np.cumsum([0, *[len(c) for c in columns]])
        self._columns = own + [codes[a:b] for a, b in itertools.pairwise(offsets)]

    def coded(self, n: int) -> pd.DataFrame:
        """The n-th input frame, as codes."""
        s, p, o = self._columns[3 * n : 3 * n + 3]
        return pd.DataFrame({"s": s, "p": p, "o": o})

    def code(self, terms: list[str]) -> np.ndarray:
        if all(t in self._known for t in terms):
            return np.array([self._known[t] for t in terms], dtype=np.int64)
        return np.asarray(pd.Index(self.uniques).get_indexer(terms))

    def text(self, codes: np.ndarray) -> pd.Series:
        """The terms of ``codes`` as Arrow strings (no Python objects on the way)."""
        return pd.Series(self.uniques.take(codes).array).astype("string[pyarrow]")


def _positions(base: pd.Index, terms: pd.Series) -> np.ndarray:
    """Where each of ``terms`` is in ``base`` (-1 if it is not), hashed in Arrow: pandas' own lookup
    first builds a hash table of the million terms of ``base`` in Python objects (5x slower here)."""
    found = pc.index_in(_arrow_terms(terms), value_set=_arrow_terms(base))
    return np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _arrow_terms(values: pd.Series | pd.Index) -> pa.Array:
    got = pa.array(values, type=pa.large_string(), from_pandas=True)
    return got.combine_chunks() if isinstance(got, pa.ChunkedArray) else got


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

    pair_terms = [_iri(a) for a, _ in subclass_pairs] + [_iri(b) for _, b in subclass_pairs]
    cons_terms = [_iri(c.target) for c in constraints] + [_iri(c.path) for c in constraints]
    klass = [_iri(c.arg) for c in constraints if c.kind == "class"]
    allowed = [f"<{v}>" for c in constraints if c.kind == "in" for v in c.arg]
    terms = _Terms([staged, context, refs], [_TYPE, *pair_terms, *cons_terms, *klass, *allowed])
    st, cx, rf = terms.coded(0), terms.coded(1), terms.coded(2)
    type_code = int(terms.code([_TYPE])[0])

    n = len(subclass_pairs)
    pair_codes = terms.code(pair_terms)
    pairs = pd.DataFrame({"sub": pair_codes[:n], "sup": pair_codes[n:]})
    m = len(constraints)
    cc = terms.code(cons_terms)
    cons = pd.DataFrame({"T": cc[:m], "p": cc[m:], "kind": [c.kind for c in constraints], "ci": np.arange(m)})
    targets = np.unique(cons["T"])
    pairs = pd.concat([pairs, pd.DataFrame({"sub": targets, "sup": targets})]).drop_duplicates()

    described = st if cx.empty else pd.concat([st, cx], ignore_index=True).drop_duplicates()
    focus = _typed(described, pairs, type_code)
    staged_subject = np.zeros(len(terms.uniques) + 1, dtype=bool)  # by code: no hashing of 4 million subjects
    staged_subject[st["s"].to_numpy()] = True
    focus = focus[staged_subject[focus["s"].to_numpy()] & focus["T"].isin(targets).to_numpy()]
    found: list[tuple[int, int, int | None]] = []  # (constraint index, focus code, value code)

    def keep(rows: pd.DataFrame, with_value: bool) -> None:
        head = rows.head(limit)
        objects = head["o"].tolist() if with_value else [None] * len(head)
        for ci, s_code, o_code in zip(head["ci"].tolist(), head["s"].tolist(), objects, strict=True):
            found.append((int(ci), int(s_code), None if o_code is None else int(o_code)))

    # counts: (s, p) pairs packed into one int64 and counted by sorting (no hashing of pairs)
    width = len(terms.uniques) + 1
    keys, n_values = np.unique(
        described["s"].to_numpy(np.int64) * width + described["p"].to_numpy(np.int64), return_counts=True
    )

    def count(rows: pd.DataFrame) -> np.ndarray:
        """How many values each row's (s, p) has among the described triples."""
        wanted = rows["s"].to_numpy(np.int64) * width + rows["p"].to_numpy(np.int64)
        at = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
        return np.where(keys[at] == wanted, n_values[at], 0) if len(keys) else np.zeros(len(rows), dtype=np.int64)

    args = np.array([c.arg if c.kind in ("minCount", "maxCount") else 0 for c in constraints], dtype=float)
    required = focus.merge(cons[cons["kind"] == "minCount"], on="T")
    if not required.empty:
        keep(required[count(required) < args[required["ci"].to_numpy()]], False)
    limited = focus.merge(cons[cons["kind"] == "maxCount"], on="T")
    if not limited.empty and (n_values > 1).any():
        keep(limited[count(limited) > args[limited["ci"].to_numpy()]], False)

    # values: whether a value passes depends on the constraint and the value alone, so each test runs
    # once per distinct (path, value) of the staged triples; only the rows of the values that fail are
    # then joined to the focus nodes (joining every row first made a table of millions of rows)
    value_cons = cons[~cons["kind"].isin(["minCount", "maxCount"])]
    # a missing term (code -1) matches nothing, and must not be packed into another path's key
    on_path = np.flatnonzero(np.isin(st["p"].to_numpy(), value_cons["p"].unique()) & (st["o"].to_numpy() >= 0))
    pair_keys = st["p"].to_numpy(np.int64)[on_path] * width + st["o"].to_numpy(np.int64)[on_path]
    distinct, pair_of_row = np.unique(pair_keys, return_inverse=True)
    pairs_tested = pd.DataFrame({"p": distinct // width, "o": distinct % width, "pair": np.arange(len(distinct))})
    # many classes put the same test on one path (dcterms:identifier is a string on each): each test once
    test = pd.factorize(pd.Series([f"{c.path} {c.kind} {c.arg!r}" for c in constraints])[value_cons["ci"]])[0]
    value_cons = value_cons.assign(test=test)
    tests = value_cons.drop_duplicates("test")[["p", "kind", "ci", "test"]]
    tested = pairs_tested.merge(tests, on="p")
    failed = [
        _value_violations(str(kind), rows, constraints, terms, described, rf, pairs, type_code)
        for kind, rows in tested.groupby("kind", sort=False)
    ]
    failed = [f for f in failed if not f.empty]
    if failed:
        failing = pd.concat(failed, ignore_index=True)[["pair", "test"]]
        bad = failing.merge(value_cons[["test", "ci", "T", "kind"]], on="test")
        hit = np.flatnonzero(np.isin(pair_of_row, bad["pair"].to_numpy()))
        rows = pd.DataFrame({"row": on_path[hit], "pair": pair_of_row[hit]})
        rows = rows.assign(s=st["s"].to_numpy()[rows["row"]], o=st["o"].to_numpy()[rows["row"]])
        violating = rows.merge(bad, on="pair").merge(focus, on=["s", "T"]).sort_values(["row", "ci"])
        for _, of_kind in violating.groupby("kind", sort=False):
            keep(of_kind, True)

    out = []
    for ci, s_code, o_code in found:
        c = constraints[ci]
        s_term = str(terms.uniques[s_code])
        o_term = None if o_code is None else _plain(str(terms.uniques[o_code]))
        out.append(
            Violation(s_term[1:-1] if s_term.startswith("<") else s_term, c.path, c.kind, c.message, o_term, c.shape)
        )
    return out


def _value_violations(
    kind: str,
    rows: pd.DataFrame,
    constraints: tuple[_Constraint, ...],
    terms: _Terms,
    described: pd.DataFrame,
    refs: pd.DataFrame,
    pairs: pd.DataFrame,
    type_code: int,
) -> pd.DataFrame:
    ci = rows["ci"].to_numpy()
    if kind == "class":
        nodes = pd.concat([described, refs], ignore_index=True)
        typed = _typed(nodes, pairs, type_code).rename(columns={"s": "o", "T": "K"})
        klass = np.full(len(constraints), -1, dtype=np.int64)  # constraint index -> code of its class
        for i in np.unique(ci):
            klass[i] = terms.code([_iri(constraints[i].arg)])[0]
        want = rows.assign(K=klass[ci])
        hit = want.merge(typed, on=["o", "K"], how="left", indicator=True)["_merge"].to_numpy() == "both"
        return rows[~hit]
    if kind == "in":
        ok = pd.DataFrame(
            [
                (i, int(code))
                for i, c in enumerate(constraints)
                if c.kind == "in"
                for code in terms.code([f"<{v}>" for v in c.arg])
            ],
            columns=["ci", "o"],
        )
        hit = rows.merge(ok, on=["ci", "o"], how="left", indicator=True)["_merge"].to_numpy() == "both"
        return rows[~hit]
    # the rest reads the term text (Arrow strings: the tests below run in C++), one pass per constraint,
    # over the distinct values (a set point repeats on every batch; sorted codes also read the terms in order)
    distinct, of_row = np.unique(rows["o"].to_numpy(), return_inverse=True)
    text = terms.text(distinct)
    bad = np.zeros(len(rows), dtype=bool)
    same_test: dict[str, list[int]] = {}  # constraints with one argument (xsd:double on forty paths) share a pass
    for i in np.unique(ci).tolist():
        same_test.setdefault(str(constraints[i].arg), []).append(i)
    for group in same_test.values():
        sel = np.isin(ci, group)
        used = np.unique(of_row[sel])
        t = text.iloc[used].reset_index(drop=True)
        value = constraints[group[0]].arg
        if kind == "nodeKind":
            passed = t.str.startswith(_NODE_KIND[value]).to_numpy(dtype=bool)
        elif kind == "datatype":
            if value == T.XSD + "string":
                passed = (t.str.startswith('"') & t.str.endswith('"')).to_numpy(dtype=bool)
            elif value == T.RDF + "langString":
                passed = t.str.match(r'^".*"@[A-Za-z0-9-]+$').to_numpy(dtype=bool)
            else:
                passed = (t.str.startswith('"') & t.str.endswith(f'"^^<{value}>')).to_numpy(dtype=bool)
        elif kind in ("minInclusive", "maxInclusive"):
            lex = t.astype(object).str.extract(_LITERAL)["lex"]
            num = pd.to_numeric(lex, errors="coerce").to_numpy(dtype=float)
            bound = float(value.value)
            passed = (num >= bound) if kind == "minInclusive" else (num <= bound)
            passed &= t.str.startswith('"').to_numpy(dtype=bool)
        else:
            raise ValueError(f"unsupported SHACL constraint {kind}")
        ok_distinct = np.zeros(len(distinct), dtype=bool)
        ok_distinct[used] = passed
        bad[sel] = ~ok_distinct[of_row[sel]]
    return rows[bad]
