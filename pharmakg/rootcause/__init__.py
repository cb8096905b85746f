"""Root-cause graph walks: from a deviation to ranked, explained candidate causes (layer L4).

An investigation starts at a deviation (or a batch and a quality attribute)
and gathers candidates from what the graph knows, never from what a
particular plant's generator did:

- **knowledge**: the quality attribute's ``impacts`` sources, followed
  backwards over any number of links (a granule LOD that impacts hardness,
  a dryer temperature that impacts the LOD), and the inputs of every fitted
  twin whose output predicts it; the strength of a path is its weakest link:
  ``riskSeverity`` over 10, or for a twin input the share of the output's
  spec width it moves across its 5-95 % history range (see ``_twin_links``);
- **this batch's genealogy**: every batch upstream of it (through consumed
  and produced lots), the lots and suppliers it used, the equipment those
  batches ran on;
- **candidates**: process parameters (their actuals on those batches), input
  lots (their CoA values of the linked material attributes), suppliers,
  equipment (units, equipment modules such as tooling, and what is mounted on
  them), equipment events (failures, alarms, failed calibrations), and people
  and shifts met through enrichment alone.

Each candidate collects *evidence*, and every piece of evidence is a
probability of seeing something at least this striking by chance, estimated
from the plant's own history:

- ``limit``: the actual lies outside its PAR (or NOR, or spec); p is how often
  that happens in the history of that parameter or attribute, (k + 1) / (n + 1);
- ``history``: a robust z-score against the history (median, 1.4826 x MAD);
  p is the two-sided normal tail;
- ``supplier``: the supplier's lots against other suppliers' lots of the same
  material on a linked attribute, one-sided Mann-Whitney U;
- ``enrichment``: among batches tested for the same attribute, how much more
  often the failing ones had this factor in their genealogy than the passing
  ones, one-sided Fisher exact test (scipy), with the odds ratio as effect size.
  Factors are the lots, suppliers, equipment and operators of the genealogy,
  the shift each of its batches started in, and the analysts who tested the
  attribute; a shift, analyst or operator is Sidak-adjusted for the number of
  levels it was picked from;
- ``timing``: for a deviation about the equipment itself, an event of this
  type on it falls this close to the batch, p = 1 - exp(-rate x window); for
  a quality failure, a burst of failures or alarms of one type on a unit in
  the days before the batch, p = Poisson(k or more | rate x window); the rate
  is always that equipment's own rate of such events;
- ``calibration``: the first calibration after the batch failed, with no
  passing one in between (the batch ran with an instrument later found out of
  tolerance); p is the share of failed calibrations in the plant;
- ``upstream``: a deviation was already raised on a batch upstream of this
  one (any number of levels, through intermediates); p is the share of that
  product's batches with a deviation. The deviation is a candidate at the
  unlinked prior (a symptom met on the way), and when its attribute is linked
  to the failing one the same evidence goes to the unit it was raised on;
- ``twin``: a twin in the graph predicts the attribute (or one linked to it)
  and its residual drift chart on the batch's unit was in alarm at that batch
  (pharmakg.twins.drift): p is the normal tail of the EWMA statistic.

**Score** = prior x -log10(p), with p the Fisher combination of the
candidate's evidence (scipy ``combine_pvalues``), and prior the knowledge
weight: the path strength from the attribute for linked parameters, material
attributes, suppliers and the units where a linked parameter is controlled;
1 for the deviation's own unit and batch when it names no attribute;
``UNLINKED_PRIOR`` for everything the graph has no path for (equipment,
lots and events met in the genealogy), so data alone can still raise them but
knowledge breaks ties. A best score under ``NO_CANDIDATE_SCORE`` reads "no
strong candidate": nothing beats a 1-in-100 chance after weighting.
"""

from __future__ import annotations

import html
import logging
import math
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import pandas as pd

from ._facts import SHIFT_NS, _Facts, _upstream
from ._keep import Heads, facts, state_of
from ._outcome import SNAPSHOT_FORMAT, Outcome, accept_cause, outcome, outcome_html

if TYPE_CHECKING:
    from ..kg import KnowledgeGraph
    from ..twins import Twin

log = logging.getLogger(__name__)

__all__ = [
    "NO_CANDIDATE_SCORE",
    "SNAPSHOT_FORMAT",
    "UNLINKED_PRIOR",
    "Cause",
    "Evidence",
    "History",
    "Investigation",
    "Outcome",
    "accept_cause",
    "cause_history",
    "deviations",
    "investigate",
    "outcome",
]

#: Best score under this: "no strong candidate" (no cause beats a 1-in-100 chance after weighting).
NO_CANDIDATE_SCORE = 2.0
#: Prior of a candidate the risk assessment has no path for (met only in the genealogy).
UNLINKED_PRIOR = 0.5
#: Events and calibrations are looked for this many days before a batch starts.
WINDOW_DAYS = 14.0
#: Failing and passing batches are compared among those started within this many days of the batch,
#: so that whatever happened to be in use at the time (a lot, a campaign) does not pass for a cause.
ENRICHMENT_DAYS = 30.0
#: Wall-clock hours at which shifts start (three 8-hour shifts unless ``investigate(shifts=...)`` says otherwise).
SHIFT_STARTS = (6, 14, 22)
_FLOOR = 1e-300
T_MODULE = "https://w3id.org/pharmakg/ontology#EquipmentModule"
T_CONTROL = "https://w3id.org/pharmakg/ontology#ControlModule"


# -- results -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Evidence:
    """One observation for a cause, with the chance of seeing it (or more) under no effect."""

    kind: str  # limit | history | supplier | enrichment | timing | calibration | twin | upstream
    text: str
    p: float
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Cause:
    """A candidate cause: the node, how it is linked, the evidence, the score."""

    id: str  # business id as loaded (a supplier's name as written)
    kind: str  # parameter | lot | supplier | equipment | event | deviation | person | shift
    iri: str
    label: str
    prior: float
    link: str  # how the knowledge links it to the deviation, in words
    evidence: list[Evidence] = field(default_factory=list)
    path: list[tuple[str, str, str]] = field(default_factory=list)  # (from, meaning, to) IRIs
    p: float = 1.0
    score: float = 0.0

    def sentence(self) -> str:
        """One line a QA reviewer can read: what, how strong, why."""
        lines = "; ".join(e.text for e in sorted(self.evidence, key=lambda e: (e.p, e.text))[:3])
        return f"{self.kind} {self.label}: {lines or 'no evidence'} (score {self.score:.1f}, p = {self.p:.1g})"


@dataclass
class Investigation:
    """The ranked causes of one deviation, with their evidence and explanation paths."""

    deviation: str | None
    batch: str
    attribute: str | None
    causes: list[Cause]
    graph: nx.DiGraph  # the knowledge and genealogy the explanations walk; nodes carry "label" (business id)
    state: Heads = field(default_factory=dict)  # the audit trail's head records the tables were read at
    considered: int = 0  # candidates ranked before ``top`` cut the list

    @property
    def strong(self) -> bool:
        return bool(self.causes) and self.causes[0].score >= NO_CANDIDATE_SCORE

    def __repr__(self) -> str:
        head = self.deviation or f"{self.batch}/{self.attribute}"
        if not self.causes:
            return f"<Investigation {head}: no candidate>"
        best = self.causes[0]
        verdict = "" if self.strong else ", no strong candidate"
        return (
            f"<Investigation {head}: {len(self.causes)} candidates, best {best.kind} {best.id} "
            f"(score {best.score:.1f}){verdict}>"
        )

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "rank": i,
                    "id": c.id,
                    "kind": c.kind,
                    "score": round(c.score, 3),
                    "p": c.p,
                    "prior": c.prior,
                    "link": c.link,
                    "evidence": [e.text for e in c.evidence],
                    "explanation": c.sentence(),
                    "iri": c.iri,
                }
                for i, c in enumerate(self.causes, 1)
            ],
            columns=["rank", "id", "kind", "score", "p", "prior", "link", "evidence", "explanation", "iri"],
        )

    def explain(self, cause: Cause | str) -> nx.DiGraph:
        """The explanation path of a cause (or its id) as a small DiGraph whose edges carry their meaning."""
        found = cause if isinstance(cause, Cause) else next(c for c in self.causes if cause in (c.id, c.iri))
        path = nx.DiGraph()
        for a, meaning, b in found.path:
            path.add_edge(a, b, meaning=meaning)
        return path

    def report_html(self, *, store: str = "", outcome: Outcome | None = None) -> str:
        """A self-contained investigation report (no scripts, no external resources) to attach to the deviation.

        Every candidate with its score, combined p-value and prior, each piece of
        evidence with its own p-value, and the explanation path through the graph
        from the deviation to the cause, each edge with its meaning. With the
        deviation's recorded ``outcome`` (:func:`outcome`), the report opens with the
        accepted root cause, its CAPA, who accepted it, when and why.
        """
        from datetime import UTC, datetime

        def label(node: str) -> str:
            return str(self.graph.nodes[node].get("label", node)) if node in self.graph else node

        head = self.deviation or f"{self.batch} / {self.attribute}"
        parts = []
        for i, c in enumerate(self.causes, 1):
            evidence = "".join(
                f"<li>{html.escape(e.text)} <small>(p = {e.p:.2g}, {html.escape(e.kind)})</small></li>"
                for e in c.evidence
            )
            path = (
                " → ".join(
                    [html.escape(label(c.path[0][0]))]
                    + [f"<i>{html.escape(m)}</i> {html.escape(label(b))}" for _, m, b in c.path]
                )
                if c.path
                else "(no path)"
            )
            parts.append(
                f"<h3>{i}. {html.escape(c.kind)} {html.escape(c.id)} — score {c.score:.2f}</h3>"
                f"<p>{html.escape(c.link)}; combined p = {c.p:.2g}, prior {c.prior:.2f}</p>"
                f"<ul>{evidence or '<li>no evidence</li>'}</ul><p><b>Path:</b> {path}</p>"
            )
        verdict = "" if self.strong else "<p><b>No strong candidate</b>: the best score is below the threshold.</p>"
        if outcome is not None:
            verdict = outcome_html(outcome) + verdict
        when = datetime.now(UTC).isoformat(timespec="seconds")
        return (
            '<!doctype html><html><head><meta charset="utf-8">'
            f"<title>Root-cause investigation {html.escape(head)}</title>"
            "<style>body{font-family:sans-serif;margin:2em;max-width:60em}h3{margin-bottom:0.2em}</style></head><body>"
            f"<h1>Root-cause investigation: {html.escape(head)}</h1>"
            f"<p>Batch {html.escape(self.batch)}; attribute {html.escape(self.attribute or '-')}; "
            f"graph {html.escape(store)}; generated {when} by pharmakg.</p>{verdict}"
            + "".join(parts)
            + "<p><small>Scores combine the evidence p-values with Fisher's method and the knowledge prior; "
            "see pharmakg.rootcause.</small></p></body></html>\n"
        )

    def _repr_html_(self) -> str:
        head = f"deviation {self.deviation or '-'} on batch {self.batch}" + (
            f", attribute {self.attribute}" if self.attribute else ""
        )
        verdict = "" if self.strong else "<p><b>No strong candidate</b> (best score below the threshold).</p>"
        rows = "".join(
            f"<tr><td>{i}</td><td>{html.escape(c.kind)}</td><td>{html.escape(c.id)}</td>"
            f"<td>{c.score:.1f}</td><td>{html.escape(c.sentence())}</td></tr>"
            for i, c in enumerate(self.causes[:10], 1)
        )
        return (
            f"<p>{html.escape(head)}</p>{verdict}<table><tr><th>#</th><th>kind</th><th>id</th>"
            f"<th>score</th><th>why</th></tr>{rows}</table>"
        )


# -- statistics ---------------------------------------------------------------------------------
def _robust_p(value: float, history: np.ndarray) -> tuple[float, float] | None:
    """(z, two-sided p) of ``value`` against ``history`` by median and MAD; None when MAD is 0."""
    history = history[~np.isnan(history)]
    if len(history) < 8:
        return None
    med = float(np.median(history))
    mad = 1.4826 * float(np.median(np.abs(history - med)))
    if mad <= 0:
        return None
    from scipy.stats import norm

    z = (value - med) / mad
    return z, float(2 * norm.sf(abs(z)))


def _band(value: float, low: float, high: float) -> bool:
    """True when ``value`` lies outside [low, high] (a missing side is open)."""
    return (not math.isnan(low) and value < low) or (not math.isnan(high) and value > high)


def _limit_evidence(value: float, history: np.ndarray, limits: list[tuple[str, float, float]]) -> Evidence | None:
    """The tightest named band the value leaves, with how often the history leaves it too."""
    for name, low, high in limits:  # widest first: PAR before NOR, spec alone for attributes
        if _band(value, low, high):
            known = history[~np.isnan(history)]
            below = known < low if not math.isnan(low) else np.zeros(len(known), dtype=bool)
            above = known > high if not math.isnan(high) else np.zeros(len(known), dtype=bool)
            outside = int(np.count_nonzero(below | above))
            p = (outside + 1) / (len(history) + 1)
            bounds = f"{'' if math.isnan(low) else f'{low:g}'}-{'' if math.isnan(high) else f'{high:g}'}"
            return Evidence(
                "limit",
                f"{value:g} outside {name} {bounds} ({outside} of {len(history)} in history)",
                p,
                {"value": value, "band": name, "low": low, "high": high, "history_outside": outside},
            )
    return None


def _combine(ps: list[float]) -> float:
    if not ps:
        return 1.0
    if len(ps) == 1:
        return max(ps[0], _FLOOR)
    from scipy.stats import combine_pvalues

    return max(float(combine_pvalues([max(p, _FLOOR) for p in ps], method="fisher").pvalue), _FLOOR)


# -- the walk -------------------------------------------------------------------------------------
#: (source, target) -> (strength, meaning) of one knowledge link
Links = dict[tuple[str, str], tuple[float, str]]


def _links(f: _Facts, twins: list[tuple[str, str, float, str]]) -> Links:
    """The knowledge links: every ``impacts`` (strength severity / 10) and every twin input -> output.

    A twin input counts only where the risk assessment has no link of its own
    between the two: the assessment's severity is the team's judgement, the twin
    adds what it left out (strength: see ``_twin_links``)."""
    links: Links = {}
    for src, tgt, sev in f.impacts.itertuples(index=False):
        w = 1.0 if math.isnan(sev) else min(max(sev / 10, 0.0), 1.0)
        if w > links.get((src, tgt), (-1.0, ""))[0]:
            links[(src, tgt)] = (w, "impacts")
    for src, tgt, w, meaning in twins:
        if (src, tgt) not in links:
            links[(src, tgt)] = (w, meaning)
    return links


def _knowledge(links: Links, attribute: str) -> dict[str, tuple[float, list[str]]]:
    """Sources with a knowledge path to ``attribute``: (weakest link on the strongest path, path)."""
    into: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for (src, tgt), (w, _) in links.items():
        into[tgt].append((src, w))
    best: dict[str, tuple[float, list[str]]] = {attribute: (1.0, [attribute])}
    queue = deque([attribute])
    while queue:
        node = queue.popleft()
        strength, path = best[node]
        for src, w in into.get(node, ()):
            s = min(strength, w)
            if src not in best or s > best[src][0]:
                best[src] = (s, [src, *path])
                queue.append(src)
    best.pop(attribute)
    return best


def _fitted_twins(kg: KnowledgeGraph) -> list[Twin]:
    """The current version of every twin that is fitted and not retired (once per store revision)."""
    from ..twins import TwinError

    def fitted() -> list[Twin]:
        try:
            listed = kg.twins.list()
        except TwinError:
            listed = pd.DataFrame()
        twins = [kg.twins.load(i) for i in sorted(set(listed["id"]))] if len(listed) else []
        return [t for t in twins if t.status != "retired" and t.fit_report is not None]

    return kg.cached("rootcause.twins", fitted)  # worked out on every call for a remote store


def _twin_links(kg: KnowledgeGraph) -> list[tuple[str, str, float, str]]:
    """(input source, output attribute, strength, meaning) of every fitted twin still in use, once per revision.

    The strength of an input's link is how much of the output's specification
    the twin says that input moves: the output's swing as the input crosses its
    5-95 % history range, the others at their median, over the spec width
    (``pharmakg.twins.sensitivity``, a tornado chart's numbers), at most 1. An
    output without two spec limits falls back to the twin's held-out R2. A
    model that explains nothing (R2 <= 0) gives no links; ports bound to no
    graph node (a unit's capacity) give none either."""
    cache = kg.cache
    if "rootcause.twin-links" in cache:
        cached: list[tuple[str, str, float, str]] = cache["rootcause.twin-links"]
        return cached
    out: list[tuple[str, str, float, str]] = []
    for twin in _fitted_twins(kg):
        try:
            out += _links_of(kg, twin)
        except Exception as exc:  # a twin bound to a node since deleted, a model that fails to evaluate
            log.warning("twin %s v%s gives no knowledge links: %s", twin.meta.id, twin.version, exc)
    cache["rootcause.twin-links"] = out
    return out


def _links_of(kg: KnowledgeGraph, twin: Twin) -> list[tuple[str, str, float, str]]:
    """The knowledge links of one twin (see ``_twin_links``)."""
    from ..twins import sensitivity

    out: list[tuple[str, str, float, str]] = []
    fit = twin.fit_report
    assert fit is not None
    for port in twin.outputs:
        if not port.source:
            continue
        r2, which = fit.test_r2.get(port.name), "held-out R2"
        if r2 is None or math.isnan(r2):
            r2, which = fit.r2.get(port.name), "R2"
        if r2 is None or math.isnan(r2) or r2 <= 0:
            continue
        shares = sensitivity(kg, twin, output=port.name).set_index("input")["share_of_spec"]
        target = kg.resolve(port.source)
        for inp in twin.inputs:
            if not inp.source or inp.via == "capacity":
                continue
            share = shares.get(inp.name, math.nan)
            if isinstance(share, float) and not math.isnan(share):
                strength = min(share, 1.0)
                why = f"moves it by {share:.0%} of its spec width"
            else:
                strength, why = min(r2, 1.0), f"{which} {min(r2, 1.0):.2f}"
            meaning = f"input of twin {twin.meta.id} v{twin.version} ({why})"
            out.append((kg.resolve(inp.source), target, strength, meaning))
    return out


def _enrichment(f: _Facts, attribute: str, batch: str, shifts: tuple[int, ...]) -> dict[str, Evidence]:
    """Fisher exact evidence per factor of ``batch``: failing vs passing batches tested for ``attribute``.

    A batch's factors: the lots, suppliers, equipment and operators anywhere in
    its genealogy, the shift each batch of that genealogy started in (per
    product), and the analysts who tested the attribute on it. A shift, an
    analyst or an operator is one level picked out of several, so its p is
    Sidak-adjusted for the number of levels: 1 - (1 - p)^k."""
    from scipy.stats import fisher_exact

    attrs = f.attr_table
    tested = f.tested(attribute)
    if attribute not in attrs.index or tested.empty:
        return {}
    spec: Any = attrs.loc[attribute]
    low, high = float(spec["spec_low"]), float(spec["spec_high"])
    starts = f.start_series
    when = f.start_of.get(batch)
    if when is not None and not pd.isna(when):
        near = starts[(starts - when).abs() <= pd.Timedelta(days=ENRICHMENT_DAYS)].index
        tested = tested[tested["batch"].isin(near)]
    fails = tested[[_band(v, low, high) for v in tested["value"]]]["batch"]
    flagged = f.deviations[f.deviations["attribute"] == attribute]["batch"].dropna()
    flagged = flagged[flagged.isin(set(tested["batch"]))]
    failing = set(fails) | set(flagged) | {batch}
    population = set(tested["batch"]) | failing
    passing = population - failing
    if not passing:
        return {}
    analysts = f.analysts(attribute)

    def factors(b: str) -> frozenset[str]:
        return f.factors_of(b) | f.shifts_of(b, shifts) | analysts.get(b, set())

    mine = factors(batch)
    testers = {who for b in population for who in analysts.get(b, ())}
    operators = {x for b in population for x in f.factors_of(b) if x in f.operator_set}
    by_factor: dict[str, set[str]] = {}
    for root in population:
        for factor in factors(root) & mine:
            by_factor.setdefault(factor, set()).add(root)
    out: dict[str, Evidence] = {}
    start_of = f.start_of
    children = f.children
    for factor, roots in sorted(by_factor.items()):
        # a unit is compared without the batches that used its modules which this batch used too
        # (a tooling set on a press): if the unit's failures all went with the module, the module explains them
        kids = children.get(str(factor), set()) & mine
        if kids:
            with_kids = set().union(*(by_factor.get(k, set()) for k in kids))
            roots = roots - with_kids
            population_k, failing_k = population - with_kids, failing - with_kids
        else:
            population_k, failing_k = population, failing
        # concurrent controls: only batches made while the factor was in use (a lot's few days,
        # a unit's whole window), so a factor is not blamed for what else was going on at the time
        times = [start_of[r] for r in roots if not pd.isna(start_of.get(r, pd.NaT))]
        if times:
            lo, hi = min(times) - pd.Timedelta(days=1), max(times) + pd.Timedelta(days=1)
            during = {r for r in population_k if not pd.isna(start_of.get(r, pd.NaT)) and lo <= start_of[r] <= hi}
        else:
            during = population_k
        fail_d, pass_d = failing_k & during, (population_k - failing_k) & during
        nf, npass = len(fail_d), len(pass_d)
        a = len(roots & fail_d)
        c = len(roots & pass_d)
        if a < 2 or not npass:
            continue
        odds = ((a + 0.5) * (npass - c + 0.5)) / ((nf - a + 0.5) * (c + 0.5))
        p = float(fisher_exact([[a, nf - a], [c, npass - c]], alternative="greater")[1])
        # a shift, an analyst or an operator is one level picked out of several after the fact:
        # Sidak-adjust p for the levels that could have been picked (lots, suppliers and units
        # are named by the genealogy itself, not chosen among alternatives)
        if str(factor).startswith(SHIFT_NS):
            levels, family = len(shifts), "shift"
        elif factor in testers:
            levels, family = len(testers), "analyst"
        elif factor in operators:
            levels, family = len(operators), "operator"
        else:
            levels, family = 1, ""
        if levels > 1:  # 1 - (1 - p)^k, without rounding a tiny p to 0
            p = min(1.0, -math.expm1(levels * math.log1p(-p)))
        adjusted = f", adjusted for {levels} {family}s" if levels > 1 else ""
        out[str(factor)] = Evidence(
            "enrichment",
            f"{a} of {nf} failing batches had it vs {c} of {npass} passing made meanwhile "
            f"(odds ratio {odds:.1f}, p = {p:.1g}{adjusted})",
            p,
            {
                "failing_with": a,
                "failing": nf,
                "passing_with": c,
                "passing": npass,
                "odds_ratio": odds,
                "family": family,
            },
        )
    return out


def investigate(
    kg: KnowledgeGraph,
    ref: str,
    *,
    attribute: str | None = None,
    top: int | None = None,
    window_days: float = WINDOW_DAYS,
    shifts: tuple[int, ...] = SHIFT_STARTS,
) -> Investigation:
    """Rank the candidate causes of a deviation (its business id or IRI), or of a batch's failing attribute.

    ``ref`` is a deviation, or a batch together with ``attribute`` (a quality
    attribute id). See the module docstring for how evidence and scores combine.
    """
    shifts = tuple(sorted({int(h) for h in shifts}))
    if not shifts or not all(0 <= h < 24 for h in shifts):
        raise ValueError(f"shifts are the hours (0-23) at which shifts start, such as (6, 14, 22), not {shifts!r}")
    f = facts(kg)
    iri = kg.resolve(ref)
    dev = f.deviations[f.deviations["iri"] == iri]
    deviation: str | None = None
    equipment: str | None = None
    if not dev.empty:
        row = dev.iloc[0]
        deviation, batch = iri, row["batch"]
        equipment = row["equipment"] if isinstance(row["equipment"], str) else None
        attr_iri = row["attribute"] if isinstance(row["attribute"], str) else None
    else:
        batch = iri
        attr_iri = kg.resolve(attribute) if attribute else None
    if not isinstance(batch, str):
        raise ValueError(f"{ref} names no batch to investigate")
    if attribute and deviation:
        attr_iri = kg.resolve(attribute)

    upstream = _upstream(f, batch)
    links = _links(f, _twin_links(kg)) if attr_iri else {}
    knowledge = _knowledge(links, attr_iri) if attr_iri else {}
    causes: dict[str, Cause] = {}

    def cause(node: str, kind: str, prior: float, link: str, path: list[tuple[str, str, str]]) -> Cause:
        if node not in causes:
            label = f.ids.get(node, node) if kind != "supplier" else f.labels.get(node, f.ids.get(node, node))
            name = f.ids.get(node, node.rsplit("/", 1)[-1])
            if kind == "shift":  # urn:pharmakg:shift:22-06/<product>
                hours, product = node[len(SHIFT_NS) :].split("/", 1)
                name = label = f"{f.ids.get(product, product)} shift {hours}"
            causes[node] = Cause(id=name, kind=kind, iri=node, label=label, prior=prior, link=link)
            causes[node].path = path
        elif prior > causes[node].prior:
            causes[node].prior, causes[node].link, causes[node].path = prior, link, path
        return causes[node]

    def genealogy_path(target_batch: str) -> list[tuple[str, str, str]]:
        start = deviation or batch
        edges = [(start, "raised on", batch)] if deviation else []
        if target_batch != batch:
            edges.append((batch, f"descends from ({upstream[target_batch]} level(s) up)", target_batch))
        return edges

    def knowledge_path(source: str) -> list[tuple[str, str, str]]:
        if not attr_iri:
            return []
        chain = knowledge[source][1]
        return [(chain[i], links[(chain[i], chain[i + 1])][1], chain[i + 1]) for i in range(len(chain) - 1)]

    def knowledge_link(source: str) -> str:
        chain = knowledge[source][1]
        first = links[(chain[0], chain[1])][1]
        if first == "impacts":
            return "impacts " + f.ids.get(chain[-1], chain[-1])
        return f"{first}, predicting {f.ids.get(chain[1], chain[1])}"

    # -- parameters ------------------------------------------------------------------------
    params: Any = f.param_table
    step_classes = f.params.dropna(subset=["step_class"]).groupby("iri")["step_class"].apply(set).to_dict()
    unit_classes = _classes_of(f, [equipment] if equipment else [])
    recorded = [(b, p, v) for b in sorted(upstream) for p, v in sorted(f.params_of(b).items())]
    for b, p_iri, v in recorded:
        if p_iri not in params.index:
            continue
        if attr_iri and p_iri not in knowledge:
            continue
        if not attr_iri and b != batch:
            continue
        meta = params.loc[p_iri]
        value = float(v)
        history = f.param_history(p_iri)[1]
        limits = [
            ("PAR", float(meta["par_low"]), float(meta["par_high"])),
            ("NOR", float(meta["nor_low"]), float(meta["nor_high"])),
        ]
        ev = [e for e in (_limit_evidence(value, history, limits),) if e]
        robust = _robust_p(value, history)
        if robust and robust[1] < 0.05:
            ev.append(Evidence("history", f"{value:g} is {robust[0]:+.1f} robust SD from its history", robust[1]))
        if not ev:
            continue
        if attr_iri:
            prior, link = knowledge[p_iri][0], knowledge_link(p_iri)
        else:
            on_unit = bool(step_classes.get(p_iri, set()) & unit_classes)
            prior = 1.0 if on_unit or not equipment else UNLINKED_PRIOR
            link = "recorded on the deviation's batch" + (" and unit" if on_unit else "")
        c = cause(p_iri, "parameter", prior, link, [*genealogy_path(b), (b, "recorded", p_iri), *knowledge_path(p_iri)])
        c.evidence += [Evidence(e.kind, f"{f.ids.get(b, b)}: {e.text}", e.p, {**e.data, "batch": b}) for e in ev]

    # -- lots and suppliers (material attributes linked to the attribute) ---------------------
    if attr_iri:
        attrs: Any = f.attr_table
        lots = pd.DataFrame(
            [(b, lot, m, s) for b, lot in f.inputs.pairs(upstream) for m, s in f.lot_rows.get(lot, ())],
            columns=["batch", "lot", "material", "supplier"],
            dtype=object,
        )
        for a_iri, (strength, _) in knowledge.items():
            if a_iri not in attrs.index:
                continue
            material = attrs.loc[a_iri, "material"]
            mine = lots[lots["material"] == material]
            if mine.empty:
                continue
            coa = f.coa(a_iri)
            history = coa["value"].to_numpy(dtype=float)
            spec = [("spec", float(attrs.loc[a_iri, "spec_low"]), float(attrs.loc[a_iri, "spec_high"]))]
            for lot_iri, batch_of_lot, supplier in (
                mine[["lot", "batch", "supplier"]].drop_duplicates().itertuples(index=False)
            ):
                vals = coa[coa["lot"] == lot_iri]["value"]
                if vals.empty:
                    continue
                value = float(vals.iloc[0])
                ev = [e for e in (_limit_evidence(value, history, spec),) if e]
                robust = _robust_p(value, history)
                # a lot typical of its own supplier's lots is explained by the supplier, not by the lot
                own = coa[(coa["material"] == material) & (coa["supplier"] == supplier)]["value"].to_numpy(dtype=float)
                within = _robust_p(value, own) if isinstance(supplier, str) else None
                typical = within is not None and within[1] >= 0.05
                if robust and robust[1] < 0.05 and not typical:
                    ev.append(
                        Evidence(
                            "history",
                            f"{f.ids.get(a_iri)} {value:g} is {robust[0]:+.1f} robust SD from the material's lots",
                            robust[1],
                        )
                    )
                path = [
                    *genealogy_path(batch_of_lot),
                    (batch_of_lot, "consumed", lot_iri),
                    (lot_iri, "has", a_iri),
                    *knowledge_path(a_iri),
                ]
                if ev:
                    c = cause(lot_iri, "lot", strength, "CoA " + f.ids.get(a_iri, a_iri), path)
                    c.evidence += ev
                if isinstance(supplier, str):
                    sup = cause(
                        supplier,
                        "supplier",
                        strength,
                        "supplies lots whose " + f.ids.get(a_iri, a_iri) + " matters",
                        [*path, (lot_iri, "supplied by", supplier)],
                    )
                    if robust and robust[1] < 0.05 and typical:  # the lot is unusual because of its supplier
                        sup.evidence.append(
                            Evidence(
                                "history",
                                f"lot {f.ids.get(lot_iri, lot_iri)}: {f.ids.get(a_iri)} {value:g} is "
                                f"{robust[0]:+.1f} robust SD from the material's lots, typical of this supplier's",
                                robust[1],
                            )
                        )
                    shift = _supplier_shift(coa, supplier, material, a_iri, f)
                    if shift and not any(
                        e.kind == "supplier" and e.data.get("attribute") == a_iri for e in sup.evidence
                    ):
                        sup.evidence.append(shift)

    # -- equipment and events ----------------------------------------------------------------
    controlled = _controlled_units(f, knowledge) if attr_iri else {}
    for b, e_iri in f.equipment_of.pairs(upstream):
        if attr_iri:
            prior, link = controlled.get(e_iri, (UNLINKED_PRIOR, "used in the genealogy"))
            if prior < UNLINKED_PRIOR:  # a weak link never makes a unit less suspect than being there at all
                prior, link = UNLINKED_PRIOR, "used in the genealogy"
        else:
            own = e_iri == equipment or _parent(f, e_iri) == equipment
            prior, link = (1.0, "the deviation's unit") if own else (UNLINKED_PRIOR, "used by the batch")
        cause(e_iri, "equipment", prior, link, [*genealogy_path(b), (b, "ran on", e_iri)])
    if equipment and equipment not in causes:
        cause(equipment, "equipment", 1.0, "the deviation's unit", [(deviation or batch, "on", equipment)])
    _equipment_evidence(f, causes, upstream, window_days, cause, genealogy_path, equipment)

    # -- deviations already raised upstream (recursing through intermediates) -------------------
    # An upstream deviation is a symptom met on the way, not a root cause: it is a candidate at the
    # unlinked prior (so it shows, and wins only when nothing else explains the failure), and it
    # is evidence for the unit it was raised on, which stays the candidate to fix.
    dev_units = dict(zip(f.deviations["iri"], f.deviations["equipment"], strict=True))
    for dev_iri, up_batch, evidence, linked in _upstream_deviations(f, upstream, batch, attr_iri, knowledge):
        link = "raised on an upstream batch, on a linked attribute" if linked is not None else "raised upstream"
        c = cause(
            dev_iri,
            "deviation",
            UNLINKED_PRIOR,
            link,
            [*genealogy_path(up_batch), (up_batch, "had deviation", dev_iri)],
        )
        c.evidence.append(evidence)
        unit = dev_units.get(dev_iri)
        if linked is not None and isinstance(unit, str) and unit in causes:
            causes[unit].evidence.append(evidence)

    if attr_iri:
        for e_iri, b, found in _twin_evidence(kg, f, attr_iri, knowledge, upstream):
            prior, link = controlled.get(e_iri, (1.0, "its twin's residuals drift"))
            c = cause(e_iri, "equipment", prior, link, [*genealogy_path(b), (b, "ran on", e_iri)])
            c.evidence.append(found)
        for factor, found in _enrichment(f, attr_iri, batch, shifts).items():
            family = found.data.get("family")
            if factor in causes:
                causes[factor].evidence.append(found)
                continue
            if factor in f.lot_set:
                kind, link, meaning = "lot", "input lot in the genealogy", "used"
            elif found.p >= 0.05:
                continue  # a person or a shift has nothing but this comparison to stand on
            elif family == "shift":
                kind, link, meaning = "shift", "a shift its genealogy was made in", "made in"
            elif family == "analyst":
                kind, link, meaning = "person", "tested " + f.ids.get(attr_iri, attr_iri), "tested by"
            elif family == "operator":
                kind, link, meaning = "person", "operated a batch of its genealogy", "operated by"
            else:
                continue
            c = cause(factor, kind, UNLINKED_PRIOR, link, [(deviation or batch, meaning, factor)])
            c.evidence.append(found)

    modules = set(f.equipment[f.equipment["level"].isin([T_MODULE, T_CONTROL])]["iri"])
    ranked = []
    for c in causes.values():
        c.evidence = list({(e.kind, e.text): e for e in c.evidence}.values())  # a lot met through two batches
        if not c.evidence:
            continue
        c.p = _combine([e.p for e in c.evidence])
        c.score = c.prior * -math.log10(c.p)
        ranked.append(c)
    # ties go to the more specific node: a tooling set rather than the press it is mounted on
    ranked.sort(key=lambda c: (-round(c.score, 6), c.iri not in modules, c.id))
    graph = nx.DiGraph()
    for c in ranked:
        for a, meaning, b in c.path:
            graph.add_edge(a, b, meaning=meaning)
    for node, data in graph.nodes(data=True):
        data["label"] = causes[node].id if node in causes else f.ids.get(node, node)
    return Investigation(
        deviation=f.ids.get(deviation, deviation) if deviation else None,
        batch=f.ids.get(batch, batch),
        attribute=f.ids.get(attr_iri, attr_iri) if attr_iri else None,
        causes=ranked[:top] if top else ranked,
        graph=graph,
        state=state_of(kg, f),
        considered=len(ranked),
    )


def _upstream_deviations(
    f: _Facts,
    upstream: dict[str, int],
    batch: str,
    attribute: str | None,
    knowledge: dict[str, tuple[float, list[str]]],
) -> list[tuple[str, str, Evidence, float | None]]:
    """Deviations raised on batches upstream of this one (any number of levels), as candidate causes.

    An upstream deviation is evidence that something already went wrong in what
    this batch consumed. p is how often a batch of the same product had a
    deviation at all (the chance of meeting one by luck), over all batches of that
    product; the prior is the knowledge path strength when the upstream deviation's
    attribute impacts the failing one, else UNLINKED_PRIOR.
    """
    devs = f.deviations[f.deviations["batch"].isin([b for b, d in upstream.items() if d > 0 and b != batch])]
    if devs.empty:
        return []
    products = f.batch_products
    raised = set(f.deviations["batch"].dropna())
    out = []
    for dev_iri, up, attr in zip(devs["iri"].astype(str), devs["batch"].astype(str), devs["attribute"], strict=True):
        product = products.get(up)
        n, k = f.product_deviation_rate.get(product, (0, 0)) if product is not None else (0, 0)
        if not n:  # no product known: the batch alone
            n, k = 1, int(up in raised)
        rate = k / n
        p = min(1.0, max(rate, 1.0 / (n + 1)))
        linked = None
        if attribute and isinstance(attr, str):
            if attr == attribute:
                linked = 1.0
            elif attr in knowledge:
                linked = knowledge[attr][0]
        what = f.ids.get(attr, "") if isinstance(attr, str) else ""
        text = (
            f"deviation {f.ids.get(dev_iri, dev_iri)} was raised on upstream batch {f.ids.get(up, up)}"
            + (f" ({what})" if what else "")
            + f", {upstream[up]} level(s) up; {rate:.0%} of that product's batches had a deviation"
        )
        out.append((dev_iri, up, Evidence("upstream", text, p, {"batch": up}), linked))
    return out


def _twin_evidence(
    kg: KnowledgeGraph,
    f: _Facts,
    attribute: str,
    knowledge: dict[str, tuple[float, list[str]]],
    upstream: dict[str, int],
) -> list[tuple[str, str, Evidence]]:
    """Drift alarms of the twins that predict the attribute (or one linked to it) on the batches walked.

    A twin predicts a result from the batch's *recorded* inputs; when its
    residuals drift on one unit (the twin's EWMA/CUSUM chart is in alarm at
    this batch), the records no longer explain the results there: a sensor
    reading wrong, fouling, wear, something not recorded. That is evidence for
    the unit. One wild result cannot raise it (the charts clip residuals at
    4 sigma), so a lab error does not blame the dryer. p is the two-sided
    normal tail of the EWMA in units of its asymptotic SD.
    """
    from scipy.stats import norm

    from ..twins import drift

    targets = {attribute, *knowledge}
    found: list[tuple[str, str, Evidence]] = []
    by_id = f.by_id
    for twin in _fitted_twins(kg):
        if not twin.equipment_class:
            continue
        for port in twin.outputs:
            source = kg.resolve(port.source) if port.source else None
            if source not in targets:
                continue
            key = f"rootcause-twin-drift {twin.iri} {port.name}"
            frame = kg.cache.get(key)
            if frame is None:
                frame = drift(kg, twin, output=port.name).frame
                kg.cache[key] = frame
            batches = {f.ids.get(b, b): b for b in upstream}
            hits = frame[frame["batch"].isin(batches) & frame["signal"]]
            for name, unit_id, ewma in zip(hits["batch"], hits["unit"], hits["ewma"], strict=True):
                unit = by_id.get(str(unit_id))
                if unit is None:
                    continue
                level = float(ewma)
                z = level / math.sqrt(0.2 / 1.8)  # drift()'s lambda 0.2: asymptotic SD of the EWMA
                text = (
                    f"{name}: twin {twin.meta.id} v{twin.version} drift alarm on {unit_id} (EWMA of "
                    f"{port.name} residuals {level:+.2f} sigma): the recorded inputs no longer explain the results"
                )
                p = float(max(2 * norm.sf(abs(z)), 1e-300))
                found.append((unit, batches[str(name)], Evidence("twin", text, p, {"twin": twin.iri})))
    return found


def _parent(f: _Facts, equipment: str) -> str | None:
    return f.parents.get(equipment)


def _classes_of(f: _Facts, units: list[str]) -> set[str]:
    return set(f.equipment[f.equipment["iri"].isin(units)]["cls"].dropna())


def _controlled_units(f: _Facts, knowledge: dict[str, tuple[float, list[str]]]) -> dict[str, tuple[float, str]]:
    """Equipment whose class is the equipment class of a linked parameter's step: (path strength, why)."""
    out: dict[str, tuple[float, str]] = {}
    params = f.params.dropna(subset=["step_class"])
    for p_iri, cls in params[["iri", "step_class"]].itertuples(index=False):
        if p_iri not in knowledge:
            continue
        strength = knowledge[p_iri][0]
        for e_iri in f.equipment[f.equipment["cls"] == cls]["iri"]:
            if strength > out.get(e_iri, (0.0, ""))[0]:
                out[e_iri] = (strength, f"controls {f.ids.get(p_iri, p_iri)}")
    return out


def _supplier_shift(coa: pd.DataFrame, supplier: str, material: str, attribute: str, f: _Facts) -> Evidence | None:
    """The supplier's lots sit nearer a spec limit than other suppliers' lots (one-sided Mann-Whitney U).

    Only a shift *towards* a limit counts: with two suppliers, "A differs from B"
    holds for both, but only one of them runs closer to failing the spec."""
    from scipy.stats import mannwhitneyu

    same = coa[coa["material"] == material]
    theirs = same[same["supplier"] == supplier]["value"].dropna()
    others = same[same["supplier"] != supplier]["value"].dropna()
    if len(theirs) < 3 or len(others) < 3:
        return None
    spec: Any = f.attr_table.loc[attribute]
    higher = theirs.median() > others.median()
    limit = spec["spec_high"] if higher else spec["spec_low"]
    if pd.isna(limit):
        return None
    p = float(mannwhitneyu(theirs, others, alternative="greater" if higher else "less").pvalue)
    if p >= 0.05:
        return None
    return Evidence(
        "supplier",
        f"its {len(theirs)} lots run {'higher' if higher else 'lower'} on {f.ids.get(attribute, attribute)}, towards "
        f"the spec limit {limit:g} (median {theirs.median():g} vs {others.median():g} for other suppliers, p = {p:.1g})",
        p,
        {"attribute": attribute, "median": float(theirs.median()), "others_median": float(others.median())},
    )


def _equipment_evidence(
    f: _Facts,
    causes: dict[str, Cause],
    upstream: dict[str, int],
    window_days: float,
    cause: Any,
    genealogy_path: Any,
    deviation_unit: str | None,
) -> None:
    """Events on each candidate unit (and what is mounted on it) around the batches that used it."""
    events = f.timed_events
    if events.empty:
        return
    span_days = max((events["time"].max() - events["time"].min()).total_seconds() / 86400, 1.0)
    children = f.children
    calibrations = events[events["type"].fillna("").str.endswith("Calibration")]
    fail_share = (calibrations["outcome"].fillna("").str.lower() == "fail").mean() if len(calibrations) else 1.0
    used: dict[str, set[str]] = {}
    for b, e in f.equipment_of.pairs(upstream):
        used.setdefault(e, set()).add(b)
    for e_iri in list(causes):
        c = causes[e_iri]
        if c.kind != "equipment":
            continue
        mine = f.events_of({e_iri} | children.get(e_iri, set()))
        of_type = Counter(mine["type"])
        alarms: list[Any] = [
            ev for ev in mine.itertuples(index=False) if str(ev.type or "").rsplit("#", 1)[-1] in ("Failure", "Alarm")
        ]
        cal = mine[mine["type"].fillna("").str.endswith("Calibration")].sort_values("time")
        cal_by_module = [(str(k), g) for k, g in cal.groupby("equipment")]
        for b in sorted(used.get(e_iri) or upstream):  # in a fixed order: the first batch's evidence is kept
            if b not in f.start_of:
                continue
            start, end = f.start_of[b], f.end_of[b]
            if pd.isna(start):
                continue
            end = end if not pd.isna(end) else start
            lo = start - pd.Timedelta(days=window_days)
            for ev in alarms:
                kind = str(ev.type or "").rsplit("#", 1)[-1]
                if lo <= ev.time <= end + pd.Timedelta(hours=1):
                    rate = of_type[ev.type] / span_days
                    gap = 0.0 if start <= ev.time <= end else (start - ev.time).total_seconds() / 86400
                    width = max((end - start).total_seconds() / 86400, 1 / 24) + 2 * max(gap, 0.0)
                    p = 1 - math.exp(-rate * width)
                    text = f"{kind.lower()} {f.ids.get(ev.iri, ev.iri)} on {f.ids.get(ev.equipment, ev.equipment)}"
                    when = "during" if gap == 0 else f"{gap:.1f} d before"
                    text += f" {when} {f.ids.get(b, b)}: {ev.description or ''}".rstrip(": ")
                    evidence = Evidence("timing", text, p, {"event": ev.iri, "batch": b})
                    if deviation_unit:  # a deviation about the equipment itself: the event is the candidate
                        ec = cause(
                            ev.iri,
                            "event",
                            c.prior,
                            f"{kind.lower()} on {f.ids.get(e_iri, e_iri)}",
                            [*c.path, (e_iri, "had event", ev.iri)],
                        )
                        if not any(x.data.get("event") == ev.iri for x in ec.evidence):
                            ec.evidence.append(evidence)
            if not deviation_unit:
                # a burst: more failures or alarms of one type in the window than the equipment's own rate
                # predicts (Poisson); one piece of evidence per type, for the unit and whatever mounted
                # on it the batches used (a tooling set, a spray system)
                from scipy.stats import poisson

                window = mine[(mine["time"] >= lo) & (mine["time"] <= end + pd.Timedelta(hours=1))]
                for key, group in window.groupby("type"):
                    kind = str(key).rsplit("#", 1)[-1]
                    if kind not in ("Failure", "Alarm"):
                        continue
                    expected = of_type[key] / span_days * ((end - lo).total_seconds() / 86400)
                    p_burst = float(poisson.sf(len(group) - 1, expected))
                    text = (
                        f"{len(group)} {kind.lower()}(s) on {f.ids.get(e_iri, e_iri)} in the {window_days:g} days "
                        f"up to {f.ids.get(b, b)} (expected {expected:.1f}): {group['description'].iloc[-1] or ''}"
                    ).rstrip(": ")
                    burst = Evidence("timing", text, p_burst, {"burst": f"{e_iri}|{key}", "batch": b})
                    for holder in [c, *(causes[m] for m in children.get(e_iri, ()) if m in causes)]:
                        if not any(x.data.get("burst") == burst.data["burst"] for x in holder.evidence):
                            holder.evidence.append(burst)
            # the first calibration after the batch failed, with no passing one since
            for module, group in cal_by_module:
                after = group[group["time"] >= end]
                if after.empty:
                    continue
                first: Any = after.iloc[0]
                if str(first["outcome"]).lower() == "fail":
                    text = (
                        f"{f.ids.get(module, module)} was found out of tolerance at its next calibration "
                        f"{f.ids.get(first['iri'], first['iri'])} after {f.ids.get(b, b)}"
                    )
                    if not any(x.data.get("calibration") == first["iri"] for x in c.evidence):
                        c.evidence.append(
                            Evidence(
                                "calibration",
                                text,
                                max(float(fail_share), 1e-3),
                                {"calibration": first["iri"], "batch": b},
                            )
                        )


@dataclass(frozen=True)
class History:
    """A parameter's or a material attribute's recorded values, to draw beside a cause's evidence.

    ``frame``: ``id`` (batch or lot), ``time``, ``value``, ``marked`` (the batches or
    lots the evidence is about), oldest first, at most ``limit`` rows ending at the
    last marked one; ``bands``: name -> (low, high) in the same unit, NaN for an open side.
    """

    title: str
    frame: pd.DataFrame
    bands: dict[str, tuple[float, float]]


def cause_history(kg: KnowledgeGraph, cause: Cause, *, limit: int = 400) -> History | None:
    """The history a parameter or lot cause's evidence is measured against (None for other kinds)."""
    f = facts(kg)
    if cause.kind == "parameter":
        batches, values = f.param_history(cause.iri)
        ids = batches.tolist()
        times = [f.start_of.get(b) for b in ids]
        marked = {e.data["batch"] for e in cause.evidence if "batch" in e.data}
        meta: Any = f.param_table.loc[cause.iri] if cause.iri in f.param_table.index else None
        bands = (
            {
                "PAR": (float(meta["par_low"]), float(meta["par_high"])),
                "NOR": (float(meta["nor_low"]), float(meta["nor_high"])),
            }
            if meta is not None
            else {}
        )
        title = f"{cause.id}: recorded actuals by batch start"
    elif cause.kind == "lot":
        attribute = next((b for a, meaning, b in cause.path if meaning == "has" and a == cause.iri), None)
        if attribute is None or attribute not in f.attr_table.index:
            return None
        coa = f.coa(attribute)
        ids, values = coa["lot"].tolist(), coa["value"].to_numpy(dtype=float)
        times = [None] * len(ids)  # lots in the order their CoA values were recorded
        marked = {cause.iri}
        spec: Any = f.attr_table.loc[attribute]
        bands = {"spec": (float(spec["spec_low"]), float(spec["spec_high"]))}
        material = f.ids.get(coa["material"].iloc[0], "") if len(coa) else ""
        title = f"{f.ids.get(attribute, attribute)} of the {material} lots, in the order recorded"
    else:
        return None
    frame = pd.DataFrame(
        {
            "id": [f.ids.get(x, x) for x in ids],
            "time": pd.to_datetime(pd.Series(times, dtype=object), utc=True),
            "value": values,
            "marked": [x in marked for x in ids],
        }
    )
    frame = frame.sort_values("time", kind="stable", na_position="first").reset_index(drop=True)
    if frame["marked"].any() and len(frame) > limit:
        last = int(frame.index[frame["marked"]].max())
        frame = frame.iloc[max(0, last + 1 - limit) : last + 1].reset_index(drop=True)
    elif len(frame) > limit:
        frame = frame.iloc[-limit:].reset_index(drop=True)
    return History(title, frame, bands)


def deviations(kg: KnowledgeGraph) -> pd.DataFrame:
    """Every deviation with what an investigator filters on: ``id``, ``product``, ``attribute`` (ids),
    ``opened``, ``description``; newest first."""
    frame = kg.query(
        """SELECT ?id ?product ?attribute ?opened ?description WHERE { ?d a pkg:Deviation ; dcterms:identifier ?id .
  OPTIONAL { ?d pkg:batch/pkg:product/dcterms:identifier ?product }
  OPTIONAL { ?d pkg:attribute/dcterms:identifier ?attribute }
  OPTIONAL { ?d pkg:opened ?opened } OPTIONAL { ?d pkg:description ?description } } ORDER BY DESC(?opened) ?id"""
    )
    for column in ("id", "product", "attribute", "opened", "description"):
        if column not in frame:
            frame[column] = None
    return frame[["id", "product", "attribute", "opened", "description"]].drop_duplicates("id").reset_index(drop=True)
