"""Fixtures for the TFTP tests: served files, a Runtime on a MemoryStore, a live server."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bench.common import random_file
from bootserver.catalog.model import Catalog
from bootserver.config import Settings
from bootserver.runtime import Runtime
from bootserver.state.memory import MemoryStore
from bootserver.tftp import TFTPServer
from tests.tftp.tftp_helpers import CLIENT_MAC

ROLLOVER_SIZE = 65_700 * 512 + 100  # more than 65,535 blocks at blksize 512


@pytest.fixture(scope="session")
def files(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tftproot")
    random_file(root / "f1m", 1 << 20)
    random_file(root / "f100k", 100_000)
    random_file(root / "f64m", 64 << 20)
    random_file(root / "rollover", ROLLOVER_SIZE)
    random_file(root / "exact1024", 4 * 1024)  # a multiple of the block size: ends with an empty block
    (root / "empty").write_bytes(b"")
    (root / "sub").mkdir()
    random_file(root / "sub" / "nested.bin", 3000)
    (root / "inside-link").symlink_to(root / "sub" / "nested.bin")
    (root / "escape-link").symlink_to("/etc/passwd")
    (root / "escape-dir").symlink_to("/etc")
    return root


@pytest.fixture
def runtime(files, tmp_path) -> Runtime:
    empty_ipxe = tmp_path / "ipxe"
    empty_ipxe.mkdir()
    settings = replace(Settings(), tftp="127.0.0.1:0", ipxe_dir=empty_ipxe, tftp_root=(files,))
    rt = Runtime(settings, Catalog(root=tmp_path), MemoryStore())
    rt.remember_ip("127.0.0.1", CLIENT_MAC)
    return rt


@pytest.fixture
async def server(runtime):
    srv = TFTPServer(runtime, runtime.settings, retransmit_timeout=0.2, retries=3)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()
