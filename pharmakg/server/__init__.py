"""The SPARQL 1.1 endpoint: ``pharmakg serve`` and the pieces the Jupyter extension reuses (layer L6).

``import pharmakg.server`` pulls in Starlette and uvicorn; ``import pharmakg``
does not.
"""

from __future__ import annotations

from .config import ServerConfig
from .run import RunningServer, serve, start

__all__ = ["RunningServer", "ServerConfig", "serve", "start"]
