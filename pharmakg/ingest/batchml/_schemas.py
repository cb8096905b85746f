"""Validate BatchML / B2MML documents against XSDs from a local folder (layer L3).

Nothing is fetched: the schema folder is given (``schemas=``, ``--schemas``
or ``$PHARMAKG_XML_SCHEMAS``) and searched recursively for ``*.xsd`` files.
The schema for a document is chosen by its root element: among the XSDs of
the root's namespace, one that declares the root as a global element (an
``AllSchemas.xsd`` if one does, since it includes every module). An
``xsd:include`` or ``xsd:import`` whose file is not next to the including
schema is looked up by file name in the same folder, which is how the vendor
schema of the V0401 batch-record example (shipped without the WBF common
schemas it includes) compiles against the WBF set. Compiled schemas are kept
per process, keyed by the file and its modification time.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from lxml import etree

from ...errors import IngestError, Where
from ._xml import KNOWN_NAMESPACES, element_path, local, safe_parser

__all__ = ["SCHEMAS_ENV", "SchemaIndex", "schema_folder", "validate_document"]

#: Environment variable naming the schema folder when none is passed.
SCHEMAS_ENV = "PHARMAKG_XML_SCHEMAS"
_XSD = "{http://www.w3.org/2001/XMLSchema}"


def schema_folder(schemas: str | Path | None) -> Path | None:
    """The folder to validate against: ``schemas`` if given, else ``$PHARMAKG_XML_SCHEMAS``, else None."""
    chosen = schemas if schemas not in (None, "") else os.environ.get(SCHEMAS_ENV) or None
    if chosen is None:
        return None
    folder = Path(chosen)
    if not folder.is_dir():
        source = "schemas=" if schemas not in (None, "") else f"${SCHEMAS_ENV}"
        raise IngestError(Where(str(folder)), f"is not a folder of XSD files ({source})")
    return folder


@dataclass
class SchemaIndex:
    """The XSDs of one folder: by target namespace, by declared global element and by file name."""

    folder: Path
    by_namespace: dict[str, list[Path]] = field(default_factory=dict)
    by_root: dict[tuple[str, str], list[Path]] = field(default_factory=dict)
    by_name: dict[str, list[Path]] = field(default_factory=dict)

    @classmethod
    def scan(cls, folder: Path) -> SchemaIndex:
        index = cls(folder)
        for xsd in sorted(folder.rglob("*.xsd")):
            index.by_name.setdefault(xsd.name, []).append(xsd)
            try:
                root = etree.parse(str(xsd), safe_parser()).getroot()
            except etree.XMLSyntaxError as exc:
                raise IngestError(Where(str(xsd), exc.lineno), f"is not a readable XSD: {exc.msg}") from exc
            namespace = root.get("targetNamespace", "")
            index.by_namespace.setdefault(namespace, []).append(xsd)
            for el in root.findall(f"{_XSD}element"):
                if el.get("name"):
                    index.by_root.setdefault((namespace, el.get("name", "")), []).append(xsd)
        return index

    def schema_for(self, namespace: str, name: str) -> Path | None:
        """The XSD to validate a document whose root is ``{namespace}name`` with (None: no XSD of that namespace)."""
        candidates = self.by_namespace.get(namespace, [])
        if not candidates:
            return None
        entries = [p for p in candidates if p.name.lower() == "allschemas.xsd"]
        declaring = self.by_root.get((namespace, name), [])
        if declaring:
            # an AllSchemas.xsd beside the declaring module includes it and every other module
            beside = [e for e in entries if any(d.parent == e.parent for d in declaring)]
            return beside[0] if beside else declaring[0]
        # no XSD declares the root: validating against the set gives lxml's own message for that
        return entries[0] if entries else candidates[0]


class _LocalResolver(etree.Resolver):
    """Resolve includes/imports to files of the schema folder; never to the network."""

    def __init__(self, index: SchemaIndex) -> None:
        super().__init__()
        self.index = index

    def resolve(self, system_url: str, public_id: str, context: object) -> object:
        parsed = urlparse(system_url)
        if parsed.scheme in ("", "file"):
            candidate = Path(unquote(parsed.path))
            if candidate.exists():
                return None  # lxml reads it itself
        name = Path(unquote(parsed.path)).name
        found = self.index.by_name.get(name)
        if found:
            # keep the requested URL as the document's base: the schema compiler knows an included
            # file by that URL, so a module included twice (directly and through another) stays one
            return self.resolve_string(found[0].read_bytes(), context, base_url=system_url)
        return None  # lxml fails with its own message (no network access)


_lock = threading.Lock()
_compiled: dict[tuple[str, float], etree.XMLSchema] = {}
_indexes: dict[str, tuple[float, SchemaIndex]] = {}


def _index(folder: Path) -> SchemaIndex:
    key = str(folder.resolve())
    stamp = max((p.stat().st_mtime for p in folder.rglob("*.xsd")), default=0.0)
    with _lock:
        hit = _indexes.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
    index = SchemaIndex.scan(folder)
    with _lock:
        _indexes[key] = (stamp, index)
    return index


def _compile(xsd: Path, index: SchemaIndex) -> etree.XMLSchema:
    key = (str(xsd.resolve()), xsd.stat().st_mtime)
    with _lock:
        hit = _compiled.get(key)
    if hit is not None:
        return hit
    parser = safe_parser()
    parser.resolvers.add(_LocalResolver(index))
    try:
        schema = etree.XMLSchema(etree.parse(str(xsd), parser))
    except (etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
        try:
            schema = etree.XMLSchema(_driver(xsd, index, parser))
        except (etree.XMLSchemaParseError, etree.XMLSyntaxError):
            raise IngestError(Where(str(xsd)), f"does not compile as an XML schema: {exc}") from exc
    with _lock:
        _compiled[key] = schema
    return schema


def _driver(xsd: Path, index: SchemaIndex, parser: etree.XMLParser) -> etree._ElementTree:
    """A schema that imports what ``xsd`` and its includes import, then includes ``xsd``.

    libxml2 resolves circular imports by order: the WBF V0401 modules import
    their extension namespace, whose schemas import the modules back, and a
    vendor schema that includes ``Common`` before the module importing the
    extensions fails to compile ("does not resolve to a model group"). Doing
    the imports first, as the WBF modules themselves do, compiles it.
    """
    root = etree.parse(str(xsd), safe_parser()).getroot()
    namespace = root.get("targetNamespace", "")
    sources = [root]
    for inc in root.findall(f"{_XSD}include"):
        location = inc.get("schemaLocation", "")
        found = xsd.parent / location if (xsd.parent / location).exists() else None
        found = found or next(iter(index.by_name.get(Path(location).name, [])), None)
        if found is not None:
            sources.append(etree.parse(str(found), safe_parser()).getroot())
    imports: dict[str, Path] = {}
    for source in sources:
        for imp in source.findall(f"{_XSD}import"):
            ns = imp.get("namespace", "")
            if ns and ns != namespace and ns not in imports and index.by_namespace.get(ns):
                imports[ns] = max(index.by_namespace[ns], key=_include_count)  # the "All..." entry of that namespace
    body = "".join(
        f'<xsd:import namespace="{ns}" schemaLocation="{path.resolve().as_uri()}"/>' for ns, path in imports.items()
    )
    text = (
        f'<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema" targetNamespace="{namespace}" '
        f'elementFormDefault="qualified">{body}<xsd:include schemaLocation="{xsd.resolve().as_uri()}"/></xsd:schema>'
    )
    base = (xsd.parent.resolve() / "__pharmakg_driver__.xsd").as_uri()
    return etree.ElementTree(etree.fromstring(text.encode(), parser, base_url=base))


def _include_count(xsd: Path) -> int:
    root = etree.parse(str(xsd), safe_parser()).getroot()
    return len(root.findall(f"{_XSD}include"))


def validate_document(tree: etree._ElementTree, *, file: str, folder: Path) -> Path:
    """Validate ``tree`` against the folder's XSD for its root; return the XSD used.

    An invalid document is refused with the line, the element path and the
    schema's own message for the first error (and how many more there are).
    """
    root = tree.getroot()
    namespace = etree.QName(root).namespace or ""
    index = _index(folder)
    xsd = index.schema_for(namespace, local(root))
    if xsd is None:
        known = ", ".join(f"{v} ({k})" for k, v in KNOWN_NAMESPACES.items())
        raise IngestError(
            Where(file, root.sourceline, element_path(root)),
            f"no XSD under {folder} has the target namespace {namespace!r} of this document, so it cannot be "
            f"validated; give a folder holding its schemas (known: {known}) or load it without schemas",
        )
    schema = _compile(xsd, index)
    if schema.validate(tree):
        return xsd
    errors = list(schema.error_log)
    first = errors[0]
    where_el = _element_at(tree, first.path)
    path = element_path(where_el) if where_el is not None else first.path
    more = len(errors) - 1
    suffix = f" ({more} more schema error{'s' if more > 1 else ''})" if more else ""
    raise IngestError(
        Where(file, first.line or None, path),
        f"is not valid against {xsd.name}: {first.message}{suffix}",
    )


def _element_at(tree: etree._ElementTree, xpath: str | None) -> etree._Element | None:
    if not xpath:
        return None
    try:
        found = tree.xpath(xpath)
    except etree.XPathError:
        return None
    if isinstance(found, list) and found and isinstance(found[0], etree._Element):
        return found[0]
    return None
