"""The real `ignition-validate` (Debian package `ignition`, 2.14) as an independent oracle."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile

import pytest

from bootserver.render import ignition_check
from bootserver.render.report import path_string

BINARY = shutil.which("ignition-validate")
# 2.14 checks 3.4.0 configs as 3.4.0-experimental, which predates these fields of the final 3.4.0
NOT_IN_2_14_EXPERIMENTAL = frozenset(("discard", "openOptions", "advertisement"))


def run(config: dict) -> tuple[int, list[str]]:
    """(exit code, output lines). 2.14 knows 3.4.0 only as 3.4.0-experimental, so that is what it gets."""
    if BINARY is None:
        pytest.fail("ignition-validate is not installed (apt-get install ignition)")
    data = json.loads(json.dumps(config))
    if data.get("ignition", {}).get("version") == "3.4.0":
        data["ignition"]["version"] = "3.4.0-experimental"
    with tempfile.NamedTemporaryFile("w", suffix=".ign") as handle:
        json.dump(data, handle)
        handle.flush()
        proc = subprocess.run([BINARY, handle.name], capture_output=True, text=True, timeout=30)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    return proc.returncode, lines


def entries(lines: list[str]) -> set[tuple[str, str, str]]:
    """(kind, path, message) of each reported line, minus the 2.14-experimental artefacts."""
    out = set()
    for line in lines:
        kind, _, rest = line.partition(" at ")
        where, _, message = rest.partition(": ")
        if message.startswith("Unused key ") and message.split()[-1] in NOT_IN_2_14_EXPERIMENTAL:
            continue
        out.add((kind, where.split(",")[0], message))
    return out


def assert_agrees(config: dict) -> tuple[int, set]:
    """bootserver's structural check reports exactly what ignition-validate reports (errors and warnings)."""
    code, lines = run(config)
    theirs = entries(lines)
    report = ignition_check.check(config)
    ours = {(e.kind, path_string(e.path), e.message) for e in report.entries}
    assert ours == theirs, f"only ours {sorted(ours - theirs)}, only theirs {sorted(theirs - ours)}"
    assert (code != 0) == report.fatal, lines
    return code, theirs


def assert_valid(config: dict) -> None:
    """ignition-validate exits 0 with no error line, and the structural check agrees entry for entry."""
    code, theirs = assert_agrees(config)
    assert code == 0 and not [e for e in theirs if e[0] != "warning"], theirs


def error_paths(lines: list[str]) -> list[str]:
    return sorted(where for kind, where, _ in entries(lines) if kind == "error")
