"""Twins: executable process models attached to graph nodes, fitted on batch history, stored in the graph.

>>> import pharmakg
>>> from pharmakg.twins import FluidBedDrying, Port, fit_twin
>>> kg = pharmakg.open("store")                                  # doctest: +SKIP
>>> dry = FluidBedDrying.build(temperature=Port("T_inlet", "Cel", "P-DRY-TIN"), ...)  # doctest: +SKIP
>>> fitted = fit_twin(kg, dry)                                   # doctest: +SKIP
>>> saved = kg.twins.attach("MR-GRAN-UP3-OP1-PH2", fitted, id="TW-DRY", reason="...")  # doctest: +SKIP

Layer L4 (analysis): uses the graph through KnowledgeGraph only. scipy is
imported by the modules that fit; ``import pharmakg.twins`` stays light
enough for the CLI.
"""

from __future__ import annotations

from .card import card_text, parameter_table
from .data import history
from .fitting import fit_twin, predict_batches
from .model import (
    STATUSES,
    FitError,
    FitReport,
    Meta,
    MissingInputError,
    Param,
    Port,
    Twin,
    TwinError,
    TwinUnitError,
)
from .monitor import DriftReport, drift
from .presets import DEMO_SPECS, demo_twin, twin_from_spec
from .registry import ENTRY_POINT_GROUP, UnknownKindError, kinds, register_twin, twin_from_dict, twin_kind
from .shelf import TwinShelf
from .space import DesignSpace, ScaleUp, design_space, limits, scale_up, sensitivity

__all__ = [
    "DEMO_SPECS",
    "ENTRY_POINT_GROUP",
    "STATUSES",
    "Compaction",
    "Degradation",
    "DesignSpace",
    "DriftReport",
    "FitError",
    "FMUTwin",
    "FitReport",
    "FluidBedDrying",
    "Meta",
    "MissingInputError",
    "Param",
    "Port",
    "ResponseSurface",
    "ScaleUp",
    "Twin",
    "TwinError",
    "TwinShelf",
    "TwinUnitError",
    "UnknownKindError",
    "card_text",
    "demo_twin",
    "design_space",
    "drift",
    "fit_twin",
    "history",
    "kinds",
    "limits",
    "parameter_table",
    "predict_batches",
    "register_twin",
    "scale_up",
    "sensitivity",
    "twin_from_dict",
    "twin_from_spec",
    "twin_kind",
]


def __getattr__(name: str) -> object:
    """The built-in kinds load scipy: import them on first use."""
    if name in ("Compaction", "Degradation", "FMUTwin", "FluidBedDrying", "ResponseSurface"):
        from importlib import import_module

        return getattr(import_module(f"{__name__}.kinds"), name)
    raise AttributeError(f"module 'pharmakg.twins' has no attribute {name!r}")
