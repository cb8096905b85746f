"""What knowledge changed between two package versions.

Items are matched by business id (dcterms:identifier), not by IRI, so two
sites' packages of the same product compare; a twin is matched by its twin id
(so a refit shows as a changed version and changed parameter estimates), its
ports and parameters by twin id and name. Each difference is one row:
category (CPP range, CQA spec, recipe step, impact, twin, ...), kind, id,
property, before, after and whether it was added, removed or changed.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import terms as T
from ._package import Package, read_package

__all__ = ["PackageDiff", "diff_packages"]

_SKIP = {
    T.identifier,
    T.PKG + "fittedOn",
    T.PKG + "testedOn",
    T.PROV + "wasRevisionOf",
    "http://purl.org/dc/terms/created",
}
_CATEGORY = {
    "ProcessParameter": "CPP range / parameter",
    "QualityAttribute": "CQA spec / attribute",
    "Procedure": "recipe step",
    "UnitProcedure": "recipe step",
    "Operation": "recipe step",
    "Phase": "recipe step",
    "GeneralRecipe": "recipe",
    "SiteRecipe": "recipe",
    "MasterRecipe": "recipe",
    "Impact": "impact",
    "Twin": "twin",
    "TwinParameter": "twin parameter",
    "TwinPort": "twin port",
    "ControlStrategy": "control strategy",
    "Material": "material",
}
_ORDER = list(dict.fromkeys(_CATEGORY.values()))


def _local(iri: str) -> str:
    return iri.rsplit("#", 1)[-1].rsplit("/", 1)[-1]


def _items(pkg: Package) -> dict[str, tuple[str, dict[str, set[str]]]]:
    """key -> (kind, property -> set of rendered values) for every subject of the package's knowledge."""
    import pyoxigraph as ox

    by_s: dict[str, dict[str, set[str]]] = {}
    for t in ox.parse(pkg.knowledge(), format=ox.RdfFormat.N_TRIPLES):
        o = t.object
        value = o.value if isinstance(o, ox.NamedNode | ox.Literal) else str(o)
        by_s.setdefault(t.subject.value if isinstance(t.subject, ox.NamedNode) else str(t.subject), {}).setdefault(
            t.predicate.value, set()
        ).add(value)
    ident = {s: next(iter(p[T.identifier])) for s, p in by_s.items() if T.identifier in p}
    twin_of: dict[str, str] = {}
    for props in by_s.values():
        if T.PKG + "twinId" in props:
            for rel in (T.PKG + "input", T.PKG + "output", T.PKG + "modelParameter"):
                for part in props.get(rel, ()):
                    twin_of[part] = next(iter(props[T.PKG + "twinId"]))
    keys: dict[str, str] = {}
    for s, props in by_s.items():
        types = {_local(t) for t in props.get(T.type_, ()) if t.startswith(T.PKG)}
        kind = sorted(types)[0] if types else "node"
        if "Twin" in types:
            keys[s] = f"Twin {next(iter(props[T.PKG + 'twinId']))}"
        elif s in twin_of and T.PKG + "parameterName" in props:
            keys[s] = f"TwinParameter {twin_of[s]} {next(iter(props[T.PKG + 'parameterName']))}"
        elif s in twin_of and T.PKG + "portName" in props:
            keys[s] = f"TwinPort {twin_of[s]} {next(iter(props[T.PKG + 'portName']))}"
        else:
            keys[s] = f"{kind} {ident.get(s, s)}"
    out: dict[str, tuple[str, dict[str, set[str]]]] = {}
    for s, props in by_s.items():
        kind = keys[s].split(" ", 1)[0]
        rendered = {
            p: {keys[v].split(" ", 1)[1] if v in keys else v for v in values}
            for p, values in props.items()
            if p not in _SKIP and p != T.type_
        }
        out[keys[s]] = (kind, rendered)
    return out


@dataclass(frozen=True)
class PackageDiff:
    """The differences between two packages, one row per changed property."""

    before: str
    after: str
    frame: pd.DataFrame = field(repr=False)

    def to_frame(self) -> pd.DataFrame:
        return self.frame

    def __len__(self) -> int:
        return len(self.frame)

    def __str__(self) -> str:
        if self.frame.empty:
            return f"{self.before} → {self.after}: no knowledge changed"
        counts = self.frame.groupby("category").size()
        return f"{self.before} → {self.after}: " + ", ".join(f"{n} {c}" for c, n in counts.items())

    def to_html(self) -> str:
        """A self-contained HTML page of the differences."""
        colours = {"added": "#e6ffed", "removed": "#ffeef0", "changed": "#fff8c5"}
        rows = "".join(
            f'<tr style="background:{colours.get(str(r.change), "#fff")}">'
            + "".join(f"<td>{html.escape(str(v))}</td>" for v in r)
            + "</tr>"
            for r in self.frame.itertuples(index=False)
        )
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.frame.columns)
        return (
            '<!doctype html><html><head><meta charset="utf-8"><title>Package diff</title>'
            "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}</style></head><body>"
            f"<h1>{html.escape(self.before)} → {html.escape(self.after)}</h1>"
            f"<p>{html.escape(str(self))}</p><table><tr>{head}</tr>{rows}</table></body></html>\n"
        )

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(str(self))}</p>" + self.frame.to_html(index=False)


def diff_packages(before: str | Path | Package, after: str | Path | Package) -> PackageDiff:
    """What knowledge changed from ``before`` to ``after`` (paths or read packages; checksums are checked)."""
    a = before if isinstance(before, Package) else read_package(before)
    b = after if isinstance(after, Package) else read_package(after)
    ia, ib = _items(a), _items(b)
    rows = []
    for key in sorted(set(ia) | set(ib)):
        kind, ident = key.split(" ", 1)
        pa = ia.get(key, (kind, {}))[1]
        pb = ib.get(key, (kind, {}))[1]
        category = _CATEGORY.get(kind, "other")
        if key not in ia or key not in ib:
            change = "added" if key not in ia else "removed"
            label = next(iter((pb or pa).get(T.label, {""})))
            rows.append(
                (
                    category,
                    kind,
                    ident,
                    "(item)",
                    "" if change == "added" else label,
                    label if change == "added" else "",
                    change,
                )
            )
            continue
        for prop in sorted(set(pa) | set(pb)):
            va, vb = pa.get(prop, set()), pb.get(prop, set())
            if _same(va, vb):
                continue
            change = "added" if not va else "removed" if not vb else "changed"
            rows.append((category, kind, ident, _local(prop), "; ".join(sorted(va)), "; ".join(sorted(vb)), change))
    frame = pd.DataFrame(rows, columns=["category", "kind", "id", "property", "before", "after", "change"])
    frame["_order"] = frame["category"].map(lambda c: _ORDER.index(c) if c in _ORDER else len(_ORDER))
    frame = frame.sort_values(["_order", "id", "property"], kind="stable").drop(columns="_order").reset_index(drop=True)
    return PackageDiff(f"{a.product} v{a.version}", f"{b.product} v{b.version}", frame)


def _same(a: set[str], b: set[str]) -> bool:
    """Equal sets, comparing numbers by value (\"150\" and \"150.0\" are the same range limit)."""
    if a == b:
        return True

    def num(values: set[str]) -> set[object]:
        out: set[object] = set()
        for v in values:
            try:
                out.add(float(v))
            except ValueError:
                out.add(v)
        return out

    return num(a) == num(b)
