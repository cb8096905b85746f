"""Compaction: tablet hardness (or tensile strength) against compression force.

    H = H_max exp(-c eps),   eps = exp(-K F (1 + m (w - w_ref)))

Ryshkewitch-Duckworth: strength falls exponentially with porosity ``eps``;
porosity falls exponentially with compaction force F (Heckel); moisture ``w``
of the granule (optional input) plasticises it and changes how readily it
densifies. Fitted parameters: H_max, c, K (per force unit), m (per moisture unit).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..model import Param, Port, Twin
from ..registry import register_twin

__all__ = ["Compaction"]


@register_twin("compaction")
class Compaction(Twin):
    """Hardness from main compression force and, optionally, granule moisture."""

    equation = "H = H_max exp(-c exp(-K F (1 + m (w - w_ref))))  (Ryshkewitch-Duckworth, Heckel porosity)"

    @classmethod
    def build(cls, *, force: Port, output: Port, moisture: Port | None = None) -> Compaction:
        inputs = (force,) if moisture is None else (force, moisture)
        params = [
            Param("H_max", 100.0, output.unit, positive=True),
            Param("c", 1.0, "1", positive=True),
            Param("K", 0.1, f"/({force.unit})", positive=True),
        ]
        if moisture is not None:
            params.append(Param("m", 0.0, f"/({moisture.unit})"))
        settings = {
            "force": force.name,
            "moisture": None if moisture is None else moisture.name,
            "output": output.name,
            "w_ref": 0.0,
        }
        return cls(inputs, (output,), tuple(params), settings=settings)

    def porosity(self, x: Mapping[str, np.ndarray], p: Mapping[str, Any]) -> np.ndarray:
        s = self.settings
        dens = p["K"] * x[s["force"]]
        if s["moisture"]:
            dens = dens * (1.0 + p["m"] * (x[s["moisture"]] - s["w_ref"]))
        return np.asarray(np.exp(-dens))

    def evaluate(self, x: Mapping[str, np.ndarray], p: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return {self.settings["output"]: p["H_max"] * np.exp(-p["c"] * self.porosity(x, p))}

    def prepare(self, data: pd.DataFrame) -> None:
        if self.settings["moisture"]:
            self.settings["w_ref"] = float(np.median(data[self.settings["moisture"]].to_numpy(dtype=float)))

    def bounds(self, data: pd.DataFrame) -> dict[str, tuple[float, float]]:
        """K F between 0.1 and 10 at the median force, H_max at most 20 x the hardest tablet."""
        f_med = max(float(np.median(data[self.settings["force"]].to_numpy(dtype=float))), 1e-9)
        y_max = float(np.max(data[self.settings["output"]].to_numpy(dtype=float)))
        return {"K": (0.1 / f_med, 10.0 / f_med), "H_max": (0.5 * y_max, 20.0 * y_max), "c": (1e-3, 1e4)}

    def initial(self, data: pd.DataFrame) -> dict[str, float]:
        """Start on the best point of a (K, m) grid: given K and m, ln H is linear in ln H_max and c.

        Over the narrow force range of routine production H_max, c and K trade off
        along a ridge; a start on the ridge lets the joint fit converge in a few
        steps instead of crawling towards it (or running out of evaluations)."""
        s = self.settings
        y = np.log(np.clip(data[s["output"]].to_numpy(dtype=float), 1e-9, None))
        f = data[s["force"]].to_numpy(dtype=float)
        w = data[s["moisture"]].to_numpy(dtype=float) - s["w_ref"] if s["moisture"] else np.zeros_like(f)
        spread = float(np.ptp(w)) or 1.0
        best: tuple[float, float, float, float, float] | None = None
        for k in np.geomspace(0.2, 5.0, 33) / max(float(np.median(f)), 1e-9):
            for m in np.linspace(-1.0, 1.0, 21) / spread if s["moisture"] else [0.0]:
                phi = 1.0 + m * w
                if np.any(phi <= 0):
                    continue
                design = np.column_stack([np.ones_like(f), -np.exp(-k * f * phi)])
                (log_h, c), *_ = np.linalg.lstsq(design, y, rcond=None)
                if c <= 0:
                    continue
                sse = float(np.sum((design @ np.array([log_h, c]) - y) ** 2))
                if best is None or sse < best[0]:
                    best = (sse, float(np.exp(log_h)), float(c), float(k), float(m))
        if best is None:
            best = (0.0, 1.3 * float(np.exp(np.max(y))), 1.0, 1.5 / float(np.median(f)), 0.0)
        _, h_max, c, k, m = best
        start = {"H_max": h_max, "c": c, "K": k}
        if s["moisture"]:
            start["m"] = m
        return start
