"""The example catalog shipped in profiles/ renders valid Ignition for its machines (through the CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bootserver.render.butane import dataurl
from bootserver.render.butane_template import render_ignition
from bootserver.render.errors import RenderError
from tests.conftest import REPO

from . import ignition_validate


def render(mac: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bootserver", "render", "ignition", "--mac", mac,
                           "--catalog", str(REPO / "profiles"), "--state", "memory://"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("mac, hostname, installs", [("52:54:00:a1:9c:ae", b"node1", True),
                                                     ("52:54:00:b2:7d:01", b"node2", False)])
def test_example_machines_get_valid_ignition(mac, hostname, installs):
    config = render(mac)
    ignition_validate.assert_valid(config)
    files = {f["path"]: f for f in config["storage"]["files"]}
    assert dataurl.decode(files["/etc/hostname"]["contents"]["source"]) == hostname
    assert ("/opt/bootserver/install" in files) is installs
    assert config["passwd"]["users"][0]["sshAuthorizedKeys"]  # the group's operator key


def test_install_template_needs_an_install_disk():
    template = REPO / "profiles" / "templates" / "flatcar-install.bu"
    context = {"machine": {"name": "n"}, "metadata": {"hostname": "n"},
               "urls": {"ignition": "http://b/ignition?mac=x", "events": "http://b/e?token=t", "assets": "http://b/assets"}}
    with pytest.raises(RenderError) as info:
        render_ignition(template, context, files_dir=Path(template).parent)
    line = next(i for i, text in enumerate(template.read_text().splitlines(), 1) if text.strip().startswith("DISK="))
    assert (info.value.file, info.value.line) == (str(template), line)
    assert "install_disk" in info.value.message
