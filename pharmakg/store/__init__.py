"""Graph stores: the embedded pyoxigraph default and any remote SPARQL 1.1 server.

``RemoteStore`` is imported on first use so that ``import pharmakg`` does not
pay for httpx.
"""

from typing import Any

from .base import RawResult, Store
from .oxigraph import EmbeddedStore

__all__ = ["EmbeddedStore", "RawResult", "RemoteStore", "Store"]


def __getattr__(name: str) -> Any:
    if name == "RemoteStore":
        from .sparql import RemoteStore

        return RemoteStore
    raise AttributeError(name)
