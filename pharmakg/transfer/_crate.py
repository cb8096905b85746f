"""The package's RO-Crate manifest: written and read with the ``rocrate`` library.

``ro-crate-metadata.json`` describes every file of the package (name, what it
is, media type, size and sha256, and which product it is about); the
signature is made over the sha256 of exactly these bytes, so checksums and
signature together cover every file. ``signature.json`` is the one member the
manifest cannot list (it signs the manifest) and the only one allowed to be
absent from it.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any

from ..errors import PackageError

__all__ = ["MANIFEST", "SIGNATURE", "CrateFile", "build_manifest", "read_manifest"]

MANIFEST = "ro-crate-metadata.json"
SIGNATURE = "signature.json"


@dataclass(frozen=True)
class CrateFile:
    """One file of a package and how the manifest describes it."""

    name: str
    data: bytes
    title: str
    description: str
    media_type: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def build_manifest(files: list[CrateFile], *, root: dict[str, Any], about: dict[str, Any]) -> bytes:
    """``ro-crate-metadata.json`` for ``files``; ``root`` adds properties of the root dataset.

    ``about`` is the contextual entity (the product) every file is about.
    """
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

    crate = ROCrate()
    product = crate.add(ContextEntity(crate, about["@id"], properties={k: v for k, v in about.items() if k != "@id"}))
    for f in sorted(files, key=lambda f: f.name):
        crate.add_file(
            source=io.BytesIO(f.data),
            dest_path=f.name,
            properties={
                "name": f.title,
                "description": f.description,
                "encodingFormat": f.media_type,
                "contentSize": str(len(f.data)),
                "sha256": f.sha256,
                "about": {"@id": product.id},
            },
        )
    for key, value in root.items():
        crate.root_dataset[key] = value
    crate.root_dataset["about"] = product
    metadata = crate.metadata.generate()
    return json.dumps(metadata, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n"


def read_manifest(data: bytes, *, package: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(root dataset properties, file entities by path) of a manifest, after RO-Crate's own checks."""
    import warnings

    from rocrate.rocrate import ROCrate

    try:
        metadata = json.loads(data)
    except ValueError as exc:
        raise PackageError(package, f"is not JSON ({exc})", member=MANIFEST) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            crate = ROCrate(metadata)
        root = dict(crate.root_dataset.properties())
        files = {e.id: dict(e.properties()) for e in crate.data_entities if "File" in _types(e.properties())}
    except (ValueError, KeyError, TypeError, AttributeError, AssertionError) as exc:
        raise PackageError(package, f"is not a valid RO-Crate ({type(exc).__name__}: {exc})", member=MANIFEST) from None
    if "Dataset" not in _types(root):
        raise PackageError(package, "the root entity is not a Dataset", member=MANIFEST)
    for name, props in files.items():
        sha = props.get("sha256")
        if not isinstance(sha, str) or len(sha) != 64:
            raise PackageError(package, f"file {name!r} is described without a sha256", member=MANIFEST)
    return root, files


def _types(props: dict[str, Any]) -> list[str]:
    t = props.get("@type", [])
    return [t] if isinstance(t, str) else list(t)
