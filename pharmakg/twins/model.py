"""The twin contract: ports bound to the graph, parameters with units, predict and fit.

Why a base class rather than free functions: a twin must travel (saved to the
graph, exported, reloaded at another site) and give the same numbers there, so
everything a prediction depends on (kind, ports, parameter values, settings) is
held in one object that serialises to a plain dict and back without loss.
A model kind implements ``evaluate`` (vectorised over numpy arrays) and, for
nonlinear kinds, ``initial`` guesses; fitting, uncertainty and the metadata
(status, version, fit report) are shared here.
"""

from __future__ import annotations

import copy
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd

from ..errors import PharmaKGError, PharmaKGWarning, Where
from ..errors import UnitError as _UnitError
from ..units import convert, parse_unit

if TYPE_CHECKING:
    import pint

__all__ = [
    "STATUSES",
    "STORAGE_VIAS",
    "FitError",
    "FitReport",
    "Meta",
    "MissingInputError",
    "Param",
    "Port",
    "Twin",
    "TwinError",
    "TwinUnitError",
    "Via",
    "convert_port",
    "param_from_dict",
    "port_from_dict",
]

#: How a port reads its value for a batch from the graph (see pharmakg.twins.data).
Via = Literal["parameter", "result", "consumed", "capacity", "storage_temperature", "storage_humidity", "storage_time"]
_VIAS = ("parameter", "result", "consumed", "capacity", "storage_temperature", "storage_humidity", "storage_time")
#: Vias of stability data: one row per stability result instead of one per batch (pharmakg.twins.data)
STORAGE_VIAS = ("storage_temperature", "storage_humidity", "storage_time")
#: Life cycle of a twin version: only a validated twin's predictions may inform decisions.
STATUSES = ("draft", "validated", "retired")


class TwinError(PharmaKGError, ValueError):
    """A twin cannot be built, fitted, evaluated or found as asked."""


class FitError(TwinError):
    """A fit did not converge, or the data cannot determine the parameters; nothing is written."""


class MissingInputError(TwinError, KeyError):
    """A prediction lacks a value for one of the twin's inputs."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class TwinUnitError(_UnitError):
    """A port's unit is unknown or of the wrong dimension for what it is bound to."""

    def __init__(self, port: str, problem: str) -> None:
        super().__init__(Where(f"twin port {port!r}"), problem)


@dataclass(frozen=True)
class Port:
    """An input or output of a twin and where its value lives in the graph.

    ``name`` is the symbol in the model's equations, ``unit`` the UCUM code the
    equations expect (values are converted to it by pint when read). ``source``
    is the business id or IRI of the ProcessParameter or QualityAttribute the
    port is bound to (for ``via="capacity"``: unused, the twin's equipment
    class decides); ``via`` says how a batch's value is found:

    - ``parameter``: the batch's recorded actual of that process parameter;
    - ``result``: the batch's LIMS result for that quality attribute (mean of retests);
    - ``consumed``: that material attribute of the lots the batch consumed,
      weighted by the quantity consumed (CoA values and LIMS results on the lot);
    - ``capacity``: the capacity of the unit of the twin's equipment class the batch ran on;
    - ``storage_temperature`` / ``storage_humidity`` / ``storage_time``: the storage
      condition and pull point of a stability result (Cel, % RH, months as loaded);
      a twin with such ports is fitted on one row per stability result of its
      output attribute, not one per batch.
    """

    name: str
    unit: str
    source: str = ""
    via: Via = "parameter"
    label: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise TwinError(f"port name {self.name!r} must be an identifier (letters, digits, _)")
        if self.via not in _VIAS:
            raise TwinError(f"port {self.name!r}: via must be one of {', '.join(_VIAS)}, not {self.via!r}")
        try:
            parse_unit(self.unit)
        except ValueError as exc:
            raise TwinUnitError(self.name, str(exc)) from None


@dataclass(frozen=True)
class Param:
    """A model parameter: value in ``unit``; ``se`` its standard error from the last fit."""

    name: str
    value: float
    unit: str = "1"
    se: float | None = None
    fixed: bool = False
    positive: bool = False  # fitted on a log scale so it can never change sign

    def quantity(self) -> pint.Quantity[Any]:
        from ..units import get_registry

        return get_registry().Quantity(self.value, parse_unit(self.unit))


@dataclass(frozen=True)
class FitReport:
    """How a twin version was fitted and how well it predicts batches it did not see."""

    n_train: int
    n_test: int
    r2: dict[str, float]
    rmse: dict[str, float]
    test_r2: dict[str, float]
    test_rmse: dict[str, float]
    train_batches: tuple[str, ...] = ()  # batch IRIs (ids when fitted on a plain frame)
    test_batches: tuple[str, ...] = ()
    dropped: int = 0  # batches left out for missing values
    excluded: int = 0  # batches left out because a deviation was raised on them
    method: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_train": self.n_train,
            "n_test": self.n_test,
            "r2": _finite(self.r2),
            "rmse": _finite(self.rmse),
            "test_r2": _finite(self.test_r2),
            "test_rmse": _finite(self.test_rmse),
            "dropped": self.dropped,
            "excluded": self.excluded,
            "method": self.method,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], train: tuple[str, ...] = (), test: tuple[str, ...] = ()) -> FitReport:
        return cls(
            n_train=int(d["n_train"]),
            n_test=int(d["n_test"]),
            r2=_floats(d["r2"]),
            rmse=_floats(d["rmse"]),
            test_r2=_floats(d["test_r2"]),
            test_rmse=_floats(d["test_rmse"]),
            train_batches=train,
            test_batches=test,
            dropped=int(d.get("dropped", 0)),
            excluded=int(d.get("excluded", 0)),
            method=str(d.get("method", "")),
        )


@dataclass(frozen=True)
class Meta:
    """Identity and life cycle of a twin version; filled in by the graph (pharmakg.twins.shelf)."""

    id: str = ""
    label: str = ""
    version: int = 0
    status: str = "draft"
    iri: str | None = None
    describes: str | None = None  # IRI of the step, unit or equipment the twin hangs on
    revision_of: str | None = None
    created: str | None = None
    created_by: str | None = None
    signatures: tuple[str, ...] = ()  # e-signatures on its status changes: "approved by NAME at TIME"


class Twin(ABC):
    """An executable process model with declared ports and parameters (subclass per kind).

    Instances are immutable in use: ``fit`` returns a new twin, and the graph
    keeps every version. Subclasses set ``kind`` and implement ``evaluate``;
    nonlinear kinds fit through ``scipy.optimize.least_squares`` here, a kind
    with a closed-form fit (the response surface) overrides ``_fit_params``.
    """

    kind: ClassVar[str] = ""
    #: what the model is, in one line, for the model card
    equation: ClassVar[str] = ""

    def __init__(
        self,
        inputs: tuple[Port, ...],
        outputs: tuple[Port, ...],
        params: tuple[Param, ...],
        *,
        settings: Mapping[str, Any] | None = None,
        equipment_class: str | None = None,
        covariance: np.ndarray | None = None,
        fit: FitReport | None = None,
        meta: Meta | None = None,
    ) -> None:
        names = [p.name for p in (*inputs, *outputs)]
        if len(set(names)) != len(names):
            raise TwinError(f"{self.kind}: port names must be unique, got {names}")
        if any(p.via == "capacity" for p in inputs) and not equipment_class:
            raise TwinError(f"{self.kind}: a capacity input needs the twin's equipment_class")
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.params = {p.name: p for p in params}
        # deep: fits set nested settings (codings, reference points) on their own copy only
        self.settings: dict[str, Any] = copy.deepcopy(dict(settings or {}))
        self.equipment_class = equipment_class
        self.covariance = None if covariance is None else np.asarray(covariance, dtype=float)
        self.fit_report = fit
        self.meta = meta or Meta()

    # -- what subclasses implement -------------------------------------------------
    @abstractmethod
    def evaluate(self, x: Mapping[str, np.ndarray], p: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Outputs for input arrays ``x`` (port units) and parameter values ``p`` (param units).

        Vectorised and broadcasting: Monte Carlo passes parameters of shape
        (draws, 1) against inputs of shape (1, points)."""

    def prepare(self, data: pd.DataFrame) -> None:  # noqa: B027  (a hook: most kinds need none)
        """Set data-dependent settings (reference points, scalings) before a fit; default: none."""

    def initial(self, data: pd.DataFrame) -> dict[str, float]:
        """Starting values for a nonlinear fit; default: the current values."""
        return {k: p.value for k, p in self.params.items()}

    def bounds(self, data: pd.DataFrame) -> dict[str, tuple[float, float]]:
        """Physically plausible ranges for parameters the data may not pin down; default: none.

        Routine production varies its inputs little, so a model can have a
        degenerate direction (a curve that the data cannot tell from a straight
        line) along which an unbounded fit runs off to infinity."""
        return {}

    # -- identity --------------------------------------------------------------------
    @property
    def status(self) -> str:
        return self.meta.status

    @property
    def version(self) -> int:
        return self.meta.version

    @property
    def iri(self) -> str | None:
        return self.meta.iri

    @property
    def parameters(self) -> dict[str, pint.Quantity[Any]]:
        """Parameter values as pint quantities."""
        return {k: p.quantity() for k, p in self.params.items()}

    def with_meta(self, **changes: Any) -> Twin:
        """A copy with other identity or status (the graph fills these in)."""
        return self._copy(meta=replace(self.meta, **changes))

    def _copy(self, **changes: Any) -> Twin:
        state: dict[str, Any] = {
            "inputs": self.inputs,
            "outputs": self.outputs,
            "params": tuple(self.params.values()),
            "settings": self.settings,
            "equipment_class": self.equipment_class,
            "covariance": self.covariance,
            "fit": self.fit_report,
            "meta": self.meta,
        }
        state.update(changes)
        twin = type(self).__new__(type(self))
        Twin.__init__(twin, **state)
        return twin

    def _repr_html_(self) -> str:
        from .card import card_html

        return card_html(self)

    def __repr__(self) -> str:
        who = f"{self.meta.id} v{self.meta.version} " if self.meta.id else ""
        ins = ", ".join(p.name for p in self.inputs)
        outs = ", ".join(p.name for p in self.outputs)
        return f"<{type(self).__name__} {who}({self.kind}, {self.status}): {ins} -> {outs}>"

    # -- prediction ------------------------------------------------------------------
    def values(self) -> dict[str, float]:
        return {k: p.value for k, p in self.params.items()}

    def predict(self, data: pd.DataFrame | Mapping[str, Any], *, warn: bool = True) -> pd.DataFrame:
        """Predicted outputs for each row of ``data`` (one column per input, in the ports' units).

        A twin that is not validated still predicts, and says so: a
        PharmaKGWarning, and ``frame.attrs["status"]``."""
        x = self._inputs_of(data)
        out = self.evaluate(x, self.values())
        index = data.index if isinstance(data, pd.DataFrame) else None
        frame = pd.DataFrame({k: np.broadcast_to(v, len(next(iter(x.values())))) for k, v in out.items()}, index=index)
        frame.attrs["status"] = self.status
        if warn and self.status != "validated":
            name = f"{self.meta.id} v{self.meta.version}" if self.meta.id else self.kind
            warnings.warn(
                f"twin {name} is {self.status}: its predictions are not validated", PharmaKGWarning, stacklevel=2
            )
        return frame

    def simulate(self, data: pd.DataFrame | Mapping[str, Any], times: np.ndarray | None = None) -> pd.DataFrame:
        """Trajectories where the model has a time axis; a static model returns its prediction."""
        return self.predict(data, warn=False)

    def _inputs_of(self, data: pd.DataFrame | Mapping[str, Any]) -> dict[str, np.ndarray]:
        x: dict[str, np.ndarray] = {}
        for port in self.inputs:
            if port.name not in data:
                have = ", ".join(map(str, data.keys())) or "nothing"
                raise MissingInputError(f"twin input {port.name!r} ({port.unit}) is missing; given: {have}")
            arr = np.atleast_1d(np.asarray(data[port.name], dtype=float))
            if np.isnan(arr).any():
                raise MissingInputError(
                    f"twin input {port.name!r} has missing values in {int(np.isnan(arr).sum())} rows"
                )
            x[port.name] = arr
        return x

    # -- fitting --------------------------------------------------------------------------
    def fit(self, data: pd.DataFrame, *, test: pd.DataFrame | None = None, robust: bool = True) -> Twin:
        """A new twin fitted to ``data`` (one row per batch, columns named as the ports).

        ``test`` rows are held out and only scored. Rows with a missing value
        in any port are dropped (counted in the report). Raises FitError when
        the fit does not converge or the data do not determine a parameter.
        """
        cols = [p.name for p in (*self.inputs, *self.outputs)]
        missing = [c for c in cols if c not in data.columns]
        if missing:
            raise MissingInputError(f"fit data lack columns {missing}; have {list(data.columns)}")
        clean = data.dropna(subset=cols)
        free = [k for k, p in self.params.items() if not p.fixed]
        if len(clean) <= len(free) + 1:
            raise FitError(f"{self.kind}: {len(clean)} complete rows cannot determine {len(free)} parameters")
        work = self._copy()
        work.prepare(clean)
        values, cov, method = work._fit_params(clean, robust=robust)
        params = tuple(replace(p, value=values[k], se=_se(cov, free, k)) for k, p in work.params.items())
        fitted = work._copy(params=params, covariance=cov, meta=replace(self.meta, status="draft"))
        report = fitted._score(clean, test, dropped=len(data) - len(clean), method=method)
        return fitted._copy(fit=report)

    def _fit_params(self, data: pd.DataFrame, *, robust: bool) -> tuple[dict[str, float], np.ndarray, str]:
        """Nonlinear least squares on the free parameters (log scale for positive ones)."""
        from scipy.optimize import least_squares

        x = self._inputs_of(data)
        ys = {p.name: data[p.name].to_numpy(dtype=float) for p in self.outputs}
        scale = {k: max(float(np.std(v)), 1e-12) for k, v in ys.items()}  # outputs weighted equally
        start = self.initial(data)
        free = [k for k, p in self.params.items() if not p.fixed]
        fixed = {k: p.value for k, p in self.params.items() if p.fixed}
        pos = [self.params[k].positive for k in free]

        def unpack(theta: np.ndarray) -> dict[str, float]:
            vals = {k: (math.exp(min(t, 700.0)) if ps else float(t)) for k, t, ps in zip(free, theta, pos, strict=True)}
            return {**fixed, **vals}

        def residuals(theta: np.ndarray) -> np.ndarray:
            with np.errstate(all="ignore"):
                out = self.evaluate(x, unpack(theta))
            r = np.concatenate([(out[k] - ys[k]) / scale[k] for k in ys])
            return np.where(np.isfinite(r), r, 1e6)

        theta0 = np.array([math.log(start[k]) if ps else start[k] for k, ps in zip(free, pos, strict=True)])
        limits = self.bounds(data)
        lo = np.array([_to_theta(limits.get(k, (-np.inf, np.inf))[0], ps) for k, ps in zip(free, pos, strict=True)])
        hi = np.array([_to_theta(limits.get(k, (-np.inf, np.inf))[1], ps) for k, ps in zip(free, pos, strict=True)])
        with np.errstate(invalid="ignore"):  # strictly inside finite bounds (least_squares needs it)
            inner_lo = np.where(np.isfinite(lo), lo + 1e-9 * (np.abs(lo) + 1), lo)
            inner_hi = np.where(np.isfinite(hi), hi - 1e-9 * (np.abs(hi) + 1), hi)
        theta0 = np.clip(theta0, inner_lo, inner_hi)
        if not np.all(np.isfinite(theta0)):
            raise FitError(f"{self.kind}: no usable starting values ({start})")
        loss = "soft_l1" if robust else "linear"
        try:
            res = least_squares(
                residuals, theta0, bounds=(lo, hi), loss=loss, f_scale=1.0, x_scale="jac", max_nfev=2000
            )
            if robust and res.status > 0:
                # second pass: residuals beyond ~2.5 robust SDs (MAD) count less, so that a few
                # atypical batches cannot pull the model; typical ones keep least-squares weight
                sigma = 1.4826 * float(np.median(np.abs(res.fun)))
                if sigma > 0:
                    res = least_squares(
                        residuals, res.x, bounds=(lo, hi), loss=loss, f_scale=2.5 * sigma, x_scale="jac", max_nfev=2000
                    )
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            raise FitError(f"{self.kind}: the fit failed ({exc}); check the inputs vary in the data") from None
        if res.status <= 0 or not np.all(np.isfinite(res.x)) or not np.isfinite(res.cost):
            raise FitError(f"{self.kind}: the fit did not converge ({res.message}); check the inputs vary in the data")
        values = unpack(res.x)
        # covariance from the Jacobian at the optimum, mapped back from the log scale
        jac = res.jac
        dof = max(len(res.fun) - len(free), 1)
        s2 = float(np.sum(residuals(res.x) ** 2) / dof)
        jtj = jac.T @ jac
        if np.linalg.matrix_rank(jtj) < len(free):
            raise FitError(
                f"{self.kind}: the data cannot tell the parameters {free} apart "
                "(an input does not vary in the data); fix one or add batches where it varies"
            )
        cov_t = np.linalg.inv(jtj) * s2
        # (the per-output scaling cancels: J carries 1/scale, s2 carries 1/scale^2)
        d = np.array([values[k] if ps else 1.0 for k, ps in zip(free, pos, strict=True)])
        cov = cov_t * np.outer(d, d)  # delta method: d value = value * d log(value)
        how = "soft_l1 loss, scale 2.5 robust SD" if robust else "linear loss"
        return values, cov, f"scipy.optimize.least_squares (trf, {how})"

    def _score(self, train: pd.DataFrame, test: pd.DataFrame | None, *, dropped: int, method: str) -> FitReport:
        def metrics(frame: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
            if frame.empty:
                return {}, {}
            pred = self.predict(frame, warn=False)
            r2, rmse = {}, {}
            for p in self.outputs:
                y = frame[p.name].to_numpy(dtype=float)
                e = y - pred[p.name].to_numpy(dtype=float)
                ss = float(np.sum((y - y.mean()) ** 2))
                r2[p.name] = 1.0 - float(np.sum(e**2)) / ss if ss > 0 else float("nan")
                rmse[p.name] = float(np.sqrt(np.mean(e**2)))
            return r2, rmse

        cols = [p.name for p in (*self.inputs, *self.outputs)]
        test_clean = test.dropna(subset=cols) if test is not None else pd.DataFrame(columns=cols)
        r2, rmse = metrics(train)
        tr2, trmse = metrics(test_clean)
        key = "iri" if "iri" in train.columns else "batch"
        ids = lambda f: tuple(str(b) for b in f[key]) if key in f.columns else ()  # noqa: E731
        return FitReport(
            n_train=len(train),
            n_test=len(test_clean),
            r2=r2,
            rmse=rmse,
            test_r2=tr2,
            test_rmse=trmse,
            train_batches=ids(train),
            test_batches=ids(test_clean),
            dropped=dropped,
            method=method,
        )

    # -- plain data, for the graph and for packages ------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Everything a prediction depends on, as JSON-safe data (floats kept exact by repr)."""
        return {
            "kind": self.kind,
            "inputs": [_port_dict(p) for p in self.inputs],
            "outputs": [_port_dict(p) for p in self.outputs],
            "params": [
                {
                    "name": p.name,
                    "value": p.value,
                    "unit": p.unit,
                    "se": p.se,
                    "fixed": p.fixed,
                    "positive": p.positive,
                }
                for p in self.params.values()
            ],
            "settings": self.settings,
            "equipment_class": self.equipment_class,
            "covariance": None if self.covariance is None else self.covariance.tolist(),
        }


def _to_theta(value: float, positive: bool) -> float:
    """A bound in the fitting scale (log for positive parameters)."""
    if not positive:
        return value
    if value == math.inf:
        return math.inf
    return math.log(value) if value > 0 else -math.inf


def _finite(d: Mapping[str, float]) -> dict[str, float | None]:
    return {k: (v if math.isfinite(v) else None) for k, v in d.items()}


def _floats(d: Mapping[str, Any]) -> dict[str, float]:
    return {k: (float("nan") if v is None else float(v)) for k, v in d.items()}


def _port_dict(p: Port) -> dict[str, str]:
    return {"name": p.name, "unit": p.unit, "source": p.source, "via": p.via, "label": p.label}


def _se(cov: np.ndarray, free: list[str], name: str) -> float | None:
    if name not in free:
        return None
    i = free.index(name)
    v = float(cov[i, i])
    return math.sqrt(v) if v >= 0 and math.isfinite(v) else None


def port_from_dict(d: Mapping[str, Any]) -> Port:
    return Port(str(d["name"]), str(d["unit"]), str(d.get("source", "")), d.get("via", "parameter"), d.get("label", ""))


def param_from_dict(d: Mapping[str, Any]) -> Param:
    se = d.get("se")
    return Param(
        str(d["name"]),
        float(d["value"]),
        str(d.get("unit", "1")),
        None if se is None else float(se),
        bool(d.get("fixed", False)),
        bool(d.get("positive", False)),
    )


def convert_port(values: np.ndarray, source_unit: str, port: Port) -> np.ndarray:
    """Values recorded in ``source_unit`` in the port's unit; a clear error if the dimensions differ."""
    try:
        return convert(values, source_unit, port.unit)
    except ValueError as exc:
        raise TwinUnitError(
            port.name, f"bound to {port.source or port.via} recorded in {source_unit!r}: {exc}"
        ) from None
