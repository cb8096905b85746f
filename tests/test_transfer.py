"""Tech-transfer packages end to end: a development plant exports, a commercial site verifies, imports, diffs.

Real parts only: a demo plant in a real store with a fitted and validated
twin, real Ed25519 keys (ours and openssl's), real zips, and hostile zips
built byte by byte. Every refused package is checked to leave the receiving
store exactly as it was.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import pharmakg
from pharmakg import transfer
from pharmakg.demo import build_demo, receiving_site_bundle
from pharmakg.errors import PackageError, SignatureError
from pharmakg.twins import demo_twin, fit_twin

PARAM = "P-DRY-TIN"


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The development site: a plant with a validated drying twin, a signer's key, packages v1 and v2."""
    folder = tmp_path_factory.mktemp("transfer")
    kg = pharmakg.open(folder / "dev-store")
    build_demo(kg, batches=60, seed=1, out_dir=folder / "plant")
    twin = kg.twins.attach("MR-GRAN-UP3-OP1-PH2", fit_twin(kg, demo_twin("drying")), id="TW-DRY", reason="fitted")
    kg.twins.set_status(twin, "validated", reason="validation report VR-001 approved")
    key, public = transfer.generate_keypair(folder / "keys" / "dev.pem")
    trust = folder / "trust"
    trust.mkdir()
    shutil.copy(public, trust / "dev.pub.pem")
    v1 = transfer.export_package(kg, "MAT-TAB", folder / "tab-v1.zip", key=key, signer="Dr. Ada Dev", history=10)
    kg.update(
        f"DELETE {{ GRAPH ?g {{ ?p pkg:norLow ?o }} }} INSERT {{ GRAPH ?g {{ ?p pkg:norLow 58.0e0 }} }} "
        f"WHERE {{ GRAPH ?g {{ ?p dcterms:identifier '{PARAM}' ; pkg:norLow ?o }} }}",
        reason="CC-042: NOR narrowed after PPQ",
    )
    v2 = transfer.export_package(
        kg, "MAT-TAB", folder / "tab-v2.zip", key=key, signer="Dr. Ada Dev", version=2, history=10
    )
    yield {"kg": kg, "folder": folder, "key": key, "trust": trust, "v1": v1.path, "v2": v2.path, "export": v1}
    kg.close()


def _site(tmp_path: Path) -> pharmakg.KnowledgeGraph:
    kg = pharmakg.open(tmp_path / "site-store")
    kg.load(receiving_site_bundle(tmp_path / "site"), reason="commercial site equipment")
    return kg


def _nor(kg: pharmakg.KnowledgeGraph) -> list[tuple[float, float]]:
    frame = kg.query(f"SELECT ?lo ?hi WHERE {{ ?p dcterms:identifier '{PARAM}' ; pkg:norLow ?lo ; pkg:norHigh ?hi }}")
    return sorted(zip(frame["lo"], frame["hi"], strict=True))


def _rewrite(
    src: Path, dst: Path, *, change: dict[str, bytes] | None = None, add: dict[str, bytes] | None = None
) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = (change or {}).get(info.filename, zin.read(info))
            zout.writestr(info.filename, data)
        for name, data in (add or {}).items():
            zout.writestr(name, data)
    return dst


# ---------------------------------------------------------------------------------------------- export


def test_the_package_describes_every_file_and_carries_the_whole_chain(dev) -> None:
    pkg = transfer.read_package(dev["v1"])
    manifest = json.loads(pkg.members["ro-crate-metadata.json"])
    described = {e["@id"] for e in manifest["@graph"] if e.get("@type") == "File"}
    assert described == set(pkg.members) - {"ro-crate-metadata.json", "signature.json"}
    assert {"data/knowledge.nq", "shapes/shapes.ttl", "validation/conformance.ttl", "summary.html"} <= described
    assert "twins/TW-DRY-v1.json" in described
    counts = pkg.header["counts"]
    assert counts["products (chain)"] == 2  # the tablet and the granulate it is made from
    assert counts["recipes"] == 6 and counts["twins"] == 1 and counts["history batches"] == 20
    tables = pkg.tables()
    nor = tables["parameters"].set_index("id").loc[PARAM]
    assert (nor["nor_low"], nor["nor_high"], nor["criticality"]) == (57.0, 63.0, "CPP")
    assert {"Q-TAB-DISS", "Q-GRN-LOD"} <= set(tables["attributes"]["id"])
    assert len(tables["impacts"]) == dev["export"].counts["impacts"] > 0
    assert b"sh:conforms true" in pkg.members["validation/conformance.ttl"]
    page = pkg.members["summary.html"].decode()
    assert PARAM in page and "Recipes" in page and "<script" not in page
    history = pkg.members["data/history.csv"].decode().splitlines()
    assert len(history) == 21 and PARAM in history[0]
    # no lots, people or instruments leave the site
    assert b"/lot/" not in pkg.members["data/knowledge.nq"] and b"pkg:analyst" not in pkg.members["data/knowledge.nq"]


def test_export_is_deterministic_apart_from_its_time_and_signature(dev, tmp_path) -> None:
    again = transfer.export_package(
        dev["kg"], "MAT-TAB", tmp_path / "again.zip", key=dev["key"], signer="Dr. Ada Dev", version=2, history=10
    )
    a, b = transfer.read_package(dev["v2"]), transfer.read_package(again.path)
    for name in ("data/knowledge.nq", "data/history.csv", "twins/TW-DRY-v1.json", "shapes/shapes.ttl"):
        assert a.members[name] == b.members[name], name


def test_an_openssl_key_signs_and_verifies(dev, tmp_path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key, pub = tmp_path / "qa.pem", tmp_path / "trust" / "qa.pem"
    pub.parent.mkdir()
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True)
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)], check=True)
    out = transfer.export_package(dev["kg"], "MAT-GRAN", tmp_path / "gran.zip", key=key, signer="Q. A. Head", history=3)
    report = transfer.verify_package(out.path, trust=pub.parent)
    assert report.trusted and "Q. A. Head" in str(report)


# ---------------------------------------------------------------------------------------------- verify


def test_verify_needs_no_store_and_names_each_check(dev) -> None:
    report = transfer.verify_package(dev["v1"], trust=dev["trust"])
    assert report.trusted
    assert [c for c, _ in report.checks] == ["zip", "manifest", "checksums", "signature", "SHACL"]
    unchecked = transfer.verify_package(dev["v1"])
    assert not unchecked.trusted and "NOT checked" in str(unchecked)


def _hostile(dev, tmp_path: Path) -> dict[str, tuple[Path, type[Exception], str]]:
    v1: Path = dev["v1"]
    members = transfer.read_package(v1).members
    sig = json.loads(members["signature.json"])
    other = tmp_path / "other-trust"
    other.mkdir()
    _, other_pub = transfer.generate_keypair(tmp_path / "mallory.pem")
    shutil.copy(other_pub, other / "mallory.pub.pem")
    bad_sig = dict(sig, value=sig["value"][:-4] + ("AAA=" if not sig["value"].endswith("AAA=") else "BBB="))
    forged = dict(sig, meaning="approved for commercial use")
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("ro-crate-metadata.json", members["ro-crate-metadata.json"])
        z.writestr("data/knowledge.nq", b"\0" * (64 << 20))
    slip = tmp_path / "slip.zip"
    with zipfile.ZipFile(slip, "w") as z:
        z.writestr("ro-crate-metadata.json", members["ro-crate-metadata.json"])
        z.writestr("../../etc/cron.d/evil", b"* * * * * root true\n")
    absolute = tmp_path / "absolute.zip"
    with zipfile.ZipFile(absolute, "w") as z:
        z.writestr("/tmp/evil", b"x")
    not_crate = json.dumps({"@context": "https://w3id.org/ro/crate/1.1/context", "@graph": [{"@id": "x"}]}).encode()
    return {
        "tampered file": (
            _rewrite(
                v1,
                tmp_path / "tampered.zip",
                change={"data/knowledge.nq": members["data/knowledge.nq"].replace(b'"57"', b'"50"', 1) + b"\n"},
            ),
            PackageError,
            "checksum mismatch",
        ),
        "unlisted file": (
            _rewrite(v1, tmp_path / "extra.zip", add={"data/extra.nq": b""}),
            PackageError,
            "not listed in the manifest",
        ),
        "bad signature": (
            _rewrite(v1, tmp_path / "badsig.zip", change={"signature.json": json.dumps(bad_sig).encode()}),
            SignatureError,
            "does not verify",
        ),
        "forged meaning": (
            _rewrite(v1, tmp_path / "forged.zip", change={"signature.json": json.dumps(forged).encode()}),
            SignatureError,
            "does not verify",
        ),
        "unsigned": (_strip(v1, tmp_path / "unsigned.zip", "signature.json"), SignatureError, "not signed"),
        "zip bomb": (bomb, PackageError, "zip bomb"),
        "zip slip": (slip, PackageError, "zip-slip"),
        "absolute path": (absolute, PackageError, "absolute member path"),
        "not RO-Crate": (
            _rewrite(v1, tmp_path / "notcrate.zip", change={"ro-crate-metadata.json": not_crate}),
            PackageError,
            "not a valid RO-Crate",
        ),
        "not a zip": (_write(tmp_path / "text.zip", b"just text"), PackageError, "not a zip archive"),
    }


def _strip(src: Path, dst: Path, name: str) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename != name:
                zout.writestr(info.filename, zin.read(info))
    return dst


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_hostile_packages_are_refused_by_verify_and_leave_the_store_as_it_was(dev, tmp_path) -> None:
    site = _site(tmp_path)
    before = site.export(format="nq")
    for case, (path, error, words) in _hostile(dev, tmp_path).items():
        with pytest.raises(error, match=words):
            transfer.verify_package(path, trust=dev["trust"])
        with pytest.raises(error, match=words):
            transfer.import_package(site, path, trust=dev["trust"], reason="transfer")
        assert site.export(format="nq") == before, case
    site.close()


def test_an_untrusted_signer_and_an_oversized_member_are_refused(dev, tmp_path) -> None:
    other = tmp_path / "trust"
    other.mkdir()
    _, pub = transfer.generate_keypair(tmp_path / "someone.pem")
    shutil.copy(pub, other / "someone.pub.pem")
    with pytest.raises(SignatureError, match="not in the trust directory"):
        transfer.verify_package(dev["v1"], trust=other)
    with pytest.raises(PackageError, match="oversized member"):
        transfer.verify_package(dev["v1"], limits=transfer.ZipLimits(max_member_bytes=10_000))
    shutil.copy(dev["key"], other / "leaked-private.pem")
    with pytest.raises(SignatureError, match="private key"):
        transfer.verify_package(dev["v1"], trust=other)


# ---------------------------------------------------------------------------------------------- import


def test_import_maps_equipment_reruns_twins_and_records_the_version(dev, tmp_path) -> None:
    site = _site(tmp_path)
    report = transfer.import_package(site, dev["v1"], trust=dev["trust"], reason="CC-100 transfer to Lakeside")
    assert report.current and not report.already_imported
    assert _nor(site) == [(57.0, 63.0)]
    eq = report.equipment.set_index("sending_unit")
    assert eq.loc["DRY-01", "receiving_unit"] == "L-DRY-02"  # 500 kg is closer to 600 kg than 1200 kg is
    assert eq.loc["DRY-01", "scale_factor"] == pytest.approx(500 / 600)
    assert eq.loc["GRN-01", "receiving_unit"] == "L-GRN-01"
    assert set(report.unmatched["equipment_class"]) == {"PanCoater"}  # Lakeside has no coater
    assert report.twins.set_index("twin").loc["TW-DRY", "reproduced"]
    twin = site.twins.load("TW-DRY")
    assert twin.status == "validated"
    mapped = site.rows(
        "SELECT ?a ?b WHERE { ?u pkg:mappedTo ?r . ?u dcterms:identifier ?a . ?r dcterms:identifier ?b }"
    )
    assert {"a": "DRY-01", "b": "L-DRY-02"} in mapped
    audit = site.rows("SELECT ?a ?why WHERE { ?r a pkg:AuditRecord ; pkg:action ?a ; pkg:reason ?why }")
    assert {"a": "import", "why": "CC-100 transfer to Lakeside"} in audit
    assert site.validate(engine="compiled").conforms
    # the history graph was checkpointed from the package's own lines, not read back: they must agree
    assert site.verify_audit().ok, site.verify_audit()
    again = transfer.import_package(site, dev["v1"], trust=dev["trust"], reason="again")
    assert again.already_imported
    site.close()


def test_a_second_version_replaces_the_current_knowledge_and_keeps_the_first(dev, tmp_path) -> None:
    site = _site(tmp_path)
    transfer.import_package(site, dev["v1"], trust=dev["trust"], reason="transfer v1")
    report = transfer.import_package(site, dev["v2"], trust=dev["trust"], reason="transfer v2 (CC-042)")
    assert report.current
    assert _nor(site) == [(58.0, 63.0)]  # one version's range, never both
    kept = site.rows(
        f"""SELECT ?o WHERE {{ GRAPH <{transfer.version_graph(site.base, "MAT-TAB", 1)}> {{
  ?st rdf:subject ?p ; rdf:predicate pkg:norLow ; rdf:object ?o }} ?p dcterms:identifier '{PARAM}' }}"""
    )
    assert [float(r["o"]) for r in kept] == [57.0]
    registry = site.rows(
        "SELECT ?v ?cur WHERE { ?pk a pkg:TransferPackage ; pkg:packageVersion ?v ; pkg:current ?cur } ORDER BY ?v"
    )
    assert registry == [{"v": "1", "cur": "false"}, {"v": "2", "cur": "true"}]
    site.close()


def test_an_older_version_imported_later_is_kept_but_not_current(dev, tmp_path) -> None:
    site = _site(tmp_path)
    transfer.import_package(site, dev["v2"], trust=dev["trust"], reason="transfer v2")
    late = transfer.import_package(site, dev["v1"], trust=dev["trust"], reason="archive v1")
    assert not late.current
    assert _nor(site) == [(58.0, 63.0)]
    assert site.verify_audit().ok  # the history graph was not empty: read back, not taken from the package
    site.close()


def test_a_same_version_with_other_content_is_refused(dev, tmp_path) -> None:
    site = _site(tmp_path)
    transfer.import_package(site, dev["v1"], trust=dev["trust"], reason="transfer v1")
    relabelled = tmp_path / "v2-as-v1.zip"
    transfer.export_package(
        dev["kg"], "MAT-TAB", relabelled, key=dev["key"], signer="Dr. Ada Dev", version=1, history=10
    )
    before = site.export(format="nq")
    with pytest.raises(PackageError, match="already imported with a different manifest"):
        transfer.import_package(site, relabelled, trust=dev["trust"], reason="oops")
    assert site.export(format="nq") == before
    site.close()


def test_knowledge_that_contradicts_the_receiving_store_is_refused(dev, tmp_path) -> None:
    site = _site(tmp_path)
    site.update(
        f"INSERT DATA {{ GRAPH <{site.base}graph/local> {{ <{site.base}parameter/{PARAM}> pkg:norLow 40.0e0 }} }}",
        reason="a local definition made before the transfer",
    )
    before = site.export(format="nq")
    with pytest.raises(PackageError, match=r"norLow.*the store holds '40'"):
        transfer.import_package(site, dev["v1"], trust=dev["trust"], reason="transfer")
    assert site.export(format="nq") == before
    site.close()


def test_a_twin_that_does_not_reproduce_its_references_is_refused(dev, tmp_path) -> None:
    pkg = transfer.read_package(dev["v1"])
    ref = json.loads(pkg.members["twins/TW-DRY-v1.json"])
    first = next(iter(ref["outputs"]))
    ref["outputs"][first][0] += 0.5
    # the sender signs a package whose reference predictions are not what the twin computes
    from pharmakg.signing import sign_digest
    from pharmakg.transfer import _crate, _zip

    members = dict(pkg.members)
    members["twins/TW-DRY-v1.json"] = json.dumps(ref).encode()
    manifest = json.loads(members["ro-crate-metadata.json"])
    import hashlib

    for e in manifest["@graph"]:
        if e["@id"] == "twins/TW-DRY-v1.json":
            e["sha256"] = hashlib.sha256(members["twins/TW-DRY-v1.json"]).hexdigest()
    members[_crate.MANIFEST] = json.dumps(manifest).encode()
    members[_crate.SIGNATURE] = sign_digest(
        hashlib.sha256(members[_crate.MANIFEST]).hexdigest(), key=dev["key"], signer="Dr. Ada Dev", meaning="approved"
    ).to_json()
    bad = tmp_path / "bad-twin.zip"
    _zip.write_zip(bad, members)
    transfer.verify_package(bad, trust=dev["trust"])  # intact and signed ...
    site = _site(tmp_path)
    before = site.export(format="nq")
    with pytest.raises(PackageError, match="TW-DRY v1 does not reproduce"):  # ... but the model disagrees
        transfer.import_package(site, bad, trust=dev["trust"], reason="transfer")
    assert site.export(format="nq") == before
    site.close()


def test_import_on_every_backend(dev, kg) -> None:
    """The same import on an in-memory, an on-disk and a remote (oxigraph serve) store."""
    kg.load(
        receiving_site_bundle(Path(dev["folder"]) / f"site-{kg.store.location.replace('/', '_')[-20:]}"), reason="site"
    )
    report = transfer.import_package(kg, dev["v2"], trust=dev["trust"], reason="transfer")
    assert report.current and _nor(kg) == [(58.0, 63.0)]
    assert kg.twins.load("TW-DRY").status == "validated"
    assert kg.verify_audit().ok


# ---------------------------------------------------------------------------------------------- diff


def test_diff_shows_exactly_the_changed_range(dev) -> None:
    diff = transfer.diff_packages(dev["v1"], dev["v2"])
    rows = diff.to_frame().to_dict("records")
    assert rows == [
        {
            "category": "CPP range / parameter",
            "kind": "ProcessParameter",
            "id": PARAM,
            "property": "norLow",
            "before": "57",
            "after": "58",
            "change": "changed",
        }
    ]
    page = diff.to_html()
    assert PARAM in page and "norLow" in page
    assert len(transfer.diff_packages(dev["v1"], dev["v1"])) == 0


# ---------------------------------------------------------------------------------------------- CLI


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pharmakg", *args], capture_output=True, text=True)


def test_cli_keygen_verify_import_diff(dev, tmp_path) -> None:
    made = _cli("package", "keygen", str(tmp_path / "k.pem"))
    assert made.returncode == 0 and (tmp_path / "k.pub.pem").exists()
    assert (tmp_path / "k.pem").stat().st_mode & 0o077 == 0
    ok = _cli("package", "verify", str(dev["v1"]), "--trust", str(dev["trust"]))
    assert ok.returncode == 0 and "verified" in ok.stdout
    bad = _rewrite(dev["v1"], tmp_path / "extra.zip", add={"notes.txt": b"hi"})
    refused = _cli("package", "verify", str(bad), "--trust", str(dev["trust"]))
    assert refused.returncode != 0 and "notes.txt" in refused.stderr and "not listed" in refused.stderr
    store = tmp_path / "cli-store"
    assert _cli("--store", str(store), "load", str(receiving_site_bundle(tmp_path / "site"))).returncode == 0
    imported = _cli(
        "--store", str(store), "package", "import", str(dev["v1"]), "--trust", str(dev["trust"]), "--reason", "transfer"
    )
    assert imported.returncode == 0, imported.stderr
    assert "L-DRY-02" in imported.stdout
    diff = _cli(
        "package", "diff", str(dev["v1"]), str(dev["v2"]), "--format", "json", "--html", str(tmp_path / "d.html")
    )
    assert diff.returncode == 0
    assert json.loads(diff.stdout)[0]["id"] == PARAM and (tmp_path / "d.html").exists()


def test_package_errors_pickle_with_their_fields() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(PackageError("p.zip", "checksum mismatch", member="data/knowledge.nq")))
    assert (err.package, err.member, str(err)) == (
        "p.zip",
        "data/knowledge.nq",
        "p.zip [data/knowledge.nq]: checksum mismatch",
    )
    assert isinstance(SignatureError("p.zip", "x"), ValueError)
