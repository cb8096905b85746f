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

    def initial(self, data: pd.DataFrame) -> dict[str, float]:
        y = data[self.settings["output"]].to_numpy(dtype=float)
        f = data[self.settings["force"]].to_numpy(dtype=float)
        h_max = 1.3 * float(np.max(y))
        k = 1.5 / float(np.median(f))
        c = float(np.log(h_max / np.median(y)) * np.exp(1.5))
        start = {"H_max": h_max, "c": c, "K": k}
        if self.settings["moisture"]:
            start["m"] = 0.0
        return start
