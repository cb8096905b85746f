"""KnowledgeGraph: the one handle users hold (layer L3, top of the model layer).

It binds a store backend to the ingest, validation and audit paths, so that
every analysis (trace, root cause, twins, transfer) takes one object and
works unchanged on the embedded store and on a remote SPARQL server.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from . import audit
from . import terms as T
from .errors import QueryError, StoreError
from .store.base import Functions, RawResult, SelectFormat, Store, sparql_string
from .store.oxigraph import EmbeddedStore

_T = TypeVar("_T")

if TYPE_CHECKING:
    import pandas as pd
    import rdflib

    from .ingest import LoadReport
    from .ingest.series import MappingLike, SeriesReport
    from .twins.shelf import TwinShelf
    from .validate import ValidationReport, Violation

__all__ = [
    "ACCESSORS",
    "DEFAULT_BASE",
    "FUNCTION_NAMESPACE",
    "FUNCTION_PROVIDERS",
    "KnowledgeGraph",
    "StoreInfo",
    "open_store",
    "connect_store",
]

#: Default base for minted IRIs; set one per enterprise/site with ``base=``.
DEFAULT_BASE = "https://example.org/pharmakg/"

#: Namespace of pharmakg's SPARQL extension functions (``pkgf:predict`` ...), predeclared as ``pkgf:``.
FUNCTION_NAMESPACE = "https://w3id.org/pharmakg/function#"
#: Contributed by the layers above (pharmakg.twins) when ``pharmakg`` is imported: a named
#: accessor on every KnowledgeGraph (``kg.twins``), and providers of extension functions.
ACCESSORS: dict[str, Callable[[KnowledgeGraph], Any]] = {}
FUNCTION_PROVIDERS: list[Callable[[KnowledgeGraph], Functions]] = []

PREFIXES = f"""PREFIX pkg: <{T.PKG}>
PREFIX pkgf: <{FUNCTION_NAMESPACE}>
PREFIX rdf: <{T.RDF}>
PREFIX rdfs: <{T.RDFS}>
PREFIX xsd: <{T.XSD}>
PREFIX skos: <{T.SKOS}>
PREFIX prov: <{T.PROV}>
PREFIX sosa: <{T.SOSA}>
PREFIX dcterms: <{T.DCTERMS}>
"""


@dataclass(frozen=True)
class StoreInfo:
    """What a store holds: counts per class and per named graph, and its size."""

    location: str
    quads: int
    classes: pd.DataFrame
    graphs: pd.DataFrame
    size_bytes: int | None

    def __str__(self) -> str:
        size = f", {self.size_bytes / 1e6:.1f} MB on disk" if self.size_bytes else ""
        lines = [f"{self.location}: {self.quads} quads in {len(self.graphs)} named graphs{size}"]
        lines += [f"  {r['class']:<24} {r['instances']:>10}" for _, r in self.classes.iterrows()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return (
            f"<p>{self.location}: {self.quads} quads</p>"
            + self.classes.to_html(index=False)
            + self.graphs.to_html(index=False)
        )


class KnowledgeGraph:
    """One RDF graph of a plant: query it, load into it, validate and export it.

    Open one with :func:`pharmakg.open` (embedded) or :func:`pharmakg.connect`
    (remote SPARQL 1.1). Queries see the union of all named graphs; the
    standard prefixes (pkg, rdf, rdfs, xsd, skos, prov, sosa, dcterms) are
    predeclared.
    """

    def __init__(
        self,
        store: Store,
        *,
        base: str = DEFAULT_BASE,
        user: str | None = None,
        series_dir: str | Path | None = None,
    ) -> None:
        if not base.endswith(("/", "#")):
            raise ValueError(f"base IRI must end with '/' or '#': {base!r}")
        self.store = store
        self.base = base
        self.user = user or audit.current_user()
        self._cache: dict[str, Any] = {}
        self._cache_revision: int | None = None
        self._accessors: dict[str, Any] = {}
        self._series_dir = Path(series_dir) if series_dir is not None else None
        self._series_cleanup: weakref.finalize[Any, Any] | None = None

    @property
    def cache(self) -> dict[str, Any]:
        """Scratch space for small lookups derived from the data (names of materials, suppliers).

        Emptied whenever the store's revision moves; a throwaway dict when the
        store is remote, because other clients may change the data under us. A
        read-only store looks for another writer's commit first (a ``stat``), as it
        does before each query: a lookup made before the first query (a trace
        started from an IRI) must not see the previous revision's."""
        refresh = getattr(self.store, "refresh", None)
        if refresh is not None:
            refresh()
        revision = self.store.revision
        if revision is None:
            return {}
        if revision != self._cache_revision:
            self._cache, self._cache_revision = {}, revision
        return self._cache

    def cached(self, key: str, compute: Callable[[], _T]) -> _T:
        """``compute()``, kept in :attr:`cache` under ``key`` until the store's revision moves
        (worked out again on every call for a remote store)."""
        cache = self.cache
        if key not in cache:
            cache[key] = compute()
        value: _T = cache[key]
        return value

    # -- context manager -----------------------------------------------------------
    def __enter__(self) -> KnowledgeGraph:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()
        if self._series_cleanup is not None:  # an in-memory graph's temporary series folder goes with it
            self._series_cleanup()

    def __repr__(self) -> str:
        return f"<KnowledgeGraph {self.store.location}>"

    # -- reading -----------------------------------------------------------------
    def query(self, sparql: str) -> pd.DataFrame:
        """Run a SELECT (or ASK) query; a DataFrame with typed columns."""
        raw = self._run(sparql)
        if raw.kind != "json":
            raise QueryError("query() takes SELECT or ASK; use construct() for CONSTRUCT/DESCRIBE", query=sparql)
        from ._results import json_to_frame

        return json_to_frame(raw.body)

    def rows(self, sparql: str) -> list[dict[str, str]]:
        """Run a SELECT; each solution as a dict of plain strings (IRIs and lexical forms).

        The light path for code that post-processes a few hundred rows itself:
        no DataFrame and no typing, which costs more than the query on small results.
        Solutions travel as SPARQL CSV (about a third cheaper than JSON to write and
        read); CSV cannot tell an unbound variable from an empty string, so an
        empty value counts as unbound (left out of the dict).
        """
        raw = self._run(sparql, select_format="csv")
        if raw.kind == "csv":
            # a literal can be long (a twin's settings carry a whole FMU): lift the csv module's 128 KiB cap
            csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
            reader = csv.reader(io.StringIO(raw.body.decode("utf-8"), newline=""))
            head = next(reader, [])
            return [{k: v for k, v in zip(head, row, strict=True) if v} for row in reader]
        if raw.kind != "json":
            raise QueryError("rows() takes SELECT queries", query=sparql)
        bindings = json.loads(raw.body)["results"]["bindings"]
        return [{k: v["value"] for k, v in b.items()} for b in bindings]

    def ask(self, sparql: str) -> bool:
        """Run an ASK query."""
        raw = self._run(sparql)
        from ._results import json_to_bool

        return json_to_bool(raw.body)

    def construct(self, sparql: str) -> rdflib.Graph:
        """Run a CONSTRUCT or DESCRIBE query; an rdflib Graph."""
        raw = self._run(sparql)
        if raw.kind != "graph":
            raise QueryError("construct() takes CONSTRUCT or DESCRIBE; use query() for SELECT/ASK", query=sparql)
        from ._results import ntriples_to_graph

        return ntriples_to_graph(raw.body)

    def ntriples(self, sparql: str) -> bytes:
        """Run a CONSTRUCT or DESCRIBE query; the triples as N-Triples bytes, unparsed (for bulk copies)."""
        raw = self._run(sparql)
        if raw.kind != "graph":
            raise QueryError("ntriples() takes CONSTRUCT or DESCRIBE", query=sparql)
        return raw.body

    def run(self, sparql: str) -> pd.DataFrame | bool | rdflib.Graph:
        """Any query form: SELECT gives a DataFrame, ASK a bool, CONSTRUCT/DESCRIBE an rdflib Graph."""
        raw = self._run(sparql)
        if raw.kind == "graph":
            from ._results import ntriples_to_graph

            return ntriples_to_graph(raw.body)
        if len(raw.body) < 512 and "boolean" in json.loads(raw.body):
            from ._results import json_to_bool

            return json_to_bool(raw.body)
        from ._results import json_to_frame

        return json_to_frame(raw.body)

    def functions(self) -> dict[str, Callable[..., Any]]:
        """The SPARQL extension functions available on this graph (IRI -> callable), fresh per query."""
        out: dict[str, Callable[..., Any]] = {}
        for provider in FUNCTION_PROVIDERS:
            out.update(provider(self))
        return out

    @property
    def twins(self) -> TwinShelf:
        """The twins in this graph: attach, save, load, list (see pharmakg.twins)."""
        shelf = self._accessors.get("twins")
        if shelf is None:
            if "twins" not in ACCESSORS:
                raise AttributeError("twins: import pharmakg (the package) to register pharmakg.twins")
            shelf = self._accessors["twins"] = ACCESSORS["twins"](self)
        return shelf

    def _run(self, sparql: str, *, select_format: SelectFormat = "json") -> RawResult:
        """Run with the standard prefixes predeclared; error positions point into the user's text.

        Extension functions are looked up only when the text names their namespace."""
        functions = self.functions() if ("pkgf:" in sparql or FUNCTION_NAMESPACE in sparql) else None
        try:
            if functions:
                return self.store.query(PREFIXES + sparql, select_format=select_format, functions=functions)
            return self.store.query(PREFIXES + sparql, select_format=select_format)  # a backend may predate functions
        except QueryError as exc:
            raise _unshift(exc, sparql) from None

    def __len__(self) -> int:
        frame = self.query("SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }")
        return int(frame["n"].iloc[0])

    def resolve(self, ref: str) -> str:
        """An IRI for a business id (lot, batch, ...) or an IRI given as such."""
        if ref.startswith(("http://", "https://", "urn:")):
            return ref
        frame = self.query(f"SELECT DISTINCT ?x WHERE {{ ?x dcterms:identifier {sparql_string(ref)} }} LIMIT 2")
        if frame.empty:
            raise KeyError(f"no node with business id {ref!r} in {self.store.location}")
        if len(frame) > 1:
            raise KeyError(f"business id {ref!r} names several nodes; pass the IRI")
        return str(frame["x"].iloc[0])

    # -- writing -----------------------------------------------------------------
    def load(
        self,
        *paths: str | Path,
        reason: str = "",
        graph: str | None = None,
        progress: bool | Callable[[str], None] = False,
        schemas: str | Path | None = None,
    ) -> list[LoadReport]:
        """Load CSV bundle folders, RDF files and BatchML/B2MML ``.xml`` documents; each path is one all-or-nothing transaction.

        ``schemas`` is a folder of XSDs (default ``$PHARMAKG_XML_SCHEMAS``) that XML documents must validate against.
        """
        from .ingest import load_path

        callback = _progress_callback(progress)
        reports = []
        for path in paths:
            reports.append(
                load_path(
                    self.store,
                    path,
                    base=self.base,
                    user=self.user,
                    reason=reason or f"load {Path(path).name}",
                    graph=graph,
                    progress=callback,
                    schemas=schemas,
                )
            )
        return reports

    # -- historian series (points in Parquet beside the store, see pharmakg.ingest.series) ---------
    @property
    def series_dir(self) -> Path:
        """Folder holding the historian series' Parquet files (one per batch x tag).

        ``series_dir=`` as given to :func:`pharmakg.open` / :func:`pharmakg.connect`;
        else ``series/`` inside an on-disk store's folder (so the folder moves,
        backs up and restores with the store); else, for an in-memory graph, a
        temporary folder made on first use and deleted by :meth:`close`, like the
        graph itself. A remote store needs ``series_dir=``: the server's folder is
        not ours to know.
        """
        if self._series_dir is None:
            from .ingest.series import default_series_dir

            found = default_series_dir(self.store)
            if found is None:
                if not isinstance(self.store, EmbeddedStore):
                    raise StoreError(
                        f"{self.store.location} is a remote store: pass series_dir= to pharmakg.connect "
                        "(CLI --series-dir) to say where its series' Parquet files are"
                    )
                import tempfile

                found = Path(tempfile.mkdtemp(prefix="pharmakg-series-"))
                self._series_cleanup = weakref.finalize(self, shutil.rmtree, str(found), True)
            self._series_dir = found
        return self._series_dir

    def load_series(
        self,
        path: str | Path,
        *,
        mapping: MappingLike,
        reason: str = "",
        timezone: str | None = None,
        outside: Literal["error", "drop"] = "error",
        graph: str | None = None,
        progress: bool | Callable[[str], None] = False,
    ) -> SeriesReport:
        """Import a historian file (CSV or Parquet; long or wide) for the batches in the graph.

        ``mapping`` says which process parameter each tag measures on which
        equipment, in which unit (a CSV ``tag, parameter_id, equipment_id, unit``,
        a DataFrame, a dict or :class:`~pharmakg.ingest.series.TagMap` s). The
        points go to :attr:`series_dir` as Parquet; the graph gets one
        ``pkg:TimeSeries`` node per batch x tag and the batch features as
        parameter actuals (``P:mean`` ...), in one audited transaction. Bad input
        raises an :class:`~pharmakg.IngestError` naming file, line and column,
        and then nothing is written, in the graph or in the folder.
        """
        from .ingest.series import load_series

        return load_series(
            self.store,
            path,
            mapping=mapping,
            series_dir=self.series_dir,
            base=self.base,
            user=self.user,
            reason=reason or f"load series {Path(path).name}",
            timezone=timezone,
            outside=outside,
            graph=graph,
            progress=_progress_callback(progress),
        )

    def series(
        self, batch: str | None, tag: str, start: Any = None, end: Any = None, *, verify: bool = False
    ) -> pd.DataFrame:
        """The points of ``tag`` in ``batch`` (business id or IRI; None: every batch) between start and end.

        A DataFrame with ``timestamp`` (UTC) and ``value``; ``frame.attrs`` holds
        the unit, parameter and equipment. ``start``/``end`` need a UTC offset.
        Only the batch's file is opened, and only the row groups overlapping the
        window are read. ``verify=True`` checks the file's sha256 against the graph.
        """
        from .ingest.series import read_series

        return read_series(self.store, self.series_dir, batch, tag, start=start, end=end, verify=verify)

    def update(self, sparql: str, *, reason: str) -> audit.WriteRecord:
        """Run a SPARQL update and its chained audit record in one transaction.

        Then a second record names what it changed (triples added and removed,
        kept inline so earlier values stay in the history) and checkpoints the
        graphs it touched. Returns the update's record (to sign it, for example).
        """
        if not reason.strip():
            raise ValueError("an update needs a reason (why the data changes)")
        record = audit.WriteRecord(
            action="update",
            user=self.user,
            reason=reason,
            target_graph=None,
            triples_added=0,
            digest=hashlib.sha256(sparql.encode()).hexdigest(),
        )
        try:
            return audit.commit_update(self.store, self.base, record, PREFIXES + sparql)
        except QueryError as exc:
            raise _unshift(exc, sparql) from None

    def sign(self, record: str | int, *, key: str | Path, signer: str, meaning: str) -> audit.WriteRecord:
        """E-sign an audit record (its number or IRI) with the signer's private key (PEM), bound to its hash."""
        return audit.sign_record(
            self.store, self.base, record, key=str(key), signer=signer, meaning=meaning, user=self.user
        )

    def history(self, ref: str) -> pd.DataFrame:
        """The life of a node (business id or IRI): the load that wrote it, every correction (old -> new), signatures."""
        import pandas as pd

        rows = audit.record_life(self.store, self.base, self.resolve(ref))
        cols = ["number", "time", "user", "action", "reason", "change", "signatures"]
        frame = pd.DataFrame(rows).reindex(columns=cols).astype(object)
        frame["number"] = frame["number"].astype(int)
        return frame.fillna("")

    def audit_log(self) -> pd.DataFrame:
        """Every chained audit record, oldest first (checkpoints, effects and signatures included)."""
        import pandas as pd

        cols = [
            "number",
            "time",
            "user",
            "action",
            "reason",
            "target",
            "added",
            "removed",
            "about",
            "signer",
            "meaning",
        ]
        frame = pd.DataFrame(audit.trail(self.store, self.base)).reindex(columns=cols)
        for c in ("number", "added", "removed", "about"):
            frame[c] = pd.to_numeric(frame[c]).astype("Int64")
        text = [c for c in cols if c not in ("number", "added", "removed", "about")]
        frame[text] = frame[text].astype(object).fillna("")
        return frame

    def correct(self, ref: str, prop: str, value: Any, *, reason: str) -> audit.WriteRecord:
        """Replace the value of a single-valued property of a node, where it is stored, with a reason.

        The earlier value stays in the audit trail (``history(ref)`` shows it). ``prop`` is a
        pkg: local name ("norLow") or an IRI; ``value`` a number, text, bool or datetime.
        """
        node = self.resolve(ref)
        iri = prop if prop.startswith(("http://", "https://", "urn:")) else T.PKG + prop
        graphs = [r["g"] for r in self.rows(f"SELECT DISTINCT ?g WHERE {{ GRAPH ?g {{ <{node}> <{iri}> ?o }} }}")]
        if not graphs:
            raise KeyError(f"{ref!r} has no {prop} to correct (use update() to add one)")
        term = _literal(value)
        return self.update(
            " ;\n".join(
                f"DELETE {{ GRAPH <{g}> {{ <{node}> <{iri}> ?o }} }} INSERT {{ GRAPH <{g}> {{ <{node}> <{iri}> {term} }} }} "
                f"WHERE {{ GRAPH <{g}> {{ <{node}> <{iri}> ?o }} }}"
                for g in graphs
            ),
            reason=reason,
        )

    def checkpoint(self, *, reason: str = "checkpoint") -> audit.WriteRecord:
        """Record the state (count, digest) of every data graph in the audit chain."""
        return audit.checkpoint(self.store, self.base, user=self.user, reason=reason)

    def verify_audit(self, *, trust: str | Path | None = None) -> audit.AuditReport:
        """Check the audit chain, its signatures and every graph against its last checkpoint (see pharmakg.audit)."""
        from .signing import load_trust

        keys = dict(load_trust(trust)) if trust is not None else None
        return audit.verify_trail(self.store, self.base, trust=keys)

    # -- validation, info, export ------------------------------------------------------
    def validate(self, *, engine: str = "pyshacl") -> ValidationReport:
        """SHACL over every domain graph: ``pyshacl`` (reference) or ``compiled`` (fast)."""
        from . import validate as v

        data = self._domain_ntriples()
        if engine == "pyshacl":
            report = v.run_pyshacl(data)
        elif engine == "compiled":
            report = v.check_triples(v.ntriples_frame(data), limit=1000)
        else:
            raise ValueError(f"engine must be 'pyshacl' or 'compiled', not {engine!r}")
        missing = self._missing_links(limit=1000)
        if not missing:
            return report
        return replace(report, conforms=False, violations=report.violations + missing)

    def _missing_links(self, *, limit: int) -> tuple[Violation, ...]:
        """Records whose direct link is missing (``ingest.SHORTCUT_CHECKS``): not SHACL, as the
        shapes' subset has no SPARQL constraints, but as much a broken graph for walks and recalls."""
        from .ingest import SHORTCUT_CHECKS
        from .validate import Violation

        found = []
        for check in SHORTCUT_CHECKS:
            link = check.predicate.rsplit("#", 1)[-1]
            for r in self.rows(check.sparql(limit)):
                found.append(
                    Violation(
                        focus=r["r"],
                        path=check.predicate,
                        constraint="link",
                        message=f"the record's link <{r['s']}> {link} <{r['o']}> is missing "
                        "(genealogy walks and recalls follow the link, not the record)",
                        value=r["o"],
                    )
                )
        return tuple(found)

    def _domain_graphs(self) -> list[str]:
        skip = {audit.audit_graph(self.base), audit.provenance_graph(self.base), T.ONTOLOGY_GRAPH}
        frame = self.query("SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }")
        return sorted(g for g in frame["g"] if g not in skip)

    def _domain_ntriples(self) -> bytes:
        return b"".join(self.store.dump(format="nt", graph=g) for g in self._domain_graphs())

    def domain_nquads(self) -> bytes:
        """Every domain quad, sorted: equal bytes mean equal data (audit and provenance left out)."""
        out: list[bytes] = []
        for g in self._domain_graphs():
            out += self.store.dump(format="nq", graph=g).splitlines()
        return b"\n".join(sorted(out))

    def info(self) -> StoreInfo:
        classes = self.query(
            "SELECT ?class (COUNT(DISTINCT ?x) AS ?instances) WHERE { ?x a ?c . "
            "FILTER(STRSTARTS(STR(?c), STR(pkg:))) BIND(STRAFTER(STR(?c), '#') AS ?class) } "
            "GROUP BY ?class ORDER BY DESC(?instances) ?class"
        )
        graphs = self.query(
            "SELECT ?graph (COUNT(*) AS ?quads) WHERE { GRAPH ?graph { ?s ?p ?o } } GROUP BY ?graph ORDER BY ?graph"
        )
        size = self.store.size_bytes() if isinstance(self.store, EmbeddedStore) else None
        return StoreInfo(self.store.location, int(graphs["quads"].sum()) if len(graphs) else 0, classes, graphs, size)

    def export(self, *, format: str = "nq", graph: str | None = None) -> bytes:
        """The store (or one named graph) as N-Quads, TriG or Turtle bytes."""
        if format not in ("nq", "trig", "ttl", "nt"):
            raise ValueError(f"format must be nq, trig, ttl or nt, not {format!r}")
        if graph is None and format in ("ttl", "nt"):
            raise ValueError("Turtle/N-Triples hold one graph: pass graph=, or use nq/trig for the whole store")
        return self.store.dump(format=format, graph=graph)

    def backup(self, target: str | Path) -> None:
        """A consistent on-disk copy that :func:`pharmakg.open` can open (embedded stores)."""
        if not isinstance(self.store, EmbeddedStore):
            raise StoreError("backup() needs an embedded store; export() a remote one")
        self.store.backup(target)
        series = self._series_dir or (self.store.path / "series" if self.store.path is not None else None)
        if series is not None and series.is_dir():  # the historian series travel with the store
            shutil.copytree(series, Path(target) / "series", ignore=shutil.ignore_patterns(".staging-*"))

    def optimize(self) -> None:
        """Compact an embedded store after big loads (later queries get several times faster)."""
        if isinstance(self.store, EmbeddedStore):
            self.store.optimize()


def _progress_callback(progress: bool | Callable[[str], None]) -> Callable[[str], None] | None:
    if callable(progress):
        return progress
    if not progress:
        return None
    from tqdm.auto import tqdm

    bar = tqdm(total=None, unit="step", desc="load")

    def step(what: str) -> None:
        bar.set_postfix_str(what)
        bar.update(1)

    return step


def open_store(
    path: str | Path | None = None,
    *,
    base: str = DEFAULT_BASE,
    read_only: bool = False,
    user: str | None = None,
    series_dir: str | Path | None = None,
) -> KnowledgeGraph:
    """Open an embedded store: in memory when ``path`` is None, else on disk (created if missing).

    ``series_dir``: where historian series live as Parquet (default: ``series/`` in the
    store's folder; for an in-memory store a temporary folder removed on close)."""
    return KnowledgeGraph(EmbeddedStore(path, read_only=read_only), base=base, user=user, series_dir=series_dir)


def connect_store(
    query_url: str,
    update_url: str | None = None,
    *,
    auth: Any = None,
    base: str = DEFAULT_BASE,
    timeout: float = 60.0,
    user: str | None = None,
    series_dir: str | Path | None = None,
) -> KnowledgeGraph:
    """Connect to a SPARQL 1.1 server (its default graph must be the union of its named graphs).

    ``series_dir``: the folder of the historian series' Parquet files (needed to load or read series)."""
    from .store.sparql import RemoteStore

    return KnowledgeGraph(
        RemoteStore(query_url, update_url, auth=auth, timeout=timeout), base=base, user=user, series_dir=series_dir
    )


def restore(backup: str | Path, target: str | Path) -> None:
    """Copy a backup folder to ``target`` (which must not exist) so it can be opened."""
    backup, target = Path(backup), Path(target)
    if target.exists():
        raise StoreError(f"restore target {target} already exists; restore into a new path")
    EmbeddedStore(backup, read_only=True).close()  # fails clearly if it is not a store
    shutil.copytree(backup, target, symlinks=True)


_PREFIX_LINES = PREFIXES.count("\n")


def _literal(value: Any) -> str:
    """A SPARQL literal for a Python value (float -> xsd:double, as the ingest types numbers)."""
    import datetime as dt

    import pandas as pd

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f'"{value}"^^<{T.XSD}integer>'
    if isinstance(value, float):
        return f'"{value!r}"^^<{T.XSD}double>'
    if isinstance(value, dt.datetime | pd.Timestamp):
        return f'"{pd.Timestamp(value).isoformat()}"^^<{T.XSD}dateTime>'
    return sparql_string(str(value))


def _unshift(exc: QueryError, sparql: str) -> QueryError:
    line = exc.line - _PREFIX_LINES if exc.line is not None and exc.line > _PREFIX_LINES else exc.line
    return QueryError(exc.detail, query=sparql, line=line, column=exc.column)
