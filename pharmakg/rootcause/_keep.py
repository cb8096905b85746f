"""Which plant tables an investigation gets, kept current per state of the audit trail.

Reading the plant tables (``_facts``) from the store takes minutes at 100 000
batches, so they are kept per *state* of the data: the head (number and hash)
of every audit chain in the store. Every write through pharmakg moves a head,
so one state names one content. ``facts(kg)`` then gives, cheapest first:

1. the tables this process holds for the current state;
2. the tables kept on disk beside an embedded store for that state
   (``<store>/cache/rootcause-facts-<queries>-<state>/``, Parquet);
3. tables kept for an earlier state, brought forward by re-reading only what
   the writes since then changed (``advance``): the audit trail names every
   write, an update's effect record lists the triples it added and removed,
   and a load's checkpoint names the graphs it filled;
4. the whole plant, read anew.

Bringing tables forward is exact because every large table is a *star*: its
rows for one key (a batch, a lot, a node) are a function of triples about that
key alone (or about nodes that name it through one link, such as a parameter
actual's ``pkg:batch``). Rows of the keys a write touched are dropped and read
again; a table whose predicates and classes no write touched is kept as is;
a small table that is not a star (parameters and their steps, equipment,
impacts, operators) is read again whole when touched. Writes the trail cannot
account for (a restore, an update whose effect was too large to keep inline,
a chain that does not continue the kept one) mean a full read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import terms as T
from ._facts import _IDS, _LABELS, _TABLES, _Facts, _frame, _read, _table

if TYPE_CHECKING:
    from ..kg import KnowledgeGraph

log = logging.getLogger(__name__)

#: audit chain graph -> (number, hash) of its last record
Heads = dict[str, tuple[int, str]]

#: tables kept in this process per knowledge graph, with the state they hold (also for remote
#: and in-memory stores, whose ``kg.cache`` is emptied by every write)
_HELD: weakref.WeakKeyDictionary[KnowledgeGraph, tuple[Heads, _Facts]] = weakref.WeakKeyDictionary()


def facts(kg: KnowledgeGraph) -> _Facts:
    """The plant-wide tables an investigation compares against, for the store's current state."""
    cache = kg.cache
    if "rootcause.facts" in cache:
        cached: _Facts = cache["rootcause.facts"]
        return cached
    heads = chain_heads(kg)
    f = _current(kg, heads)
    if heads:
        _HELD[kg] = (heads, f)
    cache["rootcause.facts"] = f
    return f


def state_of(kg: KnowledgeGraph, f: _Facts) -> Heads:
    """The audit heads ``f`` was read at ({} when the store keeps no trail): an investigation records them.

    Held per kg beside the tables, not in ``kg.cache``, which a remote store empties on every access."""
    held = _HELD.get(kg)
    return dict(held[0]) if held is not None and held[1] is f else {}


def chain_heads(kg: KnowledgeGraph) -> Heads:
    """The last record of every audit chain in the store ({} when there is no trail)."""
    heads: Heads = {}
    for r in kg.rows(f"SELECT ?g ?n ?h WHERE {{ GRAPH ?g {{ ?r <{T.recordNumber}> ?n ; <{T.recordHash}> ?h }} }}"):
        n = int(r["n"])
        if n > heads.get(r["g"], (0, ""))[0]:
            heads[r["g"]] = (n, r["h"])
    return heads


def _current(kg: KnowledgeGraph, heads: Heads) -> _Facts:
    held = _HELD.get(kg)
    if heads and held is not None and held[0] == heads:
        return held[1]
    folder = _disk_folder(kg, heads)
    if folder is not None:
        loaded = _load(folder)
        if loaded is not None:
            return loaded
    earlier = held if held is not None else _latest_kept(folder) if folder is not None else None
    f, changed, source = None, set(_QUERIES), None
    if heads and earlier is not None:
        delta = changes(kg, earlier[0], heads)
        if delta is not None:
            f, changed = advance(kg, earlier[1], delta)
            source = earlier[1].folder
    if f is None:
        f = _read(kg)
    if folder is not None:
        # on a second thread: the caller's investigation need not wait for the files (a process
        # that ends first still waits for it, so the next process finds them)
        unchanged = (source, set(_QUERIES) - changed)
        saving = threading.Thread(target=_save, args=(f, folder, heads, unchanged), name="keep-facts")
        saving.start()
        _SAVING.append(saving)
    return f


_SAVING: list[threading.Thread] = []


def finish_keeping() -> None:
    """Wait until the tables being kept on disk are written (tests, and callers about to remove the store)."""
    while _SAVING:
        _SAVING.pop().join()


# -- what changed between two states ----------------------------------------------------------
@dataclass
class Delta:
    """What the writes between two states changed: triples named by effect records, graphs filled by loads."""

    triples: list[tuple[str, str, str]] = field(default_factory=list)  # (s, p, o) as N-Triples terms
    graphs: set[str] = field(default_factory=set)


#: records that change no data (a checkpoint's graphs are read through the load it is about)
_NO_DATA = frozenset({"sign", "checkpoint"})


def changes(kg: KnowledgeGraph, since: Heads, now: Heads) -> Delta | None:
    """What the writes recorded after ``since`` up to ``now`` changed; None when the trail cannot say."""
    if any(g not in now or now[g][0] < n for g, (n, _) in since.items()):
        return None
    if since:
        pairs = " ".join(f'(<{g}> "{n}"^^<{T.XSD}integer>)' for g, (n, _) in since.items())
        found = kg.rows(
            f"SELECT ?g ?h WHERE {{ VALUES (?g ?n) {{ {pairs} }} GRAPH ?g {{ ?r <{T.recordNumber}> ?n ; "
            f"<{T.recordHash}> ?h }} }}"
        )
        if {r["g"]: r["h"] for r in found} != {g: h for g, (_, h) in since.items()}:
            return None  # a kept record is gone or differs: not the chain the tables were kept on
    after = " ".join(f'(<{g}> "{since.get(g, (0, ""))[0]}"^^<{T.XSD}integer>)' for g in now)
    rows = kg.rows(
        f"SELECT ?r ?c WHERE {{ VALUES (?g ?since) {{ {after} }} GRAPH ?g {{ ?r <{T.recordNumber}> ?n ; "
        f"<{T.recordContent}> ?c }} FILTER(?n > ?since) }}"
    )
    records = {r["r"]: json.loads(r["c"]) for r in rows}
    about = {rec.get("about"): rec for rec in records.values() if rec["action"] in ("effect", "checkpoint")}
    delta = Delta()
    for iri, rec in records.items():
        action = rec["action"]
        if action in _NO_DATA:
            continue
        if action == "update":
            if iri not in about:  # its effect was never recorded (the process died after the commit)
                return None
        elif action == "effect":
            if (rec["triples_added"] or rec["triples_removed"]) and not (rec["added_nt"] or rec["removed_nt"]):
                return None  # too large to have been kept inline
            for line in (rec["added_nt"] + "\n" + rec["removed_nt"]).split("\n"):  # not splitlines: U+2028 is data
                if line.strip():
                    delta.triples.append(_split_triple(line))
        elif action in ("load", "import", "demo"):
            checkpoint = about.get(iri)
            if checkpoint is None:
                return None
            delta.graphs.update(g["graph"] for g in checkpoint["graphs"] if g["graph"] not in now)
        else:  # a restore, or an action this version does not know
            return None
    return delta


_TERM = re.compile(r'<[^>]*>|_:\S+|"(?:[^"\\]|\\.)*"(?:\^\^<[^>]*>|@[\w-]+)?')


def _split_triple(line: str) -> tuple[str, str, str]:
    """``<s> <p> <o> . # <g>`` (an effect record's line) -> its three terms as written."""
    s, p, o = _TERM.findall(line)[:3]
    return s, p, o


# -- bringing tables forward ------------------------------------------------------------------
#: table -> (its key column, the predicate by which the query's subject names the key, or None
#: when the subject is the key). Tables not listed are small and not stars: read again whole.
_KEYS: dict[str, tuple[str, str | None]] = {
    "batches": ("iri", None),
    "consumed": ("batch", None),
    "produced": ("batch", None),
    "lots": ("iri", None),
    "uses": ("batch", None),
    "pvalues": ("batch", T.batch),
    "lotattr": ("lot", T.lot),
    "results": ("batch", T.batch),
    "events": ("iri", None),
    "deviations": ("iri", None),
    "ids": ("x", None),
    "labels": ("x", None),
}
_QUERIES = {name: spec[0] for name, spec in _TABLES.items()} | {"ids": _IDS, "labels": _LABELS}
#: keyed table -> the classes one of which its query requires of its subject: a load (which only
#: adds) changes its rows only through nodes of those classes (a day's LIMS results share pkg:batch
#: and pkg:value with the parameter actuals, but are no ParameterValue)
_CLASSES: dict[str, frozenset[str]] = {
    name: frozenset(T.PKG + c for c in classes.split())
    for name, classes in {
        "batches": "Batch",
        "lots": "MaterialLot",
        "pvalues": "ParameterValue",
        "lotattr": "MaterialAttributeValue",
        "results": "TestResult",
        "events": "EquipmentEvent",
        "deviations": "Deviation",
        "labels": "Supplier",
        "ids": "ProcessParameter QualityAttribute Batch MaterialLot Supplier Equipment Unit EquipmentModule "
        "ControlModule EquipmentEvent Deviation Material Person",
    }.items()
}
#: table -> an ASK for what every one of its rows needs: false means the table is empty, without
#: evaluating the query (operators: its joins through pkg:batch cost seconds even when nobody is named)
_GUARDS = {"operators": f"ASK {{ ?x <{T.PKG}performedBy> ?p }}"}
_PREFIXED = re.compile(r"\b(pkg|rdf|rdfs|dcterms|prov|skos|xsd):([A-Za-z_][\w-]*)")
_NS = {"pkg": T.PKG, "rdf": T.RDF, "rdfs": T.RDFS, "dcterms": T.DCTERMS, "prov": T.PROV, "skos": T.SKOS, "xsd": T.XSD}


def _mentioned(sparql: str) -> frozenset[str]:
    """Every IRI a table's query names (its predicates and classes), as N-Triples terms.

    A triple can only change the table's rows if its predicate is among them, or it
    is an ``rdf:type`` whose class is: none of the queries has a variable predicate
    (a test checks that)."""
    names = {f"<{_NS[p]}{local}>" for p, local in _PREFIXED.findall(sparql)}
    return frozenset(names | {f"<{iri}>" for iri in re.findall(r"<([^>]+)>", sparql)})


_TYPE = f"<{T.type_}>"


def _touches(triple: tuple[str, str, str], names: frozenset[str]) -> bool:
    _, p, o = triple
    return p in names or (p == _TYPE and o in names)


def advance(kg: KnowledgeGraph, f: _Facts, delta: Delta) -> tuple[_Facts, set[str]]:
    """``f`` brought up to the state after ``delta`` (the rows of every key the writes touched read again),
    and the names of the tables that changed. ``f`` itself when none did: its lookups stay built."""
    graphs = {g: _graph_terms(kg, g) for g in sorted(delta.graphs)}
    subjects: dict[str, set[str] | None] = {}  # a loaded graph's subjects, listed once (None: a blank node)
    out: dict[str, Any] = {}
    changed: set[str] = set()
    for name, sparql in _QUERIES.items():
        names = _mentioned(sparql)
        triples = [t for t in delta.triples if _touches(t, names)]
        touched = [g for g, (preds, classes) in graphs.items() if preds & names or (_TYPE in preds and classes & names)]
        old = _old_table(f, name)
        if not triples and not touched:
            out[name] = old
            continue
        for g in touched:
            if g not in subjects:
                subjects[g] = _terms(kg, f"SELECT DISTINCT ?k WHERE {{ GRAPH <{g}> {{ ?k ?p ?o }} }}")
        reached = [subjects[g] for g in touched]
        if name in _CLASSES and reached and all(r is not None for r in reached):
            reached = [_of_class(kg, set().union(*(r for r in reached if r)), _CLASSES[name])]
            if not triples and not reached[0]:
                out[name] = old
                continue
        changed.add(name)
        if name in _GUARDS and not kg.ask(_GUARDS[name]):
            out[name] = old.iloc[0:0]  # none of what every row needs is in the store
        elif name not in _KEYS or any(r is None for r in reached):
            out[name] = _fresh_table(kg, name, sparql)
        else:
            out[name] = _rekeyed(kg, name, sparql, old, triples, set().union(*(r for r in reached if r)))
    if not changed:
        return f, changed
    ids = _as_dict(out.pop("ids"), "x", "id")
    named = {x: label for x, label in _as_dict(out.pop("labels"), "x", "label").items() if label}
    advanced = _Facts(ids=ids, labels=ids | named, named=named, **out)
    advanced.carry_lookups(f, set(_QUERIES) - changed)
    return advanced, changed


def _graph_terms(kg: KnowledgeGraph, graph: str) -> tuple[set[str], set[str]]:
    """The predicates and the classes used in ``graph``, as N-Triples terms."""
    preds = {f"<{r['p']}>" for r in kg.rows(f"SELECT DISTINCT ?p WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}")}
    classes = set()
    if _TYPE in preds:
        rows = kg.rows(f"SELECT DISTINCT ?c WHERE {{ GRAPH <{graph}> {{ ?s a ?c }} }}")
        classes = {f"<{r['c']}>" for r in rows if not r["c"].startswith("_:")}
    return preds, classes


def _old_table(f: _Facts, name: str) -> pd.DataFrame:
    if name == "ids":
        return pd.DataFrame({"x": list(f.ids), "id": list(f.ids.values())}, dtype=object)
    if name == "labels":
        return pd.DataFrame({"x": list(f.named), "label": list(f.named.values())}, dtype=object)
    frame: pd.DataFrame = getattr(f, name)
    return frame


def _fresh_table(kg: KnowledgeGraph, name: str, sparql: str) -> pd.DataFrame:
    if name in _TABLES:
        return _table(kg, name, sparql)
    return _frame(kg, sparql, ["x", "id"] if name == "ids" else ["x", "label"])


#: keys per narrowed query (a VALUES block this long still parses and plans in milliseconds)
_CHUNK = 2000


def _rekeyed(
    kg: KnowledgeGraph,
    name: str,
    sparql: str,
    old: pd.DataFrame,
    triples: list[tuple[str, str, str]],
    reached: set[str],
) -> pd.DataFrame:
    """``old`` with the rows of every key the writes touched replaced by what the store holds now.

    ``reached`` are the subjects of the graphs loads filled (a load only adds, so only the
    keys of those nodes can have rows that changed). The keys are listed first, then
    read with ``VALUES``: oxigraph evaluated a narrowing subquery over a loaded graph
    after the table's own patterns, which read the whole table (181 s for a day's
    1 000 LIMS results at 100 000 batches)."""
    column, link = _KEYS[name]
    subjects = {s for s, _, _ in triples} | reached
    if any(not s.startswith("<") for s in subjects):
        return _fresh_table(kg, name, sparql)  # a blank node cannot be named in a query: read it all
    keys: set[str] | None = set(subjects) if link is None else {o for _, p, o in triples if p == f"<{link}>"}
    if link is not None:  # the nodes' keys now (their link may be untouched; a key they lost is in the triples)
        for chunk in _chunks(sorted(subjects)):
            found = _terms(kg, f"SELECT DISTINCT ?k WHERE {{ VALUES ?s {{ {chunk} }} ?s <{link}> ?k }}")
            keys = None if found is None or keys is None else keys | found
    if keys is None or any(not k.startswith("<") for k in keys):
        return _fresh_table(kg, name, sparql)  # a key that is a literal or a blank node: read it all
    if not keys:
        return old
    if len(keys) > len(old) // 4 + _CHUNK:  # most of the table: one full read is cheaper
        return _fresh_table(kg, name, sparql)
    fresh = [
        _fresh_table(
            kg,
            name,
            sparql.replace(
                "WHERE {", f"WHERE {{ {{ SELECT ?{column} WHERE {{ VALUES ?{column} {{ {chunk} }} }} }} ", 1
            ),
        )
        for chunk in _chunks(sorted(keys))
    ]
    kept = old[~old[column].isin({k[1:-1] for k in keys})]
    found_rows = [f for f in fresh if not f.empty]
    return pd.concat([kept, *found_rows], ignore_index=True) if found_rows else kept.reset_index(drop=True)


def _of_class(kg: KnowledgeGraph, nodes: set[str], classes: frozenset[str]) -> set[str]:
    """The ``nodes`` (N-Triples IRIs) that have one of ``classes``."""
    wanted = ", ".join(f"<{c}>" for c in sorted(classes))
    found: set[str] = set()
    for chunk in _chunks(sorted(nodes)):
        # FILTER, not a second VALUES block: with two, oxigraph scanned every typed node (248 s at 100 000 batches)
        query = f"SELECT DISTINCT ?k WHERE {{ VALUES ?k {{ {chunk} }} ?k a ?c FILTER(?c IN ({wanted})) }}"
        found |= _terms(kg, query) or set()
    return found


def _chunks(terms: list[str]) -> list[str]:
    """``terms`` joined by spaces, ``_CHUNK`` at a time."""
    return [" ".join(terms[i : i + _CHUNK]) for i in range(0, len(terms), _CHUNK)]


def _terms(kg: KnowledgeGraph, sparql: str) -> set[str] | None:
    """The values of ``?k`` as N-Triples IRIs; None if one is not an IRI (a literal, a blank node)."""
    rows = kg.rows(sparql.replace("SELECT DISTINCT ?k WHERE {", "SELECT DISTINCT ?k (isIRI(?k) AS ?i) WHERE {", 1))
    if any(r.get("i") != "true" for r in rows if "k" in r):
        return None
    return {f"<{r['k']}>" for r in rows if "k" in r}


def _linked(source: Path, target: Path) -> bool:
    try:
        os.link(source, target)
    except OSError:  # gone, or another file system
        return False
    return True


def _as_dict(frame: pd.DataFrame, key: str, value: str) -> dict[str, str]:
    return dict(zip(frame[key].tolist(), frame[value].tolist(), strict=True))


# -- kept on disk beside an embedded store, per state of the audit trail -----------------------
#: the queries the tables come from: another version of them (another pharmakg) keeps its own folders
FACTS_FORMAT = hashlib.sha256(repr((sorted(_TABLES.items()), _IDS, _LABELS, "labels as queried")).encode()).hexdigest()[
    :8
]
_PREFIX = "rootcause-facts-"


def _disk_folder(kg: KnowledgeGraph, heads: Heads | None = None) -> Path | None:
    """Where the tables of the store's current state are kept: ``<store>/cache/rootcause-facts-<format>-<state>``.

    None for a store in memory, a remote one, or one with no audit trail yet."""
    path = getattr(kg.store, "path", None)
    if not isinstance(path, Path):
        return None
    heads = chain_heads(kg) if heads is None else heads
    if not heads:
        return None
    state = hashlib.sha256(repr(sorted(heads.items())).encode()).hexdigest()[:16]
    return path / "cache" / f"{_PREFIX}{FACTS_FORMAT}-{state}"


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile by another process
        return 0.0


def _latest_kept(folder: Path) -> tuple[Heads, _Facts] | None:
    """The most recent tables kept beside the store for another state, with that state."""
    candidates = [
        p
        for p in folder.parent.glob(f"{_PREFIX}{FACTS_FORMAT}-*")
        if ".tmp-" not in p.name and (p / "done").exists() and (p / "heads.json").exists()
    ]
    for p in sorted(candidates, key=_mtime, reverse=True):
        try:
            heads = {g: (int(n), str(h)) for g, (n, h) in json.loads((p / "heads.json").read_text()).items()}
        except (OSError, ValueError) as exc:
            log.debug("kept root-cause tables in %s have no readable state: %s", p, exc)
            continue
        f = _load(p)
        if f is not None:
            return heads, f
    return None


#: the key columns ``_Facts`` groups rows by (``_Facts._groups``)
_GROUPED = frozenset(
    {("pvalues", "batch"), ("pvalues", "parameter"), ("produced", "lot"), ("consumed", "batch"), ("lots", "iri")}
    | {("uses", "batch"), ("operators", "batch")}
)


def _kept(path: Path, coded: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] | None = None) -> pd.DataFrame:
    """A kept table with its strings as the Python objects ``_frame`` makes (missing = None), so both give equal tables.

    A key column ``_Facts`` groups by is factorised while its strings are still
    Arrow's (2-3x faster than hashing Python strings: seconds over the 1.7 M
    parameter actuals), its codes kept in ``coded`` under (file stem, column)."""
    frame = pd.read_parquet(path)
    for c in frame.columns:
        if frame[c].dtype != "str":
            continue
        if coded is not None and (path.stem, c) in _GROUPED:
            codes, uniques = pd.factorize(frame[c])
            objects = uniques.to_numpy(dtype=object)
            values = objects[codes] if len(objects) else np.full(len(codes), None, dtype=object)
            values[codes < 0] = None
            coded[(path.stem, c)] = (codes, objects)
        else:
            values = frame[c].to_numpy(dtype=object)
            values[pd.isna(values)] = None
        frame[c] = pd.Series(values, index=frame.index, dtype=object)
    return frame


def _load(folder: Path) -> _Facts | None:
    """The tables kept in ``folder``, or None when there are none (or they cannot be read)."""
    if not (folder / "done").exists():
        return None
    coded: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    try:
        names = _kept(folder / "ids.parquet")
        labels = _kept(folder / "labels.parquet")
        frames: dict[str, Any] = {n: _kept(folder / f"{n}.parquet", coded) for n in _TABLES}
    except (OSError, ValueError) as exc:
        log.warning("root-cause tables in %s could not be read (%s); reading them from the store", folder, exc)
        return None
    ids, named = _as_dict(names, "x", "id"), _as_dict(labels, "x", "label")
    return _Facts(ids=ids, labels=ids | named, named=named, coded=coded, folder=folder, **frames)


def _save(f: _Facts, folder: Path, heads: Heads, unchanged: tuple[Path | None, Iterable[str]] = (None, ())) -> None:
    """Keep the tables in ``folder`` (written beside it, then renamed into place); drop every other state.

    ``unchanged`` names a folder and the tables that are the same as its files: those
    are hard links to them (writing all the tables takes seconds at 100 000 batches).

    Best effort: a store folder this process may not write to (another user's,
    a read-only mount) just means the next process queries the tables again. A
    store opened read-only still writes here: the folder is derived data, not
    the store's."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{folder.name}.tmp-", dir=folder.parent))
    except OSError as exc:
        log.debug("root-cause tables not kept in %s: %s", folder, exc)
        return
    source, same = unchanged[0], set(unchanged[1])
    try:
        for name in _QUERIES:
            target = tmp / f"{name}.parquet"
            if name in same and source is not None and _linked(source / f"{name}.parquet", target):
                continue
            _old_table(f, name).to_parquet(target)
        (tmp / "heads.json").write_text(json.dumps(heads, sort_keys=True), encoding="utf-8")
        (tmp / "done").write_text("complete\n", encoding="utf-8")
        os.rename(tmp, folder)
        f.folder = folder
    except OSError as exc:  # another process kept the same state first, or the disk is full
        log.debug("root-cause tables not kept in %s: %s", folder, exc)
        return
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when the rename succeeded
    day_ago = time.time() - 86400
    for old in folder.parent.glob(f"{_PREFIX}*"):
        # other states of these queries go (another pharmakg keeps its own); a half-written folder of
        # any only when a day old (another process may be writing it)
        try:
            if old == folder or (".tmp-" in old.name and old.stat().st_mtime >= day_ago):
                continue
        except OSError:  # removed meanwhile by another process
            continue
        if ".tmp-" in old.name or old.name.startswith(f"{_PREFIX}{FACTS_FORMAT}-"):
            shutil.rmtree(old, ignore_errors=True)
