"""Built-in model kinds; importing this package registers them."""

from __future__ import annotations

from .compaction import Compaction
from .degradation import Degradation
from .drying import FluidBedDrying
from .fmu import FMUTwin
from .response_surface import ResponseSurface

__all__ = ["Compaction", "Degradation", "FMUTwin", "FluidBedDrying", "ResponseSurface"]
