"""RootCauseExplorer: pick a deviation, read its ranked causes, follow a cause's evidence and path, record it.

Thin over pharmakg.rootcause: the ranking is :func:`~pharmakg.rootcause.investigate`,
the report :meth:`Investigation.report_html`, the recorded root cause
:func:`~pharmakg.rootcause.accept_cause` (the audited path, optionally e-signed).
Standard ipywidgets only, so it renders in JupyterLab, Notebook 7 and VS Code.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

import ipywidgets as w

from ..rootcause import Cause, Investigation, accept_cause, investigate

if TYPE_CHECKING:
    from ..kg import KnowledgeGraph

__all__ = ["RootCauseExplorer"]


def _deviations(kg: KnowledgeGraph) -> list[tuple[str, str]]:
    """(label, id) of every deviation, newest first."""
    rows = kg.rows(
        """SELECT ?id ?opened ?description WHERE { ?d a pkg:Deviation ; dcterms:identifier ?id .
  OPTIONAL { ?d pkg:opened ?opened } OPTIONAL { ?d pkg:description ?description } } ORDER BY DESC(?opened) ?id"""
    )
    return [(f"{r['id']}: {r.get('description', '')[:70]}", r["id"]) for r in rows]


def _path_html(found: Investigation, cause: Cause) -> str:
    def label(node: str) -> str:
        return str(found.graph.nodes[node].get("label", node.rsplit("/", 1)[-1])) if node in found.graph else node

    if not cause.path:
        return "(no path)"
    steps = [f"<b>{html.escape(label(cause.path[0][0]))}</b>"]
    steps += [f" —<i>{html.escape(meaning)}</i>→ <b>{html.escape(label(b))}</b>" for _, meaning, b in cause.path]
    return "".join(steps)


class RootCauseExplorer(w.VBox):
    """``RootCauseExplorer(kg, deviation=None)``: investigate deviations and record the accepted cause."""

    def __init__(self, kg: KnowledgeGraph, deviation: str | None = None, *, top: int = 10) -> None:
        self.kg = kg
        self.top = top
        options = _deviations(kg)
        self.deviation = w.Dropdown(
            options=options,
            value=deviation if deviation else (options[0][1] if options else None),
            description="Deviation",
            layout=w.Layout(width="640px"),
        )
        self.ranking = w.HTML()
        self.cause = w.Dropdown(description="Cause", layout=w.Layout(width="640px"))
        self.detail = w.HTML()
        self.reason = w.Text(description="Reason", placeholder="why this is the root cause (required)")
        self.key = w.Text(description="Key file", placeholder="your private key (PEM), to e-sign (optional)")
        self.signer = w.Text(description="Signer", placeholder="your full name (with a key)")
        self.accept = w.Button(description="Record as root cause", icon="check")
        self.report = w.Button(description="Write report", icon="file")
        self.status = w.HTML()
        self.investigation: Investigation | None = None
        self.deviation.observe(lambda _c: self.refresh(), names="value")
        self.cause.observe(lambda _c: self._show_cause(), names="value")
        self.accept.on_click(lambda _b: self.record())
        self.report.on_click(lambda _b: self.write_report())
        super().__init__(
            [
                self.deviation,
                self.ranking,
                self.cause,
                self.detail,
                w.HBox([self.reason, self.key, self.signer]),
                w.HBox([self.accept, self.report]),
                self.status,
            ]
        )
        self.add_class("pharmakg-rootcause")
        self.refresh()

    def refresh(self) -> None:
        """Investigate the selected deviation and show its ranking."""
        if self.deviation.value is None:
            self.ranking.value = "<p>No deviations in this graph.</p>"
            return
        found = investigate(self.kg, self.deviation.value, top=self.top)
        self.investigation = found
        frame = found.to_frame()[["rank", "kind", "id", "score", "explanation"]]
        verdict = "" if found.strong else "<p><b>No strong candidate</b> (best score below the threshold).</p>"
        self.ranking.value = verdict + frame.to_html(index=False, float_format=lambda v: f"{v:.2f}", escape=True)
        self.cause.options = [(f"{i}. {c.kind} {c.id} ({c.score:.1f})", i - 1) for i, c in enumerate(found.causes, 1)]
        self.cause.value = 0 if found.causes else None
        self._show_cause()

    def selected(self) -> Cause | None:
        if self.investigation is None or self.cause.value is None:
            return None
        return self.investigation.causes[self.cause.value]

    def _show_cause(self) -> None:
        c = self.selected()
        if c is None or self.investigation is None:
            self.detail.value = ""
            return
        evidence = "".join(
            f"<li>{html.escape(e.text)} <small>(p = {e.p:.2g}, {html.escape(e.kind)})</small></li>" for e in c.evidence
        )
        self.detail.value = (
            f"<p class='pharmakg-cause'>{html.escape(c.link)}; score {c.score:.2f}, combined p = {c.p:.2g}, "
            f"prior {c.prior:.2f}</p><ul>{evidence}</ul><p>{_path_html(self.investigation, c)}</p>"
        )

    def record(self) -> None:
        """Record the selected cause as the deviation's root cause (audited; e-signed with a key)."""
        c = self.selected()
        if c is None or self.investigation is None:
            return
        if not self.reason.value.strip():
            self.status.value = "<p style='color:#cf222e'>A reason is required to record a root cause.</p>"
            return
        try:
            rec = accept_cause(
                self.kg,
                self.investigation,
                c,
                reason=self.reason.value,
                key=self.key.value.strip() or None,
                signer=self.signer.value.strip() or None,
            )
        except (ValueError, KeyError, OSError) as exc:
            self.status.value = f"<p style='color:#cf222e'>{html.escape(str(exc))}</p>"
            return
        signed = " and e-signed" if self.key.value.strip() else ""
        self.status.value = (
            f"<p class='pharmakg-recorded'>Recorded {html.escape(c.kind)} {html.escape(c.id)} as the root cause of "
            f"{html.escape(str(self.investigation.deviation))}{signed} (audit record {rec.number}).</p>"
        )

    def write_report(self, folder: str | Path = ".") -> Path | None:
        """Write the investigation report beside the notebook; returns its path."""
        if self.investigation is None:
            return None
        name = f"rootcause-{self.investigation.deviation or self.investigation.batch}.html"
        path = Path(folder) / name
        path.write_text(self.investigation.report_html(store=self.kg.store.location), encoding="utf-8")
        self.status.value = f"<p>Report written to {html.escape(str(path))}.</p>"
        return path
