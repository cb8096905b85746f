"""Tech-transfer packages: export, verify, import and diff a product's process knowledge (layer L4).

Technology transfer moves a process from development to a commercial site or
a CDMO. Instead of documents, pharmakg ships the knowledge itself: a signed
RO-Crate zip holding the product's recipes, CPPs with their ranges, CQAs and
CMAs with specs, the risk assessment, validated twins and a batch history.
The receiving site verifies it (no store needed), imports it into its own
graph (one transaction, version kept, equipment mapped, twins re-run) and
diffs versions as they come. See docs/design.md ("Tech-transfer packages").
"""

from __future__ import annotations

from ..signing import generate_keypair
from ._diff import PackageDiff, diff_packages
from ._import import ImportReport, current_graph, import_package, version_graph
from ._package import ExportReport, Package, VerifyReport, export_package, read_package, verify_package
from ._zip import ZipLimits

__all__ = [
    "ExportReport",
    "ImportReport",
    "Package",
    "PackageDiff",
    "VerifyReport",
    "ZipLimits",
    "current_graph",
    "diff_packages",
    "export_package",
    "generate_keypair",
    "import_package",
    "read_package",
    "verify_package",
    "version_graph",
]
