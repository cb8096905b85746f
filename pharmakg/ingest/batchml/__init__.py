"""BatchML / B2MML in and out (layer L3, part of ingest).

``stage_xml`` reads a BatchML recipe or batch production record, or a B2MML
material / production message, into staged triples that ``load_path``
commits like any other source (diff with the store, SHACL, one audited
transaction). ``export_batchml`` writes a recipe of the graph as a BatchML
V0700 document. Both versions in circulation are read: the MESA namespace of
V0700 and the WBF namespaces (BatchML-V02, B2MML-V0401) of the public
examples. Schemas are never fetched: validation uses a local folder of XSDs.
"""

from __future__ import annotations

from pathlib import Path

from ._read import stage_xml
from ._schemas import SCHEMAS_ENV, schema_folder, validate_document
from .export import export_batchml

__all__ = ["SCHEMAS_ENV", "export_batchml", "is_batchml", "schema_folder", "stage_xml", "validate_document"]

_RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"


def is_batchml(path: Path) -> bool:
    """Whether an ``.xml`` file goes to the BatchML reader: every XML file except RDF/XML (root ``rdf:RDF``)."""
    from lxml import etree

    try:
        for _, el in etree.iterparse(
            str(path), events=("start",), no_network=True, resolve_entities=False, load_dtd=False
        ):
            name = etree.QName(el)
            return not (name.namespace == _RDF_NS and name.localname == "RDF")
    except (etree.XMLSyntaxError, OSError):
        return True  # not XML at all: the BatchML reader says so, with the position
    return True
