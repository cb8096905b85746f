"""TwinPanel: a twin's model card, live what-if sliders, design space and drift chart.

Thin over pharmakg.twins: the card is :func:`~pharmakg.twins.card.card_html`,
a slider move is one :meth:`Twin.predict`, the design-space and drift tabs
call :func:`~pharmakg.twins.design_space` and :func:`~pharmakg.twins.drift`
and draw what they return. Standard ipywidgets only (no custom JavaScript),
so it renders in JupyterLab, Notebook 7 and VS Code alike.
"""

from __future__ import annotations

import html
import io
from typing import TYPE_CHECKING, Any

import ipywidgets as w
import numpy as np

from ..twins import Twin, design_space, drift, history, limits
from ..twins.card import card_html

if TYPE_CHECKING:
    from ..kg import KnowledgeGraph
    from ..twins import DesignSpace, DriftReport

__all__ = ["TwinPanel", "spec_bar"]


def spec_bar(value: float, low: float | None, high: float | None, unit: str) -> str:
    """An inline SVG: the specification band and where the prediction falls (red when outside)."""
    lo = low if low is not None else (high if high is not None else value) - 1.0
    hi = high if high is not None else lo + 1.0
    span = hi - lo
    left, right = lo - 0.5 * span, hi + 0.5 * span
    x = lambda v: 10 + 380 * (min(max(v, left), right) - left) / (right - left)  # noqa: E731
    ok = (low is None or value >= low) and (high is None or value <= high)
    colour = "#1a7f37" if ok else "#cf222e"
    limits_text = f"spec {'' if low is None else f'{low:g}'} to {'' if high is None else f'{high:g}'} {unit}"
    return (
        f"<svg width='400' height='46' role='img' aria-label='prediction against specification'>"
        f"<rect x='{x(lo):.1f}' y='8' width='{x(hi) - x(lo):.1f}' height='14' fill='#dafbe1' stroke='#1a7f37'/>"
        f"<line x1='{x(value):.1f}' x2='{x(value):.1f}' y1='2' y2='28' stroke='{colour}' stroke-width='3'/>"
        f"<text x='10' y='42' font-size='11'>{html.escape(limits_text)}</text></svg>"
    )


def _png(figure: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return buf.getvalue()


class TwinPanel(w.VBox):
    """``TwinPanel(kg, node_or_twin_id)``: the current twin on a node (or a twin id), explored."""

    def __init__(self, kg: KnowledgeGraph, node: str, *, output: str | None = None) -> None:
        self.kg = kg
        self.twin = _find(kg, node)
        self.output = output or self.twin.outputs[0].name
        self.limits = limits(kg, self.twin)
        hist = history(kg, self.twin)
        names = [p.name for p in self.twin.inputs]
        normal = hist[(hist["deviations"] == 0) & ~hist["suspect"].astype(bool)].dropna(subset=names)
        self.sliders: dict[str, w.FloatSlider] = {}
        for p in self.twin.inputs:
            lo, hi = self._range(p.name, normal[p.name].to_numpy(dtype=float))
            start = float(np.median(normal[p.name])) if len(normal) else (lo + hi) / 2
            step = (hi - lo) / 200 if hi > lo else 1.0
            s = w.FloatSlider(
                value=start,
                min=lo,
                max=hi if hi > lo else lo + 1.0,
                step=step,
                description=f"{p.name} [{p.unit}]",
                continuous_update=False,
                style={"description_width": "140px"},
                layout=w.Layout(width="460px"),
            )
            s.observe(self._on_change, names="value")
            self.sliders[p.name] = s
        self.card = w.HTML(card_html(self.twin))
        self.readout = w.HTML()
        self.prediction: float = float("nan")
        self.in_spec: bool | None = None
        axes = [p.name for p in self.twin.inputs if p.via != "capacity"]
        self.x_axis = w.Dropdown(options=axes, value=axes[0], description="x")
        self.y_axis = w.Dropdown(options=axes, value=axes[min(1, len(axes) - 1)], description="y")
        self.draws = w.IntSlider(value=500, min=100, max=2000, step=100, description="draws")
        self.space_button = w.Button(description="Compute design space", icon="th")
        self.space_button.on_click(lambda _b: self.show_design_space())
        self.space_image = w.Image(format="png")
        self.space: DesignSpace | None = None
        self.drift_button = w.Button(description="Drift charts", icon="line-chart")
        self.drift_button.on_click(lambda _b: self.show_drift())
        self.drift_image = w.Image(format="png")
        self.drift_table = w.HTML()
        self.drift_report: DriftReport | None = None
        whatif = w.VBox([*self.sliders.values(), self.readout])
        space = w.VBox([w.HBox([self.x_axis, self.y_axis, self.draws, self.space_button]), self.space_image])
        monitor = w.VBox([self.drift_button, self.drift_table, self.drift_image])
        self.tabs = w.Tab(children=[self.card, whatif, space, monitor])
        for i, title in enumerate(("Model card", "What if", "Design space", "Drift")):
            self.tabs.set_title(i, title)
        super().__init__([self.tabs])
        self._on_change()

    def _range(self, name: str, values: np.ndarray) -> tuple[float, float]:
        par = self.limits.loc[name, ["par_low", "par_high"]].to_numpy(dtype=float)
        if np.isfinite(par).all():
            return float(par[0]), float(par[1])
        if len(values):
            lo, hi = np.percentile(values, [1, 99])
            pad = 0.1 * (hi - lo) if hi > lo else max(abs(hi) * 0.1, 1.0)
            return float(lo - pad), float(hi + pad)
        return 0.0, 1.0

    def inputs(self) -> dict[str, float]:
        return {k: float(s.value) for k, s in self.sliders.items()}

    def _on_change(self, _change: Any = None) -> None:
        pred = self.twin.predict({k: [v] for k, v in self.inputs().items()}, warn=False)
        self.prediction = float(pred[self.output].iloc[0])
        lo, hi = self.limits.loc[self.output, ["spec_low", "spec_high"]].to_numpy(dtype=float)
        low, high = (None if np.isnan(lo) else float(lo)), (None if np.isnan(hi) else float(hi))
        self.in_spec = (low is None or self.prediction >= low) and (high is None or self.prediction <= high)
        unit = next(p.unit for p in self.twin.outputs if p.name == self.output)
        note = "" if self.twin.status == "validated" else f" <i>({self.twin.status} twin: not validated)</i>"
        self.readout.value = (
            f"<p>predicted <b>{html.escape(self.output)} = {self.prediction:.4g} {html.escape(unit)}</b>"
            f"{' within' if self.in_spec else ' OUTSIDE'} its specification{note}</p>"
            + spec_bar(self.prediction, low, high, unit)
        )

    def show_design_space(self) -> DesignSpace:
        import matplotlib.pyplot as plt

        self.space = design_space(
            self.kg, self.twin, self.x_axis.value, self.y_axis.value, grid=40, draws=int(self.draws.value)
        )
        fig, ax = plt.subplots(figsize=(5.5, 4.2))
        self.space.plot(ax=ax)
        self.space_image.value = _png(fig)
        return self.space

    def show_drift(self) -> DriftReport:
        import matplotlib.pyplot as plt

        self.drift_report = drift(self.kg, self.twin, output=self.output)
        fig, ax = plt.subplots(figsize=(8, 3))
        self.drift_report.plot(ax=ax)
        self.drift_image.value = _png(fig)
        self.drift_table.value = self.drift_report._repr_html_()
        return self.drift_report


def _find(kg: KnowledgeGraph, ref: str) -> Twin:
    """A twin id or version IRI, else the first twin attached to the node ``ref``."""
    from ..twins import TwinError

    try:
        return kg.twins.load(ref)
    except TwinError:
        pass
    found = kg.twins.of(ref)
    if not found:
        raise TwinError(f"no twin attached to {ref!r}")
    return found[0]
