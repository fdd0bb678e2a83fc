"""The real `ignition-validate` (Debian package `ignition`, 2.14) as an independent oracle."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile

import pytest

BINARY = shutil.which("ignition-validate")


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


def assert_valid(config: dict) -> list[str]:
    """ignition-validate must exit 0 with no error line; returns its (warning) lines."""
    code, lines = run(config)
    errors = [line for line in lines if not line.startswith("warning")]
    assert code == 0 and not errors, f"ignition-validate rc={code}: {lines}"
    return lines


def error_paths(lines: list[str]) -> list[str]:
    return sorted(line.split(" at ", 1)[1].split(",", 1)[0] for line in lines if line.startswith("error at "))
