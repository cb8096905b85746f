"""What a ``pharmakg serve`` process is told at start (layer L6).

The configuration crosses a process boundary (uvicorn starts each worker as a
fresh process), so it is a plain frozen dataclass that travels as JSON in one
environment variable. The update token never travels: workers get its
SHA-256 and compare digests in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["ENV_CONFIG", "ROLES", "ServerConfig", "add_user", "is_loopback", "read_token", "read_users", "token_digest"]

#: What each role may do over HTTP. A reader queries; an author also writes; an approver also
#: changes what needs approval (a twin's validation status). Signing is never done with a token:
#: it needs the signer's private key (``pharmakg audit sign``).
ROLES = ("reader", "author", "approver")

#: The environment variable that carries a worker's configuration.
ENV_CONFIG = "PHARMAKG_SERVE_CONFIG"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def read_token(path: str | None) -> str | None:
    """The update token from ``path`` (first line), else ``$PHARMAKG_UPDATE_TOKEN``, else None."""
    if path:
        text = Path(path).read_text(encoding="utf-8").strip().splitlines()
        token = text[0].strip() if text else ""
        if not token:
            raise ValueError(f"update token file {path} is empty")
        return token
    return os.environ.get("PHARMAKG_UPDATE_TOKEN") or None


def read_users(path: str | Path) -> tuple[tuple[str, str, str], ...]:
    """(name, role, token sha256) rows of a users file (CSV: name,role,token_sha256; no clear tokens)."""
    import csv

    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f), start=2):
            name, role, digest = (row.get(k, "").strip() for k in ("name", "role", "token_sha256"))
            if not name or role not in ROLES or len(digest) != 64:
                raise ValueError(f"{path}, line {i}: needs name, role ({'/'.join(ROLES)}) and a 64-hex token_sha256")
            rows.append((name, role, digest))
    names = [r[0] for r in rows]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: a user appears twice (no shared accounts, and no account twice)")
    return tuple(rows)


def add_user(path: str | Path, name: str, role: str) -> str:
    """Add ``name`` with ``role`` to the users file (created if absent); returns the new token, shown once."""
    import csv
    import secrets

    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    path = Path(path)
    existing = read_users(path) if path.exists() else ()
    if any(r[0] == name for r in existing):
        raise ValueError(f"{path}: user {name!r} exists already")
    token = secrets.token_urlsafe(32)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["name", "role", "token_sha256"])
        w.writerows([*existing, (name, role, token_digest(token))])
    path.chmod(0o600)
    return token


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerConfig:
    """Everything a worker needs; defaults are the safe ones."""

    store: str | None = None  # an on-disk pharmakg store folder ...
    endpoint: str | None = None  # ... or the query URL of another SPARQL 1.1 server
    update_endpoint: str | None = None
    base: str = "https://example.org/pharmakg/"
    host: str = "127.0.0.1"
    port: int = 7878
    workers: int = 0  # 0: one per CPU
    token_sha256: str | None = None  # the update token's digest; None (and no authors): read-only
    token_user: str = ""  # the named person (or interface account) the update token belongs to
    token_role: str = "author"  # that user's role: author or approver
    token_proxy: bool = False  # the token belongs to a front end that authenticated the user (Jupyter)
    time_limit: float = 60.0  # seconds per query or update
    row_cap: int = 100_000  # solutions (SELECT) or triples (CONSTRUCT/DESCRIBE) per answer
    max_body: int = 16 * 1024 * 1024  # bytes of a request body
    allow_service: tuple[str, ...] = ()  # IRI prefixes SERVICE and LOAD may reach
    cors_origins: tuple[str, ...] = ()  # empty: no CORS headers at all
    root_path: str = ""  # URL prefix when mounted behind a proxy
    inline_ms: float = 5.0  # a repeat request measured faster than this on unchanged data skips the thread hop
    users: tuple[tuple[str, str, str], ...] = ()  # (name, role, token sha256): per-user tokens with roles
    private: bool = False  # queries need a user token too (any role)

    def __post_init__(self) -> None:
        if (self.store is None) == (self.endpoint is None):
            raise ValueError("serve either a store folder or a remote endpoint (exactly one)")
        if not 0 < self.time_limit <= 3600:
            raise ValueError(f"time limit must be in (0, 3600] seconds, not {self.time_limit}")
        if self.row_cap < 1 or self.max_body < 1:
            raise ValueError("row cap and body size cap must be positive")
        if self.token_sha256 is not None and not self.token_proxy:
            if not self.token_user.strip():
                raise ValueError(
                    "the update token is one person's credential (no shared accounts): name its owner (--token-user)"
                )
            if self.token_role not in ROLES[1:]:
                raise ValueError(f"the update token's role must be author or approver, not {self.token_role!r}")
            if any(name == self.token_user for name, _, _ in self.users):
                raise ValueError(f"{self.token_user!r} owns the update token and is in the users file too")

    @property
    def writable(self) -> bool:
        return self.token_sha256 is not None or any(role != "reader" for _, role, _ in self.users)

    def token_ok(self, presented: str) -> bool:
        """Constant-time comparison of a presented bearer token with the update token."""
        if self.token_sha256 is None:
            return False
        return hmac.compare_digest(token_digest(presented), self.token_sha256)

    def user_of(self, presented: str) -> tuple[str, str] | None:
        """(name, role) of the user whose token this is; every digest is compared, in constant time.

        The update token is one of them, owned by ``token_user`` (unless a front end holds it).
        """
        digest = token_digest(presented)
        found = None
        owner = (
            ()
            if self.token_sha256 is None or self.token_proxy
            else ((self.token_user, self.token_role, self.token_sha256),)
        )
        for name, role, expected in (*self.users, *owner):
            if hmac.compare_digest(digest, expected):
                found = (name, role)
        return found

    def service_allowed(self, iri: str) -> bool:
        return any(iri.startswith(prefix) for prefix in self.allow_service)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServerConfig:
        data = json.loads(text)
        for key in ("allow_service", "cors_origins"):
            data[key] = tuple(data.get(key) or ())
        data["users"] = tuple(tuple(u) for u in data.get("users") or ())
        return cls(**data)
