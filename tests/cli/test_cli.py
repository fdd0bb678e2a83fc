"""The command line: help that reads like a man page, version, config show with sources, render."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


def run(*args, env=None, cwd=None):
    import os
    return subprocess.run([sys.executable, "-m", "bootserver", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd or REPO, timeout=60)


def test_version():
    out = run("--version")
    assert out.returncode == 0 and out.stdout.startswith("bootserver 0.")


@pytest.mark.parametrize("command,shown", [
    ("serve", "examples:\n  bootserver serve --dhcp eth1 --advertise-url http://10.0.0.2:8080"),
    ("validate", "example:\n  bootserver validate profiles/"),
    ("render", "example:\n  bootserver render ignition --mac 52:54:00:a1:9c:ae --arch x86_64-efi"),
    ("config", "config show: every setting, its effective value, and where it came from"),
])
def test_help_for_every_command(command, shown):
    out = run(command, "--help")
    assert out.returncode == 0 and "usage: bootserver " + command in out.stdout
    assert shown in out.stdout


def test_main_help_lists_commands_and_settings():
    out = run("--help")
    for word in ("serve", "validate", "render", "machines", "assets", "lab", "butane", "BOOTSERVER_"):
        assert word in out.stdout


def test_config_show_names_sources(tmp_path):
    (tmp_path / "s.yaml").write_text("http: 127.0.0.1:9000\nunknown_machines: discover\n")
    out = run("config", "show", "--json", "--config", str(tmp_path / "s.yaml"), "--catalog", "x",
              env={"BOOTSERVER_LOG_LEVEL": "debug", "BOOTSERVER_UNKNOWN_MACHINES": "ignore"})
    data = json.loads(out.stdout)
    assert data["http"] == {"value": "127.0.0.1:9000", "source": f"file {tmp_path / 's.yaml'}"}
    assert data["unknown_machines"] == {"value": "ignore", "source": "env BOOTSERVER_UNKNOWN_MACHINES"}
    assert data["catalog"] == {"value": "x", "source": "flag --catalog"}
    assert data["state"]["source"] == "default"


def test_bad_setting_is_a_clear_error(tmp_path):
    (tmp_path / "s.yaml").write_text("unknown_machines: maybe\n")
    out = run("config", "show", "--config", str(tmp_path / "s.yaml"))
    assert out.returncode == 2 and "unknown_machines: 'maybe' is not one of ignore, discover" in out.stderr


def test_render_ipxe_matches_the_server(serve, catalog_dir):
    server = serve("--catalog", str(catalog_dir), "--state", "memory://")
    out = run("render", "ipxe", "--mac", "525400000001", "--catalog", str(catalog_dir), "--state", "memory://",
              "--base-url", server.url)
    import urllib.request
    served = urllib.request.urlopen(server.url + "/ipxe?mac=52:54:00:00:00:01").read().decode()
    strip = lambda t: [l for l in t.splitlines() if "bootserver.events" not in l]  # token differs per store
    assert out.returncode == 0 and strip(out.stdout) == strip(served)


def test_render_grub_matches_the_server(serve, catalog_dir):
    server = serve("--catalog", str(catalog_dir), "--state", "memory://")
    out = run("render", "grub", "--mac", "52-54-00-00-00-01", "--catalog", str(catalog_dir), "--state", "memory://",
              "--base-url", server.url)
    import re
    import urllib.request
    served = urllib.request.urlopen(server.url + "/grub.cfg?mac=52:54:00:00:00:01").read().decode()
    token = re.compile(r"token=\S+'")  # the token differs per store
    assert out.returncode == 0 and token.sub("", out.stdout) == token.sub("", served)
    assert "linux '(tftp,127.0.0.1)/assets/os/vmlinuz'" in out.stdout
    named = run("render", "grub", "--mac", "52:54:00:00:00:01", "--catalog", str(catalog_dir),
                "--state", "memory://", "--base-url", "http://boot.example:8080")
    assert named.returncode == 1 and "GRUB fetches from bootserver's IPv4 address" in named.stderr


def test_render_match_and_metadata(catalog_dir):
    out = run("render", "match", "--mac", "52:54:00:00:00:42", "--catalog", str(catalog_dir), "--state", "memory://")
    assert "Group lab" in out.stdout and "profile: live" in out.stdout
    out = run("render", "metadata", "--mac", "52:54:00:00:00:01", "--catalog", str(catalog_dir),
              "--state", "memory://")
    assert "HOSTNAME=node1" in out.stdout.splitlines()
