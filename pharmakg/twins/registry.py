"""Model kinds by name: the built-ins and third-party kinds from the ``pharmakg.twins`` entry points.

Why a registry: a twin saved in the graph names its kind, and whoever loads
it (another site, in five years) must find the code for that name or be told
clearly which package provides it. Entry points are read lazily, on the first
lookup of a name that is not built in; a broken plug-in warns instead of
breaking every other kind.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, TypeVar

from ..errors import PharmaKGWarning
from .model import Meta, Twin, TwinError, param_from_dict, port_from_dict

__all__ = ["ENTRY_POINT_GROUP", "UnknownKindError", "kinds", "register_twin", "twin_from_dict", "twin_kind"]

ENTRY_POINT_GROUP = "pharmakg.twins"
_KINDS: dict[str, type[Twin]] = {}
_T = TypeVar("_T", bound=type[Twin])
_plugins_read = False


class UnknownKindError(TwinError, LookupError):
    """A twin names a model kind that is not installed here."""


def register_twin(name: str) -> Callable[[_T], _T]:
    """Class decorator: make a Twin subclass available under ``name`` (refuses to overwrite)."""

    def add(cls: _T) -> _T:
        if name in _KINDS and _KINDS[name] is not cls:
            raise TwinError(f"twin kind {name!r} is already registered by {_KINDS[name].__module__}")
        cls.kind = name
        _KINDS[name] = cls
        return cls

    return add


def _builtins() -> None:
    import_module(f"{__package__}.kinds")  # registers on import (by path: the package's kinds() shadows it)


def _plugins() -> None:
    global _plugins_read
    if _plugins_read:
        return
    _plugins_read = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _KINDS:
            continue
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plug-in must not hide the others
            warnings.warn(f"twin kind {ep.name!r} from {ep.value} failed to load: {exc}", PharmaKGWarning, stacklevel=3)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Twin)):
            warnings.warn(f"entry point {ep.name!r} ({ep.value}) is not a Twin subclass", PharmaKGWarning, stacklevel=3)
            continue
        register_twin(ep.name)(cls)


def kinds() -> list[str]:
    """Names of every installed model kind."""
    _builtins()
    _plugins()
    return sorted(_KINDS)


def twin_kind(name: str) -> type[Twin]:
    """The class of a model kind; UnknownKindError naming the installed ones if absent."""
    _builtins()
    if name not in _KINDS:
        _plugins()
    if name not in _KINDS:
        raise UnknownKindError(
            f"twin kind {name!r} is not installed (installed: {', '.join(sorted(_KINDS))}); install the "
            f"package that provides it (it registers an entry point in the group {ENTRY_POINT_GROUP!r})"
        )
    return _KINDS[name]


def twin_from_dict(data: Mapping[str, Any], meta: Meta | None = None) -> Twin:
    """Rebuild a twin from :meth:`Twin.to_dict` data (as stored in the graph)."""
    import numpy as np

    from .model import FitReport

    cls = twin_kind(str(data["kind"]))
    twin = cls.__new__(cls)
    cov = data.get("covariance")
    fit = data.get("fit")
    Twin.__init__(
        twin,
        tuple(port_from_dict(p) for p in data["inputs"]),
        tuple(port_from_dict(p) for p in data["outputs"]),
        tuple(param_from_dict(p) for p in data["params"]),
        settings=data.get("settings") or {},
        equipment_class=data.get("equipment_class"),
        covariance=None if cov is None else np.asarray(cov, dtype=float),
        fit=FitReport.from_dict(fit) if isinstance(fit, Mapping) else None,
        meta=meta,
    )
    return twin
