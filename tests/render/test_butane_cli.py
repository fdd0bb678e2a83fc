"""`bootserver butane FILE` behaves like the butane tool: Ignition on stdout, errors on stderr, exit 1."""

from __future__ import annotations

import json
import subprocess
import sys

from . import ignition_validate

GOOD = """\
variant: flatcar
version: 1.1.0
passwd:
  users:
    - name: core
      ssh_authorized_keys_local: [id.pub]
storage:
  files:
    - path: /etc/motd
      mode: 0644
      contents:
        local: motd
"""


def butane(*args: str, stdin: str | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bootserver", "butane", *args], input=stdin, capture_output=True,
                          text=True, timeout=60, cwd=cwd)


def test_translates_with_files_dir_and_pretty(tmp_path):
    (tmp_path / "c.bu").write_text(GOOD)
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "id.pub").write_text("ssh-ed25519 AAAA op@example\n")
    (tmp_path / "files" / "motd").write_text("hello\n")
    proc = butane(str(tmp_path / "c.bu"), "--files-dir", str(tmp_path / "files"), "--pretty")
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith('{\n  "ignition": {\n    "version": "3.4.0"')
    config = json.loads(proc.stdout)
    assert config["passwd"]["users"][0]["sshAuthorizedKeys"] == ["ssh-ed25519 AAAA op@example"]
    assert config["storage"]["files"][0]["contents"]["source"] == "data:,hello%0A"
    ignition_validate.assert_valid(config)
    compact = butane(str(tmp_path / "c.bu"), "-d", str(tmp_path / "files"))
    assert json.loads(compact.stdout) == config and "\n" not in compact.stdout


def test_errors_go_to_stderr_with_path_and_line(tmp_path):
    proc = butane("-", stdin=GOOD)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "error at $.passwd.users.0.ssh_authorized_keys_local, line 6 col 34: local file paths are relative to a "
        "files directory that must be specified with -d/--files-dir",
        "error at $.storage.files.0.contents.local, line 12 col 16: local file paths are relative to a files "
        "directory that must be specified with -d/--files-dir",
    ]


def test_warnings_print_but_succeed_unless_strict(tmp_path):
    text = "variant: flatcar\nversion: 1.0.0\nstorage:\n  files:\n    - path: /x\n      mode: 644\n"
    proc = butane("-", stdin=text)
    assert proc.returncode == 0 and json.loads(proc.stdout)["storage"]["files"][0]["mode"] == 644
    assert "warning at $.storage.files.0.mode, line 6 col 13: unreasonable mode" in proc.stderr
    strict = butane("--strict", "-", stdin=text)
    assert strict.returncode == 1 and strict.stdout == ""
    assert "--strict" in strict.stderr


def test_missing_file_and_output_option(tmp_path):
    proc = butane(str(tmp_path / "nope.bu"))
    assert proc.returncode == 1 and "No such file or directory" in proc.stderr
    (tmp_path / "c.bu").write_text("variant: flatcar\nversion: 1.0.0\n")
    proc = butane(str(tmp_path / "c.bu"), "-o", str(tmp_path / "out.ign"))
    assert proc.returncode == 0 and proc.stdout == ""
    assert json.loads((tmp_path / "out.ign").read_text()) == {"ignition": {"version": "3.3.0"}}
