"""The lab's catalog and settings: one install profile, one Machine per lab VM.

The test OS is told, on its kernel command line, where its Ignition config is, where to report,
and which hostname the config must carry; bootserver renders all three for each machine.
"""

from __future__ import annotations

from pathlib import Path

import yaml

BUTANE_TEMPLATE = """\
{#- The lab's Ignition: the test OS checks that it is JSON and names this machine. -#}
variant: flatcar
version: 1.0.0
storage:
  files:
    - path: /etc/hostname
      mode: 0644
      contents:
        inline: {{ metadata.hostname | tojson }}
"""

PROFILE = "lab-install"
SECURE_BOOT_PROFILE = "lab-install-secureboot"  # through shim + GRUB, installs the shim disk


def test_os_profile(kernel: str, initrd: str, name: str = PROFILE, extra_initrd: str | None = None,
                    loader: str | None = None) -> dict:
    profile = {
        "apiVersion": "bootserver/v1", "kind": "Profile", "metadata": {"name": name},
        "spec": {
            "boot": {"kernel": kernel, "initrd": [initrd] + ([extra_initrd] if extra_initrd else []),
                     # initrd=<basename> (needed by UEFI) is added by bootserver for every initrd
                     "args": ["console=ttyS0", "loglevel=4", "panic=-1",
                              "ignition.config.url={{ urls.ignition }}", "testos.events={{ urls.events }}",
                              "testos.hostname={{ metadata.hostname }}"]},
            "ignition": {"butane": "templates/lab.bu"},
            "after_install": "local-disk",
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


def machine_document(name: str, mac: str, hostname: str, profile: str = PROFILE, loader: str | None = None) -> dict:
    doc = {"apiVersion": "bootserver/v1", "kind": "Machine", "metadata": {"name": name},
           "spec": {"mac": mac, "profile": profile, "metadata": {"hostname": hostname}}}
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
                   unknown_machines: str = "ignore", uefi_loader: str = "ipxe.efi", interface: str = "eth0") -> Path:
    settings = {
        "catalog": str(catalog), "assets": str(assets), "state": f"sqlite:///{state}",
        "http": "0.0.0.0:8080", "advertise_url": advertise_url, "dhcp": [interface],
        "unknown_machines": unknown_machines, "uefi_loader": uefi_loader,
    }
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path
