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

__all__ = ["ENV_CONFIG", "ServerConfig", "is_loopback", "read_token", "token_digest"]

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
    token_sha256: str | None = None  # None: read-only
    time_limit: float = 60.0  # seconds per query or update
    row_cap: int = 100_000  # solutions (SELECT) or triples (CONSTRUCT/DESCRIBE) per answer
    max_body: int = 16 * 1024 * 1024  # bytes of a request body
    allow_service: tuple[str, ...] = ()  # IRI prefixes SERVICE and LOAD may reach
    cors_origins: tuple[str, ...] = ()  # empty: no CORS headers at all
    root_path: str = ""  # URL prefix when mounted behind a proxy
    inline_ms: float = 5.0  # a repeat request measured faster than this on unchanged data skips the thread hop

    def __post_init__(self) -> None:
        if (self.store is None) == (self.endpoint is None):
            raise ValueError("serve either a store folder or a remote endpoint (exactly one)")
        if not 0 < self.time_limit <= 3600:
            raise ValueError(f"time limit must be in (0, 3600] seconds, not {self.time_limit}")
        if self.row_cap < 1 or self.max_body < 1:
            raise ValueError("row cap and body size cap must be positive")

    @property
    def writable(self) -> bool:
        return self.token_sha256 is not None

    def token_ok(self, presented: str) -> bool:
        """Constant-time comparison of a presented bearer token with the configured one."""
        if self.token_sha256 is None:
            return False
        return hmac.compare_digest(token_digest(presented), self.token_sha256)

    def service_allowed(self, iri: str) -> bool:
        return any(iri.startswith(prefix) for prefix in self.allow_service)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServerConfig:
        data = json.loads(text)
        for key in ("allow_service", "cors_origins"):
            data[key] = tuple(data.get(key) or ())
        return cls(**data)
