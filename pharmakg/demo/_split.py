"""Split a bundle into time-ordered increments (layer L3).

A plant's history does not arrive as one file: MES and LIMS exports come
daily or weekly, each referring to lots and batches loaded before. Splitting
the demo bundle the same way exercises incremental loads, and keeps each
transaction's staging tables small enough that very large plants (100 000
batches, tens of millions of triples) load on a 2-core, 24 GB machine.

Rows go to the increment of the batch they belong to; a lot goes to the
earliest increment that produces or consumes it, so every reference points
to the same or an earlier increment. Master data (equipment, materials,
recipes other than control recipes, parameters, attributes, impacts) go to
the first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["split_bundle"]

_STATIC = (
    "equipment.csv",
    "materials.csv",
    "recipe_steps.csv",
    "parameters.csv",
    "quality_attributes.csv",
    "impacts.csv",
)
_BY_BATCH = (
    "batch_equipment.csv",
    "consumption.csv",
    "production.csv",
    "parameter_values.csv",
    "results.csv",
    "deviations.csv",
)


def _read(folder: Path, name: str) -> pd.DataFrame | None:
    path = folder / name
    return pd.read_csv(path, dtype=str, keep_default_na=False) if path.exists() else None


def split_bundle(bundle: Path, out_dir: Path, parts: int) -> list[Path]:
    """Write ``parts`` increments of ``bundle`` as folders ``out_dir/<name>-part-NN``; return them in load order."""
    if parts < 1:
        raise ValueError("parts must be >= 1")
    batches = _read(bundle, "batches.csv")
    if batches is None:
        raise FileNotFoundError(f"{bundle} has no batches.csv to split by")
    order = pd.to_datetime(batches["start"], format="ISO8601", utc=True).rank(method="first").to_numpy() - 1
    part_of_batch = pd.Series((order * parts // len(batches)).astype(int), index=batches["id"])
    frames: dict[str, pd.Series] = {}  # file -> part number per row
    tables: dict[str, pd.DataFrame] = {}
    for name in sorted(p.name for p in bundle.glob("*.csv")):
        frame = _read(bundle, name)
        assert frame is not None
        tables[name] = frame
    for name in _STATIC:
        if name in tables:
            frames[name] = pd.Series(0, index=tables[name].index)
    frames["batches.csv"] = batches["id"].map(part_of_batch)
    for name in _BY_BATCH:
        if name in tables:
            frames[name] = tables[name]["batch_id"].map(part_of_batch).fillna(0).astype(int)
    # a lot lives in the earliest part that produces or consumes it
    lot_part: dict[str, int] = {}
    for name in ("production.csv", "consumption.csv"):
        if name in tables:
            first = frames[name].groupby(tables[name]["lot_id"]).min()
            for lot, part in first.items():
                lot_part[str(lot)] = min(lot_part.get(str(lot), parts), int(part))
    for name, column in (("lots.csv", "id"), ("lot_attributes.csv", "lot_id"), ("shipments.csv", "lot_id")):
        if name in tables:
            frames[name] = tables[name][column].map(lot_part).fillna(0).astype(int)
    if "lots.csv" in tables:  # a sublot never precedes its parent
        parent = tables["lots.csv"].get("parent_lot_id")
        if parent is not None:
            frames["lots.csv"] = frames["lots.csv"].clip(lower=parent.map(lot_part).fillna(0).astype(int))
    if "recipes.csv" in tables:
        used = batches.groupby("recipe_id")["id"].apply(lambda ids: int(part_of_batch[ids].min()))
        frames["recipes.csv"] = tables["recipes.csv"]["id"].map(used).fillna(0).astype(int)
    if "equipment_events.csv" in tables:
        bounds = np.sort(pd.to_datetime(batches["start"], format="ISO8601", utc=True).to_numpy())
        edges = [bounds[min(len(bounds) - 1, (k * len(bounds)) // parts)] for k in range(1, parts)]
        times = pd.to_datetime(tables["equipment_events.csv"]["time"], format="ISO8601", utc=True).to_numpy()
        frames["equipment_events.csv"] = pd.Series(np.searchsorted(np.array(edges), times, side="right"))
    for name in tables:
        frames.setdefault(name, pd.Series(0, index=tables[name].index))
    out_dir.mkdir(parents=True, exist_ok=True)
    folders = []
    for k in range(parts):
        folder = out_dir / f"{bundle.name}-part-{k + 1:02d}"
        folder.mkdir()
        for name, frame in tables.items():
            rows = frame[(frames[name] == k).to_numpy()]
            if not rows.empty:
                rows.to_csv(folder / name, index=False)
        folders.append(folder)
    return folders
