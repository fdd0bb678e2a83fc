"""deploy/: the Kubernetes manifests parse and say what docs/scale-out.md promises (Kubernetes itself
cannot run here), and the systemd unit's user and capabilities are enough: bootserver is started
as an unprivileged user holding exactly the unit's capability set, in a namespace, with proxyDHCP
(SO_BINDTODEVICE on ports 67 and 4011) and TFTP (69), and must come up listening on all three.
"""

from __future__ import annotations

import configparser
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def manifests() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((DEPLOY / "systemd" / "bootserver.service").read_text())
    return parser


def test_kubernetes_manifests_have_the_expected_kinds_images_and_ports():
    docs = manifests()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap", "ConfigMap", "DaemonSet", "Namespace", "Secret"]
    assert {d["metadata"].get("namespace", d["metadata"]["name"]) for d in docs} == {"bootserver"}
    daemonset = next(d for d in docs if d["kind"] == "DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert daemonset["spec"]["selector"]["matchLabels"].items() <= daemonset["spec"]["template"]["metadata"][
        "labels"].items()
    (container,) = pod["containers"]
    assert container["image"].rsplit(":", 1)[0].endswith("/bootserver") and ":" in container["image"]
    assert {(p["containerPort"], p["protocol"]) for p in container["ports"]} == {
        (67, "UDP"), (69, "UDP"), (4011, "UDP"), (8080, "TCP")}
    caps = container["securityContext"]["capabilities"]
    assert caps == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    # the admin token and the PostgreSQL URL come from the Secret, by keys it has
    secret = next(d for d in docs if d["kind"] == "Secret")
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert set(refs) == {"BOOTSERVER_ADMIN_TOKEN", "BOOTSERVER_STATE"}
    for ref in refs.values():
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    assert secret["stringData"]["state-url"].startswith("postgresql://")
    # the settings file the container is told to read is in a mounted ConfigMap, and is valid settings
    settings_map = next(d for d in docs if d["kind"] == "ConfigMap" and "bootserver.yaml" in d["data"])
    from bootserver.config import load_settings

    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        file.write(settings_map["data"]["bootserver.yaml"])
        file.flush()
        settings = load_settings(file.name, environ={})
    assert settings.floating_address and settings.dhcp
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["settings"]["configMap"]["name"] == settings_map["metadata"]["name"]
    assert container["args"][container["args"].index("--config") + 1].startswith(mounts["settings"])
    assert str(settings.catalog) == mounts["catalog"]


def test_systemd_unit_is_hardened_with_one_capability():
    service = unit()["Service"]
    assert service["User"] == "bootserver" and service["Group"] == "bootserver"
    assert service["AmbientCapabilities"] == service["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
                       "RestrictNamespaces": "yes"}.items():
        assert service[key] == value
    assert service["ExecStart"].split()[1] == "serve"


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_the_units_capabilities_are_enough_for_dhcp_tftp_and_http(tmp_path):
    caps = unit()["Service"]["AmbientCapabilities"].lower().replace("cap_", "")
    ns, veth = "bsdeploy-" + secrets.token_hex(3), "bsdp" + secrets.token_hex(3)
    work = Path(tempfile.mkdtemp(prefix="bs-deploy-"))  # the unprivileged user must reach it
    os.chmod(work, 0o777)
    (work / "catalog").mkdir(mode=0o755)
    log = tmp_path / "serve.log"
    proc = None
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "add", veth, "type", "veth", "peer", "name", veth + "p"], check=True)
        subprocess.run(["ip", "-n", ns, "addr", "add", "10.93.0.1/24", "dev", veth], check=True)
        for dev in (veth, veth + "p", "lo"):
            subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                 f"--inh-caps=-all,+{caps}", f"--ambient-caps=-all,+{caps}", f"--bounding-set=-all,+{caps}",
                 "--no-new-privs", sys.executable, "-m", "bootserver", "serve", "--dhcp", veth,
                 "--http", "0.0.0.0:80", "--catalog", str(work / "catalog"), "--state", f"sqlite:///{work}/state.db"],
                stdout=out, stderr=subprocess.STDOUT, cwd=work, env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.monotonic() + 60
        while "bootserver ready" not in log.read_text(errors="replace") and proc.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert proc.poll() is None, log.read_text()
        listening = subprocess.run(["ip", "netns", "exec", ns, "ss", "-Hlnup"], capture_output=True, text=True,
                                   check=True).stdout + subprocess.run(
            ["ip", "netns", "exec", ns, "ss", "-Hlntp"], capture_output=True, text=True, check=True).stdout
        for port in (":67 ", ":69 ", ":4011 ", ":80 "):
            assert port in listening, listening
        status = open(f"/proc/{proc.pid}/status").read()
        assert "Uid:\t65534" in status
        cap_eff = int(next(line for line in status.splitlines() if line.startswith("CapEff:")).split()[1], 16)
        assert cap_eff == 1 << 10  # CAP_NET_BIND_SERVICE alone
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        subprocess.run(["ip", "netns", "del", ns], check=False)
        subprocess.run(["rm", "-rf", str(work)], check=False)
