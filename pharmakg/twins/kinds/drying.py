"""Fluid-bed drying: first-order moisture loss towards an equilibrium, Arrhenius in temperature.

    LOD(t) = E + (LOD0 - E) exp(-k t)
    k      = k_ref exp(-Ea/R (1/T - 1/T_ref)) (q / q_ref)^n,   q = airflow / capacity
    E      = E0 + sum_i b_i (z_i - z_i,ref)

The rate follows the inlet-air temperature T (Arrhenius) and the specific
airflow q (airflow per kg of dryer capacity, which makes the twin scale-aware:
a bigger dryer with the same airflow dries more slowly); E, the equilibrium
moisture, may follow material attributes ``z`` (a sorption isotherm
linearised around the reference). Without a capacity input q is the airflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.integrate import solve_ivp

from ..model import Param, Port, Twin
from ..registry import register_twin

__all__ = ["FluidBedDrying"]

R = 8.314462618  # J/(mol K)


@register_twin("fluid-bed-drying")
class FluidBedDrying(Twin):
    """End-point LOD of a fluid-bed drying step (inputs: T_inlet, airflow, time, moisture0[, capacity, z...])."""

    equation = (
        "LOD = E + (LOD0 - E) exp(-k t); k = k_ref exp(-Ea/R (1/T - 1/T_ref)) (q/q_ref)^n; "
        "q = airflow/capacity; E = E0 + sum b_i (z_i - z_i,ref)"
    )

    @classmethod
    def build(
        cls,
        *,
        temperature: Port,
        airflow: Port,
        time: Port,
        moisture0: Port,
        output: Port,
        capacity: Port | None = None,
        equilibrium: tuple[Port, ...] = (),
        equipment_class: str | None = None,
    ) -> FluidBedDrying:
        """A draft drying twin; each role is a :class:`Port` (its name is kept, the role is recorded)."""
        roles = {"temperature": temperature, "airflow": airflow, "time": time, "moisture0": moisture0}
        if capacity is not None:
            roles["capacity"] = capacity
        inputs = (*roles.values(), *equilibrium)
        params = (
            Param("k_ref", 0.05, f"/{_time_unit(time)}", positive=True),
            Param("Ea", 40000.0, "J/mol", positive=True),
            Param("n", 0.5, "1"),
            Param("E0", 0.5, output.unit),
            *(Param(f"b_{z.name}", 0.0, f"{output.unit}/({z.unit})") for z in equilibrium),
        )
        settings = {
            "roles": {k: p.name for k, p in roles.items()},
            "equilibrium": [z.name for z in equilibrium],
            "output": output.name,
            "T_ref": 333.15,
            "q_ref": 1.0,
            "z_ref": {z.name: 0.0 for z in equilibrium},
        }
        return cls(inputs, (output,), params, settings=settings, equipment_class=equipment_class)

    # -- model ------------------------------------------------------------------------
    def _role(self, x: Mapping[str, np.ndarray], role: str) -> np.ndarray:
        return x[self.settings["roles"][role]]

    def _temperature_k(self, x: Mapping[str, np.ndarray]) -> np.ndarray:
        from ...units import convert

        port = next(p for p in self.inputs if p.name == self.settings["roles"]["temperature"])
        return convert(np.asarray(self._role(x, "temperature"), dtype=float), port.unit, "K")

    def rate(self, x: Mapping[str, np.ndarray], p: Mapping[str, Any]) -> np.ndarray:
        """The drying rate constant k (per time unit of the time port)."""
        s = self.settings
        q = self._role(x, "airflow")
        if "capacity" in s["roles"]:
            q = q / self._role(x, "capacity")
        t_k = self._temperature_k(x)
        return p["k_ref"] * np.exp(-p["Ea"] / R * (1.0 / t_k - 1.0 / s["T_ref"])) * (q / s["q_ref"]) ** p["n"]

    def equilibrium(self, x: Mapping[str, np.ndarray], p: Mapping[str, Any]) -> np.ndarray:
        e = p["E0"]
        for z in self.settings["equilibrium"]:
            e = e + p[f"b_{z}"] * (x[z] - self.settings["z_ref"][z])
        return np.asarray(e)

    def evaluate(self, x: Mapping[str, np.ndarray], p: Mapping[str, Any]) -> dict[str, np.ndarray]:
        k = self.rate(x, p)
        e = self.equilibrium(x, p)
        m0 = self._role(x, "moisture0")
        return {self.settings["output"]: e + (m0 - e) * np.exp(-k * self._role(x, "time"))}

    def simulate(self, data: pd.DataFrame | Mapping[str, Any], times: np.ndarray | None = None) -> pd.DataFrame:
        """Moisture against drying time for each row, integrating dX/dt = -k (X - E) (scipy solve_ivp).

        One row per (case, time); the end point equals :meth:`predict` to the
        integrator's tolerance."""
        x = self._inputs_of(data)
        p = self.values()
        k = np.broadcast_to(self.rate(x, p), x[self.settings["roles"]["time"]].shape)
        e = np.broadcast_to(self.equilibrium(x, p), k.shape)
        m0 = self._role(x, "moisture0")
        end = float(np.max(self._role(x, "time")))
        grid = np.linspace(0.0, end, 61) if times is None else np.asarray(times, dtype=float)
        sol = solve_ivp(lambda _t, m: -k * (m - e), (0.0, float(grid.max())), m0, t_eval=grid, rtol=1e-10, atol=1e-12)
        out = self.settings["output"]
        return pd.DataFrame(
            {
                "case": np.repeat(np.arange(len(m0)), len(grid)),
                "time": np.tile(grid, len(m0)),
                out: sol.y.reshape(-1),
            }
        )

    # -- fitting ------------------------------------------------------------------------
    def prepare(self, data: pd.DataFrame) -> None:
        s = self.settings
        roles = s["roles"]
        q = data[roles["airflow"]].to_numpy(dtype=float)
        if "capacity" in roles:
            q = q / data[roles["capacity"]].to_numpy(dtype=float)
        s["q_ref"] = float(np.median(q))
        s["T_ref"] = float(
            np.median(self._temperature_k({roles["temperature"]: data[roles["temperature"]].to_numpy()}))
        )
        s["z_ref"] = {z: float(np.median(data[z].to_numpy(dtype=float))) for z in s["equilibrium"]}

    def initial(self, data: pd.DataFrame) -> dict[str, float]:
        roles = self.settings["roles"]
        y = data[self.settings["output"]].to_numpy(dtype=float)
        m0 = data[roles["moisture0"]].to_numpy(dtype=float)
        t = data[roles["time"]].to_numpy(dtype=float)
        e0 = max(0.5 * float(np.min(y)), 1e-3)
        with np.errstate(all="ignore"):
            kt = np.log((m0 - e0) / (y - e0)) / t
        k0 = float(np.nanmedian(kt[np.isfinite(kt) & (kt > 0)])) if np.any(np.isfinite(kt) & (kt > 0)) else 0.05
        start = {"k_ref": k0, "Ea": 40000.0, "n": 0.5, "E0": e0}
        start.update({f"b_{z}": 0.0 for z in self.settings["equilibrium"]})
        return start


def _time_unit(port: Port) -> str:
    return port.unit
