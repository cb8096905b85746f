"""The demo plant: a deterministic oral-solid-dose plant with known causes (layer L3).

``generate_bundle`` writes a CSV bundle (and its ground truth beside it, never
in the graph); ``build_demo`` also loads it through the ordinary ingest path,
so the demo exercises exactly what a user's own data goes through.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ._generate import DemoPlant, generate_bundle

if TYPE_CHECKING:
    from ..ingest import LoadReport
    from ..kg import KnowledgeGraph

__all__ = ["DemoPlant", "build_demo", "generate_bundle"]


def build_demo(
    kg: KnowledgeGraph,
    *,
    batches: int = 200,
    seed: int = 0,
    out_dir: str | Path | None = None,
    reason: str = "demo plant",
    progress: bool = False,
) -> tuple[DemoPlant, LoadReport]:
    """Generate the demo bundle into ``out_dir`` (a new temporary folder if None) and load it."""
    if out_dir is None:
        out_dir = Path(tempfile.mkdtemp(prefix="pharmakg-demo-")) / f"demo-{batches}-{seed}"
    plant = generate_bundle(out_dir, batches=batches, seed=seed)
    (report,) = kg.load(plant.bundle, reason=reason, progress=progress)
    return plant, report
