"""The walls of docs/design.md hold: import contracts (pyproject.toml [tool.importlinter]) and
adapters that talk to Runtime only through its intent methods."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = ("dhcp", "tftp", "http", "board")
RUNTIME_FIELDS = {"store", "catalog", "settings", "components", "last_reload_error", "http_port"}


def test_import_contracts_hold():
    """`lint-imports` in a child process: it reconfigures logging, which must not leak into other tests."""
    run = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()",
                          "--no-cache", "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout and "BROKEN" not in run.stdout


def runtime_field_uses(path: Path) -> list[str]:
    """`runtime.<field>` / `self.runtime.<field>` reads of Runtime's state in one adapter file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in RUNTIME_FIELDS:
            owner = node.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if name == "runtime":
                found.append((node.lineno, f"{path.name}:{node.lineno}: runtime.{node.attr}"))
    return [use for _line, use in sorted(found)]


def test_adapters_use_intent_methods_only():
    uses = [use for adapter in ADAPTERS for path in sorted((ROOT / "bootserver" / adapter).rglob("*.py"))
            for use in runtime_field_uses(path)]
    assert uses == []


def test_the_field_check_sees_a_reach_past_runtime(tmp_path):
    sample = tmp_path / "adapter.py"
    sample.write_text("async def f(self, runtime):\n    await runtime.store.get('m')\n    self.runtime.catalog\n")
    assert runtime_field_uses(sample) == ["adapter.py:2: runtime.store", "adapter.py:3: runtime.catalog"]


def test_no_private_asyncio_api():
    """asyncio's underscore names change between Python releases; bootserver uses none of them."""
    uses = []
    for path in sorted((ROOT / "bootserver").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "value", None)
            if isinstance(name, str) and name.startswith("_asyncio"):
                uses.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert uses == []
