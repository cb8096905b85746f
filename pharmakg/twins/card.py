"""The model card of a twin: what a reviewer reads before validating it (text, table, HTML).

Why one function for all three: the CLI's ``twin show``, the notebook repr
and the TwinPanel widget must show the same facts, so they all render
:func:`card_facts`.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from .model import Twin

__all__ = ["card_facts", "card_html", "card_text", "parameter_table"]


def parameter_table(twin: Twin) -> pd.DataFrame:
    """One row per parameter: value, unit, standard error and relative standard error."""
    rows = []
    for p in twin.params.values():
        rel = abs(p.se / p.value) if p.se is not None and p.value else None
        rows.append({"parameter": p.name, "value": p.value, "unit": p.unit, "se": p.se, "rse": rel, "fixed": p.fixed})
    return pd.DataFrame(rows)


def card_facts(twin: Twin) -> dict[str, Any]:
    """The card's facts as plain data."""
    fit = twin.fit_report
    return {
        "id": twin.meta.id or "(not saved)",
        "version": twin.version,
        "status": twin.status,
        "kind": twin.kind,
        "equation": type(twin).equation,
        "describes": twin.meta.describes,
        "revision_of": twin.meta.revision_of,
        "created": twin.meta.created,
        "created_by": twin.meta.created_by,
        "signatures": list(twin.meta.signatures),
        "equipment_class": twin.equipment_class,
        "inputs": [(p.name, p.unit, p.via, p.source) for p in twin.inputs],
        "outputs": [(p.name, p.unit, p.via, p.source) for p in twin.outputs],
        "fit": None if fit is None else fit.to_dict(),
    }


def card_text(twin: Twin) -> str:
    f = card_facts(twin)
    lines = [
        f"twin {f['id']} v{f['version']} ({f['kind']}), status {f['status'].upper()}",
        f"  equation: {f['equation']}",
    ]
    if f["describes"]:
        lines.append(f"  describes: {f['describes']}")
    if f["revision_of"]:
        lines.append(f"  revision of: {f['revision_of']}")
    if f["created"]:
        lines.append(f"  saved {f['created']} by {f['created_by']}")
    for signature in f["signatures"]:
        lines.append(f"  e-signed: {signature}")
    for label, ports in (("input", f["inputs"]), ("output", f["outputs"])):
        for name, unit, via, source in ports:
            lines.append(f"  {label:<6} {name:<12} [{unit}] <- {via} {source or f['equipment_class'] or ''}")
    fit = f["fit"]
    if fit:
        for out in fit["r2"]:
            lines.append(
                f"  fit {out}: R2 {fit['r2'][out]:.4f} (train, n={fit['n_train']}), "
                f"{fit['test_r2'].get(out) or float('nan'):.4f} (held out, n={fit['n_test']}); "
                f"RMSE {fit['rmse'][out]:.4g} / {fit['test_rmse'].get(out) or float('nan'):.4g}; "
                f"excluded {fit['excluded']}, dropped {fit['dropped']}"
            )
    else:
        lines.append("  never fitted")
    table = parameter_table(twin).to_string(index=False, float_format=lambda v: f"{v:.6g}")
    lines += ["  " + line for line in table.splitlines()]
    if twin.status != "validated":
        lines.append(f"  NOTE: {twin.status} twin: its predictions are not validated")
    return "\n".join(lines)


def card_html(twin: Twin) -> str:
    f = card_facts(twin)
    badge = {"validated": "#1a7f37", "draft": "#9a6700", "retired": "#6e7781"}.get(f["status"], "#6e7781")
    ports = pd.DataFrame(
        [("input", *p) for p in f["inputs"]] + [("output", *p) for p in f["outputs"]],
        columns=["port", "name", "unit", "via", "bound to"],
    )
    fit = f["fit"]
    metrics = ""
    if fit:
        metrics = pd.DataFrame(
            {
                "R2 train": fit["r2"],
                "R2 held out": fit["test_r2"],
                "RMSE train": fit["rmse"],
                "RMSE held out": fit["test_rmse"],
            }
        ).to_html(float_format=lambda v: f"{v:.4g}")
        metrics = (
            f"<p>fitted on {fit['n_train']} batches, scored on {fit['n_test']} held out "
            f"({fit['excluded']} excluded, {fit['dropped']} incomplete); {html.escape(fit['method'])}</p>" + metrics
        )
    return (
        f"<div><b>twin {html.escape(str(f['id']))} v{f['version']}</b> "
        f"<span style='background:{badge};color:white;padding:0 4px;border-radius:3px'>{f['status']}</span> "
        f"<code>{html.escape(f['kind'])}</code><br><code>{html.escape(f['equation'])}</code>"
        + "".join(f"<br>e-signed: {html.escape(s)}" for s in f["signatures"])
        + ports.to_html(index=False)
        + parameter_table(twin).to_html(index=False, float_format=lambda v: f"{v:.6g}")
        + metrics
        + "</div>"
    )
