"""Design space, sensitivity and scale-up: what a fitted twin says about settings nobody ran yet.

Design space (ICH Q8(R2) 2.4.4): the probability that every output meets its
specification over a grid of two inputs, by Monte Carlo over (a) the fitted
parameters' uncertainty (multivariate normal with the fit's covariance) and
(b) the variability of every other input, drawn as whole rows of the normal
batch history so that inputs that move together stay together. One numpy
evaluation covers the grid x draws array (points broadcast against draws);
there is no Python loop per draw.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from .data import history
from .model import Port, Twin, TwinError, convert_port

if TYPE_CHECKING:
    from ..kg import KnowledgeGraph

__all__ = ["DesignSpace", "ScaleUp", "design_space", "limits", "scale_up", "sensitivity"]

_LIMITS = """SELECT ?x ?u ?target ?nor_low ?nor_high ?par_low ?par_high ?spec_low ?spec_high WHERE {{
  VALUES ?x {{ {values} }}
  OPTIONAL {{ ?x pkg:unit ?u }} OPTIONAL {{ ?x pkg:target ?target }}
  OPTIONAL {{ ?x pkg:norLow ?nor_low }} OPTIONAL {{ ?x pkg:norHigh ?nor_high }}
  OPTIONAL {{ ?x pkg:parLow ?par_low }} OPTIONAL {{ ?x pkg:parHigh ?par_high }}
  OPTIONAL {{ ?x pkg:specLow ?spec_low }} OPTIONAL {{ ?x pkg:specHigh ?spec_high }} }}"""


def limits(kg: KnowledgeGraph, twin: Twin) -> pd.DataFrame:
    """Target, NOR, PAR (inputs) and specification limits (outputs) of each port, in the port's unit."""
    ports = [p for p in (*twin.inputs, *twin.outputs) if p.source and p.via != "capacity"]
    iris = {p.name: kg.resolve(p.source) for p in ports}
    cols = ["target", "nor_low", "nor_high", "par_low", "par_high", "spec_low", "spec_high"]
    frame = pd.DataFrame(np.nan, index=[p.name for p in (*twin.inputs, *twin.outputs)], columns=cols)
    if not iris:
        return frame
    rows = kg.query(_LIMITS.format(values=" ".join(f"<{i}>" for i in set(iris.values()))))
    by_iri = rows.drop_duplicates("x").set_index("x") if not rows.empty else pd.DataFrame()
    for p in ports:
        if iris[p.name] not in by_iri.index:
            continue
        r = by_iri.loc[iris[p.name]]
        unit = r.get("u") if isinstance(r.get("u"), str) else p.unit
        for c in cols:
            v = r.get(c)
            if v is not None and pd.notna(v):
                frame.at[p.name, c] = float(convert_port(np.array([float(cast(Any, v))]), str(unit), p).item())
    return frame


def _at(frame: pd.DataFrame, row: str, col: str) -> float:
    """One cell as a float (NaN when empty)."""
    return float(cast(Any, frame.at[row, col]))


def _normal_history(kg: KnowledgeGraph, twin: Twin) -> pd.DataFrame:
    h = history(kg, twin)
    names = [p.name for p in twin.inputs]
    h = h[(h["deviations"] == 0) & ~h["suspect"].astype(bool)].dropna(subset=names)
    if h.empty:
        raise TwinError("no complete normal batch (no deviation, no suspect calibration) to draw inputs from")
    return h


def _param_draws(twin: Twin, draws: int, rng: np.random.Generator) -> dict[str, Any]:
    """Parameter values, shape (draws, 1) for fitted ones when the fit left a covariance."""
    values: dict[str, Any] = dict(twin.values())
    free = [k for k, p in twin.params.items() if not p.fixed]
    if twin.covariance is None or draws <= 1 or twin.covariance.shape != (len(free), len(free)):
        return values
    mean = np.array([values[k] for k in free])
    sample = rng.multivariate_normal(mean, twin.covariance, size=draws, method="eigh")
    for i, k in enumerate(free):
        col = sample[:, i]
        if twin.params[k].positive:
            col = np.maximum(col, 1e-12 * abs(mean[i]) + 1e-300)
        values[k] = col[:, None]
    return values


@dataclass(frozen=True)
class DesignSpace:
    """P(every output within specification) over a grid of two inputs."""

    x: str
    y: str
    xs: np.ndarray
    ys: np.ndarray
    probability: np.ndarray  # shape (len(ys), len(xs))
    ranges: pd.DataFrame  # NOR/PAR of x and y (port units)
    specs: dict[str, tuple[float | None, float | None]]
    draws: int

    def to_frame(self) -> pd.DataFrame:
        gx, gy = np.meshgrid(self.xs, self.ys)
        return pd.DataFrame({self.x: gx.ravel(), self.y: gy.ravel(), "probability": self.probability.ravel()})

    def plot(self, ax: Any = None, *, level: float = 0.95) -> Any:
        """Heat map of the probability with the NOR (solid) and PAR (dashed) drawn on top."""
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle

        if ax is None:
            _, ax = plt.subplots(figsize=(5.5, 4.5))
        mesh = ax.pcolormesh(self.xs, self.ys, self.probability, vmin=0, vmax=1, cmap="RdYlGn", shading="auto")
        ax.figure.colorbar(mesh, ax=ax, label="P(all outputs in spec)")
        ax.contour(self.xs, self.ys, self.probability, levels=[level], colors="k", linewidths=1)
        for kind, style in (("nor", "-"), ("par", "--")):
            r = self.ranges
            lo_x, hi_x = _at(r, self.x, f"{kind}_low"), _at(r, self.x, f"{kind}_high")
            lo_y, hi_y = _at(r, self.y, f"{kind}_low"), _at(r, self.y, f"{kind}_high")
            if np.all(np.isfinite([lo_x, hi_x, lo_y, hi_y])):
                ax.add_patch(
                    Rectangle((lo_x, lo_y), hi_x - lo_x, hi_y - lo_y, fill=False, ls=style, lw=1.5, label=kind.upper())
                )
        ax.set_xlabel(self.x)
        ax.set_ylabel(self.y)
        ax.set_title(f"design space ({self.draws} draws per point; black: P = {level:g})")
        ax.legend(loc="upper right", fontsize=8)
        return ax

    def _repr_html_(self) -> str:
        p = self.probability
        return (
            f"<p>Design space over <b>{html.escape(self.x)}</b> x <b>{html.escape(self.y)}</b> "
            f"({len(self.xs)} x {len(self.ys)} points, {self.draws} draws each): "
            f"P(in spec) from {p.min():.3f} to {p.max():.3f}; {np.mean(p >= 0.95):.0%} of the grid at P >= 0.95.</p>"
        )


def design_space(
    kg: KnowledgeGraph,
    twin: Twin,
    x: str,
    y: str,
    *,
    grid: int = 50,
    draws: int = 1000,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    specs: Mapping[str, tuple[float | None, float | None]] | None = None,
    seed: int = 0,
) -> DesignSpace:
    """Monte Carlo design space over inputs ``x`` and ``y`` (default ranges: their PAR, else history)."""
    names = [p.name for p in twin.inputs]
    for n in (x, y):
        if n not in names:
            raise TwinError(f"{n!r} is not an input of the twin (inputs: {names})")
    lim = limits(kg, twin)
    hist = _normal_history(kg, twin)
    out_specs = dict(specs or {})
    for p in twin.outputs:
        if p.name not in out_specs:
            lo, hi = _at(lim, p.name, "spec_low"), _at(lim, p.name, "spec_high")
            out_specs[p.name] = (None if np.isnan(lo) else float(lo), None if np.isnan(hi) else float(hi))
    if all(lo is None and hi is None for lo, hi in out_specs.values()):
        raise TwinError("no output has a specification: pass specs={output: (low, high)}")

    def axis(name: str, given: tuple[float, float] | None) -> np.ndarray:
        if given is not None:
            lo, hi = given
        elif np.isfinite(lim.loc[name, ["par_low", "par_high"]].to_numpy(dtype=float)).all():
            lo, hi = _at(lim, name, "par_low"), _at(lim, name, "par_high")
        else:
            lo, hi = float(hist[name].min()), float(hist[name].max())
        return np.linspace(float(lo), float(hi), grid)

    xs, ys = axis(x, x_range), axis(y, y_range)
    gx, gy = np.meshgrid(xs, ys)
    rng = np.random.default_rng(seed)
    rows = hist.iloc[rng.integers(0, len(hist), draws)]
    inputs: dict[str, np.ndarray] = {n: rows[n].to_numpy(dtype=float)[:, None] for n in names}
    inputs[x] = gx.ravel()[None, :]
    inputs[y] = gy.ravel()[None, :]
    with np.errstate(all="ignore"):
        out = twin.evaluate(inputs, _param_draws(twin, draws, rng))
    ok = np.ones((draws, gx.size), dtype=bool)
    for out_name, (low, high) in out_specs.items():
        v = np.broadcast_to(out[out_name], ok.shape)
        if low is not None:
            ok &= v >= low
        if high is not None:
            ok &= v <= high
    prob = ok.mean(axis=0).reshape(gx.shape)
    return DesignSpace(
        x, y, xs, ys, prob, lim.loc[[x, y], ["nor_low", "nor_high", "par_low", "par_high"]], out_specs, draws
    )


def sensitivity(kg: KnowledgeGraph, twin: Twin, *, output: str | None = None) -> pd.DataFrame:
    """Swing of an output as each input moves over its 5-95 % history range, the others at their median.

    Ranked by the size of the swing, also given as a share of the output's
    specification width when it has two limits (a tornado chart's numbers)."""
    name = output or twin.outputs[0].name
    hist = _normal_history(kg, twin)
    names = [p.name for p in twin.inputs]
    med = {n: np.array([float(hist[n].median())]) for n in names}
    lim = limits(kg, twin)
    width = _at(lim, name, "spec_high") - _at(lim, name, "spec_low")
    rows = []
    for n in names:
        lo, hi = np.percentile(hist[n].to_numpy(dtype=float), [5, 95])
        at = {}
        for tag, v in (("low", lo), ("high", hi)):
            x = {**med, n: np.array([v])}
            at[tag] = float(np.ravel(twin.evaluate(x, twin.values())[name])[0])
        rows.append(
            {
                "input": n,
                "low": lo,
                "high": hi,
                f"{name}_at_low": at["low"],
                f"{name}_at_high": at["high"],
                "swing": at["high"] - at["low"],
                "share_of_spec": abs(at["high"] - at["low"]) / width if np.isfinite(width) and width > 0 else np.nan,
            }
        )
    frame = pd.DataFrame(rows)
    return frame.reindex(frame["swing"].abs().sort_values(ascending=False).index).reset_index(drop=True)


@dataclass(frozen=True)
class ScaleUp:
    """Settings that keep the predicted output on target on a unit of another capacity."""

    output: str
    target: float
    adjust: str
    reference: dict[str, float]  # the typical settings on the reference units
    capacity_from: float
    capacity_to: float
    unchanged: float  # predicted output on the new unit with the reference settings
    setting: float | None  # the adjusted input's value that meets the target (None: none found)
    within_par: bool | None
    par: tuple[float, float] | None

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "case": "reference unit",
                    "capacity": self.capacity_from,
                    self.adjust: self.reference[self.adjust],
                    self.output: self.target,
                },
                {
                    "case": "new unit, same settings",
                    "capacity": self.capacity_to,
                    self.adjust: self.reference[self.adjust],
                    self.output: self.unchanged,
                },
                {
                    "case": "new unit, adjusted",
                    "capacity": self.capacity_to,
                    self.adjust: self.setting,
                    self.output: self.target if self.setting is not None else np.nan,
                },
            ]
        )

    def __str__(self) -> str:
        if self.setting is None:
            return f"no {self.adjust} keeps {self.output} at {self.target:.4g} on a {self.capacity_to:g} unit"
        par = "" if self.within_par is None else (" (within the PAR)" if self.within_par else " (OUTSIDE the PAR)")
        return (
            f"{self.capacity_from:g} -> {self.capacity_to:g}: with the same settings {self.output} would be "
            f"{self.unchanged:.4g} instead of {self.target:.4g}; set {self.adjust} to {self.setting:.4g}{par}"
        )

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(str(self))}</p>" + self.to_frame().to_html(index=False)


def scale_up(
    kg: KnowledgeGraph,
    twin: Twin,
    *,
    capacity: float,
    adjust: str,
    target: float | None = None,
    output: str | None = None,
    settings: Mapping[str, float] | None = None,
) -> ScaleUp:
    """Evaluate the twin on a unit of ``capacity`` and solve for the ``adjust`` input that meets ``target``.

    The reference settings are the median of the normal batch history unless
    ``settings`` overrides some; the target defaults to the prediction at
    the reference settings on the reference units (keep the product as it is)."""
    from scipy.optimize import brentq

    cap: Port | None = next((p for p in twin.inputs if p.via == "capacity"), None)
    if cap is None:
        raise TwinError(f"twin {twin.meta.id or twin.kind} has no capacity input: it is not scale-aware")
    names = [p.name for p in twin.inputs]
    if adjust not in names or adjust == cap.name:
        raise TwinError(f"adjust must be one of the twin's set-point inputs {[n for n in names if n != cap.name]}")
    name = output or twin.outputs[0].name
    hist = _normal_history(kg, twin)
    ref = {n: float(hist[n].median()) for n in names}
    ref.update(settings or {})

    def predict(values: Mapping[str, float]) -> float:
        x = {n: np.array([values[n]]) for n in names}
        return float(np.ravel(twin.evaluate(x, twin.values())[name])[0])

    goal = predict(ref) if target is None else float(target)
    new = {**ref, cap.name: float(capacity)}
    unchanged = predict(new)
    lim = limits(kg, twin)
    par = lim.loc[adjust, ["par_low", "par_high"]].to_numpy(dtype=float)
    has_par = bool(np.isfinite(par).all())
    lo, hi = (ref[adjust] / 4, ref[adjust] * 4) if ref[adjust] > 0 else (ref[adjust] - 100, ref[adjust] + 100)
    f = lambda v: predict({**new, adjust: v}) - goal  # noqa: E731
    grid = np.linspace(lo, hi, 401)
    vals = np.array([f(v) for v in grid])
    sign = np.flatnonzero(np.sign(vals[:-1]) != np.sign(vals[1:]))
    setting = None
    if len(sign):
        # the root nearest the reference setting
        i = sign[np.argmin(np.abs(grid[sign] - ref[adjust]))]
        setting = float(brentq(f, grid[i], grid[i + 1], xtol=1e-10))
    within = None if setting is None or not has_par else bool(par[0] <= setting <= par[1])
    return ScaleUp(
        name,
        goal,
        adjust,
        ref,
        ref[cap.name],
        float(capacity),
        unchanged,
        setting,
        within,
        (float(par[0]), float(par[1])) if has_par else None,
    )
