"""Collects the conformance results so the session ends with "passes/applicable"."""

from __future__ import annotations

RESULTS: dict[str, str] = {}  # vector name -> "pass" | "fail" | "n/a"


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    passed = sum(1 for r in RESULTS.values() if r == "pass")
    applicable = sum(1 for r in RESULTS.values() if r != "n/a")
    line = f"butane conformance: {passed}/{applicable} applicable vectors pass ({len(RESULTS)} run"
    skipped = len(RESULTS) - applicable
    line += f", {skipped} not applicable)" if skipped else ")"
    terminalreporter.write_sep("=", line)
    failed = sorted(name for name, r in RESULTS.items() if r == "fail")
    if failed:
        terminalreporter.write_line("failing vectors: " + ", ".join(failed))
