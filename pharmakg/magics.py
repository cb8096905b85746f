"""``%%sparql``: SPARQL cells in a notebook (layer L6).

Load with ``%load_ext pharmakg``. A cell runs against the notebook's graph
(the variable ``kg``, or the one named with ``--kg``; failing that, the only
KnowledgeGraph in the namespace) or against any SPARQL endpoint
(``--endpoint URL``)::

    %%sparql -o lots
    SELECT ?lot ?status WHERE { ?lot a pkg:MaterialLot ; pkg:lotStatus ?status }

SELECT gives a DataFrame, ASK a bool, CONSTRUCT/DESCRIBE an rdflib Graph; the
standard prefixes (pkg, rdfs, dcterms, ...) are predeclared. A syntax error
shows the offending line of the cell with a caret under the column. The magic
is a thin shell over :meth:`KnowledgeGraph.run`.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from .errors import QueryError
from .kg import KnowledgeGraph, connect_store

__all__ = ["SparqlMagics", "format_query_error", "load_ipython_extension"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="%%sparql", add_help=False, exit_on_error=False)
    p.add_argument("--kg", metavar="NAME", help="the KnowledgeGraph variable to query (default: kg)")
    p.add_argument("--endpoint", metavar="URL", help="query this SPARQL endpoint instead")
    p.add_argument("-o", "--out", metavar="NAME", help="store the result in this variable")
    p.add_argument("-q", "--quiet", action="store_true", help="do not display the result")
    return p


def format_query_error(exc: QueryError, text: str) -> str:
    """The parser's message with the offending line of ``text`` and a caret under the column."""
    message = f"SPARQL error: {exc.detail}"
    if exc.line is None:
        return message
    lines = text.splitlines()
    if not 1 <= exc.line <= len(lines):
        return f"{message} (line {exc.line})"
    source = lines[exc.line - 1]
    caret = ""
    if exc.column is not None:
        caret = "\n" + " " * (len(f"{exc.line:>4} | ") + max(exc.column - 1, 0)) + "^"
    return f"{message}\nline {exc.line}, column {exc.column}:\n{exc.line:>4} | {source}{caret}"


@magics_class
class SparqlMagics(Magics):
    """The ``%sparql`` line magic and ``%%sparql`` cell magic."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._endpoints: dict[str, KnowledgeGraph] = {}

    def _namespace(self) -> dict[str, Any]:
        if self.shell is None:
            raise UsageError("%%sparql needs an IPython shell")
        return self.shell.user_ns

    def _graph(self, args: argparse.Namespace) -> KnowledgeGraph:
        if args.endpoint:
            if args.endpoint not in self._endpoints:
                self._endpoints[args.endpoint] = connect_store(args.endpoint)
            return self._endpoints[args.endpoint]
        ns = self._namespace()
        if args.kg:
            graph = ns.get(args.kg)
            if not isinstance(graph, KnowledgeGraph):
                raise UsageError(f"--kg {args.kg}: no KnowledgeGraph variable of that name")
            return graph
        if isinstance(ns.get("kg"), KnowledgeGraph):
            return ns["kg"]
        graphs = {id(v): v for k, v in ns.items() if isinstance(v, KnowledgeGraph) and not k.startswith("_")}
        if len(graphs) == 1:
            return next(iter(graphs.values()))
        raise UsageError(
            "which graph? name it: %%sparql --kg NAME (or --endpoint URL); "
            f"{'no' if not graphs else len(graphs)} KnowledgeGraph variables in this notebook"
        )

    @line_cell_magic
    def sparql(self, line: str, cell: str | None = None) -> Any:
        """Run SPARQL against the notebook's graph or an endpoint; ``%%sparql?`` lists the options."""
        try:
            args, rest = _parser().parse_known_args(shlex.split(line))
        except (argparse.ArgumentError, ValueError) as exc:
            raise UsageError(f"%%sparql: {exc}") from None
        text = cell if cell is not None else " ".join(rest)
        if cell is not None and rest:
            raise UsageError(f"%%sparql: unexpected arguments {' '.join(rest)}")
        if not text.strip():
            raise UsageError("%%sparql: the cell has no query")
        graph = self._graph(args)
        try:
            result = graph.run(text)
        except QueryError as exc:
            raise UsageError(format_query_error(exc, text)) from None
        if args.out:
            self._namespace()[args.out] = result
        return None if args.quiet else result


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(SparqlMagics)
