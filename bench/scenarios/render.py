"""Ignition renders per second for a typical install config (10 files, 3 units, 2 users).

`cold`: Jinja2 render + Butane translation + structural check for a machine not seen before (the
compiled template is reused, as the server does). `cached`: the same machine and catalog generation
again, through `RenderCache` (key digest included). There is no peer program to compare with, so the
peer column is the target from issue 4 (200/s cold, 1,000/s cached on one core).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bootserver.render.butane_template import render_ignition
from bootserver.render.render_cache import RenderCache

TEMPLATE = """\
variant: flatcar
version: 1.0.0
passwd:
  users:
    - name: core
      ssh_authorized_keys: {{ metadata.ssh_authorized_keys | tojson }}
    - name: ops
      groups: [sudo, docker]
      password_hash: {{ metadata.password_hash | tojson }}
      ssh_authorized_keys: {{ metadata.ssh_authorized_keys | tojson }}
storage:
  files:
    - path: /etc/hostname
      mode: 0644
      contents: {inline: {{ metadata.hostname | tojson }}}
{%- for i in range(8) %}
    - path: /etc/bootserver/conf-{{ i }}.env
      mode: 0640
      contents:
        inline: |
          NODE={{ machine.name }}
          MAC={{ machine.mac }}
          INDEX={{ i }}
          EVENTS={{ urls.events }}
{%- endfor %}
    - path: /opt/bootserver/install
      mode: 0755
      contents:
        inline: |
          #!/bin/bash
          set -euo pipefail
          curl -fsS -o /tmp/final.ign {{ urls.ignition | with_query(stage="final") | shell_quote }}
          flatcar-install -d {{ metadata.install_disk | shell_quote }} -i /tmp/final.ign
          curl -fsS -H 'Content-Type: application/json' --data '{"event":"installed"}' {{ urls.events | shell_quote }}
          systemctl reboot
systemd:
  units:
    - name: install.service
      enabled: true
      contents: |
        [Unit]
        After=network-online.target
        Wants=network-online.target
        [Service]
        Type=oneshot
        ExecStart=/opt/bootserver/install
        [Install]
        WantedBy=multi-user.target
    - name: docker.service
      enabled: true
    - name: update-engine.service
      mask: true
"""

TARGETS = {"cold": 200.0, "cached": 1000.0}
SECONDS_PER_REP = 1.0
MAX_RENDERS = 20000


def context(n: int) -> dict:
    mac = f"52:54:00:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"
    base = "http://10.0.0.1:8080"
    metadata = {"hostname": f"node{n}", "install_disk": "/dev/vda",
                "ssh_authorized_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchKey bench@example"],
                "password_hash": "$6$rounds=4096$salt$hash"}
    return {
        "machine": {"name": f"node{n}", "mac": mac, "mac_hyphen": mac.replace(":", "-"),
                    "mac_plain": mac.replace(":", ""), "metadata": metadata},
        "metadata": metadata,
        "profile": {"name": "flatcar-install"},
        "request": {"arch": "x86_64-efi", "uuid": None, "client_ip": f"10.0.{n >> 8 & 255}.{n & 255}", "labels": {}},
        "urls": {"base": base, "ignition": f"{base}/ignition?mac={mac}", "metadata": f"{base}/metadata?mac={mac}",
                 "events": f"{base}/api/v1/machines/{mac}/events?token=t{n:08d}", "assets": f"{base}/assets",
                 "ipxe": f"{base}/ipxe?mac={mac}"},
    }


def _rate(step, seconds: float = SECONDS_PER_REP) -> float:
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while count < MAX_RENDERS:
        step(count)
        count += 1
        if count % 16 == 0 and time.perf_counter() >= deadline:
            break
    return count / (time.perf_counter() - start)


def run(reps: int = 3) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench-render-") as tmp:
        template = Path(tmp) / "install.bu"
        template.write_text(TEMPLATE)
        config, _ = render_ignition(template, context(0), Path(tmp))  # compile once; sanity check the shape
        assert len(config["storage"]["files"]) == 10 and len(config["systemd"]["units"]) == 3
        assert len(config["passwd"]["users"]) == 2
        contexts = [context(n) for n in range(256)]

        def cold(i: int) -> None:
            render_ignition(template, contexts[i % 256], Path(tmp))

        cache = RenderCache()
        hot = contexts[1]

        def cached(i: int) -> None:
            key = RenderCache.key(hot["machine"]["mac"], 1, hot, extra="flatcar-install")
            cache.get_or_render(key, lambda: render_ignition(template, hot, Path(tmp)))

        rates = {"cold": [], "cached": []}
        for _ in range(reps):  # ours only: the comparison is a fixed target, not a program
            rates["cold"].append(_rate(cold))
            rates["cached"].append(_rate(cached))
    return [{"scenario": f"render-{kind}", "metric": f"Ignition renders/s ({kind}, 10 files, 3 units, 2 users)",
             "unit": "renders/s", "ours": rates[kind], "peer_name": "target", "peer": [TARGETS[kind]] * reps,
             "higher_is_better": True} for kind in ("cold", "cached")]


def main() -> None:
    results = run()
    print(f"{'scenario':<14} {'ours (median)':>14} {'target':>8} {'ratio':>7}   reps")
    for row in results:
        ours = sorted(row["ours"])[len(row["ours"]) // 2]
        peer = sorted(row["peer"])[len(row["peer"]) // 2]
        reps = ", ".join(f"{v:.0f}" for v in row["ours"])
        print(f"{row['scenario']:<14} {ours:>14.0f} {peer:>8.0f} {ours / peer:>6.2f}x   [{reps}]")


if __name__ == "__main__":
    main()
