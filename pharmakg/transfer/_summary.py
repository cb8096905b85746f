"""The human-readable side of a package: tables of CPPs, CQAs, impacts, twins and the recipe tree.

The same tables feed the package's ``summary.html``, the notebook display of
a package, and tests; they are read from the package's own knowledge (loaded
into a scratch in-memory store), never from the exporting store.
"""

from __future__ import annotations

import html

import pandas as pd

from ..kg import KnowledgeGraph, open_store

__all__ = ["knowledge_store", "process_tables", "summary_html"]


def knowledge_store(ntriples: bytes) -> KnowledgeGraph:
    """A scratch in-memory graph holding ``ntriples`` (no audit: nothing here is kept)."""
    kg = open_store()
    if ntriples:
        kg.store.add(ntriples=ntriples, graph="urn:pharmakg:package")
    return kg


_CPP = """SELECT ?id ?name ?step ?criticality ?target ?nor_low ?nor_high ?par_low ?par_high ?unit WHERE {
  ?p a pkg:ProcessParameter ; dcterms:identifier ?id .
  OPTIONAL { ?p rdfs:label ?name } OPTIONAL { ?p pkg:step/dcterms:identifier ?step }
  OPTIONAL { ?p pkg:criticality ?c BIND(STRAFTER(STR(?c), "#") AS ?criticality) } OPTIONAL { ?p pkg:target ?target }
  OPTIONAL { ?p pkg:norLow ?nor_low } OPTIONAL { ?p pkg:norHigh ?nor_high }
  OPTIONAL { ?p pkg:parLow ?par_low } OPTIONAL { ?p pkg:parHigh ?par_high } OPTIONAL { ?p pkg:unit ?unit } } ORDER BY ?id"""
_CQA = """SELECT ?id ?name ?material ?kind ?spec_low ?spec_high ?unit ?method WHERE {
  ?q a pkg:QualityAttribute ; dcterms:identifier ?id .
  OPTIONAL { ?q rdfs:label ?name } OPTIONAL { ?q pkg:material/dcterms:identifier ?material }
  OPTIONAL { ?q pkg:attributeKind ?k BIND(STRAFTER(STR(?k), "#") AS ?kind) } OPTIONAL { ?q pkg:specLow ?spec_low }
  OPTIONAL { ?q pkg:specHigh ?spec_high } OPTIONAL { ?q pkg:unit ?unit } OPTIONAL { ?q pkg:method ?method } } ORDER BY ?id"""
_IMPACTS = """SELECT ?source ?target ?severity ?rationale WHERE {
  ?i a pkg:Impact ; pkg:impactSource/dcterms:identifier ?source ; pkg:impactTarget/dcterms:identifier ?target .
  OPTIONAL { ?i pkg:riskSeverity ?severity } OPTIONAL { ?i pkg:rationale ?rationale } } ORDER BY ?target ?source"""
_TWINS = """SELECT ?id ?version ?kind ?describes ?n_train WHERE {
  ?t a pkg:Twin ; pkg:twinId ?id ; pkg:twinVersion ?version ; pkg:twinKind ?kind .
  OPTIONAL { ?t pkg:describes/dcterms:identifier ?describes } OPTIONAL { ?t pkg:trainingSize ?n_train } }
  ORDER BY ?id ?version"""
_STEPS = """SELECT ?recipe ?rtype ?id ?level ?name ?parent ?seq ?eqclass WHERE {
  ?r dcterms:identifier ?recipe ; a ?rt . VALUES ?rt { pkg:GeneralRecipe pkg:SiteRecipe pkg:MasterRecipe }
  BIND(STRAFTER(STR(?rt), "#") AS ?rtype)
  OPTIONAL { ?s pkg:recipe ?r ; dcterms:identifier ?id ; a ?lt .
    VALUES ?lt { pkg:Procedure pkg:UnitProcedure pkg:Operation pkg:Phase } BIND(STRAFTER(STR(?lt), "#") AS ?level)
    OPTIONAL { ?s rdfs:label ?name } OPTIONAL { ?s pkg:partOf/dcterms:identifier ?parent }
    OPTIONAL { ?s pkg:sequence ?seq } OPTIONAL { ?s pkg:equipmentClass ?eqclass } } }"""


def process_tables(kg: KnowledgeGraph) -> dict[str, pd.DataFrame]:
    """CPPs (every process parameter), quality attributes, impacts, twins and recipe steps of a knowledge graph."""
    return {
        "parameters": kg.query(_CPP),
        "attributes": kg.query(_CQA),
        "impacts": kg.query(_IMPACTS),
        "twins": kg.query(_TWINS),
        "steps": kg.query(_STEPS),
    }


def _tree(steps: pd.DataFrame) -> str:
    """Nested lists: recipe → unit procedure → operation → phase, in sequence order."""
    if steps.empty:
        return "<p>(no recipes)</p>"
    out = []
    for (recipe, rtype), group in steps.groupby(["recipe", "rtype"], sort=True):
        children: dict[str, list[pd.Series]] = {}
        for _, row in group.dropna(subset=["id"]).iterrows():
            parent = row["parent"] if isinstance(row["parent"], str) else ""
            children.setdefault(parent, []).append(row)

        def render(parent: str, children: dict[str, list[pd.Series]] = children) -> str:
            rows = sorted(
                children.get(parent, []), key=lambda r: (float(r["seq"]) if pd.notna(r["seq"]) else 0, r["id"])
            )
            if not rows:
                return ""
            items = []
            for r in rows:
                eq = f" <small>[{html.escape(str(r['eqclass']))}]</small>" if isinstance(r["eqclass"], str) else ""
                name = html.escape(str(r["name"])) if isinstance(r["name"], str) else ""
                items.append(
                    f"<li><b>{html.escape(str(r['level']))}</b> {html.escape(str(r['id']))}: {name}{eq}"
                    f"{render(str(r['id']))}</li>"
                )
            return "<ul>" + "".join(items) + "</ul>"

        out.append(f"<li><b>{html.escape(str(rtype))}</b> {html.escape(str(recipe))}{render('')}</li>")
    return "<ul>" + "".join(out) + "</ul>"


def summary_html(tables: dict[str, pd.DataFrame], *, header: dict[str, str]) -> str:
    """A self-contained HTML page (no scripts, no external resources) describing a package."""
    head = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in header.items())
    params = tables["parameters"]
    cpps = params[params["criticality"] == "CPP"]
    sections = [
        ("Critical process parameters", cpps),
        ("All process parameters", params),
        ("Quality attributes (CQAs and CMAs)", tables["attributes"]),
        ("Risk assessment: what impacts each CQA", tables["impacts"]),
        ("Validated twins", tables["twins"]),
    ]
    body = "".join(
        f"<h2>{html.escape(title)}</h2>"
        + (frame.to_html(index=False, na_rep="") if not frame.empty else "<p>(none)</p>")
        for title, frame in sections
    )
    title = html.escape(header.get("product", "package"))
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>Process knowledge package: {title}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}</style></head><body>"
        f"<h1>Process knowledge package: {title}</h1><table>{head}</table>{body}"
        f"<h2>Recipes</h2>{_tree(tables['steps'])}</body></html>\n"
    )
