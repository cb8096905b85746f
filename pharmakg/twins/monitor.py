"""Drift monitoring: EWMA and CUSUM charts of a twin's residuals, batch by batch in time order.

Why residuals and not the results themselves: a result can drift a long way
inside its specification before anyone notices, while the twin knows what
the result should have been given the batch's recorded inputs. A sensor that
reads low, a worn part or a changed raw material shows as residuals that
stop averaging zero, long before a result goes out of specification.

Residuals are standardised by sigma, the twin's RMSE on its held-out batches
(the training RMSE if nothing was held out). Charts run
per unit of the twin's equipment class (``by="unit"``) when the twin names
one, since a fault is usually in one unit; otherwise over all batches.

- EWMA (Roberts 1959): z_t = lam r_t + (1 - lam) z_(t-1), z_0 = 0; signal
  when |z_t| > L sqrt(lam / (2 - lam) (1 - (1 - lam)^(2t))). Defaults lam = 0.2,
  L = 3.5 (Montgomery, Introduction to Statistical Quality Control, 9.2; the
  textbook L = 3 gives a false alarm every ~500 batches per unit, too many
  for a plant's years of history).
- Tabular CUSUM (Page 1954): C+_t = max(0, r_t - k + C+_(t-1)), C- likewise
  for -r_t; signal when either exceeds h. Defaults k = 0.5 (tuned to a
  1-sigma shift), h = 6 (in-control ARL ~ 2 500 per side, Siegmund's
  approximation, against ~ 470 for h = 5).
- Standardised residuals are clipped to +-4 before charting (``clip``): a
  single wild result (a lab error, a random OOS) is marked as an outlier in
  the frame but does not hold the charts in alarm for the batches after it.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .fitting import predict_batches
from .model import Twin, TwinError

if TYPE_CHECKING:
    from ..kg import KnowledgeGraph

__all__ = ["DriftReport", "drift"]


@dataclass(frozen=True)
class DriftReport:
    """Residual charts of one twin output; ``alarms`` holds the first signal of each run of signals."""

    twin: str
    output: str
    sigma: float
    frame: pd.DataFrame  # per batch: batch, unit, start, residual, z, ewma, limit, cusum_hi, cusum_lo, signal, outlier
    alarms: pd.DataFrame  # unit, batch, start, statistic, direction, ewma, cusum

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    @property
    def outliers(self) -> pd.DataFrame:
        """Batches whose residual alone exceeds ``clip`` sigma."""
        return self.frame[self.frame["outlier"]].reset_index(drop=True)

    def first_alarm(self, unit: str | None = None) -> pd.Series | None:
        a = self.alarms if unit is None else self.alarms[self.alarms["unit"] == unit]
        return None if a.empty else a.iloc[0]

    def plot(self, unit: str | None = None, ax: Any = None) -> Any:
        """EWMA of standardised residuals with its limits, alarms marked (matplotlib)."""
        import matplotlib.pyplot as plt

        f = self.frame if unit is None else self.frame[self.frame["unit"] == unit]
        if ax is None:
            _, ax = plt.subplots(figsize=(9, 3.2))
        for u, g in f.groupby("unit", dropna=False, sort=True):
            ax.plot(g["start"], g["ewma"], marker=".", lw=1, label=f"EWMA {u}")
            ax.fill_between(g["start"], -g["limit"], g["limit"], alpha=0.08, step="mid")
            s = g[g["signal"]]
            ax.scatter(s["start"], s["ewma"], color="crimson", zorder=3, s=18)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_ylabel(f"EWMA of {self.output} residual / sigma")
        ax.set_title(f"{self.twin}: drift of {self.output} (sigma {self.sigma:.3g}); red = signal")
        ax.legend(fontsize=7, loc="best")
        return ax

    def _repr_html_(self) -> str:
        head = (
            f"<p><b>{html.escape(self.twin)}</b>: {len(self.alarms)} drift alarm(s) on {html.escape(self.output)}</p>"
        )
        return head + (self.alarms.to_html(index=False) if len(self.alarms) else "")

    def __repr__(self) -> str:
        return f"<DriftReport {self.twin} {self.output}: {len(self.frame)} batches, {len(self.alarms)} alarm(s)>"


def drift(
    kg: KnowledgeGraph,
    twin: Twin,
    *,
    output: str | None = None,
    by: str | None = "unit",
    lam: float = 0.2,
    limit: float = 3.5,
    k: float = 0.5,
    h: float = 6.0,
    clip: float = 4.0,
    sigma: float | None = None,
) -> DriftReport:
    """EWMA and CUSUM of the twin's standardised residuals over the batch history, in time order."""
    name = output or twin.outputs[0].name
    if name not in {p.name for p in twin.outputs}:
        raise TwinError(f"{name!r} is not an output of the twin (outputs: {[p.name for p in twin.outputs]})")
    if sigma is None:
        fit = twin.fit_report
        if fit is None or name not in fit.rmse:
            raise TwinError("the twin was never fitted: pass sigma= (the residual SD of normal batches)")
        # the held-out RMSE is the honest prediction error; the training RMSE flatters the model
        sigma = fit.test_rmse.get(name, float("nan"))
        if not np.isfinite(sigma):
            sigma = fit.rmse[name]
    if not sigma > 0:
        raise TwinError(f"sigma must be positive, not {sigma}")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the status is reported by predict_batches' callers
        pred = predict_batches(kg, twin)
    pred = pred[pred[name].notna()].sort_values(["start", "batch"], kind="stable")
    frame = pd.DataFrame(
        {
            "batch": pred["batch"].to_numpy(),
            "unit": pred["unit"].to_numpy() if by == "unit" else "all",
            "start": pred["start"].to_numpy(),
            "measured": pred[name].to_numpy(),
            "predicted": pred[f"{name}_predicted"].to_numpy(),
            "residual": pred[f"{name}_residual"].to_numpy(),
        }
    )
    frame["z"] = frame["residual"] / sigma
    parts = []
    for _, g in frame.groupby("unit", sort=True, dropna=False):
        parts.append(_charts(g.copy(), lam, limit, k, h, clip))
    charts = pd.concat(parts).sort_values(["start", "batch"], kind="stable").reset_index(drop=True)
    alarms = _alarms(charts)
    return DriftReport(f"{twin.meta.id or twin.kind} v{twin.version}", name, float(sigma), charts, alarms)


def _charts(g: pd.DataFrame, lam: float, limit: float, k: float, h: float, clip: float) -> pd.DataFrame:
    raw = g["z"].to_numpy(dtype=float)
    z = np.clip(raw, -clip, clip)  # one wild result is an outlier to look at, not a drift
    n = len(z)
    ewma = np.empty(n)
    hi = np.empty(n)
    lo = np.empty(n)
    e = c_hi = c_lo = 0.0
    for i in range(n):  # a recurrence: one pass per unit, a few thousand steps at most
        e = lam * z[i] + (1 - lam) * e
        c_hi = max(0.0, z[i] - k + c_hi)
        c_lo = max(0.0, -z[i] - k + c_lo)
        ewma[i], hi[i], lo[i] = e, c_hi, c_lo
    t = np.arange(1, n + 1)
    width = limit * np.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * t)))
    g["ewma"], g["limit"], g["cusum_hi"], g["cusum_lo"] = ewma, width, hi, lo
    g["ewma_signal"] = np.abs(ewma) > width
    g["cusum_signal"] = (hi > h) | (lo > h)
    g["signal"] = g["ewma_signal"] | g["cusum_signal"]
    g["outlier"] = np.abs(raw) > clip
    return g


def _alarms(f: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for unit, g in f.groupby("unit", sort=True, dropna=False):
        sig = g["signal"].to_numpy()
        starts = np.flatnonzero(sig & ~np.concatenate([[False], sig[:-1]]))
        for i in starts:
            r = g.iloc[i]
            stat = "EWMA" if r["ewma_signal"] else "CUSUM"
            direction = "low" if (r["ewma"] < 0 if stat == "EWMA" else r["cusum_lo"] > r["cusum_hi"]) else "high"
            rows.append(
                {
                    "unit": unit,
                    "batch": r["batch"],
                    "start": r["start"],
                    "statistic": stat,
                    "direction": direction,
                    "ewma": float(r["ewma"]),
                    "cusum": float(max(r["cusum_hi"], r["cusum_lo"])),
                }
            )
    cols = ["unit", "batch", "start", "statistic", "direction", "ewma", "cusum"]
    return pd.DataFrame(rows, columns=cols).sort_values("start", kind="stable").reset_index(drop=True)
