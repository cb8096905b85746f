"""First-order degradation with Arrhenius temperature dependence (stability, shelf life).

    C(t) = C0 exp(-k t),   k = k_ref exp(-Ea/R (1/T - 1/T_ref)),   T_ref = 25 Cel

Fitted on stability results (content against time at several storage
temperatures, accelerated conditions included); :meth:`shelf_life` gives the
time to reach a specification limit at a storage temperature.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ...units import convert
from ..model import Param, Port, Twin, TwinError
from ..registry import register_twin

__all__ = ["Degradation"]

R = 8.314462618


@register_twin("degradation")
class Degradation(Twin):
    """Content (assay) against storage time and temperature."""

    equation = "C = C0 exp(-k t); k = k_ref exp(-Ea/R (1/T - 1/T_ref)), T_ref = 298.15 K"

    @classmethod
    def build(cls, *, temperature: Port, time: Port, output: Port) -> Degradation:
        params = (
            Param("C0", 100.0, output.unit, positive=True),
            Param("k_ref", 1e-3, f"/({time.unit})", positive=True),
            Param("Ea", 80000.0, "J/mol", positive=True),
        )
        settings = {"temperature": temperature.name, "time": time.name, "output": output.name, "T_ref": 298.15}
        return cls((temperature, time), (output,), params, settings=settings)

    def rate(self, x: Mapping[str, np.ndarray], p: Mapping[str, Any]) -> np.ndarray:
        port = next(q for q in self.inputs if q.name == self.settings["temperature"])
        t_k = convert(np.asarray(x[self.settings["temperature"]], dtype=float), port.unit, "K")
        return np.asarray(p["k_ref"] * np.exp(-p["Ea"] / R * (1.0 / t_k - 1.0 / self.settings["T_ref"])))

    def evaluate(self, x: Mapping[str, np.ndarray], p: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return {self.settings["output"]: p["C0"] * np.exp(-self.rate(x, p) * x[self.settings["time"]])}

    def initial(self, data: pd.DataFrame) -> dict[str, float]:
        y = data[self.settings["output"]].to_numpy(dtype=float)
        t = data[self.settings["time"]].to_numpy(dtype=float)
        c0 = float(np.max(y))
        with np.errstate(all="ignore"):
            k = np.log(c0 / y) / t
        good = np.isfinite(k) & (k > 0)
        return {"C0": c0, "k_ref": float(np.median(k[good])) if good.any() else 1e-3, "Ea": 80000.0}

    def shelf_life(self, temperature: float, limit: float) -> float:
        """Time (in the time port's unit) until the content falls to ``limit`` at ``temperature``."""
        p = self.values()
        if not 0 < limit < p["C0"]:
            raise TwinError(f"limit {limit} must lie between 0 and the initial content {p['C0']:.4g}")
        k = float(self.rate({self.settings["temperature"]: np.array([temperature])}, p)[0])
        return float(np.log(p["C0"] / limit) / k)
