"""Issue 19 item 3: every kind of line separator is refused or escaped before it reaches YAML, a shell
line, an iPXE line or a log line; `#` cannot comment out the rest of an iPXE `kernel` line."""

from __future__ import annotations

import json
import logging

import pytest
import yaml

from bootserver import logs
from bootserver.render import args, jinja

# every character YAML 1.1 (PyYAML) or Unicode treats as ending a line, beyond \n and \r
SEPARATORS = ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"]
EVIL = "x{sep}    - path: /etc/sudoers.d/evil{sep}      contents: {{inline: 'ALL ALL=(ALL) NOPASSWD: ALL'}}"

TEMPLATE = """\
variant: flatcar
version: 1.0.0
storage:
  files:
    - path: /opt/run.sh
      contents:
        inline: |
          DISK={{ metadata.disk | shell_quote }}
    - path: /etc/hostname
      contents: {inline: {{ metadata.hostname | yaml_quote }}}
    - path: /etc/motd
      contents: {inline: {{ metadata.motd }}}
"""


def _paths(text: str) -> list[str]:
    return [f["path"] for f in yaml.safe_load(text)["storage"]["files"]]


@pytest.mark.parametrize("sep", SEPARATORS, ids=[f"U+{ord(s):04X}" for s in SEPARATORS])
@pytest.mark.parametrize("field", ["disk", "hostname", "motd"])
def test_a_line_separator_in_metadata_never_adds_a_file(tmp_path, sep, field):
    path = tmp_path / "t.bu"
    path.write_text(TEMPLATE)
    metadata = {"disk": "/dev/sda", "hostname": "node1", "motd": "hello", field: EVIL.format(sep=sep)}
    try:
        out = jinja.render_file(path, {"metadata": metadata})
    except jinja.TemplateError as exc:  # refused, naming the template and line: fine
        assert str(path) in str(exc) and exc.line is not None
        return
    assert _paths(out) == ["/opt/run.sh", "/etc/hostname", "/etc/motd"]


@pytest.mark.parametrize("sep", SEPARATORS)
def test_shell_quote_refuses_line_separators(sep):
    with pytest.raises(jinja.UnsafeValue):
        jinja.shell_quote(f"a{sep}b")


@pytest.mark.parametrize("sep", SEPARATORS)
def test_yaml_quote_output_has_no_raw_separator(sep):
    quoted = jinja.yaml_quote(f"a{sep}b")
    assert sep not in quoted and yaml.safe_load(quoted) == f"a{sep}b"


@pytest.mark.parametrize("value", ["#", "#rest", "a\u2028b", "a\x85b", "a\u2029b"])
def test_kernel_arg_values_cannot_comment_out_or_split_the_line(value):
    with pytest.raises(args.ArgError):
        args.render_args(("console=ttyS0", "{{ v }}", "ignition.config.url=http://x/"), {"v": value})


def test_a_kernel_arg_template_word_starting_with_hash_is_refused():
    with pytest.raises(args.ArgError):
        args.render_args(("console=ttyS0", "#{{ v }}"), {"v": "x"})
    assert args.render_args(("a=b#c",), {}) == ["a=b#c"]  # mid-word: iPXE keeps it


def _format(fmt: str, message: str, *values) -> str:
    logs.setup(fmt)
    handler = logging.getLogger().handlers[0]
    record = logging.LogRecord("bootserver.access", logging.INFO, __file__, 1, message, values, None)
    return handler.format(record)


@pytest.mark.parametrize("forged", ["/ipxe\n2026-01-01 00:00:00 INFO bootserver: admin logged in",
                                    "a\rb", "a\u2028b", "a\x85b", "a\x1b[2Jb", "a\x00b"])
def test_human_log_lines_escape_control_characters(forged):
    line = _format("human", "GET %s 404", forged)
    assert len(line.splitlines()) == 1 and "\x1b" not in line and "\x00" not in line
    assert "GET " in line and " 404" in line
    as_json = json.loads(_format("json", "GET %s 404", forged))
    assert as_json["message"] == f"GET {forged} 404"  # the JSON log keeps the exact text
