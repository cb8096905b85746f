"""Twins in the graph: attach, save versions, load, list, change status (``kg.twins``).

Why in the graph and not in pickles: a twin must outlive its author's laptop
and its Python version. Each version is RDF in the named graph
``{base}graph/twins``: kind, equation, ports bound to the process parameters
and quality attributes they read, parameter values with units and standard
errors, fit metrics, the batches it was fitted and tested on, status, and
``prov:wasRevisionOf`` the version it replaces. Floats are written with
Python's shortest round-trip repr and read back exactly, so a reloaded twin
predicts bit-for-bit what the saved one did. Every write goes through
``kg.update`` (one transaction with its audit record).

Reads look in every graph (a twin imported from a tech-transfer package, or
loaded from a Turtle file, sits in its own graph); writes of new versions go
to the twins graph, and a status change is made where the version lives.

Version rule: versions of one twin id are numbered 1, 2, ...; ``load(id)``
gives the newest version that is not retired (the newest of all if every
version is retired), ``load(id, version=n)`` a given one.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from .. import terms as T
from ..audit import audit_graph, utc_now
from ..store.base import sparql_string
from .model import STATUSES, FitReport, Meta, Param, Port, Twin, TwinError
from .registry import twin_kind

if TYPE_CHECKING:
    from ..kg import KnowledgeGraph

__all__ = ["TwinShelf", "twins_graph"]

_STATUS_IRI = {"draft": T.PKG + "Draft", "validated": T.PKG + "Validated", "retired": T.PKG + "Retired"}
_STATUS_OF = {v: k for k, v in _STATUS_IRI.items()}
#: Allowed status changes (a retired twin stays retired: refit to get a new draft version).
_TRANSITIONS = {("draft", "validated"), ("draft", "retired"), ("validated", "retired")}


def twins_graph(base: str) -> str:
    return f"{base}graph/twins"


def _iri(text: str) -> str:
    return f"<{text}>"


def _dbl(x: float) -> str:
    if not np.isfinite(x):
        return '"NaN"^^xsd:double' if np.isnan(x) else f'"{"INF" if x > 0 else "-INF"}"^^xsd:double'
    return f'"{float(x)!r}"^^xsd:double'


def _json(obj: Any) -> str:
    """JSON text as a plain string literal (what every SPARQL tool can read back)."""
    return sparql_string(json.dumps(obj, sort_keys=True, allow_nan=False))


class TwinShelf:
    """The twins of one knowledge graph; reach it as ``kg.twins``."""

    def __init__(self, kg: KnowledgeGraph) -> None:
        self.kg = kg
        self.graph = twins_graph(kg.base)

    def __repr__(self) -> str:
        return f"<TwinShelf of {self.kg.store.location}>"

    # -- writing -----------------------------------------------------------------------
    def attach(self, node: str, twin: Twin, *, id: str, reason: str, label: str = "") -> Twin:
        """Save ``twin`` as version 1 of a new twin ``id`` hanging on ``node`` (a step, unit, equipment...)."""
        if self._versions(id):
            raise TwinError(f"a twin with id {id!r} exists already; save a new version with kg.twins.save()")
        target = self.kg.resolve(node)
        return self._write(twin.with_meta(id=id, label=label or id, describes=target, version=0), reason=reason)

    def save(self, twin: Twin, *, reason: str) -> Twin:
        """Save ``twin`` as the next version of its id (a refit): a draft, ``prov:wasRevisionOf`` the last."""
        if not twin.meta.id:
            raise TwinError("this twin has no id yet: attach it to a node first (kg.twins.attach)")
        if not self._versions(twin.meta.id):
            raise TwinError(f"no twin {twin.meta.id!r} in the graph to revise; attach it first")
        return self._write(twin.with_meta(status="draft"), reason=reason)

    def set_status(
        self,
        ref: str | Twin,
        status: str,
        *,
        reason: str,
        key: str | None = None,
        signer: str | None = None,
        meaning: str | None = None,
    ) -> Twin:
        """Move a version draft -> validated -> retired (audited; the reason is kept).

        With ``key`` (the signer's private key, PEM) and ``signer``, the status change
        is e-signed: a signature record bound to the change's audit record, with the
        meaning (default: "approved" for validation, "retired" otherwise).
        """
        twin = ref if isinstance(ref, Twin) else self.load(ref)
        if status not in STATUSES:
            raise TwinError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        if (twin.status, status) not in _TRANSITIONS:
            raise TwinError(f"twin {twin.meta.id} v{twin.version} is {twin.status}; it cannot become {status}")
        if status == "validated" and twin.fit_report is None:
            raise TwinError(f"twin {twin.meta.id} v{twin.version} was never fitted; fit it before validating")
        if key is not None and not signer:
            raise TwinError("an e-signed status change needs the signer's name")
        s = _iri(str(twin.iri))  # changed where it lives: its own graph, or an imported package's
        graphs = [
            r["g"] for r in self.kg.rows(f"SELECT DISTINCT ?g WHERE {{ GRAPH ?g {{ {s} pkg:twinStatus ?old }} }}")
        ]
        record = self.kg.update(
            " ;\n".join(
                f"DELETE {{ GRAPH <{g}> {{ {s} pkg:twinStatus ?old }} }} "
                f"INSERT {{ GRAPH <{g}> {{ {s} pkg:twinStatus {_iri(_STATUS_IRI[status])} }} }} "
                f"WHERE {{ GRAPH <{g}> {{ {s} pkg:twinStatus ?old }} }}"
                for g in graphs
            ),
            reason=reason,
        )
        if key is not None and signer:
            self.kg.sign(
                record.iri(self.kg.base),
                key=key,
                signer=signer,
                meaning=meaning or ("approved" if status == "validated" else status),
            )
        return twin.with_meta(status=status)

    def _write(self, twin: Twin, *, reason: str) -> Twin:
        previous = self._versions(twin.meta.id)
        version = max(previous, default=0) + 1
        iri = f"{self.kg.base}twin/{quote(twin.meta.id, safe='')}/{version}"
        meta = Meta(
            id=twin.meta.id,
            label=twin.meta.label or twin.meta.id,
            version=version,
            status="draft",
            iri=iri,
            describes=twin.meta.describes or (self.load(twin.meta.id).meta.describes if previous else None),
            revision_of=previous[max(previous)] if previous else None,
            created=utc_now(),
            created_by=self.kg.user,
        )
        ports = {
            rel: tuple(_resolved(self.kg, p) for p in ps) for rel, ps in (("in", twin.inputs), ("out", twin.outputs))
        }
        saved = twin._copy(inputs=ports["in"], outputs=ports["out"], meta=meta)
        self.kg.update(f"INSERT DATA {{ GRAPH {_iri(self.graph)} {{\n{_triples(saved)}\n}} }}", reason=reason)
        return saved

    # -- reading -----------------------------------------------------------------------
    def _versions(self, id: str) -> dict[int, str]:
        rows = self.kg.rows(
            f"SELECT DISTINCT ?t ?v WHERE {{ ?t a pkg:Twin ; pkg:twinId {sparql_string(id)} ; pkg:twinVersion ?v }}"
        )
        return {int(r["v"]): r["t"] for r in rows}

    def list(self) -> pd.DataFrame:
        """Every twin version: id, version, kind, status, what it describes, fit metrics."""
        frame = self.kg.query(
            """SELECT DISTINCT ?id ?version ?kind ?status ?describes ?node ?created ?n_train ?iri WHERE {
  ?iri a pkg:Twin ; pkg:twinId ?id ; pkg:twinVersion ?version ; pkg:twinKind ?kind ;
      pkg:twinStatus ?s ; dcterms:created ?created .
  OPTIONAL { ?iri pkg:describes ?node . ?node dcterms:identifier ?describes }
  OPTIONAL { ?iri pkg:trainingSize ?n_train }
  BIND(LCASE(STRAFTER(STR(?s), "#")) AS ?status) } ORDER BY ?id ?version"""
        )  # the node's id inside the describes OPTIONAL: on its own, oxigraph read every identifier in the store
        return frame.drop(columns=["node"], errors="ignore")

    def of(self, node: str) -> builtins.list[Twin]:
        """The current version of every twin attached to ``node``."""
        target = self.kg.resolve(node)
        rows = self.kg.rows(f"SELECT DISTINCT ?id WHERE {{ ?t pkg:describes <{target}> ; pkg:twinId ?id }}")
        return [self.load(r["id"]) for r in sorted(rows, key=lambda r: r["id"])]

    def load(self, ref: str, *, version: int | None = None) -> Twin:
        """A twin version by IRI, or by id (the current version, or ``version``)."""
        if ref.startswith(("http://", "https://", "urn:")):
            return self._read(ref)
        versions = self._versions(ref)
        if not versions:
            raise TwinError(f"no twin {ref!r} in {self.kg.store.location}")
        if version is not None:
            if version not in versions:
                raise TwinError(f"twin {ref!r} has versions {sorted(versions)}, not {version}")
            return self._read(versions[version])
        statuses = self._statuses(list(versions.values()))
        live = [v for v, iri in versions.items() if statuses.get(iri) != "retired"]
        return self._read(versions[max(live or versions)])

    def history_of(self, ref: str) -> pd.DataFrame:
        """The version chain of a twin id (oldest first)."""
        frame = self.list()
        return frame[frame["id"] == ref].reset_index(drop=True)

    def _statuses(self, iris: builtins.list[str]) -> dict[str, str]:
        values = " ".join(_iri(i) for i in iris)
        rows = self.kg.rows(f"SELECT DISTINCT ?t ?s WHERE {{ VALUES ?t {{ {values} }} ?t pkg:twinStatus ?s }}")
        return {r["t"]: _STATUS_OF.get(r["s"], "draft") for r in rows}

    def _read(self, iri: str) -> Twin:
        head = self.kg.rows(f"SELECT DISTINCT ?p ?o WHERE {{ <{iri}> ?p ?o }}")
        if not head:
            raise TwinError(f"no twin {iri} in {self.kg.store.location}")
        props: dict[str, list[str]] = {}
        for r in head:
            props.setdefault(r["p"], []).append(r["o"])
        one = lambda p: props.get(T.PKG + p, [None])[0]  # noqa: E731
        cls = twin_kind(str(one("twinKind")))
        ports = self.kg.rows(
            f"""SELECT DISTINCT ?dir ?port ?name ?unit ?src ?via ?label ?seq WHERE {{ {{
  VALUES ?dir {{ pkg:input pkg:output }} <{iri}> ?dir ?port . ?port pkg:portName ?name ; pkg:unit ?unit ; pkg:via ?via .
  OPTIONAL {{ ?port pkg:boundTo ?src }} OPTIONAL {{ ?port rdfs:label ?label }} OPTIONAL {{ ?port pkg:order ?seq }} }} }}
  ORDER BY ?dir ?seq"""
        )
        params = self.kg.rows(
            f"""SELECT DISTINCT ?name ?value ?unit ?se ?fixed ?positive ?seq WHERE {{ {{
  <{iri}> pkg:modelParameter ?p . ?p pkg:parameterName ?name ; pkg:estimate ?value ; pkg:unit ?unit ;
     pkg:fixed ?fixed ; pkg:positive ?positive . OPTIONAL {{ ?p pkg:standardError ?se }} OPTIONAL {{ ?p pkg:order ?seq }} }} }}
  ORDER BY ?seq"""
        )
        batches = self.kg.rows(
            f"""SELECT DISTINCT ?rel ?id WHERE {{ VALUES ?rel {{ pkg:fittedOn pkg:testedOn }} <{iri}> ?rel ?id }}"""
        )

        def port(r: Mapping[str, str]) -> Port:
            src = r.get("src", "")
            return Port(r["name"], r["unit"], src, r["via"], r.get("label", ""))  # type: ignore[arg-type]

        settings = json.loads(one("settings") or "{}")
        cov = one("covariance")
        fit = one("fitReport")
        twin = cls.__new__(cls)
        Twin.__init__(
            twin,
            tuple(port(r) for r in ports if r["dir"] == T.PKG + "input"),
            tuple(port(r) for r in ports if r["dir"] == T.PKG + "output"),
            tuple(
                Param(
                    r["name"],
                    float(r["value"]),
                    r["unit"],
                    float(r["se"]) if "se" in r else None,
                    r["fixed"] == "true",
                    r["positive"] == "true",
                )
                for r in params
            ),
            settings=settings,
            equipment_class=one("equipmentClass"),
            covariance=None if cov is None else np.asarray(json.loads(cov), dtype=float),
            fit=None
            if fit is None
            else FitReport.from_dict(
                json.loads(fit),
                tuple(r["id"] for r in batches if r["rel"] == T.PKG + "fittedOn"),
                tuple(r["id"] for r in batches if r["rel"] == T.PKG + "testedOn"),
            ),
            meta=Meta(
                id=str(one("twinId")),
                label=props.get(T.label, [""])[0],
                version=int(str(one("twinVersion"))),
                status=_STATUS_OF.get(str(one("twinStatus")), "draft"),
                iri=iri,
                describes=one("describes"),
                revision_of=props.get(T.PROV + "wasRevisionOf", [None])[0],
                created=props.get(T.DCTERMS + "created", [None])[0],
                created_by=props.get(T.DCTERMS + "creator", [None])[0],
                signatures=self._signatures(iri),
            ),
        )
        return twin

    def _signatures(self, iri: str) -> tuple[str, ...]:
        """E-signatures on the audited changes of this version's status (shown wherever the card is shown)."""
        needle = sparql_string(f"<{iri}> <{T.PKG}twinStatus>")
        rows = self.kg.rows(
            f"""SELECT DISTINCT ?signer ?meaning ?time WHERE {{ GRAPH <{audit_graph(self.kg.base)}> {{
  ?e pkg:action "effect" ; pkg:aboutRecord ?r ; pkg:addedTriples ?added . FILTER(CONTAINS(?added, {needle}))
  ?s pkg:action "sign" ; pkg:aboutRecord ?r ; pkg:signer ?signer ; pkg:signatureMeaning ?meaning ; pkg:signedAt ?time }} }}
  ORDER BY ?time"""
        )
        return tuple(f"{r['meaning']} by {r['signer']} at {r['time']}" for r in rows)


def _resolved(kg: KnowledgeGraph, port: Port) -> Port:
    """The port bound by IRI, so the graph links the twin to the parameter or attribute it reads."""
    if not port.source or port.via == "capacity":
        return port
    try:
        return replace(port, source=kg.resolve(port.source))
    except KeyError as exc:
        raise TwinError(f"twin port {port.name!r} is bound to {port.source!r}: {exc.args[0]}") from None


def _triples(twin: Twin) -> str:
    """The Turtle-ish SPARQL triples of one twin version (IRIs derived from its own, no blank nodes)."""
    m = twin.meta
    s = _iri(str(m.iri))
    key = f"{m.id}/{m.version}"
    lines = [
        f"{s} a pkg:Twin ; dcterms:identifier {sparql_string(key)} ;",
        f"  rdfs:label {sparql_string(f'{m.label} v{m.version}')} ; pkg:twinId {sparql_string(m.id)} ;",
        f'  pkg:twinVersion "{m.version}"^^xsd:integer ; pkg:twinKind {sparql_string(twin.kind)} ;',
        f"  pkg:equation {sparql_string(type(twin).equation or twin.kind)} ; pkg:twinStatus {_iri(_STATUS_IRI[m.status])} ;",
        f'  dcterms:created "{m.created}"^^xsd:dateTime ; dcterms:creator {sparql_string(str(m.created_by))} ;',
        f"  pkg:settings {_json(twin.settings)} .",
    ]
    if m.describes:
        lines.append(f"{s} pkg:describes {_iri(m.describes)} .")
    if m.revision_of:
        lines.append(f"{s} prov:wasRevisionOf {_iri(m.revision_of)} .")
    if twin.equipment_class:
        lines.append(f"{s} pkg:equipmentClass {sparql_string(twin.equipment_class)} .")
    if twin.covariance is not None:
        lines.append(f"{s} pkg:covariance {_json(twin.covariance.tolist())} .")
    for rel, ports in (("input", twin.inputs), ("output", twin.outputs)):
        for i, p in enumerate(ports):
            n = _iri(f"{m.iri}/{rel}/{p.name}")
            lines.append(
                f"{s} pkg:{rel} {n} . {n} a pkg:TwinPort ; dcterms:identifier {sparql_string(f'{key}/{rel}/{p.name}')} ; "
                f"pkg:portName {sparql_string(p.name)} ; pkg:unit {sparql_string(p.unit)} ; "
                f'pkg:via {sparql_string(p.via)} ; pkg:order "{i}"^^xsd:integer .'
            )
            if p.source:
                lines.append(f"{n} pkg:boundTo {_iri(p.source)} .")
            if p.label:
                lines.append(f"{n} rdfs:label {sparql_string(p.label)} .")
    for i, q in enumerate(twin.params.values()):
        n = _iri(f"{m.iri}/param/{quote(q.name, safe='')}")
        lines.append(
            f"{s} pkg:modelParameter {n} . {n} a pkg:TwinParameter ; "
            f"dcterms:identifier {sparql_string(f'{key}/param/{q.name}')} ; pkg:parameterName {sparql_string(q.name)} ; "
            f"pkg:estimate {_dbl(q.value)} ; pkg:unit {sparql_string(q.unit)} ; "
            f'pkg:fixed {str(q.fixed).lower()} ; pkg:positive {str(q.positive).lower()} ; pkg:order "{i}"^^xsd:integer .'
        )
        if q.se is not None:
            lines.append(f"{n} pkg:standardError {_dbl(q.se)} .")
    fit = twin.fit_report
    if fit is not None:
        lines.append(
            f'{s} pkg:fitReport {_json(fit.to_dict())} ; pkg:trainingSize "{fit.n_train}"^^xsd:integer ; '
            f'pkg:testSize "{fit.n_test}"^^xsd:integer .'
        )
        for rel, all_ids in (("fittedOn", fit.train_batches), ("testedOn", fit.test_batches)):
            ids = [b for b in all_ids if b.startswith(("http://", "https://", "urn:"))]
            if ids:
                lines.append(f"{s} pkg:{rel} " + ", ".join(_iri(b) for b in ids) + " .")
    return "\n".join(lines)
