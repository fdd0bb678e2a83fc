"""Day-one catalog mistakes (issue 18): a comma-split kernel argument, errors that used to come in
rounds, and a YAML syntax error that pointed past the mistake."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bootserver.catalog.loader import validate
from tests.conftest import PROFILE, write_catalog

REPO = Path(__file__).resolve().parents[2]


def test_the_documented_profile_keeps_the_serial_console_whole():
    text = (REPO / "docs" / "catalog.md").read_text()
    block = re.search(r"## Profile: what to boot\n\n```yaml\n(.*?)```", text, re.S).group(1)
    args = yaml.safe_load(block)["spec"]["boot"]["args"]
    assert "console=ttyS0,115200n8" in args and "115200n8" not in args


def test_a_split_looking_argument_is_a_warning_at_its_place(tmp_path):
    root = write_catalog(tmp_path / "c", {"p.yaml": (
        "apiVersion: bootserver/v1\nkind: Profile\nmetadata: {name: p}\nspec:\n  boot:\n"
        "    kernel: https://mirror.example/vmlinuz\n"
        "    args: [quiet, console=ttyS0,115200n8, ro]\n")})
    problems = validate(root)
    assert [p.severity for p in problems] == ["warning"], [str(p) for p in problems]
    warning = problems[0]
    assert (warning.line, warning.field) == (7, "spec.boot.args[2]")
    assert "'115200n8'" in warning.message and '"console=ttyS0,115200n8"' in warning.message
    quoted = write_catalog(tmp_path / "q", {"p.yaml": (
        "apiVersion: bootserver/v1\nkind: Profile\nmetadata: {name: p}\nspec:\n  boot:\n"
        "    kernel: https://mirror.example/vmlinuz\n"
        "    args: [quiet, \"console=ttyS0,115200n8\", ro, \"3\"]\n")})
    assert [str(p) for p in validate(quoted)] == []  # a lone runlevel after a flag is no split


def test_every_error_of_a_file_in_one_run(tmp_path):
    machines = """\
apiVersion: bootserver/v1
kind: Machine
metadata: {name: node1}
spec: {mac: "not-a-mac", profile: nosuch}
---
apiVersion: bootserver/v1
kind: Machine
metadata: {name: node2, name: again}
spec: {mac: "52:54:00:00:00:02", profile: install}
---
apiVersion: bootserver/v1
kind: Machine
metadata: {name: node3
spec: {mac: "52:54:00:00:00:03", profile: install}
---
apiVersion: bootserver/v1
kind: Group
metadata: {name: rack}
spec: {selector: {mac_prefix: "zz"}, profile: missing-too, bogus: 1}
---
apiVersion: bootserver/v1
kind: Profile
metadata: {name: Broken_Name}
spec: {boot: {kernel: /etc/passwd}}
"""
    root = write_catalog(tmp_path / "c", {"profiles.yaml": PROFILE, "ignition.json": "{}",
                                          "machines.yaml": machines})
    found = [str(p) for p in validate(root) if p.severity == "error"]
    expected = [
        r"machines.yaml:4:\d+: error: Machine node1: spec.mac: .*",
        r"machines.yaml:4:\d+: error: Machine node1: spec.profile: profile 'nosuch' does not exist",
        r"machines.yaml:8:\d+: error: document 2: duplicate key 'name' \(first at line 8\)",
        r"machines.yaml:13:\d+: error: file: YAML syntax error: flow mapping opened here is not closed",
        r"machines.yaml:19:\d+: error: Group rack: spec.bogus: .*",
        r"machines.yaml:19:\d+: error: Group rack: spec.selector.mac_prefix: .*",
        r"machines.yaml:19:\d+: error: Group rack: spec.profile: profile 'missing-too' does not exist",
        r"machines.yaml:2[34]:\d+: error: Profile Broken_Name: .*",
    ]
    for pattern in expected:
        assert any(re.search(pattern, line) for line in found), (pattern, found)


def test_a_syntax_error_points_at_the_unclosed_brace(tmp_path):
    root = write_catalog(tmp_path / "c", {"m.yaml": (
        "apiVersion: bootserver/v1\nkind: Machine\nmetadata: {name: node1\nspec: {mac: \"52:54:00:00:00:01\"}\n"
        "---\napiVersion: bootserver/v1\nkind: Machine\nmetadata: {name: node2}\n"
        "spec: {mac: \"52:54:00:00:00:02\", profile: nosuch}\n")})
    problems = [p for p in validate(root) if p.severity == "error"]
    syntax = [p for p in problems if "syntax" in p.message]
    assert [(p.line, p.column) for p in syntax] == [(3, 11)]  # the `{` after metadata:, not the `---`
    assert any("'nosuch' does not exist" in p.message and p.line == 9 for p in problems)  # the next document still checked
