"""Closing an investigation: the accepted root cause, its CAPA and a snapshot of its evidence (layer L4).

The ranking is recomputed from the graph every time, and the graph moves on
(new batches, corrected results, other deviations). What the investigator saw
when accepting a cause must not move with it: it is frozen as JSON on the
deviation (``pkg:rootCauseEvidence``), next to ``pkg:rootCause`` and ``pkg:capa``,
in one audited update that can be e-signed. Who, when and why are in that
update's audit record; the snapshot repeats them so that the deviation still
carries them where the audit trail does not travel (an export, a dump).
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import terms as T
from ..store.base import sparql_string

if TYPE_CHECKING:
    from ..audit import WriteRecord
    from ..kg import KnowledgeGraph
    from . import Cause, Investigation

#: The ``format`` of a snapshot; a reader refuses formats it does not know.
SNAPSHOT_FORMAT = "pharmakg.rootcause-evidence/1"
#: How many candidates of the ranking the snapshot keeps (the accepted one is always kept in full).
RANKING_KEPT = 20


@dataclass(frozen=True)
class Outcome:
    """What a deviation's investigation concluded, as recorded on the deviation."""

    deviation: str  # business id
    root_cause: str | None  # several values (against the shapes) are joined with " | "
    capa: str | None
    snapshot: dict[str, Any] | None  # the parsed pkg:rootCauseEvidence, None when no cause was accepted here
    problem: str | None = None  # why a recorded snapshot could not be read (not JSON, an unknown format)


def _number(x: float) -> float | None:
    """JSON has no NaN or infinity: an infinite score (p = 0) or an open limit becomes null, not invalid JSON."""
    return float(x) if math.isfinite(x) else None


def _plain(value: Any) -> Any:
    """Evidence data as JSON values (numpy scalars, NaN and timestamps included)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, np.datetime64 | datetime):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, np.ndarray | pd.Series):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):  # a numpy scalar: bool, integer or float
        return _plain(value.item())
    return str(value)


def snapshot(
    found: Investigation, chosen: Cause, *, capa: str | None, reason: str, user: str, when: str
) -> dict[str, Any]:
    """The JSON snapshot of an accepted cause: everything the investigator saw, to be kept as it was."""

    def label(node: str) -> str:
        if node == chosen.iri:
            return chosen.id
        return str(found.graph.nodes[node].get("label", node)) if node in found.graph else node

    rank = next(i for i, c in enumerate(found.causes, 1) if c is chosen)
    return {
        "format": SNAPSHOT_FORMAT,
        "deviation": found.deviation,
        "batch": found.batch,
        "attribute": found.attribute,
        "accepted": {
            "rank": rank,
            "id": chosen.id,
            "kind": chosen.kind,
            "label": chosen.label,
            "iri": chosen.iri,
            "score": _number(chosen.score),
            "p": _number(chosen.p),
            "prior": _number(chosen.prior),
            "link": chosen.link,
            "sentence": chosen.sentence(),
            "evidence": [
                {"kind": e.kind, "text": e.text, "p": _number(e.p), "data": _plain(e.data)} for e in chosen.evidence
            ],
            "path": [
                {"from": a, "from_id": label(a), "meaning": m, "to": b, "to_id": label(b)} for a, m, b in chosen.path
            ],
        },
        "ranking": [
            {"rank": i, "id": c.id, "kind": c.kind, "score": _number(c.score), "p": _number(c.p)}
            for i, c in enumerate(found.causes[:RANKING_KEPT], 1)
        ],
        "candidates": max(found.considered, len(found.causes)),
        "strong": bool(found.strong),
        "capa": capa.strip() if capa is not None else None,
        "reason": reason,
        "accepted_by": user,
        "accepted_at": when,
        "investigated_at": [{"chain": g, "record": n, "hash": h} for g, (n, h) in sorted(found.state.items())],
    }


def accept_cause(
    kg: KnowledgeGraph,
    found: Investigation,
    cause: Cause | str,
    *,
    reason: str,
    capa: str | None = None,
    key: str | None = None,
    signer: str | None = None,
    meaning: str = "root cause approved",
) -> WriteRecord:
    """Record the accepted cause on the deviation, with its CAPA and a snapshot of its evidence, in one audited update.

    Writes ``pkg:rootCause`` (the cause's kind, id and sentence), ``pkg:capa`` when
    ``capa`` is given (None keeps the CAPA the deviation has), and
    ``pkg:rootCauseEvidence`` (see :func:`snapshot`). Earlier values are replaced
    and stay in the audit trail (``kg.history(deviation)``). With ``key`` and
    ``signer`` the update is e-signed with ``meaning``. Everything is checked
    before anything is written, so a refused call leaves the store as it was.
    Returns the update's audit record.
    """
    if found.deviation is None:
        raise ValueError("only a deviation's investigation can record its root cause (this one is batch + attribute)")
    if not reason.strip():
        raise ValueError("accepting a root cause needs a reason (why this is the root cause)")
    if capa is not None and not capa.strip():
        raise ValueError("the CAPA is empty: give its text or CAPA record number, or None to keep the deviation's")
    if key is not None:
        from ..signing import load_private_key

        if not (signer and signer.strip()):
            raise ValueError("an e-signed root cause needs the signer's name")
        if not meaning.strip():
            raise ValueError("an e-signature needs its meaning (such as 'root cause approved')")
        load_private_key(key)  # everything the signature needs fails here, before the write, not after it
    chosen = (
        next((c for c in found.causes if c is cause), None)
        if not isinstance(cause, str)
        else next((c for c in found.causes if cause in (c.id, c.iri)), None)
    )
    if chosen is None:
        raise KeyError(f"{cause!r} is not a candidate of this investigation")
    dev = kg.resolve(found.deviation)
    graphs = [r["g"] for r in kg.rows(f"SELECT DISTINCT ?g WHERE {{ GRAPH ?g {{ <{dev}> a pkg:Deviation }} }}")]
    if not graphs:
        raise KeyError(f"{found.deviation!r} is not a deviation in this graph")
    when = datetime.now(UTC).isoformat(timespec="seconds")
    kept = snapshot(found, chosen, capa=capa, reason=reason, user=kg.user, when=when)
    # the sentence names the cause by its label; the business id goes first when the label is another name
    said = chosen.sentence() if chosen.label == chosen.id else f"{chosen.kind} {chosen.id}: {chosen.sentence()}"
    values = {
        T.rootCause: sparql_string(said),
        T.rootCauseEvidence: sparql_string(json.dumps(kept, ensure_ascii=False, sort_keys=True)) + f"^^<{T.JSON}>",
    }
    if capa is not None:
        values[T.capa] = sparql_string(capa.strip())
    removals = [
        f"DELETE {{ GRAPH <{g}> {{ <{dev}> <{p}> ?old }} }} WHERE {{ GRAPH <{g}> {{ <{dev}> <{p}> ?old }} }}"
        for g in graphs
        for p in values
    ]
    written = " ".join(f"<{dev}> <{p}> {o} ." for p, o in values.items())
    record = kg.update(
        " ;\n".join([*removals, f"INSERT DATA {{ GRAPH <{graphs[0]}> {{ {written} }} }}"]),
        reason=reason,
    )
    if key is not None and signer:
        kg.sign(record.number, key=key, signer=signer.strip(), meaning=meaning.strip())
    return record


def outcome(kg: KnowledgeGraph, deviation: str) -> Outcome:
    """The root cause, CAPA and evidence snapshot recorded on a deviation (business id or IRI).

    A snapshot that cannot be read (not JSON, a format this version does not know) is
    reported in ``problem`` rather than raised, so a report can still be written.
    """
    dev = kg.resolve(deviation)
    ids = kg.rows(f"SELECT ?id WHERE {{ <{dev}> a pkg:Deviation ; dcterms:identifier ?id }}")
    if not ids:
        raise KeyError(f"{deviation!r} is not a deviation in this graph")
    found: dict[str, list[str]] = {}
    for r in kg.rows(
        f"""SELECT DISTINCT ?p ?v WHERE {{ VALUES ?p {{ pkg:rootCause pkg:capa pkg:rootCauseEvidence }}
  <{dev}> ?p ?v }} ORDER BY ?p ?v"""
    ):
        found.setdefault(r["p"], []).append(r["v"])
    name = ids[0]["id"]
    kept, problem = None, None
    texts = found.get(T.rootCauseEvidence, [])
    if texts:
        try:
            # several snapshots go against the shapes: the latest accepted one is the one in force
            parsed = [json.loads(t) for t in texts]
            kept = max(parsed, key=lambda k: str(k.get("accepted_at", "")) if isinstance(k, dict) else "")
        except json.JSONDecodeError as exc:
            problem = f"{name}: the root-cause evidence is not JSON ({exc})"
        if kept is not None and (not isinstance(kept, dict) or kept.get("format") != SNAPSHOT_FORMAT):
            fmt = kept.get("format") if isinstance(kept, dict) else type(kept).__name__
            problem, kept = f"{name}: root-cause evidence in format {fmt!r}, not {SNAPSHOT_FORMAT}", None

    def joined(prop: str) -> str | None:
        return " | ".join(found[prop]) if prop in found else None

    return Outcome(name, joined(T.rootCause), joined(T.capa), kept, problem)


def outcome_html(found: Outcome) -> str:
    """The recorded conclusion, as the investigation report's first section."""
    kept = found.snapshot or {}
    accepted = kept.get("accepted") or {}
    rows = [
        ("Root cause", found.root_cause or "not recorded"),
        ("CAPA", found.capa or "not recorded"),
    ]
    if found.problem:
        rows.append(("Evidence snapshot", found.problem))
    if kept:
        score = accepted.get("score")
        shown = f"{score:.2f}" if isinstance(score, int | float) else "not finite"
        rows += [
            ("Accepted", f"candidate {accepted.get('rank')} of {kept.get('candidates')}, score {shown}"),
            ("By", f"{kept.get('accepted_by')} at {kept.get('accepted_at')}"),
            ("Why", str(kept.get("reason"))),
        ]
    cells = "".join(f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<h2>Outcome</h2><table class='outcome'>{cells}</table><h2>Candidates</h2>"
