"""pharmakg: a knowledge-graph workbench for pharmaceutical manufacturing.

>>> import pharmakg
>>> kg = pharmakg.open()            # in memory; pharmakg.open("store") on disk
>>> kg.query("SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }")["n"][0]
0

``import pharmakg`` stays light: widgets, the server, scipy and rdflib load
only when used.
"""

from __future__ import annotations

import typing as _typing

from . import kg as _kg
from .errors import (
    ConflictError,
    EndpointError,
    IngestError,
    MissingDependencyError,
    NotAStoreError,
    PharmaKGError,
    PharmaKGWarning,
    QueryError,
    ReadOnlyStoreError,
    StoreError,
    StoreLockedError,
    UnitError,
    ValidationError,
)
from .kg import DEFAULT_BASE, KnowledgeGraph, StoreInfo, restore
from .kg import connect_store as connect
from .kg import open_store as open

if _typing.TYPE_CHECKING:  # names for annotations only: nothing extra in the package namespace
    from collections.abc import Callable
    from typing import Any

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_BASE",
    "ConflictError",
    "EndpointError",
    "IngestError",
    "KnowledgeGraph",
    "MissingDependencyError",
    "NotAStoreError",
    "PharmaKGError",
    "PharmaKGWarning",
    "QueryError",
    "ReadOnlyStoreError",
    "StoreError",
    "StoreInfo",
    "StoreLockedError",
    "UnitError",
    "ValidationError",
    "__version__",
    "connect",
    "open",
    "restore",
]


def _twin_shelf(kg: KnowledgeGraph) -> object:
    from .twins.shelf import TwinShelf

    return TwinShelf(kg)


def _twin_functions(kg: KnowledgeGraph) -> dict[str, Callable[..., Any]]:
    from .twins.sparql import functions

    return functions(kg)


# the twins layer sits above kg: it plugs in here, where both are known (imports stay lazy)
_kg.ACCESSORS.setdefault("twins", _twin_shelf)
if _twin_functions not in _kg.FUNCTION_PROVIDERS:
    _kg.FUNCTION_PROVIDERS.append(_twin_functions)


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext pharmakg``: the ``%%sparql`` cell magic."""
    from .magics import load_ipython_extension as load

    load(ipython)
