"""The lab's catalog and settings: one install profile, one Machine per lab VM.

The test OS is told, on its kernel command line, where its Ignition config is, where to report,
and the machine's hostname; bootserver renders all three for each machine. Real Ignition in the
test OS applies the config (files/lab.bu) to the machine's disk.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import yaml

#: The lab's install config (Jinja2 + Butane), applied by real Ignition in the test OS.
BUTANE_TEMPLATE = (resources.files("bootserver.lab") / "files" / "lab.bu").read_text()
#: Files the lab's config fetches from bootserver's /assets (with their sha512 in the metadata).
PAYLOAD_ASSET = "lab/payload.txt"
FRAGMENT_ASSET = "lab/fragment.ign"
PAYLOAD = b"lab payload, fetched by Ignition from bootserver's /assets and checked against its sha512\n"
FRAGMENT = {"ignition": {"version": "3.3.0"},
            "storage": {"files": [{"path": "/etc/lab/fragment.txt", "mode": 0o644,
                                   "contents": {"source": "data:,merged%20from%20bootserver%27s%20assets%0A"}}]}}
GREETING = "hello from the lab: 100% applied by Ignition\n"

PROFILE = "lab-install"
SECURE_BOOT_PROFILE = "lab-install-secureboot"  # through shim + GRUB, installs the shim disk
ARM64_PROFILE = "lab-install-arm64"  # the arm64 test OS, through Debian's arm64 GRUB


def write_ignition_assets(assets: Path) -> dict:
    """Put the files the lab's config references into the assets folder; returns the profile
    metadata that names them and their hashes (every machine's defaults)."""
    fragment = (json.dumps(FRAGMENT, sort_keys=True) + "\n").encode()
    for name, data in ((PAYLOAD_ASSET, PAYLOAD), (FRAGMENT_ASSET, fragment)):
        (assets / name).parent.mkdir(parents=True, exist_ok=True)
        (assets / name).write_bytes(data)
    return {"payload_asset": PAYLOAD_ASSET, "payload_sha512": hashlib.sha512(PAYLOAD).hexdigest(),
            "fragment_asset": FRAGMENT_ASSET, "fragment_sha512": hashlib.sha512(fragment).hexdigest(),
            "greeting": GREETING}


def lab_ssh_key(name: str) -> str:
    """A per-machine public key line (Ignition writes it as given; nobody logs in with it)."""
    blob = hashlib.sha256(name.encode()).hexdigest()[:43]
    return f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA{blob} lab@{name}"


def test_os_profile(kernel: str, initrd: str, metadata: dict | None = None, name: str = PROFILE,
                    extra_initrd: str | None = None, loader: str | None = None, console: str = "ttyS0") -> dict:
    profile = {
        "apiVersion": "bootserver/v1", "kind": "Profile", "metadata": {"name": name},
        "spec": {
            "boot": {"kernel": kernel, "initrd": [initrd] + ([extra_initrd] if extra_initrd else []),
                     # initrd=<basename> (needed by UEFI) is added by bootserver for every initrd
                     "args": [f"console={console}", "loglevel=4", "panic=-1",
                              "ignition.config.url={{ urls.ignition }}", "testos.events={{ urls.events }}",
                              "testos.hostname={{ metadata.hostname }}"]},
            "ignition": {"butane": "templates/lab.bu"},
            "after_install": "local-disk",
            "metadata": dict(metadata or {}),
        },
    }
    if loader:
        profile["spec"]["boot"]["loader"] = loader
    return profile


def flatcar_profile(template: Path, base_url: str) -> dict:
    """Real Flatcar from the assets folder (`bootserver assets fetch flatcar`), installed to /dev/vda
    from bootserver's own mirror of the install image (the lab has no internet)."""
    return {
        "apiVersion": "bootserver/v1", "kind": "Profile", "metadata": {"name": PROFILE},
        "spec": {
            "boot": {"kernel": "flatcar/amd64/current/flatcar_production_pxe.vmlinuz",
                     "initrd": ["flatcar/amd64/current/flatcar_production_pxe_image.cpio.gz"],
                     "args": ["flatcar.first_boot=yes", "ignition.config.url={{ urls.ignition }}",
                              "console=ttyS0,115200n8"]},
            "ignition": {"butane": f"templates/{template.name}"},
            "after_install": "local-disk",
            "metadata": {"install_disk": "/dev/vda", "install_base_url": f"{base_url}/assets/flatcar/amd64"},
        },
    }


def machine_document(name: str, mac: str, hostname: str, metadata: dict | None = None, profile: str = PROFILE,
                     loader: str | None = None) -> dict:
    """A lab machine: its hostname and SSH key, plus `metadata` over the profile's defaults."""
    values = {"hostname": hostname, "ssh_authorized_keys": [lab_ssh_key(name)], **(metadata or {})}
    doc = {"apiVersion": "bootserver/v1", "kind": "Machine", "metadata": {"name": name},
           "spec": {"mac": mac, "profile": profile, "metadata": values}}
    if loader:
        doc["spec"]["loader"] = loader
    return doc


def write_catalog(root: Path, profile: dict | list[dict], machines: list[tuple],
                  template_text: str = BUTANE_TEMPLATE, template_name: str = "lab.bu") -> Path:
    """Write catalog/lab.yaml and catalog/templates/<template>; returns the catalog directory."""
    (root / "templates").mkdir(parents=True, exist_ok=True)
    (root / "templates" / template_name).write_text(template_text)
    docs = (profile if isinstance(profile, list) else [profile]) + [machine_document(*m) for m in machines]
    (root / "lab.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return root


def write_settings(path: Path, catalog: Path, assets: Path, state: Path, advertise_url: str,
                   unknown_machines: str = "ignore", uefi_loader: str = "ipxe.efi", interface: str = "eth0",
                   installed_dhcp: str = "auto", arm64_loader: str | None = None) -> Path:
    settings = {
        "catalog": str(catalog), "assets": str(assets), "state": f"sqlite:///{state}",
        "http": "0.0.0.0:8080", "advertise_url": advertise_url, "dhcp": [interface],
        "unknown_machines": unknown_machines, "uefi_loader": uefi_loader, "installed_dhcp": installed_dhcp,
    }
    if arm64_loader:
        settings["arm64_loader"] = arm64_loader
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path
