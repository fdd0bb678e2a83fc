"""A ready-to-paste Machine document for a discovered machine (the YAML an operator adopts it with)."""

from __future__ import annotations

import re

from bootserver.boot.machine import MachineRecord


def machine_yaml(record: MachineRecord, profile: str = "CHANGE-ME") -> str:
    """Name from the MAC (machine-525400000001, as `bootserver machines adopt`), the facts seen as comments."""
    name = "machine-" + record.mac.replace(":", "")
    seen = ", ".join(f"{k} {v}" for k, v in (("arch", record.arch), ("vendor", record.vendor),
                                              ("address", record.client_ip)) if v)
    lines = ["apiVersion: bootserver/v1", "kind: Machine", f"metadata: {{name: {name}}}", "spec:",
             f'  mac: "{record.mac}"', f"  profile: {profile}"]
    if seen:
        lines.insert(0, "# seen: " + re.sub(r"[^\w .:,/-]", "?", seen))
    return "\n".join(lines) + "\n"
