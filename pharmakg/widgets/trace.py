"""TraceExplorer: search a lot or batch, see its genealogy as a layered DAG, click for details.

The widget holds a ``Genealogy`` from :func:`pharmakg.trace.trace` and turns it
into view state: node positions (x = level in material-flow order, raw
materials left, finished goods right), edges, the selected node's
attributes, the table for CSV export. Every user event becomes one call of
the public API; no SPARQL here and no logic in the JavaScript.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from ..trace import LIST_COLUMNS, NODE_COLUMNS, Genealogy, trace

if TYPE_CHECKING:
    from ..kg import KnowledgeGraph

__all__ = ["TraceExplorer", "layout"]

_EXPORT_COLUMNS = [c for c in NODE_COLUMNS if c != "iri"]


def layout(genealogy: Genealogy) -> tuple[list[dict[str, Any]], list[list[int]]]:
    """Nodes with x (level, material flows left to right) and y (row within the level), and edges as index pairs."""
    frame = genealogy.to_frame()
    deepest = int(frame["distance"].max()) if len(frame) else 0
    frame["x"] = deepest - frame["distance"] if genealogy.direction == "up" else frame["distance"]
    frame["y"] = frame.groupby("x").cumcount()
    nodes: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for row in frame.to_dict(orient="records"):
        flags = []
        if isinstance(row["deviations"], list) and row["deviations"]:
            flags.append("deviation " + ", ".join(row["deviations"]))
        if isinstance(row["oos"], list) and row["oos"]:
            flags.append("OOS " + ", ".join(row["oos"]))
        if row["status"] in ("rejected", "quarantine"):
            flags.append(str(row["status"]))
        index[str(row["iri"])] = len(nodes)
        nodes.append(
            {
                "iri": row["iri"],
                "id": row["id"],
                "kind": row["kind"],
                "material_kind": row["material_kind"],
                "x": int(row["x"]),
                "y": int(row["y"]),
                "flag": "; ".join(flags),
            }
        )
    edges = [[index[a], index[b]] for a, b in genealogy.graph.edges() if a in index and b in index]
    return nodes, edges


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return value
    if value is None or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


class TraceExplorer(anywidget.AnyWidget):
    """Genealogy explorer for a KnowledgeGraph: ``TraceExplorer(kg, "TL-00010")``."""

    _esm = Path(__file__).parent / "static" / "trace.js"

    query = traitlets.Unicode("").tag(sync=True)
    typed = traitlets.Unicode("").tag(sync=True)
    direction = traitlets.Unicode("up").tag(sync=True)
    depth = traitlets.Int(0).tag(sync=True)
    nodes: traitlets.List[Any] = traitlets.List().tag(sync=True)
    edges: traitlets.List[Any] = traitlets.List().tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)
    details = traitlets.Dict().tag(sync=True)
    suggestions: traitlets.List[Any] = traitlets.List().tag(sync=True)
    table: traitlets.List[Any] = traitlets.List().tag(sync=True)
    columns = traitlets.List(_EXPORT_COLUMNS).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(self, kg: KnowledgeGraph, ref: str = "", *, direction: str = "up", depth: int = 0) -> None:
        super().__init__()
        self._kg = kg
        self.genealogy: Genealogy | None = None
        self.observe(self._retrace, names=["query", "direction", "depth"])
        self.observe(self._select, names=["selected"])
        self.observe(self._suggest, names=["typed"])
        with self.hold_trait_notifications():
            self.direction = direction
            self.depth = depth
            self.query = ref

    # -- events -> API calls --------------------------------------------------------
    def _retrace(self, _: Any = None) -> None:
        if not self.query:
            return
        try:
            self.genealogy = trace(
                self._kg,
                self.query,
                direction="down" if self.direction == "down" else "up",
                max_depth=self.depth or None,
                details=True,
            )
        except KeyError as exc:
            self.error = str(exc.args[0]) if exc.args else str(exc)
            self.nodes, self.edges, self.table = [], [], []
            return
        self.error = ""
        nodes, edges = layout(self.genealogy)
        frame = self.genealogy.to_frame()[_EXPORT_COLUMNS]
        self.table = [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
        self.nodes, self.edges = nodes, edges
        self.selected = self.genealogy.root

    def _select(self, _: Any = None) -> None:
        if self.genealogy is None or self.selected not in self.genealogy.graph:
            self.details = {}
            return
        data = self.genealogy.graph.nodes[self.selected]
        self.details = {
            k: _plain(data.get(k)) for k in NODE_COLUMNS if k != "iri" and data.get(k) not in (None, [])
        } | {"iri": self.selected}

    def _suggest(self, _: Any = None) -> None:
        prefix = self.typed.strip()
        if len(prefix) < 2:
            self.suggestions = []
            return
        from ..store.base import sparql_string

        rows = self._kg.rows(
            "SELECT DISTINCT ?id WHERE { { ?x a pkg:MaterialLot } UNION { ?x a pkg:Batch } "
            f"?x dcterms:identifier ?id FILTER(STRSTARTS(?id, {sparql_string(prefix)})) }} ORDER BY ?id LIMIT 20"
        )
        self.suggestions = [r["id"] for r in rows]

    # -- the same, for code and tests ---------------------------------------------------
    def centre(self, ref: str) -> None:
        """Re-centre on another node (what a double-click does)."""
        self.query = ref

    def export_csv(self, path: str | Path) -> Path:
        """Write the genealogy table (one row per node) to ``path``."""
        if self.genealogy is None:
            raise ValueError("nothing traced yet")
        frame = self.genealogy.to_frame()[_EXPORT_COLUMNS].copy()
        for col in LIST_COLUMNS:
            frame[col] = frame[col].map(lambda v: " ".join(v) if isinstance(v, list) else v)
        frame.to_csv(path, index=False)
        return Path(path)
