"""Reading and writing package zips without trusting them.

A package comes from another company's network, so its zip is read as hostile
until proven otherwise: nothing is extracted to disk, every member name is
checked before it is read (no absolute paths, no ``..``, no backslashes, no
symlinks, no duplicates), declared sizes and compression ratios are capped
before decompression starts, and each read is bounded so a member that lies
about its size cannot exhaust memory. Writing is deterministic (sorted names,
fixed timestamps) so the same content gives the same bytes.
"""

from __future__ import annotations

import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import PackageError

__all__ = ["ZipLimits", "read_members", "write_zip"]

_EPOCH = (2000, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class ZipLimits:
    """Bounds on what a package may ask us to decompress."""

    max_members: int = 10_000
    max_member_bytes: int = 1 << 30  # one member, uncompressed
    max_total_bytes: int = 4 << 30  # all members, uncompressed
    max_ratio: float = 200.0  # uncompressed / compressed, per member (text compresses ~10x)


def _check_name(name: str, package: str) -> None:
    path = PurePosixPath(name)
    if not name or "\\" in name or "\x00" in name:
        raise PackageError(package, "member name is empty or holds a backslash or NUL", member=name)
    if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise PackageError(package, "absolute member path (zip-slip)", member=name)
    if any(part == ".." for part in path.parts):
        raise PackageError(package, "member path climbs out of the package with '..' (zip-slip)", member=name)


def read_members(path: str | Path, *, limits: ZipLimits | None = None) -> dict[str, bytes]:
    """Every file member of the zip at ``path`` by name, after the checks above."""
    limits = limits or ZipLimits()
    package = str(path)
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise PackageError(package, "no such file") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise PackageError(package, f"not a zip archive ({exc})") from None
    out: dict[str, bytes] = {}
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise PackageError(package, f"{len(infos)} members, more than the limit of {limits.max_members}")
        total = 0
        for info in infos:
            name = info.filename
            _check_name(name, package)
            if info.is_dir():
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                raise PackageError(package, "member is a symbolic link", member=name)
            if name in out:
                raise PackageError(package, "member appears twice", member=name)
            if info.file_size > limits.max_member_bytes:
                raise PackageError(
                    package, f"oversized member: {info.file_size} bytes (limit {limits.max_member_bytes})", member=name
                )
            if info.file_size > limits.max_ratio * max(info.compress_size, 1) and info.file_size > 1 << 20:
                raise PackageError(
                    package,
                    f"compression ratio {info.file_size / max(info.compress_size, 1):.0f}:1 exceeds "
                    f"{limits.max_ratio:.0f}:1 (zip bomb?)",
                    member=name,
                )
            total += info.file_size
            if total > limits.max_total_bytes:
                raise PackageError(package, f"members add up to more than {limits.max_total_bytes} bytes")
            try:
                with zf.open(info) as f:
                    data = f.read(info.file_size + 1)  # one byte more than declared reveals a lying header
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                raise PackageError(package, f"cannot be read ({exc})", member=name) from None
            if len(data) != info.file_size:
                raise PackageError(package, "member size differs from its header (tampered zip)", member=name)
            out[name] = data
    return out


def write_zip(path: str | Path, members: dict[str, bytes]) -> None:
    """Write ``members`` (name -> bytes) as a deflated zip with sorted names and fixed timestamps."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, members[name])
    tmp.replace(path)
