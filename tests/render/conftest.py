"""Render tests: every config the translator produces is also checked by the real ignition-validate,
and the conformance results are summed up as "passes/applicable" at the end of the session."""

from __future__ import annotations

import json

import pytest

from bootserver.render import butane

from . import ignition_validate

RESULTS: dict[str, str] = {}  # vector name -> "pass" | "fail" | "n/a"


@pytest.fixture(autouse=True)
def every_rendered_config_passes_ignition_validate(monkeypatch):
    """Wraps butane.translate (used by render_ignition too) and validates what it returned."""
    rendered: dict[str, dict] = {}
    real = butane.translate

    def translate(*args, **kwargs):
        result = real(*args, **kwargs)
        rendered[json.dumps(result.config, sort_keys=True)] = result.config
        return result

    monkeypatch.setattr(butane, "translate", translate)
    yield
    for config in rendered.values():
        ignition_validate.assert_valid(config)


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
