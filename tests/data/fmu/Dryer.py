"""A first-order drying model, exported as an FMI 2.0 co-simulation FMU by pythonfmu (test fixture).

    dm/dt = -k (m - E),  m(0) = m0   =>   m(t) = E + (m0 - E) exp(-k t)

Each communication step is integrated exactly, so the FMU's end point equals
the closed form whatever step fmpy takes. Units (time in hours, moisture as a
mass fraction) are declared in the model description, which pythonfmu 0.7
cannot write itself, so that the twin's unit conversion is exercised.
Build: ``python -m pythonfmu build -f Dryer.py -d OUT``.
"""

from __future__ import annotations

import math
from typing import Any
from xml.etree.ElementTree import Element

from pythonfmu import Fmi2Causality, Fmi2Slave, Fmi2Variability, Real

UNITS = {"m0": "kg/kg", "E": "kg/kg", "k": "1/h", "m": "kg/kg"}


class Dryer(Fmi2Slave):
    """Moisture m of a drying bed: starts at m0, tends to the equilibrium E at rate k."""

    author = "pharmakg tests"
    description = "First-order drying: dm/dt = -k (m - E), m(0) = m0; time in h"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.m0 = 0.20
        self.E = 0.02
        self.k = 0.5
        self.m = self.m0
        fixed, tunable = Fmi2Variability.fixed, Fmi2Variability.tunable
        self.register_variable(Real("m0", causality=Fmi2Causality.parameter, variability=fixed))
        self.register_variable(Real("E", causality=Fmi2Causality.input))
        self.register_variable(Real("k", causality=Fmi2Causality.parameter, variability=tunable))
        self.register_variable(Real("m", causality=Fmi2Causality.output))

    def exit_initialization_mode(self) -> None:
        self.m = self.m0

    def do_step(self, current_time: float, step_size: float) -> bool:
        self.m = self.E + (self.m - self.E) * math.exp(-self.k * step_size)
        return True

    def to_xml(self, model_options: dict[str, str] | None = None) -> Element:
        root = super().to_xml(model_options or {})
        units = Element("UnitDefinitions")
        for name in sorted(set(UNITS.values())):
            units.append(Element("Unit", {"name": name}))
        after = [child.tag for child in root].index("CoSimulation") + 1  # the schema's order of elements
        root.insert(after, units)
        for var in root.iter("ScalarVariable"):
            real = var.find("Real")
            if var.get("name") in UNITS and real is not None:
                real.set("unit", UNITS[str(var.get("name"))])
        return root
