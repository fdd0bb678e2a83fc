"""Fixtures for the end-to-end tests: a lab (namespaces, dnsmasq, boot service, QEMU) per test,
named bse2e-<random> so parallel runs never collide, always torn down."""

import os
import secrets
import sys
from pathlib import Path

import pytest

from bootserver.lab.lab import Lab, MachineSpec, check_host

sys.path.insert(0, str(Path(__file__).parent))

BOOT_TIMEOUT = 240  # seconds; a boot under TCG takes 10-30 s, more when the two CPUs are shared


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.netns)
            item.add_marker(pytest.mark.timeout(600))


@pytest.fixture
def make_lab(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("e2e tests need root (network namespaces, tap devices)")
    problems = check_host()
    assert not problems, "host is missing lab requirements: " + "; ".join(problems)
    labs = []

    def make(machines: list[MachineSpec], server) -> Lab:
        lab = Lab(f"bse2e-{secrets.token_hex(3)}", tmp_path / f"lab{len(labs)}", machines, server,
                  log=lambda line: print(line, flush=True))
        labs.append(lab)
        lab.up()
        return lab

    try:
        yield make
    finally:
        for lab in labs:
            lab.down()
