"""Shared fixtures: catalogs written to temporary folders, and real servers on loopback."""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.support.processes import stop

REPO = Path(__file__).resolve().parent.parent


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (CI=true) a skipped test fails: a skip there means a missing install step or service."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI, which must have every prerequisite: {reason}"


def shared_dir() -> Path:
    """../shared beside the clone (CI), else the workplace copy."""
    for candidate in (REPO.parent / "shared", Path("/work/shared")):
        if candidate.is_dir():
            return candidate
    raise RuntimeError("shared/ test data not found beside the repository")


PROFILE = """\
apiVersion: bootserver/v1
kind: Profile
metadata: {name: install}
spec:
  boot:
    kernel: os/vmlinuz
    initrd: [os/initrd.img]
    args: ["console=ttyS0", "hostname={{ metadata.hostname }}", "ignition.config.url={{ urls.ignition }}",
           "bootserver.events={{ urls.events }}"]
  ignition: {config: ignition.json}
  after_install: local-disk
---
apiVersion: bootserver/v1
kind: Profile
metadata: {name: live}
spec:
  boot:
    kernel: https://mirror.example/live/vmlinuz
    args: ["console=ttyS0"]
"""

MACHINES = """\
apiVersion: bootserver/v1
kind: Machine
metadata: {name: node1}
spec:
  mac: 52:54:00:00:00:01
  profile: install
  metadata: {hostname: node1, disk: {device: /dev/vda}}
---
apiVersion: bootserver/v1
kind: Group
metadata: {name: lab}
spec:
  selector: {mac_prefix: "52:54:00"}
  profile: live
  metadata: {hostname: lab-host, disk: {device: /dev/sda, wipe: true}}
"""


def write_catalog(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    return write_catalog(tmp_path / "catalog", {
        "profiles.yaml": PROFILE, "machines.yaml": MACHINES,
        "ignition.json": '{"ignition": {"version": "3.3.0"}}',
    })


class ServerProcess:
    """`bootserver serve` as a real subprocess on loopback, with its log captured."""

    def __init__(self, args: list[str], cwd: Path, env: dict | None = None,
                 nofile: tuple[int, int] | None = None) -> None:
        self.log_path = cwd / "server.log"
        self._log = open(self.log_path, "wb")
        limit = None if nofile is None else (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile))
        self.proc = subprocess.Popen([sys.executable, "-m", "bootserver", "serve", *args], cwd=cwd,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})}, preexec_fn=limit)
        self.port = self._wait_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _wait_port(self, timeout: float = 15) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"HTTP listening on [^ ]+:(\d+)", self.log())
            if found and "bootserver ready" in self.log():
                return int(found.group(1))
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def wait_log(self, pattern: str, timeout: float = 10) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log())
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} not in server log:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        code = stop(self.proc, timeout, sig)
        self._log.close()
        return code


@pytest.fixture
def serve(tmp_path: Path):
    started: list[ServerProcess] = []

    def start(*args: str, env: dict | None = None, nofile: tuple[int, int] | None = None) -> ServerProcess:
        server = ServerProcess(["--http", "127.0.0.1:0", *args], tmp_path, env, nofile)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
