"""The one exception tree of pharmakg.

Every error a user can meet derives from :class:`PharmaKGError`, and each leaf
also derives from the builtin it *is*, so ``except ValueError`` keeps working in
code that does not know about pharmakg::

    PharmaKGError
    ├── StoreError
    │   ├── StoreLockedError (PermissionError)      another process holds the store
    │   ├── NotAStoreError (FileNotFoundError)      the path is not a pharmakg store
    │   ├── QueryError (ValueError)                  malformed or failing SPARQL
    │   ├── ReadOnlyStoreError (PermissionError)     a write on a read-only store
    │   └── EndpointError (ConnectionError)          remote endpoint refused / timed out
    ├── IngestError (ValueError)                     bad input file: file, row, column
    │   └── ConflictError                            a row contradicts the store
    │   ├── UnitError                                unknown or incompatible unit
    │   └── ValidationError                          SHACL violations on staged data
    ├── PackageError (ValueError)                    a tech-transfer package is refused: package, member
    │   └── SignatureError                           missing, bad or untrusted signature; unreadable key
    └── MissingDependencyError (ImportError)         an optional package is absent

Errors carry structured fields and build their message from them, so tests
and callers can rely on both. Foreign exceptions (pyoxigraph, httpx, pint,
pandas) are translated at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ConflictError",
    "EndpointError",
    "IngestError",
    "MissingDependencyError",
    "NotAStoreError",
    "PackageError",
    "PharmaKGError",
    "PharmaKGWarning",
    "QueryError",
    "ReadOnlyStoreError",
    "SignatureError",
    "StoreError",
    "StoreLockedError",
    "UnitError",
    "ValidationError",
    "Where",
]


class PharmaKGWarning(UserWarning):
    """Base of every warning pharmakg emits."""


class PharmaKGError(Exception):
    """Root of every pharmakg error."""


class StoreError(PharmaKGError):
    """Something went wrong in the graph store."""


class StoreLockedError(StoreError, PermissionError):
    """The on-disk store is opened read-write by another process."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        super().__init__(
            f"store {self.path} is in use by another process (one writer per store); "
            "stop it, or connect to the process that holds it with "
            "pharmakg.connect(url) / --endpoint URL"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path,))


class NotAStoreError(StoreError, FileNotFoundError):
    """The path exists but holds something other than a pharmakg store."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path} is not a pharmakg store: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason))


class QueryError(StoreError, ValueError):
    """A SPARQL query or update was malformed or failed; carries the position."""

    def __init__(self, message: str, *, query: str = "", line: int | None = None, column: int | None = None) -> None:
        self.detail = message
        self.query = query
        self.line = line
        self.column = column
        where = f" at line {line}, column {column}" if line is not None else ""
        super().__init__(f"SPARQL error{where}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), (self.detail,), {"query": self.query, "line": self.line, "column": self.column}))


class ReadOnlyStoreError(StoreError, PermissionError):
    """A write was attempted on a store opened read-only."""


class EndpointError(StoreError, ConnectionError):
    """A remote SPARQL endpoint refused the connection, timed out or answered with an error."""

    def __init__(self, url: str, reason: str, *, status: int | None = None) -> None:
        self.url = url
        self.reason = reason
        self.status = status
        code = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"SPARQL endpoint {url}{code}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), (self.url, self.reason), {"status": self.status}))


@dataclass(frozen=True)
class Where:
    """Where in an input a problem sits: file, 1-based line (header is line 1) and column name."""

    file: str
    line: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.column is not None:
            parts.append(f"column {self.column!r}")
        return ", ".join(parts)


class IngestError(PharmaKGError, ValueError):
    """Bad input: names the file, line and column at fault and what would be valid."""

    def __init__(self, where: Where, problem: str, *, value: object = None) -> None:
        self.where = where
        self.problem = problem
        self.value = value
        super().__init__(f"{where}: {problem}")

    @property
    def file(self) -> str:
        return self.where.file

    @property
    def line(self) -> int | None:
        return self.where.line

    @property
    def column(self) -> str | None:
        return self.where.column

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), (self.where, self.problem), {"value": self.value}))


class ConflictError(IngestError):
    """A row contradicts what the bundle or the store already holds for the same id."""


class UnitError(IngestError):
    """A unit pint does not know, or of the wrong dimension for the column."""


class ValidationError(IngestError):
    """Staged data violates the SHACL shapes; ``report`` lists every violation found."""

    def __init__(self, where: Where, problem: str, *, report: Any = None) -> None:
        self.report = report
        super().__init__(where, problem)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), (self.where, self.problem), {"report": self.report}))


class PackageError(PharmaKGError, ValueError):
    """A tech-transfer package (or a key) is refused: names the package, the member at fault and why.

    Raised before anything is written, so a refused import leaves the store as it was.
    """

    def __init__(self, package: str, problem: str, *, member: str | None = None) -> None:
        self.package = package
        self.member = member
        self.problem = problem
        where = f"{package} [{member}]" if member else package
        super().__init__(f"{where}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), (self.package, self.problem), {"member": self.member}))


class SignatureError(PackageError):
    """A signature is missing, does not match what it signs, or was made by a key nobody trusts."""


class MissingDependencyError(PharmaKGError, ImportError):
    """An optional package is needed for this feature."""

    def __init__(self, package: str, feature: str) -> None:
        self.package = package
        self.feature = feature
        super().__init__(f"{feature} needs the package {package!r}: pip install {package}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.package, self.feature))


def _rebuild(cls: type[Exception], args: tuple[Any, ...], fields: dict[str, Any]) -> Exception:
    """Unpickle an error whose constructor takes keyword-only fields."""
    return cls(*args, **fields)
