"""RootCauseExplorer: pick a deviation, read its ranked causes, follow a cause's evidence and path, record it.

Thin over pharmakg.rootcause: the ranking is :func:`~pharmakg.rootcause.investigate`,
the report :meth:`Investigation.report_html`, the recorded root cause
:func:`~pharmakg.rootcause.accept_cause` (the audited path, optionally e-signed).
Standard ipywidgets only, so it renders in JupyterLab, Notebook 7 and VS Code.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

import ipywidgets as w
import pandas as pd

from ..rootcause import (
    Cause,
    History,
    Investigation,
    accept_cause,
    cause_history,
    deviations,
    investigate,
    outcome,
)

if TYPE_CHECKING:
    from ..kg import KnowledgeGraph

__all__ = ["RootCauseExplorer"]


_ALL = "(all)"


def _path_svg(found: Investigation, cause: Cause) -> str:
    """The explanation path drawn left to right: the deviation, then every node, each edge with its meaning."""

    def label(node: str) -> str:
        if node == cause.iri:
            return cause.label
        return unquote(
            str(found.graph.nodes[node].get("label", node.rsplit("/", 1)[-1])) if node in found.graph else node
        )

    if not cause.path:
        return "<p>(no path)</p>"
    nodes = [cause.path[0][0], *(b for _, _, b in cause.path)]
    meanings = [m for _, m, _ in cause.path]
    box, gap, height = 150, 120, 64
    width = len(nodes) * box + (len(nodes) - 1) * gap
    parts = [
        f"<svg class='pharmakg-path' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' font-family='sans-serif' font-size='11'>"
    ]
    for i, node in enumerate(nodes):
        x = i * (box + gap)
        fill = "#fde2e1" if i == len(nodes) - 1 else "#eef2f7"
        parts.append(
            f"<rect x='{x}' y='18' width='{box}' height='30' rx='6' fill='{fill}' stroke='#57606a'/>"
            f"<text x='{x + box / 2}' y='37' text-anchor='middle'>{html.escape(label(node)[:24])}</text>"
        )
        if i < len(meanings):
            x0, x1 = x + box, x + box + gap
            parts.append(
                f"<line x1='{x0}' y1='33' x2='{x1 - 6}' y2='33' stroke='#57606a'/>"
                f"<polygon points='{x1 - 6},29 {x1},33 {x1 - 6},37' fill='#57606a'/>"
                f"<text x='{(x0 + x1) / 2}' y='14' text-anchor='middle' fill='#57606a'>"
                f"{html.escape(meanings[i][:22])}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _history_svg(history: History) -> str:
    """The values in time order, the bands shaded (PAR lighter than NOR), the evidence's batches or lots in red."""
    frame = history.frame.dropna(subset=["value"])
    if frame.empty:
        return ""
    width, height, pad = 640, 180, 36
    finite = [v for band in history.bands.values() for v in band if not math.isnan(v)]
    lo = min([float(frame["value"].min()), *finite])
    hi = max([float(frame["value"].max()), *finite])
    span = (hi - lo) or 1.0
    lo, hi = lo - 0.05 * span, hi + 0.05 * span

    def y(v: float) -> float:
        return pad / 2 + (height - pad) * (hi - v) / (hi - lo)

    def x(i: int) -> float:
        return pad + (width - 2 * pad) * (i / max(len(frame) - 1, 1))

    parts = [
        f"<svg class='pharmakg-history' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' font-family='sans-serif' font-size='10'>"
        f"<text x='{pad}' y='11'>{html.escape(history.title)}</text>"
    ]
    shades = {"PAR": "#fff4ce", "NOR": "#dafbe1", "spec": "#dafbe1"}
    for name, (low, high) in history.bands.items():
        top, bottom = y(high if not math.isnan(high) else hi), y(low if not math.isnan(low) else lo)
        parts.append(
            f"<rect class='pharmakg-band' x='{pad}' y='{top:.1f}' width='{width - 2 * pad}' "
            f"height='{max(bottom - top, 0):.1f}' fill='{shades.get(name, '#eeeeee')}' opacity='0.8'/>"
            f"<text x='{width - pad + 2}' y='{top + 10:.1f}' fill='#57606a'>{html.escape(name)}</text>"
        )
    for i, (value, marked) in enumerate(zip(frame["value"], frame["marked"], strict=True)):
        if not marked:
            parts.append(f"<circle cx='{x(i):.1f}' cy='{y(float(value)):.1f}' r='1.6' fill='#57606a'/>")
    for i, (ident, value, marked) in enumerate(zip(frame["id"], frame["value"], frame["marked"], strict=True)):
        if marked:  # drawn last, on top
            parts.append(
                f"<circle class='pharmakg-marked' cx='{x(i):.1f}' cy='{y(float(value)):.1f}' r='4' fill='#cf222e'>"
                f"<title>{html.escape(str(ident))}: {float(value):g}</title></circle>"
            )
    parts.append(
        f"<text x='2' y='{y(hi - 0.05 * span) + 4:.1f}'>{hi - 0.05 * span:.4g}</text>"
        f"<text x='2' y='{y(lo + 0.05 * span):.1f}'>{lo + 0.05 * span:.4g}</text></svg>"
    )
    return "".join(parts)


def _counts_svg(cause: Cause) -> str:
    """The enrichment counts: the share of failing and of passing batches that had the factor."""
    rows = [e.data for e in cause.evidence if e.kind == "enrichment"]
    if not rows:
        return ""
    d = rows[0]
    bars = [
        ("failing", d["failing_with"], d["failing"], "#cf222e"),
        ("passing", d["passing_with"], d["passing"], "#57606a"),
    ]
    parts = [
        "<svg class='pharmakg-counts' xmlns='http://www.w3.org/2000/svg' width='420' height='64' "
        "font-family='sans-serif' font-size='11'>"
    ]
    for i, (name, k, n, colour) in enumerate(bars):
        share = k / n if n else 0.0
        y0 = 8 + i * 26
        parts.append(
            f"<text x='0' y='{y0 + 13}'>{name}</text>"
            f"<rect x='60' y='{y0}' width='240' height='18' fill='#eeeeee'/>"
            f"<rect x='60' y='{y0}' width='{240 * share:.1f}' height='18' fill='{colour}'/>"
            f"<text x='308' y='{y0 + 13}'>{k} of {n} ({share:.0%})</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


class RootCauseExplorer(w.VBox):
    """``RootCauseExplorer(kg, deviation=None)``: investigate deviations and record the accepted cause."""

    def __init__(self, kg: KnowledgeGraph, deviation: str | None = None, *, top: int = 10) -> None:
        self.kg = kg
        self.top = top
        self.all = deviations(kg)
        products = sorted(p for p in self.all["product"].dropna().unique())
        attributes = sorted(a for a in self.all["attribute"].dropna().unique())
        self.product = w.Dropdown(options=[_ALL, *products], description="Product")
        self.attribute = w.Dropdown(options=[_ALL, *attributes], description="CQA")
        self.since = w.DatePicker(description="Opened from")
        self.until = w.DatePicker(description="until")
        options = self._options()
        self.deviation = w.Dropdown(
            options=options,
            value=deviation if deviation else (options[0][1] if options else None),
            description="Deviation",
            layout=w.Layout(width="640px"),
        )
        self.chart = w.HTML()
        self.path = w.HTML()
        self.ranking = w.HTML()
        self.cause = w.Dropdown(description="Cause", layout=w.Layout(width="640px"))
        self.cause.add_class("pharmakg-cause-pick")
        self.detail = w.HTML()
        self.reason = w.Text(description="Reason", placeholder="why this is the root cause (required)")
        self.capa = w.Text(description="CAPA", placeholder="the CAPA decided (optional: else the deviation's is kept)")
        self.key = w.Text(description="Key file", placeholder="your private key (PEM), to e-sign (optional)")
        self.signer = w.Text(description="Signer", placeholder="your full name (with a key)")
        self.accept = w.Button(description="Record as root cause", icon="check")
        self.report = w.Button(description="Write report", icon="file")
        self.status = w.HTML()
        self.investigation: Investigation | None = None
        for control in (self.product, self.attribute, self.since, self.until):
            control.observe(lambda _c: self._filter(), names="value")
        self.deviation.observe(lambda _c: self.refresh(), names="value")
        self.cause.observe(lambda _c: self._show_cause(), names="value")
        self.accept.on_click(lambda _b: self.record())
        self.report.on_click(lambda _b: self.write_report())
        super().__init__(
            [
                w.HBox([self.product, self.attribute]),
                w.HBox([self.since, self.until]),
                self.deviation,
                self.ranking,
                self.cause,
                self.detail,
                self.chart,
                self.path,
                w.HBox([self.reason, self.capa]),
                w.HBox([self.key, self.signer]),
                w.HBox([self.accept, self.report]),
                self.status,
            ]
        )
        self.add_class("pharmakg-rootcause")
        self.refresh()

    def _options(self) -> list[tuple[str, str]]:
        """(label, id) of the deviations the filters let through, newest first."""
        shown = self.all
        if self.product.value != _ALL:
            shown = shown[shown["product"] == self.product.value]
        if self.attribute.value != _ALL:
            shown = shown[shown["attribute"] == self.attribute.value]
        opened = pd.to_datetime(shown["opened"], utc=True, errors="coerce")
        if self.since.value is not None:
            shown = shown[opened >= pd.Timestamp(self.since.value, tz="UTC")]
            opened = opened[shown.index]
        if self.until.value is not None:
            shown = shown[opened < pd.Timestamp(self.until.value, tz="UTC") + pd.Timedelta(days=1)]
        return [(f"{r.id}: {str(r.description or '')[:70]}", str(r.id)) for r in shown.itertuples(index=False)]

    def _filter(self) -> None:
        options = self._options()
        current = self.deviation.value
        self.deviation.options = options
        ids = [i for _, i in options]
        self.deviation.value = current if current in ids else (ids[0] if ids else None)
        if not ids:
            self.refresh()

    def refresh(self) -> None:
        """Investigate the selected deviation and show its ranking."""
        if self.deviation.value is None:
            self.ranking.value = "<p>No deviations match.</p>"
            self.investigation, self.cause.options = None, []
            self.detail.value = self.chart.value = self.path.value = ""
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
            self.detail.value = self.chart.value = self.path.value = ""
            return
        evidence = "".join(
            f"<li>{html.escape(e.text)} <small>(p = {e.p:.2g}, {html.escape(e.kind)})</small></li>" for e in c.evidence
        )
        self.detail.value = (
            f"<p class='pharmakg-cause'>{html.escape(c.link)}; score {c.score:.2f}, combined p = {c.p:.2g}, "
            f"prior {c.prior:.2f}</p><ul>{evidence}</ul>"
        )
        history = cause_history(self.kg, c)
        self.chart.value = (_history_svg(history) if history is not None else "") + _counts_svg(c)
        self.path.value = _path_svg(self.investigation, c)

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
                capa=self.capa.value.strip() or None,
                key=self.key.value.strip() or None,
                signer=self.signer.value.strip() or None,
            )
        except (ValueError, KeyError, OSError) as exc:
            self.status.value = f"<p style='color:#cf222e'>{html.escape(str(exc))}</p>"
            return
        signed = " and e-signed" if self.key.value.strip() else ""
        capa = f", with CAPA {html.escape(self.capa.value.strip())}" if self.capa.value.strip() else ""
        self.status.value = (
            f"<p class='pharmakg-recorded'>Recorded {html.escape(c.kind)} {html.escape(c.id)} as the root cause of "
            f"{html.escape(str(self.investigation.deviation))}{capa} and the evidence as shown{signed} "
            f"(audit record {rec.number}).</p>"
        )

    def write_report(self, folder: str | Path = ".") -> Path | None:
        """Write the investigation report beside the notebook; returns its path."""
        if self.investigation is None:
            return None
        found = self.investigation
        name = f"rootcause-{found.deviation or found.batch}.html"
        path = Path(folder) / name
        recorded = outcome(self.kg, found.deviation) if found.deviation else None
        path.write_text(found.report_html(store=self.kg.store.location, outcome=recorded), encoding="utf-8")
        self.status.value = f"<p>Report written to {html.escape(str(path))}.</p>"
        return path
