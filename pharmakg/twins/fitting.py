"""Fit a twin on the batch history in the graph, and predict batches with it.

Why the training set is chosen here and not by each caller: a twin describes
the *normal* process, so the batches that are known not to be normal are
left out by a documented rule, the same everywhere (CLI, widget, notebook):

- batches with a deviation raised on them (``exclude_deviations``);
- batches whose records are suspect after a failed calibration: they ran on
  equipment whose module failed its next calibration, with no passing
  calibration in between (``exclude_suspect``; the GMP impact assessment of
  a failed calibration);
- every ``round(1 / holdout)``-th remaining batch in start-time order is held
  out and only scored (deterministic, spread over the whole period).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .data import history
from .model import MissingInputError, Twin, TwinError

if TYPE_CHECKING:
    from ..kg import KnowledgeGraph

__all__ = ["fit_twin", "predict_batches"]


def fit_twin(
    kg: KnowledgeGraph,
    twin: Twin,
    *,
    batches: list[str] | None = None,
    holdout: float = 0.2,
    exclude_deviations: bool = True,
    exclude_suspect: bool = True,
    robust: bool = True,
) -> Twin:
    """A new draft twin fitted on the graph's batch history (not saved: ``kg.twins.save`` it)."""
    if not 0.0 <= holdout < 0.5:
        raise TwinError(f"holdout must be in [0, 0.5), not {holdout}")
    frame = history(kg, twin, batches=batches)
    keep = np.ones(len(frame), dtype=bool)
    if exclude_deviations:
        keep &= frame["deviations"].to_numpy() == 0
    if exclude_suspect:
        keep &= ~frame["suspect"].to_numpy(dtype=bool)
    usable = frame[keep]
    if holdout > 0:
        step = max(round(1.0 / holdout), 2)
        pos = np.arange(len(usable))
        test, train = usable[pos % step == step - 1], usable[pos % step != step - 1]
    else:
        test, train = usable.iloc[:0], usable
    fitted = twin.fit(train, test=test, robust=robust)
    assert fitted.fit_report is not None
    return fitted._copy(fit=replace(fitted.fit_report, excluded=int((~keep).sum())))


def predict_batches(kg: KnowledgeGraph, twin: Twin, batches: list[str] | None = None) -> pd.DataFrame:
    """The twin's prediction for each batch next to the measured value, with the residual.

    Columns: batch, unit, start, the inputs, then per output ``<name>``
    (measured), ``<name>_predicted`` and ``<name>_residual`` (measured minus
    predicted). A batch named in ``batches`` that lacks an input is an error
    naming the batch and the port; without ``batches``, such batches are
    left out and counted in ``frame.attrs["skipped"]``.
    """
    frame = history(kg, twin, batches=batches)
    if batches is not None:
        found = set(frame["batch"]) | set(frame["iri"])
        for b in batches:
            if b not in found:
                raise MissingInputError(f"batch {b!r}: the graph holds none of the twin's inputs for it")
    names = [p.name for p in twin.inputs]
    missing = frame[names].isna()
    if missing.any(axis=None) and batches is not None:
        row = int(np.flatnonzero(missing.any(axis=1).to_numpy())[0])
        port = next(p for p in twin.inputs if missing.iloc[row][p.name])
        raise MissingInputError(
            f"batch {frame['batch'].iloc[row]}: no value for twin input {port.name!r} "
            f"({port.via} {port.source or twin.equipment_class})"
        )
    complete = frame[~missing.any(axis=1)].reset_index(drop=True)
    pred = twin.predict(complete[names], warn=False)
    out = complete[["batch", "iri", "unit", "start", "deviations", "suspect", *names]].copy()
    for p in twin.outputs:
        out[p.name] = complete[p.name]
        out[f"{p.name}_predicted"] = pred[p.name].to_numpy()
        out[f"{p.name}_residual"] = complete[p.name].to_numpy() - pred[p.name].to_numpy()
    out.attrs["skipped"] = int(missing.any(axis=1).sum())
    out.attrs["status"] = twin.status
    if twin.status != "validated":
        import warnings

        from ..errors import PharmaKGWarning

        warnings.warn(
            f"twin {twin.meta.id or twin.kind} v{twin.version} is {twin.status}: its predictions are not validated",
            PharmaKGWarning,
            stacklevel=2,
        )
    return out
