"""Ed25519 keys and detached signatures (layer L1).

Used wherever a person signs something: a tech-transfer package release
(pharmakg.transfer) and, later, e-signatures on audit records. A signature
binds four things together, as 21 CFR Part 11 §11.50/§11.70 asks: the sha256
of what is signed, the signer's name, the meaning of the signature and the UTC
time. Only the holder of the private key can make one (§11.200: the key file is
needed at the moment of signing), and anyone holding the public key can check
it. Keys are plain PEM files, so ``openssl genpkey -algorithm ed25519`` keys
work as well as those from :func:`generate_keypair`. A *trust directory* is a
folder of public-key PEM files: the signers whose signatures a site accepts.

``cryptography`` does the mathematics; this module only fixes the formats.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SignatureError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "Signature",
    "TrustedKey",
    "check_signature",
    "generate_keypair",
    "key_id",
    "load_private_key",
    "load_public_key",
    "load_trust",
    "sign_digest",
]

ALGORITHM = "Ed25519"


def generate_keypair(private_path: str | Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write a new private key (PKCS#8 PEM, mode 0600) and its public key beside it (``.pub.pem``).

    The public file is what a receiving site puts in its trust directory.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path = Path(private_path)
    public_path = private_path.with_name(private_path.name.removesuffix(".pem") + ".pub.pem")
    for p in (private_path, public_path):
        if p.exists() and not overwrite:
            raise SignatureError(str(p), "exists already; pass overwrite=True (or choose another name)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    private_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private_path, public_path


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file (unencrypted PKCS#8, as openssl writes it)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise SignatureError(str(path), "no such key file") from None
    except (ValueError, TypeError) as exc:
        raise SignatureError(str(path), f"not a readable unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(str(path), f"is a {type(key).__name__}, not an Ed25519 key")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    path = Path(path)
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (ValueError, TypeError) as exc:
        raise SignatureError(str(path), f"not a readable PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(str(path), f"is a {type(key).__name__}, not an Ed25519 key")
    return key


def key_id(public: Ed25519PublicKey) -> str:
    """A short fingerprint of a public key: the first 16 hex digits of the sha256 of its raw bytes."""
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class TrustedKey:
    """One accepted signer's public key, from a trust directory."""

    key_id: str
    path: Path
    key: Ed25519PublicKey


def load_trust(directory: str | Path) -> dict[str, TrustedKey]:
    """Every ``*.pem`` public key in ``directory``, by key id (a private key there is refused)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SignatureError(str(directory), "is not a trust directory (a folder of signers' public-key PEM files)")
    out: dict[str, TrustedKey] = {}
    for path in sorted(directory.glob("*.pem")):
        if b"PRIVATE KEY" in path.read_bytes()[:200]:
            raise SignatureError(str(path), "is a private key: a trust directory holds public keys only")
        key = load_public_key(path)
        out[key_id(key)] = TrustedKey(key_id(key), path, key)
    return out


@dataclass(frozen=True)
class Signature:
    """A detached signature: who signed which sha256, meaning what, when (UTC)."""

    digest: str  # sha256 (hex) of the signed bytes
    signer: str
    meaning: str
    time: str  # ISO 8601 UTC
    key_id: str
    value: str  # base64 Ed25519 signature over payload()
    algorithm: str = ALGORITHM

    def payload(self) -> bytes:
        """The exact bytes the key signs: every field but the signature, as canonical JSON."""
        fields = {k: v for k, v in asdict(self).items() if k != "value"}
        return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n"

    @classmethod
    def from_json(cls, data: bytes, *, source: str = "signature") -> Signature:
        try:
            obj: Any = json.loads(data)
            return cls(**{k: str(obj[k]) for k in ("digest", "signer", "meaning", "time", "key_id", "value")})
        except (ValueError, KeyError, TypeError) as exc:
            raise SignatureError(source, f"not a pharmakg signature record ({exc})") from None


def sign_digest(digest: str, *, key: str | Path, signer: str, meaning: str) -> Signature:
    """Sign a sha256 digest with the private key in the PEM file ``key``."""
    if not signer.strip():
        raise SignatureError(str(key), "a signature needs the signer's name")
    if not meaning.strip():
        raise SignatureError(str(key), "a signature needs its meaning (e.g. 'approved for transfer')")
    private = load_private_key(key)
    time = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    unsigned = Signature(digest, signer.strip(), meaning.strip(), time, key_id(private.public_key()), "")
    value = base64.b64encode(private.sign(unsigned.payload())).decode("ascii")
    return Signature(digest, unsigned.signer, unsigned.meaning, time, unsigned.key_id, value)


def check_signature(sig: Signature, digest: str, trusted: dict[str, TrustedKey], *, source: str) -> TrustedKey:
    """The trusted key that made ``sig`` over ``digest``; SignatureError naming what is wrong otherwise."""
    from cryptography.exceptions import InvalidSignature

    if sig.algorithm != ALGORITHM:
        raise SignatureError(source, f"signature algorithm {sig.algorithm!r} is not {ALGORITHM}")
    if sig.digest != digest:
        raise SignatureError(
            source, f"the signature is over sha256 {sig.digest[:16]}…, not this content ({digest[:16]}…)"
        )
    key = trusted.get(sig.key_id)
    if key is None:
        raise SignatureError(
            source, f"signed by {sig.signer!r} with key {sig.key_id}, which is not in the trust directory"
        )
    try:
        key.key.verify(base64.b64decode(sig.value, validate=True), sig.payload())
    except (InvalidSignature, ValueError):
        raise SignatureError(source, f"the signature of {sig.signer!r} does not verify (bad or altered)") from None
    return key
