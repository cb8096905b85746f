"""The CLI as a user runs it: a real subprocess, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pharmakg

from .conftest import MINI


def run(
    *args: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "pharmakg.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        input=stdin,
        env=full_env,
    )


def test_load_query_json_and_info(tmp_path: Path) -> None:
    r = run("load", str(MINI), "--reason", "cli test", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "pharmakg-store" / "pharmakg-store.json").exists()  # default store path
    q = "SELECT ?id WHERE { ?b a pkg:Batch ; dcterms:identifier ?id } ORDER BY ?id"
    r = run("query", q, "--format", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"id": "B-001"}, {"id": "B-002"}]
    r = run("query", "-", "--format", "csv", cwd=tmp_path, stdin=q)
    assert r.stdout.splitlines() == ["id", "B-001", "B-002"]
    r = run("info", "--format", "json", cwd=tmp_path)
    doc = json.loads(r.stdout)
    assert {"class": "Batch", "instances": 2} in doc["classes"]


def test_store_option_in_any_position_and_env(tmp_path: Path) -> None:
    store = tmp_path / "elsewhere"
    assert run("--store", str(store), "load", str(MINI), cwd=tmp_path).returncode == 0
    r = run("query", "ASK { ?b a pkg:Batch }", "--store", str(store), "--format", "json", cwd=tmp_path)
    assert json.loads(r.stdout) == [{"boolean": True}]
    r = run("query", "ASK { ?b a pkg:Batch }", "--format", "json", cwd=tmp_path, env={"PHARMAKG_STORE": str(store)})
    assert json.loads(r.stdout) == [{"boolean": True}]


def test_errors_are_one_line_and_non_zero(tmp_path: Path) -> None:
    run("load", str(MINI), cwd=tmp_path)
    r = run("query", "SELECT ?x WHERE { ?x ?y }", cwd=tmp_path)
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1 and "line 1, column" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "materials.csv").write_text("id,name,kind\nX,Thing,gas\n")
    r = run("load", str(bad), cwd=tmp_path)
    assert r.returncode != 0
    assert "materials.csv, line 2, column 'kind'" in r.stderr and r.stderr.count("\n") == 1
    r = run("--debug", "query", "SELECT ?x WHERE { ?x ?y }", cwd=tmp_path)
    assert "Traceback" in r.stderr
    r = run("info", "--store", str(tmp_path / "nothing-here"), cwd=tmp_path)
    assert r.returncode != 0 and "no store here" in r.stderr


def test_export_backup_restore(tmp_path: Path) -> None:
    run("load", str(MINI), cwd=tmp_path)
    out = tmp_path / "dump.nq"
    assert run("export", "--out", str(out), cwd=tmp_path).returncode == 0
    assert b"MaterialLot" in out.read_bytes()
    r = run("export", "--format", "ttl", "--graph", "https://example.org/pharmakg/graph/mini", cwd=tmp_path)
    assert "@prefix" in r.stdout or "<https://" in r.stdout
    assert run("backup", str(tmp_path / "bk"), cwd=tmp_path).returncode == 0
    assert run("restore", str(tmp_path / "bk"), str(tmp_path / "restored"), cwd=tmp_path).returncode == 0
    r = run("export", "--store", str(tmp_path / "restored"), cwd=tmp_path)
    assert sorted(r.stdout.splitlines()) == sorted(out.read_text().splitlines())
    with pharmakg.open(tmp_path / "restored", read_only=True) as kg:  # a store another process may hold
        kg.backup(tmp_path / "from-read-only")
    r = run("export", "--store", str(tmp_path / "from-read-only"), cwd=tmp_path)
    assert sorted(r.stdout.splitlines()) == sorted(out.read_text().splitlines())


def test_update_needs_reason_and_validate(tmp_path: Path) -> None:
    run("load", str(MINI), cwd=tmp_path)
    r = run("update", "INSERT DATA { GRAPH <urn:g> { <urn:a> <urn:b> <urn:c> } }", cwd=tmp_path)
    assert r.returncode == 2 and "--reason" in r.stderr
    r = run("update", "INSERT DATA { GRAPH <urn:g> { <urn:a> <urn:b> <urn:c> } }", "--reason", "fix", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run("validate", "--engine", "compiled", cwd=tmp_path)
    assert r.returncode == 0 and "conforms" in r.stdout
