"""Parsing and element helpers shared by the BatchML reader, validator and exporter (layer L3).

Every parse goes through :func:`parse_document`, which refuses DTDs, entity
expansion and network access (an XML file must not make pharmakg fetch or
expand anything), and turns lxml's syntax errors into an ``IngestError``
naming the file, line and character. Elements are matched by local name in
the document's own namespace, so one reader serves the WBF namespaces of
BatchML V02 / B2MML V0401 and the MESA namespace of V0700, whose element
names are the same where they overlap.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from ...errors import IngestError, Where

__all__ = [
    "B2MML_V0401",
    "BATCHML_V02",
    "KNOWN_NAMESPACES",
    "MESA_V0700",
    "element_path",
    "local",
    "parse_document",
    "safe_parser",
]

MESA_V0700 = "http://www.mesa.org/xml/B2MML"
BATCHML_V02 = "http://www.wbf.org/xml/BatchML-V02"
B2MML_V0401 = "http://www.wbf.org/xml/B2MML-V0401"
#: Namespace -> the version name used in messages.
KNOWN_NAMESPACES = {
    MESA_V0700: "B2MML/BatchML V0700 (MESA)",
    B2MML_V0401: "B2MML/BatchML V0401 (WBF)",
    BATCHML_V02: "BatchML V02 (WBF)",
}


def safe_parser() -> etree.XMLParser:
    """A parser that never reads a DTD, expands an entity or opens a URL."""
    return etree.XMLParser(
        no_network=True,
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_document(path: Path) -> etree._ElementTree:
    """Parse ``path`` as XML; an unreadable or malformed file is an ``IngestError`` with its position."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IngestError(Where(str(path)), f"cannot be read: {exc.strerror or exc}") from exc
    if not data.strip():
        raise IngestError(Where(str(path), 1), "is empty, not an XML document")
    try:
        root = etree.fromstring(data, safe_parser(), base_url=path.resolve().as_uri())
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else (exc.lineno, None)
        message = (exc.msg or str(exc)).split(", line ")[0]
        raise IngestError(
            Where(str(path), line or None, f"character {column}" if column else None),
            f"is not well-formed XML: {message}",
        ) from exc
    return etree.ElementTree(root)


def local(el: etree._Element) -> str:
    """The local name of an element (its tag without namespace)."""
    return etree.QName(el).localname


def element_path(el: etree._Element) -> str:
    """``/BatchInformation/MasterRecipe/RecipeElement[3]/ID``: local names, positions where siblings share one."""
    parts: list[str] = []
    node: etree._Element | None = el
    while node is not None:
        name = local(node)
        parent = node.getparent()
        if parent is not None:
            same = [c for c in parent if isinstance(c.tag, str) and c.tag == node.tag]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        parts.append(name)
        node = parent
    return "/" + "/".join(reversed(parts))
