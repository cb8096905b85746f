"""The one unit registry of the process, and vectorised conversion (layer L1).

Units in the CSV bundle are UCUM codes (``Cel``, ``kN``, ``m3/h``, ``mosm/kg``)
or pint expressions (``degC``, ``rpm``); ucumvert turns UCUM into pint. The
registry is built on first use, not at import, because it takes about a second
(0.1 s once pint has cached the parsed definitions in the user's cache folder)
and ``import pharmakg`` must stay light. Conversion works on whole numpy
arrays per distinct (from, to) unit pair, so a million values cost one pint
call per pair rather than one per value.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pint

__all__ = ["CANONICAL_BY_DIMENSION", "canonical_unit", "convert", "get_registry", "parse_unit"]

_lock = threading.Lock()
_registry: Any = None

#: Canonical unit (UCUM code) for quantities whose property fixes no unit of
#: its own (lot, consumption and shipment quantities, equipment capacity).
CANONICAL_BY_DIMENSION: dict[str, str] = {
    "[mass]": "kg",
    "[length] ** 3": "L",
    "dimensionless": "1",
    "[substance]": "mol",
}

_ANNOTATION = re.compile(r"\{[^{}]*\}")


def get_registry() -> pint.UnitRegistry[Any]:
    """Return the process-wide registry (a ucumvert ``PintUcumRegistry``), building it once."""
    global _registry
    if _registry is None:
        with _lock:
            if _registry is None:
                from ucumvert import PintUcumRegistry

                try:  # pint's own disk cache of the parsed definitions (keyed by their content): ~1.5 s -> 0.1 s
                    reg = PintUcumRegistry(cache_folder=":auto:")
                except OSError:  # no writable cache folder: parse them
                    reg = PintUcumRegistry()
                # Pharma spellings that are neither UCUM nor pint defaults.
                reg.define("Osm = osmole")
                for alias, unit in (("CFU", "colony_forming_unit"), ("IU", "international_unit")):
                    if alias not in reg:
                        reg.define(f"{alias} = {unit}")
                _registry = reg
    return _registry


@lru_cache(maxsize=4096)
def parse_unit(text: str) -> pint.Unit:
    """Parse a UCUM code, else a pint expression; raise ``ValueError`` with both reasons.

    UCUM curly-brace annotations (``{tbl}``, ``mg/{tbl}``) carry no dimension
    and are dropped, as UCUM prescribes.
    """
    reg: Any = get_registry()
    code = text.strip()
    if not code:
        raise ValueError("empty unit")
    stripped = _ANNOTATION.sub("", code)
    if stripped in ("", "/") or stripped.endswith("/"):
        stripped = stripped + "1" if stripped else "1"
    try:
        return reg.from_ucum(stripped).units
    except Exception as ucum_exc:  # ucumvert raises several types
        try:
            return reg.parse_units(stripped)
        except Exception:
            raise ValueError(
                f"unknown unit {text!r}: not a UCUM code ({_first_line(ucum_exc)}) nor a pint unit"
            ) from None


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


@lru_cache(maxsize=1024)
def canonical_unit(text: str) -> str:
    """The canonical UCUM code for the dimension of ``text`` (``g`` -> ``kg``)."""
    dim = str(parse_unit(text).dimensionality)
    try:
        return CANONICAL_BY_DIMENSION[dim]
    except KeyError:
        raise ValueError(
            f"unit {text!r} is a {dim}, not an amount of material (mass, volume, count or substance)"
        ) from None


@lru_cache(maxsize=4096)
def _compatible(source: str, target: str) -> bool:
    a: Any = parse_unit(source)
    b: Any = parse_unit(target)
    return bool(a.dimensionality == b.dimensionality)


def convert(values: np.ndarray, source: str, target: str) -> np.ndarray:
    """Convert an array of magnitudes from unit ``source`` to ``target``.

    Raises ``ValueError`` naming both units when their dimensions differ.
    Offset units (Cel, K) are handled by pint, not by a factor.
    """
    if source == target:
        return values
    if not _compatible(source, target):
        a, b = parse_unit(source), parse_unit(target)
        raise ValueError(f"unit {source!r} ({a.dimensionality}) cannot be converted to {target!r} ({b.dimensionality})")
    reg = get_registry()
    q = reg.Quantity(np.asarray(values, dtype=float), parse_unit(source))
    return np.asarray(q.to(parse_unit(target)).magnitude, dtype=float)
