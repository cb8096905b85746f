"""The demo plant loads through the ordinary path, whole or as time-ordered increments."""

from __future__ import annotations

from pathlib import Path

import pharmakg
from pharmakg.demo import build_demo


def _triples(kg: pharmakg.KnowledgeGraph) -> set[bytes]:
    """Domain triples without their graph (increments go to one graph each)."""
    return {line.rsplit(b" ", 2)[0] for line in kg.domain_nquads().splitlines() if line}


def test_increments_give_the_same_graph_as_one_load(tmp_path: Path) -> None:
    with pharmakg.open() as whole, pharmakg.open() as parts:
        one = build_demo(whole, batches=60, seed=5, out_dir=tmp_path / "a" / "demo")
        many = build_demo(parts, batches=60, seed=5, out_dir=tmp_path / "b" / "demo", parts=4)
        assert len(one.loads) == 1 and len(many.loads) == 4
        assert all(r.triples_added > 0 for r in many.loads)
        assert _triples(whole) == _triples(parts)
        assert one.triples_added == many.triples_added


def test_demo_cli_writes_bundle_beside_store(tmp_path: Path) -> None:
    from pharmakg.cli import main

    store = tmp_path / "plant"
    assert main(["demo", "--batches", "20", "--seed", "2", "--store", str(store)]) == 0
    bundle = tmp_path / "plant-bundle-20-2"
    assert (bundle / "batches.csv").exists()
    assert (tmp_path / "plant-bundle-20-2-ground-truth.json").exists()
    with pharmakg.open(store) as kg:
        assert kg.ask("ASK { ?d a pkg:Deviation }") or kg.ask("ASK { ?b a pkg:Batch }")
