"""Notebook widgets: thin views over the Python API (layer L6).

Imported on demand (``from pharmakg.widgets import TraceExplorer``), never by
``import pharmakg``. The JavaScript ships inside the package (anywidget ESM);
nothing is fetched at run time.
"""

from .rootcause import RootCauseExplorer
from .trace import TraceExplorer
from .twin import TwinPanel

__all__ = ["RootCauseExplorer", "TraceExplorer", "TwinPanel"]
