"""The validation pack: a requirements-to-tests trace matrix as HTML (GAMP 5 computer-system validation).

    python -m tests.validation_report build/junit.xml build/validation-report.html

Reads docs/requirements.csv (id, requirement, source, tests: space-separated
pytest node-id patterns, fnmatch style) and a JUnit XML file of the last test
run (``make unit`` writes build/junit.xml), and writes one row per
requirement: the tests that cover it, each test's last result, and a verdict
(covered and passing / failing / not covered / not run). ``make
validation-report`` runs the suite and then this.
"""

from __future__ import annotations

import csv
import datetime as dt
import fnmatch
import html
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "docs" / "requirements.csv"


@dataclass(frozen=True)
class Row:
    id: str
    requirement: str
    source: str
    tests: dict[str, str]  # node id -> passed | failed | skipped
    patterns: tuple[str, ...]

    @property
    def verdict(self) -> str:
        if not self.tests:
            return "NOT COVERED"
        results = set(self.tests.values())
        if "failed" in results:
            return "FAILING"
        if results == {"skipped"}:
            return "NOT RUN"
        return "PASS"


def read_results(junit: Path) -> dict[str, str]:
    """node id (tests/test_x.py::test_name[param]) -> passed | failed | skipped."""
    out: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        path = classname.replace(".", "/") + ".py"
        node = f"{path}::{name}"
        if case.find("failure") is not None or case.find("error") is not None:
            out[node] = "failed"
        elif case.find("skipped") is not None:
            out[node] = "skipped"
        else:
            out[node] = "passed"
    return out


def read_requirements(path: Path = REQUIREMENTS) -> list[tuple[str, str, str, tuple[str, ...]]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [(r["id"], r["requirement"], r["source"], tuple(r["tests"].split())) for r in csv.DictReader(f)]


def matrix(results: dict[str, str], requirements: list[tuple[str, str, str, tuple[str, ...]]]) -> list[Row]:
    rows = []
    for rid, text, source, patterns in requirements:
        hits = {
            node: result
            for node, result in results.items()
            if any(
                fnmatch.fnmatchcase(re.sub(r"\[.*\]$", "", node), p) or fnmatch.fnmatchcase(node, p) for p in patterns
            )
        }
        rows.append(Row(rid, text, source, dict(sorted(hits.items())), patterns))
    return rows


def render(rows: list[Row], *, junit: Path) -> str:
    colour = {"PASS": "#e6ffed", "FAILING": "#ffeef0", "NOT COVERED": "#fff8c5", "NOT RUN": "#f0f0f0"}
    body = []
    for r in rows:
        tests = "<br>".join(f"{html.escape(n)} — <b>{res}</b>" for n, res in r.tests.items()) or "(none)"
        body.append(
            f'<tr style="background:{colour[r.verdict]}"><td>{html.escape(r.id)}</td><td>{html.escape(r.requirement)}</td>'
            f"<td>{html.escape(r.source)}</td><td><small>{tests}</small></td><td><b>{r.verdict}</b></td></tr>"
        )
    counts = {v: sum(r.verdict == v for r in rows) for v in colour}
    summary = ", ".join(f"{n} {v.lower()}" for v, n in counts.items() if n)
    when = dt.datetime.fromtimestamp(junit.stat().st_mtime, dt.UTC).isoformat(timespec="seconds")
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>pharmakg validation report</title>'
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}</style></head><body>"
        "<h1>pharmakg: requirements-to-tests trace matrix</h1>"
        f"<p>Test results: {html.escape(str(junit))} (run {when}). {len(rows)} requirements: {summary}.</p>"
        "<table><tr><th>id</th><th>requirement</th><th>source</th><th>tests and last result</th><th>verdict</th></tr>"
        + "".join(body)
        + "</table></body></html>\n"
    )


def main(argv: list[str]) -> int:
    junit = Path(argv[0]) if argv else ROOT / "build" / "junit.xml"
    out = Path(argv[1]) if len(argv) > 1 else ROOT / "build" / "validation-report.html"
    rows = matrix(read_results(junit), read_requirements())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(rows, junit=junit), encoding="utf-8")
    bad = [r for r in rows if r.verdict != "PASS"]
    print(f"wrote {out}: {len(rows)} requirements, {len(rows) - len(bad)} pass" + (f", {len(bad)} not" if bad else ""))
    for r in bad:
        print(f"  {r.id}: {r.verdict}")
    return 1 if any(r.verdict == "FAILING" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
