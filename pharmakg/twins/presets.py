"""Ready-made twin definitions for the demo plant, and twins built from JSON specs (the CLI's input).

A spec is what a process engineer writes once per model::

    {"kind": "compaction",
     "equipment_class": null,
     "build": {"force": {"name": "force", "unit": "kN", "source": "P-CMP-FORCE"},
               "moisture": {"name": "lod", "unit": "%", "source": "Q-GRN-LOD", "via": "consumed"},
               "output": {"name": "hardness", "unit": "N", "source": "Q-TAB-HARD", "via": "result"}}}

``build`` holds the keyword arguments of the kind's ``build`` classmethod: a
port as an object, several ports as a list, anything else as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model import Twin, TwinError, port_from_dict
from .registry import twin_kind

__all__ = ["DEMO_SPECS", "demo_twin", "twin_from_spec"]

#: The demo plant's drying and compaction twins (ids as in pharmakg.demo's bundle).
DEMO_SPECS: dict[str, dict[str, Any]] = {
    "drying": {
        "kind": "fluid-bed-drying",
        "attach": "MR-GRAN-UP3-OP1-PH2",
        "build": {
            "temperature": {"name": "T_inlet", "unit": "Cel", "source": "P-DRY-TIN"},
            "airflow": {"name": "airflow", "unit": "m3/h", "source": "P-DRY-AIR"},
            "time": {"name": "time", "unit": "min", "source": "P-DRY-TIME"},
            "moisture0": {"name": "moisture0", "unit": "%", "source": "P-DRY-LOD0"},
            "capacity": {"name": "capacity", "unit": "kg", "via": "capacity"},
            "equilibrium": [{"name": "mcc_water", "unit": "%", "source": "Q-MCC-WATER", "via": "consumed"}],
            "output": {"name": "LOD", "unit": "%", "source": "Q-GRN-LOD", "via": "result"},
            "equipment_class": "FluidBedDryer",
        },
    },
    "compaction": {
        "kind": "compaction",
        "attach": "MR-TAB-UP1-OP2-PH2",
        "build": {
            "force": {"name": "force", "unit": "kN", "source": "P-CMP-FORCE"},
            "moisture": {"name": "granule_lod", "unit": "%", "source": "Q-GRN-LOD", "via": "consumed"},
            "output": {"name": "hardness", "unit": "N", "source": "Q-TAB-HARD", "via": "result"},
        },
    },
}


def _arg(value: Any) -> Any:
    if isinstance(value, Mapping) and "name" in value and "unit" in value:
        return port_from_dict(value)
    if isinstance(value, list) and all(isinstance(v, Mapping) for v in value):
        return tuple(port_from_dict(v) for v in value)
    return value


def twin_from_spec(spec: Mapping[str, Any]) -> Twin:
    """A draft twin from a spec (see the module docstring); clear errors for what is wrong in it."""
    if "kind" not in spec or "build" not in spec:
        raise TwinError(f"a twin spec needs 'kind' and 'build', got keys {sorted(spec)}")
    cls = twin_kind(str(spec["kind"]))
    build = getattr(cls, "build", None)
    if build is None:
        raise TwinError(f"twin kind {spec['kind']!r} has no build() to make it from a spec")
    args = {k: _arg(v) for k, v in dict(spec["build"]).items()}
    try:
        twin = build(**args)
    except TypeError as exc:
        raise TwinError(f"twin spec for {spec['kind']!r}: {exc}") from None
    assert isinstance(twin, Twin)
    return twin


def demo_twin(name: str) -> Twin:
    """An unfitted demo twin: ``"drying"`` or ``"compaction"``."""
    if name not in DEMO_SPECS:
        raise TwinError(f"no demo twin {name!r}; choose from {sorted(DEMO_SPECS)}")
    return twin_from_spec(DEMO_SPECS[name])
