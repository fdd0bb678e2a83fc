"""Template errors name the file and line; values cannot break out of YAML or shell lines."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from bootserver.render import jinja

CONTEXT = {"metadata": {"hostname": "node1", "disk": "/dev/sda", "multi": "a\nb: injected",
                        "ssh_keys": ["ssh-ed25519 AAAA one", "ssh-rsa BBBB two"]},
           "urls": {"ignition": "http://10.0.0.1:8080/ignition?mac=52:54:00:00:00:01"}}


def template(tmp_path: Path, text: str, name: str = "t.bu") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path: Path, context=CONTEXT) -> jinja.TemplateError:
    with pytest.raises(jinja.TemplateError) as info:
        jinja.render_file(path, context)
    return info.value


def test_missing_variable_names_file_and_line(tmp_path):
    err = error_of(template(tmp_path, "variant: flatcar\nversion: 1.0.0\n\nx: {{ metadata.install_disk }}\n"))
    assert (err.file, err.line) == (str(tmp_path / "t.bu"), 4)
    assert "install_disk" in err.message and "undefined" in err.message
    assert str(err).startswith(f"{tmp_path / 't.bu'}:4: ")


def test_missing_top_level_variable(tmp_path):
    err = error_of(template(tmp_path, "a: 1\nb: {{ nosuch }}\n"))
    assert err.line == 2 and "'nosuch' is undefined" in err.message


def test_syntax_error_names_file_and_line(tmp_path):
    err = error_of(template(tmp_path, "a: 1\nb: 2\nc: {{ metadata.hostname | }}\n"))
    assert err.file == str(tmp_path / "t.bu")
    assert err.line == 3 and err.message.startswith("template syntax error")
    err = error_of(template(tmp_path, "a: 1\n{% if metadata.hostname %}\nc: 3\n"))
    assert err.line == 2 and "'if'" in err.message  # the block left open


def test_error_in_an_included_template_names_that_file(tmp_path):
    template(tmp_path, "a: 1\nb: {{ metadata.nope }}\n", "part.bu")
    err = error_of(template(tmp_path, "x: 1\n{% include 'part.bu' %}\n"))
    assert (err.file, err.line) == (str(tmp_path / "part.bu"), 2)


def test_include_cannot_leave_the_template_folder(tmp_path):
    (tmp_path / "secret").write_text("top secret\n")
    sub = tmp_path / "templates"
    sub.mkdir()
    err = error_of(template(sub, "x: 1\n{% include '../secret' %}\n"))
    assert err.line == 2 and "template not found" in err.message


def test_runtime_error_names_the_line(tmp_path):
    err = error_of(template(tmp_path, "a: 1\nb: {{ 1 // 0 }}\n"))
    assert err.line == 2 and "ZeroDivisionError" in err.message


def test_sandbox_refuses_internals(tmp_path):
    err = error_of(template(tmp_path, "a: {{ metadata.__class__.__mro__ }}\n"))
    assert err.line == 1


def test_raw_line_break_is_refused(tmp_path):
    err = error_of(template(tmp_path, "a: 1\nb: {{ metadata.multi }}\n"))
    assert err.line == 2 and "tojson" in err.message


def test_raw_list_is_refused(tmp_path):
    err = error_of(template(tmp_path, "keys: {{ metadata.ssh_keys }}\n"))
    assert "use | tojson" in err.message


def test_tojson_keeps_yaml_structure(tmp_path):
    out = jinja.render_file(template(tmp_path, "a: {{ metadata.multi | tojson }}\nk: {{ metadata.ssh_keys | tojson }}\n"
                                               "q: {{ 'yes' | yaml_quote }}\nn: {{ 644 | yaml_quote }}\n"), CONTEXT)
    assert yaml.safe_load(out) == {"a": "a\nb: injected", "k": CONTEXT["metadata"]["ssh_keys"], "q": "yes", "n": "644"}


def test_shell_quote_makes_one_word(tmp_path):
    hostile = "/dev/sda; rm -rf / $(reboot) `id` 'quoted'"
    out = jinja.render_file(template(tmp_path, "printf '%s\\n' {{ disk | shell_quote }}\n"), {"disk": hostile})
    words = subprocess.run(["bash", "-c", out], capture_output=True, text=True, check=True).stdout
    assert words == hostile + "\n"
    assert shlex.split(out)[2] == hostile
    err = error_of(template(tmp_path, "x={{ v | shell_quote }}\n"), {"v": "a\nreboot"})
    assert "shell" in err.message


def test_with_query_and_indent(tmp_path):
    out = jinja.render_file(template(tmp_path, "u: {{ urls.ignition | with_query(stage='final') }}\n"
                                               "b: |\n  {{ metadata.ssh_keys | tojson | indent(2) }}\n"), CONTEXT)
    data = yaml.safe_load(out)
    assert data["u"] == "http://10.0.0.1:8080/ignition?mac=52:54:00:00:00:01&stage=final"
    assert json.loads(data["b"]) == CONTEXT["metadata"]["ssh_keys"]


def test_template_changes_are_picked_up(tmp_path):
    path = template(tmp_path, "a: 1\n")
    assert jinja.render_file(path, {}) == "a: 1\n"
    path.write_text("a: 22\n")
    import os
    os.utime(path, (1, 1))  # a different mtime, even within the same second
    assert jinja.render_file(path, {}) == "a: 22\n"
