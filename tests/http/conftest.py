"""Fixtures of the /assets tests: the whole HTTP app on a loopback port, over a folder with a 64 MB file."""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bootserver.catalog.loader import load_catalog
from bootserver.config import Settings
from bootserver.http.server import make_app
from bootserver.runtime import Runtime
from bootserver.state.memory import MemoryStore

from tests.http.assets_support import BIG, CATALOG


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """assets/ with a 64 MB file, a versioned tree with a `current` pointer, and escape attempts."""
    base = tmp_path_factory.mktemp("assets-test")
    root = base / "assets"
    (root / "flatcar" / "4081.2.0").mkdir(parents=True)
    (root / "big.img").write_bytes(os.urandom(BIG))
    (root / "boot.ipxe").write_text("#!ipxe\nchain /ipxe\n")
    (root / "flatcar" / "4081.2.0" / "vmlinuz").write_bytes(b"kernel-4081" * 1000)
    (root / "flatcar" / "current").symlink_to("4081.2.0")
    (root / "a file.txt").write_text("spaced\n")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret").write_text("TOP-SECRET\n")
    (root / "escape").symlink_to(outside / "secret")
    (root / "escape-rel").symlink_to("../outside/secret")
    (root / "outdir").symlink_to(outside)
    return root


@pytest.fixture
async def server(folder, tmp_path):
    """The whole HTTP app (access log and request metrics included) on an ephemeral loopback port."""
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "catalog.yaml").write_text(CATALOG)
    settings = Settings(assets=folder, catalog=tmp_path / "catalog", state="memory://")
    runtime = Runtime(settings, load_catalog(settings.catalog, settings.assets), MemoryStore())
    app = make_app(runtime, runtime.settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", port, runtime
    finally:
        await runner.cleanup()


@pytest.fixture
async def client():
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session
