"""Response surface: linear or quadratic (with interactions) in coded inputs, the design-space workhorse.

    y = b0 + sum b_i x_i + sum b_ii x_i^2 + sum b_ij x_i x_j,   x_i = (u_i - centre_i) / half-range_i

Inputs are coded to [-1, 1] over the range seen in the data (as in a DoE), so
every coefficient carries the output's unit and their sizes compare directly.
Fitted by ordinary least squares (one closed-form solve per output), with the
usual covariance s^2 (X'X)^-1.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..model import FitError, Param, Port, Twin, TwinError
from ..registry import register_twin

__all__ = ["ResponseSurface"]


@register_twin("response-surface")
class ResponseSurface(Twin):
    """Polynomial of order 1 or 2 in coded inputs; one set of coefficients per output."""

    equation = "y = b0 + sum b_i x_i (+ sum b_ii x_i^2 + sum b_ij x_i x_j), x coded to [-1, 1]"

    @classmethod
    def build(cls, *, inputs: tuple[Port, ...], outputs: tuple[Port, ...], order: int = 2) -> ResponseSurface:
        if order not in (1, 2):
            raise TwinError(f"response surface order must be 1 or 2, not {order}")
        terms = _terms([p.name for p in inputs], order)
        params = tuple(Param(f"{o.name}:{t}", 0.0, o.unit) for o in outputs for t in terms)
        settings = {
            "order": order,
            "terms": terms,
            "centre": {p.name: 0.0 for p in inputs},
            "half_range": {p.name: 1.0 for p in inputs},
        }
        return cls(inputs, outputs, params, settings=settings)

    def _design(self, x: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        s = self.settings
        coded = {k: (np.asarray(x[k], dtype=float) - s["centre"][k]) / s["half_range"][k] for k in s["centre"]}
        cols: list[np.ndarray] = []
        for term in s["terms"]:
            if term == "1":
                cols.append(np.ones_like(next(iter(coded.values()))))
            elif "*" in term:
                a, b = term.split("*")
                cols.append(coded[a] * coded[b])
            elif term.endswith("^2"):
                cols.append(coded[term[:-2]] ** 2)
            else:
                cols.append(coded[term])
        return cols

    def evaluate(self, x: Mapping[str, np.ndarray], p: Mapping[str, Any]) -> dict[str, np.ndarray]:
        cols = self._design(x)
        out = {}
        for o in self.outputs:
            acc: Any = 0.0
            for term, col in zip(self.settings["terms"], cols, strict=True):
                acc = acc + p[f"{o.name}:{term}"] * col
            out[o.name] = np.asarray(acc)
        return out

    def prepare(self, data: pd.DataFrame) -> None:
        for p in self.inputs:
            u = data[p.name].to_numpy(dtype=float)
            lo, hi = float(np.min(u)), float(np.max(u))
            self.settings["centre"][p.name] = (lo + hi) / 2
            self.settings["half_range"][p.name] = (hi - lo) / 2 if hi > lo else 1.0

    def _fit_params(self, data: pd.DataFrame, *, robust: bool) -> tuple[dict[str, float], np.ndarray, str]:
        x = self._inputs_of(data)
        design = np.column_stack(self._design(x))
        n, k = design.shape
        if np.linalg.matrix_rank(design) < k:
            raise FitError(
                f"response surface: the {n} batches cannot determine the {k} terms {self.settings['terms']} "
                "(an input does not vary, or two vary together); use order=1 or a designed experiment"
            )
        xtx_inv = np.linalg.inv(design.T @ design)
        values: dict[str, float] = {}
        blocks = []
        for o in self.outputs:
            y = data[o.name].to_numpy(dtype=float)
            coef, *_ = np.linalg.lstsq(design, y, rcond=None)
            s2 = float(np.sum((y - design @ coef) ** 2) / max(n - k, 1))
            values.update({f"{o.name}:{t}": float(c) for t, c in zip(self.settings["terms"], coef, strict=True)})
            blocks.append(xtx_inv * s2)
        cov = np.zeros((len(values), len(values)))
        for i, b in enumerate(blocks):
            cov[i * k : (i + 1) * k, i * k : (i + 1) * k] = b
        return values, cov, "ordinary least squares (numpy lstsq)"


def _terms(names: list[str], order: int) -> list[str]:
    terms = ["1", *names]
    if order == 2:
        terms += [f"{a}^2" for a in names] + [f"{a}*{b}" for a, b in itertools.combinations(names, 2)]
    return terms
