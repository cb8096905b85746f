"""A twin that runs a Functional Mock-up Unit (FMI 2.0/3.0) through fmpy.

Why: commercial process simulators (gPROMS, Aspen, Dymola, Simulink, ...)
export their models as FMUs, so a twin built elsewhere can be attached to the
graph, fitted and used like a built-in kind. The FMU is a black box: each
case (row of inputs, set of parameter values) is one simulation from the
start time to the stop time, and the outputs are read at the stop time.

Why the FMU's bytes live in the settings: a twin must travel (saved to the
graph, reloaded in another process or at another site) and give the same
numbers there, so the file itself travels with it, base64-encoded, beside its
sha256. The hash is checked before the FMU is first run in a process, and the
FMU is extracted once per hash into a cache folder (``PHARMAKG_FMU_CACHE``, or
``pharmakg-fmu-<uid>`` in the temp dir). The hash guards against corruption,
not against a malicious author: running an FMU runs its native code, so only
attach FMUs from sources you trust.

Mapping: each input port and each model parameter (a twin :class:`Param`,
fittable by the base class's least squares) sets an FMU variable of causality
``input`` or ``parameter`` as a start value; each output port reads an FMU
variable of causality ``output``. A port or parameter is named as its FMU
variable unless ``variables`` maps it (FMU names like ``dryer.k`` are not
identifiers). Where the FMU declares a unit, values are converted between it
and the port's or parameter's unit. The stop time is a fixed number (in the
FMU's time unit) or the value of an input port (a duration, e.g. the batch's
drying time, converted to the FMU's time unit).
"""

from __future__ import annotations

import atexit
import base64
import binascii
import hashlib
import io
import math
import os
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import MissingDependencyError
from ...units import convert, parse_unit
from ..model import Param, Port, Twin, TwinError, TwinUnitError
from ..registry import register_twin

__all__ = ["FMUTwin", "fmu_cache_dir"]

#: causalities whose value a twin may set before a run (as a start value)
_SETTABLE = ("input", "parameter")
_FLOAT_TYPES = ("Real", "Float32", "Float64")
_INT_TYPES = ("Integer", "Int8", "UInt8", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64")
_READABLE_TYPES = (*_FLOAT_TYPES, *_INT_TYPES, "Boolean")
_MARKER = ".pharmakg-complete"


def _fmpy() -> Any:
    """fmpy, imported on first use so ``import pharmakg`` stays light and works without it."""
    try:
        import fmpy
    except ImportError:
        raise MissingDependencyError("fmpy", "the 'fmu' twin kind") from None
    return fmpy


def fmu_cache_dir() -> Path:
    """Where FMUs are extracted, one folder per sha256 (``PHARMAKG_FMU_CACHE`` overrides)."""
    env = os.environ.get("PHARMAKG_FMU_CACHE")
    if env:
        return Path(env)
    uid = os.getuid() if hasattr(os, "getuid") else "user"  # per user: /tmp is shared
    return Path(tempfile.gettempdir()) / f"pharmakg-fmu-{uid}"


# -- the extracted FMU and its (reused) instance, one per sha256 and process ---------------------
class _Runner:
    """An extracted FMU, its model description, and one instance reused across runs (reset between).

    Why reuse: instantiating loads the shared library and, for some exporters,
    starts an interpreter or licence check; FMI's reset returns an instance to
    the state right after instantiation, which is what a fresh one would be.
    An instance that failed is freed and replaced, never reset and reused.
    """

    def __init__(self, sha256: str, data: bytes) -> None:
        self.sha256 = sha256
        self.dir = _extract(sha256, data)
        try:
            self.md = _fmpy().read_model_description(str(self.dir), validate=True)
        except MissingDependencyError:
            raise
        except Exception as exc:
            raise TwinError(f"the FMU (sha256 {sha256[:12]}...) has no valid model description: {exc}") from exc
        self.vars: dict[str, Any] = {v.name: v for v in self.md.modelVariables}
        self.lock = threading.RLock()  # an FMU instance is not thread-safe
        self._instances: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return str(self.md.modelName)

    def unit(self, var: str) -> str | None:
        """The unit the FMU declares for ``var`` (on the variable or its declared type), if any."""
        return _declared_unit(self.vars[var])

    def _instance(self, fmi_type: str) -> Any:
        inst = self._instances.get(fmi_type)
        if inst is None:
            fmpy = _fmpy()
            platforms = fmpy.supported_platforms(str(self.dir))
            if fmpy.platform not in platforms:
                raise TwinError(
                    f"the FMU {self.name!r} has binaries for {', '.join(platforms) or 'no platform'}, "
                    f"not for this one ({fmpy.platform}); ask its author for a {fmpy.platform} build"
                )
            try:
                inst = fmpy.instantiate_fmu(str(self.dir), self.md, fmi_type)
            except Exception as exc:
                raise TwinError(f"the FMU {self.name!r} could not be instantiated: {exc}") from exc
            self._instances[fmi_type] = inst
        return inst

    def _discard(self, fmi_type: str) -> None:
        inst = self._instances.pop(fmi_type, None)
        if inst is not None:
            try:
                inst.freeInstance()
            except Exception:  # an instance in an error state may refuse; it is dropped anyway
                pass

    def run(
        self,
        fmi_type: str,
        start_values: Mapping[str, Any],
        start_time: float,
        stop_time: float,
        output_interval: float | None,
        relative_tolerance: float | None,
        outputs: list[str],
    ) -> list[float]:
        """Simulate one case and return ``outputs`` at ``stop_time`` (in the FMU's units)."""
        fmpy = _fmpy()
        with self.lock:
            inst = self._instance(fmi_type)
            if stop_time <= start_time:
                output_interval = 1.0  # nothing to step; fmpy's automatic interval needs a span
            try:
                result = fmpy.simulate_fmu(
                    str(self.dir),
                    validate=True,
                    start_time=start_time,
                    stop_time=stop_time,
                    output_interval=output_interval,
                    relative_tolerance=relative_tolerance,
                    start_values=dict(start_values),
                    output=outputs,
                    model_description=self.md,
                    fmu_instance=inst,
                )
                inst.reset()
            except Exception as exc:
                self._discard(fmi_type)
                given = ", ".join(f"{k}={v!r}" for k, v in start_values.items())
                raise TwinError(f"the FMU {self.name!r} failed for {given} (stop time {stop_time!r}): {exc}") from exc
        end = float(result["time"][-1])
        if not math.isclose(end, stop_time, rel_tol=1e-9, abs_tol=1e-12):
            raise TwinError(
                f"the FMU {self.name!r} stopped at time {end!r} before the stop time {stop_time!r} "
                f"(for {dict(start_values)})"
            )
        return [float(result[name][-1]) for name in outputs]

    def close(self) -> None:
        for fmi_type in list(self._instances):
            self._discard(fmi_type)


_RUNNERS: dict[str, _Runner] = {}
_RUNNERS_LOCK = threading.Lock()


def _runner_for(sha256: str, data: bytes) -> _Runner:
    with _RUNNERS_LOCK:
        runner = _RUNNERS.get(sha256)
        if runner is None:
            runner = _RUNNERS[sha256] = _Runner(sha256, data)
        return runner


@atexit.register
def _close_all() -> None:
    """Free the instances before the interpreter goes (an FMU embedding Python needs it alive)."""
    with _RUNNERS_LOCK:
        for runner in _RUNNERS.values():
            runner.close()
        _RUNNERS.clear()


def _extract(sha256: str, data: bytes) -> Path:
    """The FMU unzipped in the cache, once per hash; a partial or damaged copy is replaced."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise TwinError("the FMU is not a zip archive (an .fmu file is one)") from None
    with archive:
        members = [(m.filename, m.file_size) for m in archive.infolist() if not m.is_dir()]
        root = fmu_cache_dir()
        target = root / sha256
        if _complete(target, members):
            return target
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{sha256[:16]}-", dir=root))
        try:
            archive.extractall(work)  # zipfile drops absolute paths and '..' parts
            (work / _MARKER).write_text(sha256)
            if target.exists():
                shutil.rmtree(target, ignore_errors=True)
            try:
                work.rename(target)
            except OSError:  # another process extracted it meanwhile
                if not _complete(target, members):
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def _complete(folder: Path, members: list[tuple[str, int]]) -> bool:
    if not (folder / _MARKER).is_file():
        return False
    for name, size in members:
        path = folder / name
        if not path.is_file() or path.stat().st_size != size:
            return False
    return True


def _decode(text: Any, sha256: Any) -> bytes:
    """The FMU's bytes from the settings, checked against the recorded hash."""
    if not isinstance(text, str) or not isinstance(sha256, str):
        raise TwinError("this 'fmu' twin carries no FMU (settings 'fmu' and 'sha256' are missing)")
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise TwinError("the FMU stored with this twin is not valid base64: the twin is damaged") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256.lower():
        raise TwinError(
            f"the FMU stored with this twin does not match its sha256 (recorded {sha256}, found {actual}): "
            "the twin was damaged or edited; reattach the original FMU"
        )
    return data


def _declared_unit(var: Any) -> str | None:
    unit = getattr(var, "unit", None)
    declared = getattr(var, "declaredType", None)
    if not unit and declared is not None:
        unit = getattr(declared, "unit", None)
    return str(unit) if unit else None


def _offer(runner: _Runner) -> str:
    """What the FMU has to connect, for error messages."""

    def names(causalities: tuple[str, ...]) -> str:
        found = [n for n, v in runner.vars.items() if v.causality in causalities]
        shown = ", ".join(found[:30]) + (f", ... ({len(found) - 30} more)" if len(found) > 30 else "")
        return shown or "none"

    return (
        f"the FMU {runner.name!r} offers inputs: {names(('input',))}; parameters: {names(('parameter',))}; "
        f"outputs: {names(('output',))}"
    )


def _check_unit(name: str, what: str, unit: str, var: str, fmu_unit: str | None) -> None:
    """A port's or parameter's unit must convert to the unit the FMU declares for its variable."""
    if fmu_unit is None:
        return  # the FMU says nothing: values are passed as they are, in the port's unit
    try:
        parse_unit(fmu_unit)
    except ValueError as exc:
        raise TwinUnitError(
            name, f"the FMU declares the unit {fmu_unit!r} for {var!r}, which is unknown: {exc}"
        ) from None
    try:
        convert(np.array([1.0]), unit, fmu_unit)
    except ValueError as exc:
        raise TwinUnitError(
            name, f"{what} in {unit!r} cannot feed the FMU variable {var!r} declared in {fmu_unit!r}: {exc}"
        ) from None


@register_twin("fmu")
class FMUTwin(Twin):
    """Outputs of an FMU (FMI 2.0/3.0) at the stop time, for given inputs and parameters (via fmpy)."""

    equation = "outputs = FMU(inputs, parameters) at the stop time (FMI 2.0/3.0, simulated by fmpy)"

    _fmu_checked: str | None = None  # the settings text whose hash this object has verified

    @classmethod
    def build(
        cls,
        fmu: str | os.PathLike[str] | bytes,
        inputs: tuple[Port, ...],
        outputs: tuple[Port, ...],
        *,
        stop_time: float | str | None = None,
        parameters: Mapping[str, float | tuple[float | None, str] | Param] | None = None,
        variables: Mapping[str, str] | None = None,
        start_values: Mapping[str, float | int | bool | str] | None = None,
        time_unit: str | None = None,
        output_interval: float | None = None,
        fmi_type: str | None = None,
        relative_tolerance: float | None = None,
        equipment_class: str | None = None,
    ) -> FMUTwin:
        """A draft twin running the FMU at ``fmu`` (a path or the file's bytes).

        - ``stop_time``: a number (the FMU's time, from its default experiment's
          start time) or the name of an input port whose value is the run's
          duration (converted from the port's unit to ``time_unit``); default:
          the FMU's default experiment stop time.
        - ``parameters``: FMU parameters exposed as twin parameters, fitted by
          :meth:`fit` unless ``fixed``: name -> value, (value, unit) or a
          :class:`Param`; a value of None takes the FMU's start value.
        - ``variables``: twin name -> FMU variable name, where they differ.
        - ``start_values``: constant start values for other FMU variables.
        - ``time_unit``: the unit of the FMU's time when it declares none (default ``s``).
        - ``output_interval``: the communication step (FMU time); default fmpy's choice.
        - ``fmi_type``: ``CoSimulation`` or ``ModelExchange`` (fmpy integrates with
          CVode); default co-simulation where the FMU offers it.
        - ``relative_tolerance``: for CVode (model exchange) and FMI 2.0
          co-simulation FMUs that honour it; default the FMU's default experiment's.

        Raises TwinError naming a port or parameter the FMU lacks (and listing
        what it offers), and TwinUnitError when a unit does not convert.
        """
        data = bytes(fmu) if isinstance(fmu, bytes | bytearray) else Path(fmu).read_bytes()
        sha256 = hashlib.sha256(data).hexdigest()
        runner = _runner_for(sha256, data)
        md = runner.md
        version = str(md.fmiVersion)
        if not (version == "2.0" or version.startswith("3.")):
            raise TwinError(f"the FMU {runner.name!r} is FMI {version}; the 'fmu' kind runs FMI 2.0 and 3.0")
        offered = [t for t, d in (("CoSimulation", md.coSimulation), ("ModelExchange", md.modelExchange)) if d]
        if fmi_type is None:
            if not offered:
                raise TwinError(f"the FMU {runner.name!r} declares neither co-simulation nor model exchange")
            fmi_type = offered[0]
        elif fmi_type not in offered:
            raise TwinError(
                f"the FMU {runner.name!r} offers {' and '.join(offered) or 'no interface'}, not {fmi_type!r}"
            )

        params_in = dict(parameters or {})
        mapping = dict(variables or {})
        twin_names = {p.name for p in (*inputs, *outputs)} | set(params_in)
        unknown = sorted(set(mapping) - twin_names)
        if unknown:
            raise TwinError(f"variables maps {unknown}, which are neither ports nor parameters of this twin")

        # time: the FMU's unit, the start, and the stop (fixed or a duration port)
        independent = [v for v in md.modelVariables if v.causality == "independent"]
        declared_time = _declared_unit(independent[0]) if independent else None
        if time_unit is not None and declared_time is not None and time_unit != declared_time:
            raise TwinError(f"the FMU {runner.name!r} declares its time in {declared_time!r}, not {time_unit!r}")
        t_unit = time_unit or declared_time or "s"
        try:
            convert(np.array([1.0]), t_unit, "s")
        except ValueError as exc:
            raise TwinError(f"time_unit {t_unit!r} is not a unit of time: {exc}") from None
        experiment = md.defaultExperiment
        start = float(experiment.startTime) if experiment is not None and experiment.startTime is not None else 0.0
        duration_port: str | None = None
        if isinstance(stop_time, str):
            port = next((p for p in inputs if p.name == stop_time), None)
            if port is None:
                raise TwinError(f"stop_time {stop_time!r} names no input port of this twin")
            duration_port = port.name
            try:
                convert(np.array([1.0]), port.unit, t_unit)
            except ValueError as exc:
                raise TwinUnitError(
                    port.name, f"the run's duration must be a time (FMU time in {t_unit!r}): {exc}"
                ) from None
            stop: float | str = port.name
        elif stop_time is None:
            if experiment is None or experiment.stopTime is None:
                raise TwinError(f"the FMU {runner.name!r} declares no stop time: give stop_time")
            stop = float(experiment.stopTime)
        else:
            stop = float(stop_time)
            if not math.isfinite(stop) or stop < start:
                raise TwinError(f"stop_time {stop_time!r} must be a finite time after the start time {start!r}")
        if output_interval is not None and not (math.isfinite(output_interval) and output_interval > 0):
            raise TwinError(f"output_interval must be a positive time, not {output_interval!r}")
        if relative_tolerance is not None and not (math.isfinite(relative_tolerance) and relative_tolerance > 0):
            raise TwinError(f"relative_tolerance must be positive, not {relative_tolerance!r}")

        def variable(name: str, role: str, causalities: tuple[str, ...], types: tuple[str, ...]) -> tuple[str, Any]:
            var = mapping.get(name, name)
            v = runner.vars.get(var)
            kind = " or ".join(causalities)
            if v is None:
                raise TwinError(f"{role} {name!r}: the FMU has no variable {var!r} ({kind}); {_offer(runner)}")
            if v.causality not in causalities:
                raise TwinError(
                    f"{role} {name!r}: the FMU variable {var!r} has causality {v.causality!r}, not {kind}; "
                    f"{_offer(runner)}"
                )
            if v.variability == "constant":
                raise TwinError(f"{role} {name!r}: the FMU variable {var!r} is a constant and cannot be set")
            if v.type not in types or getattr(v, "shape", None):
                raise TwinError(f"{role} {name!r}: the FMU variable {var!r} is a {v.type}, not a number")
            return var, v

        used: dict[str, str] = {}  # FMU variable -> twin name, so two names never drive one variable

        def claim(var: str, name: str) -> None:
            if var in used:
                raise TwinError(f"{name!r} and {used[var]!r} both map to the FMU variable {var!r}")
            used[var] = name

        settable_types = (*_FLOAT_TYPES, *_INT_TYPES)
        varmap: dict[str, str] = {}
        for port in inputs:
            if port.name == duration_port:
                continue
            var, _ = variable(port.name, "input port", _SETTABLE, settable_types)
            _check_unit(port.name, "input port", port.unit, var, runner.unit(var))
            claim(var, port.name)
            varmap[port.name] = var
        for port in outputs:
            var, _ = variable(port.name, "output port", ("output",), _READABLE_TYPES)
            _check_unit(port.name, "output port", port.unit, var, runner.unit(var))
            varmap[port.name] = var

        params: list[Param] = []
        for name, spec in params_in.items():
            var, v = variable(name, "parameter", _SETTABLE, settable_types)
            fmu_unit = runner.unit(var)
            if isinstance(spec, Param):
                if spec.name != name:
                    raise TwinError(f"parameters[{name!r}] is a Param named {spec.name!r}")
                param = spec
            else:
                value, unit = spec if isinstance(spec, tuple) else (spec, fmu_unit or "1")
                if value is None:
                    if v.start is None:
                        raise TwinError(f"parameter {name!r}: the FMU variable {var!r} has no start value; give one")
                    raw = np.array([float(v.start)])
                    value = float(raw[0] if fmu_unit is None else convert(raw, fmu_unit, unit)[0])
                param = Param(name, float(value), unit)
            _check_unit(name, "parameter", param.unit, var, fmu_unit)
            claim(var, name)
            varmap[name] = var
            params.append(param)

        constants: dict[str, float | int | bool | str] = {}
        for var, constant in (start_values or {}).items():
            v = runner.vars.get(var)
            if v is None or v.causality not in _SETTABLE:
                raise TwinError(f"start_values: {var!r} is not an input or parameter of the FMU; {_offer(runner)}")
            if not isinstance(constant, bool | int | float | str) or (
                isinstance(constant, float) and not math.isfinite(constant)
            ):
                raise TwinError(f"start_values[{var!r}] must be a finite number, a bool or a string, not {constant!r}")
            claim(var, f"start_values[{var!r}]")
            constants[var] = constant

        settings: dict[str, Any] = {
            "fmu": base64.b64encode(data).decode("ascii"),
            "sha256": sha256,
            "model_name": runner.name,
            "fmi_version": version,
            "fmi_type": fmi_type,
            "variables": varmap,
            "start_time": start,
            "stop_time": stop,
            "time_unit": t_unit,
            "output_interval": None if output_interval is None else float(output_interval),
            "relative_tolerance": None if relative_tolerance is None else float(relative_tolerance),
            "start_values": constants,
        }
        twin = cls(tuple(inputs), tuple(outputs), tuple(params), settings=settings, equipment_class=equipment_class)
        twin._fmu_checked = settings["fmu"]
        return twin

    # -- the FMU -------------------------------------------------------------------------
    def fmu_bytes(self) -> bytes:
        """The FMU file this twin runs (checked against its sha256), e.g. to hand it back to a simulator."""
        return _decode(self.settings.get("fmu"), self.settings.get("sha256"))

    def _runner(self) -> _Runner:
        sha256 = str(self.settings.get("sha256"))
        text = self.settings.get("fmu")
        if self._fmu_checked is not text:  # decoded and hashed once per twin object
            runner = _runner_for(sha256, _decode(text, sha256))
            self._fmu_checked = text
            return runner
        with _RUNNERS_LOCK:
            cached = _RUNNERS.get(sha256)
        return cached if cached is not None else _runner_for(sha256, _decode(text, sha256))

    def evaluate(self, x: Mapping[str, np.ndarray], p: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """One simulation per distinct case; cases broadcast like numpy (Monte Carlo: (draws, 1) x (1, points)).

        A case with a non-finite value is not run and gives NaN (the fit maps those to a large residual)."""
        runner = self._runner()
        s = self.settings
        varmap: dict[str, str] = s["variables"]
        duration = s["stop_time"] if isinstance(s["stop_time"], str) else None
        columns: list[tuple[str | None, np.ndarray, str | None]] = []  # (FMU variable or None for time, values, type)
        for port in self.inputs:
            values = np.asarray(x[port.name], dtype=float)
            if port.name == duration:
                if np.any(values < 0):
                    bad = float(values[values < 0].flat[0])
                    raise TwinError(f"the run's duration {port.name!r} must not be negative, got {bad!r} {port.unit}")
                columns.append((None, convert(values, port.unit, s["time_unit"]), None))
                continue
            var = varmap[port.name]
            unit = runner.unit(var)
            columns.append((var, values if unit is None else convert(values, port.unit, unit), runner.vars[var].type))
        for name, param in self.params.items():
            var = varmap[name]
            unit = runner.unit(var)
            values = np.asarray(p[name], dtype=float)
            columns.append((var, values if unit is None else convert(values, param.unit, unit), runner.vars[var].type))

        shape = np.broadcast_shapes(*(c[1].shape for c in columns)) if columns else ()
        outputs = [varmap[port.name] for port in self.outputs]
        n = math.prod(shape)
        table = np.stack([np.broadcast_to(c[1], shape).reshape(n) for c in columns], axis=1) if columns else None
        if table is None:  # no inputs or parameters: one run
            cases, inverse = np.zeros((1, 0)), np.zeros(n, dtype=int)
        else:
            cases, inverse = np.unique(table, axis=0, return_inverse=True)
            inverse = np.asarray(inverse).reshape(-1)
        results = np.full((len(cases), len(outputs)), np.nan)
        start = float(s["start_time"])
        for i, row in enumerate(cases):
            if not np.all(np.isfinite(row)):
                continue
            given: dict[str, Any] = dict(s.get("start_values") or {})
            stop = float(s["stop_time"]) if duration is None else start
            for (target, _, vtype), value in zip(columns, row, strict=True):
                if target is None:
                    stop = start + float(value)
                elif vtype in _INT_TYPES:
                    if not float(value).is_integer():
                        raise TwinError(f"the FMU variable {target!r} takes integers, got {float(value)!r}")
                    given[target] = int(value)
                else:
                    given[target] = float(value)
            results[i] = runner.run(
                s["fmi_type"], given, start, stop, s.get("output_interval"), s.get("relative_tolerance"), outputs
            )
        out: dict[str, np.ndarray] = {}
        for j, port in enumerate(self.outputs):
            col = results[inverse, j].reshape(shape)
            out_unit = runner.unit(outputs[j])
            out[port.name] = col if out_unit is None else convert(col, out_unit, port.unit)
        return out
