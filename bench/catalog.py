"""A generated catalog of N machines, as an operator would write it (one Machine document each),
for the rendered-endpoint benchmark and the boot storm."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

PROFILE = """\
apiVersion: bootserver/v1
kind: Profile
metadata: {{name: flatcar-install}}
spec:
  boot:
    kernel: flatcar/current/flatcar_production_pxe.vmlinuz
    initrd: [flatcar/current/flatcar_production_pxe_image.cpio.gz]
    args:
      - flatcar.first_boot=yes
      - "ignition.config.url={{{{ urls.ignition }}}}"
      - "bootserver.events={{{{ urls.events }}}}"
      - console=ttyS0,115200n8
  ignition: {ignition}
  after_install: local-disk
  metadata: {{install_disk: /dev/sda}}
"""

BUTANE = """\
variant: flatcar
version: 1.0.0
passwd:
  users:
    - name: core
      ssh_authorized_keys: {{ metadata.ssh_authorized_keys | tojson }}
storage:
  files:
    - path: /etc/hostname
      mode: 0644
      contents:
        inline: {{ metadata.hostname | tojson }}
"""

READY_IGNITION = {"ignition": {"version": "3.3.0"},
                  "storage": {"files": [{"path": "/etc/motd", "contents": {"source": "data:,booted"}}]}}


PER_FILE = 1000  # Machine documents per file: about 250 KB


def mac(i: int) -> str:
    return f"52:54:01:{(i >> 16) & 0xff:02x}:{(i >> 8) & 0xff:02x}:{i & 0xff:02x}"


def butane_available() -> bool:
    return importlib.util.find_spec("bootserver.render.butane_template") is not None


def write_catalog(root: Path, machines: int) -> str:
    """Write the catalog; return how /ignition is produced ("butane template" or "ready JSON")."""
    root.mkdir(parents=True, exist_ok=True)
    if butane_available():
        (root / "templates").mkdir(exist_ok=True)
        (root / "templates" / "install.bu").write_text(BUTANE)
        ignition, how = "{butane: templates/install.bu}", "butane template"
    else:
        (root / "ready.ign").write_text(json.dumps(READY_IGNITION))
        ignition, how = "{config: ready.ign}", "ready JSON (Butane renderer not on main yet)"
    (root / "profiles.yaml").write_text(PROFILE.format(ignition=ignition))
    docs = []
    for i in range(machines):
        docs.append(
            "apiVersion: bootserver/v1\nkind: Machine\n"
            f"metadata: {{name: node{i:04d}}}\n"
            f"spec:\n  mac: {mac(i)}\n  profile: flatcar-install\n"
            f"  metadata:\n    hostname: node{i:04d}\n    rack: r{i // 40:02d}\n"
            f"    ssh_authorized_keys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{i:040d} ops@example\"]\n")
    for start in range(0, machines, PER_FILE):  # the catalog refuses files over 1 MiB (docs/security.md)
        (root / f"machines-{start // PER_FILE:03d}.yaml").write_text("---\n".join(docs[start:start + PER_FILE]))
    return how
