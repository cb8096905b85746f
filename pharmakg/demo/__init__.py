"""The demo plant: a deterministic oral-solid-dose plant with known causes (layer L3).

``generate_bundle`` writes a CSV bundle (and its ground truth beside it, never
in the graph); ``build_demo`` also loads it through the ordinary ingest path,
so the demo exercises exactly what a user's own data goes through. Large
plants load as time-ordered increments (``parts``), as real exports arrive.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ._generate import DemoPlant, generate_bundle
from ._site import receiving_site_bundle
from ._split import split_bundle
from ._zagar import zagar_bundle

if TYPE_CHECKING:
    from ..ingest import LoadReport
    from ..kg import KnowledgeGraph

__all__ = [
    "BuiltDemo",
    "DemoPlant",
    "build_demo",
    "generate_bundle",
    "receiving_site_bundle",
    "split_bundle",
    "zagar_bundle",
]


@dataclass(frozen=True)
class BuiltDemo:
    """A generated plant and the loads that brought it into the graph."""

    plant: DemoPlant
    loads: tuple[LoadReport, ...]

    @property
    def triples_added(self) -> int:
        return sum(r.triples_added for r in self.loads)

    def __str__(self) -> str:
        secs = sum(r.seconds for r in self.loads)
        return (
            f"demo plant: {self.plant.batches} batches (seed {self.plant.seed}), {self.triples_added} triples "
            f"in {len(self.loads)} load(s), {secs:.1f} s; bundle {self.plant.bundle}, "
            f"ground truth {self.plant.ground_truth}"
        )


def build_demo(
    kg: KnowledgeGraph,
    *,
    batches: int = 200,
    seed: int = 0,
    out_dir: str | Path | None = None,
    parts: int = 1,
    reason: str = "demo plant",
    progress: bool = False,
) -> BuiltDemo:
    """Generate the demo bundle into ``out_dir`` (a new temporary folder if None) and load it.

    With ``parts`` > 1 the bundle is split into that many time-ordered
    increments, each loaded in its own transaction.
    """
    if out_dir is None:
        out_dir = Path(tempfile.mkdtemp(prefix="pharmakg-demo-")) / f"demo-{batches}-{seed}"
    plant = generate_bundle(out_dir, batches=batches, seed=seed)
    if parts <= 1:
        sources = [plant.bundle]
    else:
        sources = split_bundle(plant.bundle, plant.bundle.parent / f"{plant.bundle.name}-parts", parts)
    loads = []
    for i, source in enumerate(sources, 1):
        why = reason if len(sources) == 1 else f"{reason} (increment {i} of {len(sources)})"
        loads.extend(kg.load(source, reason=why, progress=progress))
    return BuiltDemo(plant, tuple(loads))
