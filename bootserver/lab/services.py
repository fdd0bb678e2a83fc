"""Long-running processes of the lab (dnsmasq, bootserver), each inside one lab namespace."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from bootserver.lab.netns import DHCP_RANGE, IPV6_PREFIX, in_netns


class ServiceError(RuntimeError):
    pass


class Service:
    """A process started by the lab in a namespace, logging to a file, ended by its process group."""

    def __init__(self, name: str, netns: str, argv: list[str], log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None):
        self.name, self.netns, self.argv, self.log, self.env, self.cwd = name, netns, argv, log, env, cwd
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(in_netns(self.netns, self.argv), stdin=subprocess.DEVNULL,
                                            stdout=out, stderr=out, env=self.env, cwd=self.cwd,
                                            start_new_session=True)

    def check_running(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise ServiceError(f"{self.name} is not running (exit status "
                               f"{None if self.process is None else self.process.returncode}); "
                               f"last lines of {self.log}:\n{log_tail(self.log)}")

    def stop(self, timeout: float = 5) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
            except ProcessLookupError:
                pass
        self.process = None


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def ordinary_dhcp(netns: str, workdir: Path, ipv6_ra: bool = True, next_server: str | None = None) -> Service:
    """dnsmasq as the site's ordinary DHCP server: addresses (and IPv6 RAs) only, no boot options.
    `--no-ping` avoids a 3 s delay before every first OFFER. `next_server` sets the siaddr field
    and nothing else (dnsmasq's option 255): Debian's GRUB reads its config from there, not from
    the proxy's answer (docs/secure-boot.md)."""
    if shutil.which("dnsmasq") is None:
        raise ServiceError("dnsmasq not found: install dnsmasq-base")
    argv = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--user=root", "--pid-file=",
            "--port=0", "--interface=eth0", "--bind-interfaces",
            f"--dhcp-range={DHCP_RANGE[0]},{DHCP_RANGE[1]},255.255.255.0,10m", "--dhcp-authoritative",
            "--no-ping", f"--dhcp-leasefile={workdir / 'dhcp.leases'}", "--log-dhcp",
            f"--log-facility={workdir / 'dnsmasq-dhcp.log'}"]
    if next_server:
        argv.append(f"--dhcp-option=255,{next_server}")
    if ipv6_ra:
        argv += ["--enable-ra", f"--dhcp-range={IPV6_PREFIX},ra-only,64"]
    return Service("dnsmasq (ordinary DHCP)", netns, argv, workdir / "dnsmasq-dhcp.stderr.log")


def wait_for_port(netns: str, port: int, proto: str = "tcp", timeout: float = 20,
                  service: Service | None = None) -> None:
    """Wait until something listens on `port` inside `netns` (checked with `ss`)."""
    flag = "-lntH" if proto == "tcp" else "-lnuH"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(in_netns(netns, ["ss", flag, f"sport = :{port}"]), capture_output=True,
                             text=True).stdout
        if out.strip():
            return
        if service is not None:
            service.check_running()
        time.sleep(0.2)
    raise ServiceError(f"nothing listens on {proto}/{port} in {netns} after {timeout:.0f} s")
