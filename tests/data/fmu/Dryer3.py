"""The drying model of Dryer.py as an FMI 3.0 FMU with both interfaces, built by pythonfmu3 (test fixture).

    dm/dt = -k (m - E),  m(0) = m0   =>   m(t) = E + (m0 - E) exp(-k t)

Model exchange gives fmpy the derivative (fmpy integrates it with CVode);
co-simulation integrates each communication step exactly. Units are declared
(time in h, moisture as a mass fraction). Build:
``python -m pythonfmu3 build -f Dryer3.py -d OUT``.
"""

from __future__ import annotations

import math
from typing import Any

from pythonfmu3 import CoSimulation, Float64, Fmi3Causality, Fmi3SlaveBase, Fmi3Variability, ModelExchange, Unit


class Dryer3(Fmi3SlaveBase, ModelExchange, CoSimulation):
    """Moisture m of a drying bed: starts at m0, tends to the equilibrium E at rate k."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.author = "pharmakg tests"
        self.description = "First-order drying: dm/dt = -k (m - E), m(0) = m0; time in h"
        self.time = 0.0
        self.m0 = 0.20
        self.E = 0.02
        self.k = 0.5
        self.m = self.m0
        self.der_m = 0.0
        self.register_units([Unit("h", s=1, factor=3600.0), Unit("1/h", s=-1, factor=1 / 3600.0), Unit("kg/kg")])
        continuous, fixed, tunable = Fmi3Variability.continuous, Fmi3Variability.fixed, Fmi3Variability.tunable
        self.register_variable(Float64("time", causality=Fmi3Causality.independent, variability=continuous, unit="h"))
        self.register_variable(Float64("m0", causality=Fmi3Causality.parameter, variability=fixed, unit="kg/kg"))
        self.register_variable(Float64("E", causality=Fmi3Causality.parameter, variability=tunable, unit="kg/kg"))
        self.register_variable(Float64("k", causality=Fmi3Causality.parameter, variability=tunable, unit="1/h"))
        self.register_variable(Float64("m", causality=Fmi3Causality.output, variability=continuous, unit="kg/kg"))
        self.register_variable(
            Float64("der_m", causality=Fmi3Causality.local, variability=continuous, derivative=4, unit="1/h")
        )

    def exit_initialization_mode(self) -> None:
        self.m = self.m0

    def get_continuous_state_derivatives(self) -> list[float]:
        self.der_m = -self.k * (self.m - self.E)
        return [self.der_m]

    def do_step(self, current_time: float, step_size: float) -> bool:
        self.m = self.E + (self.m - self.E) * math.exp(-self.k * step_size)
        self.time = current_time + step_size
        return True
