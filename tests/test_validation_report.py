"""The validation pack's trace matrix: every requirement names tests that exist, and verdicts follow results."""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

from tests import validation_report as vr

TESTS = Path(__file__).parent


def _all_tests() -> set[str]:
    out = set()
    for path in TESTS.glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
                out.add(f"tests/{path.name}::{node.name}")
    return out


def test_every_requirement_pattern_names_existing_tests() -> None:
    tests = _all_tests()
    for rid, _, _, patterns in vr.read_requirements():
        assert patterns, f"{rid} names no tests"
        for p in patterns:
            assert any(fnmatch.fnmatchcase(t, p) for t in tests), f"{rid}: {p} matches no test"


def test_verdicts_follow_the_last_results(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(
        """<testsuites><testsuite>
<testcase classname="tests.test_audit" name="test_an_edited_record_is_caught"/>
<testcase classname="tests.test_audit" name="test_swapped_records_are_caught"><failure message="x"/></testcase>
<testcase classname="tests.test_server" name="test_per_user_tokens_with_roles_name_the_writer_in_the_audit_trail"><skipped/></testcase>
<testcase classname="tests.test_transfer" name="test_diff_shows_exactly_the_changed_range"/>
</testsuite></testsuites>"""
    )
    rows = {r.id: r for r in vr.matrix(vr.read_results(junit), vr.read_requirements())}
    assert rows["PK-06"].verdict == "PASS"
    assert rows["AU-02"].verdict == "FAILING"  # one of its tests failed
    assert rows["SP-03"].verdict == "NOT RUN"
    assert rows["GR-01"].verdict == "NOT COVERED"  # no result for its tests in this run
    out = tmp_path / "report.html"
    assert vr.main([str(junit), str(out)]) == 1  # a failing requirement fails the report
    page = out.read_text()
    assert "AU-02" in page and "FAILING" in page and "test_swapped_records_are_caught" in page
