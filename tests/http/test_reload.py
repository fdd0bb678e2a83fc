"""Catalog reload against a running server: a good edit, a broken edit (last good kept), fixed again."""

import asyncio
import json
import signal
import time

import aiohttp

from tests.conftest import MACHINES, PROFILE, write_catalog


async def fetch(url):
    async with aiohttp.ClientSession() as s:
        async with s.get(url) as r:
            return r.status, await r.text()


async def wait_generation(server, generation, timeout=2.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, text = await fetch(server.url + "/healthz")
        health = json.loads(text)
        if health["catalog"]["generation"] >= generation:
            return health
        await asyncio.sleep(0.1)
    raise AssertionError(f"generation {generation} not reached within {timeout}s: {health}")


async def test_good_broken_fixed_edits(serve, tmp_path):
    root = write_catalog(tmp_path / "c", {"a.yaml": PROFILE, "m.yaml": MACHINES, "ignition.json": "{}"})
    server = serve("--catalog", str(root), "--state", "memory://")
    _, text = await fetch(server.url + "/ipxe?mac=52:54:00:00:00:01")
    assert "hostname=node1" in text

    (root / "m.yaml").write_text(MACHINES.replace("hostname: node1", "hostname: node1b"))
    health = await wait_generation(server, 2)  # picked up within 2 s, no restart
    assert health["last_reload_error"] is None
    _, text = await fetch(server.url + "/ipxe?mac=52:54:00:00:00:01")
    assert "hostname=node1b" in text

    (root / "m.yaml").write_text(MACHINES.replace("hostname: node1", "hostname: node1c").replace("profile: install",
                                                                                                   "profile: instal"))
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        _, text = await fetch(server.url + "/healthz")
        if json.loads(text)["last_reload_error"]:
            break
        await asyncio.sleep(0.1)
    health = json.loads(text)
    assert health["catalog"]["generation"] == 2
    assert "m.yaml:6" in health["last_reload_error"] and "profile 'instal' does not exist" in health["last_reload_error"]
    _, text = await fetch(server.url + "/ipxe?mac=52:54:00:00:00:01")
    assert "hostname=node1b" in text  # nothing served from the broken edit
    server.wait_log(r"still serving generation 2")

    (root / "m.yaml").write_text(MACHINES.replace("hostname: node1", "hostname: node1d"))
    health = await wait_generation(server, 3)
    assert health["last_reload_error"] is None
    _, text = await fetch(server.url + "/ipxe?mac=52:54:00:00:00:01")
    assert "hostname=node1d" in text


async def test_sighup_reloads_and_sigterm_stops_quickly(serve, tmp_path):
    root = write_catalog(tmp_path / "c", {"a.yaml": PROFILE, "m.yaml": MACHINES, "ignition.json": "{}"})
    server = serve("--catalog", str(root), "--state", "memory://")
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log(r"catalog reloaded \(SIGHUP\): generation 2")
    started = time.monotonic()
    assert server.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 5


def test_broken_catalog_at_start_refuses_to_start(serve, tmp_path):
    root = write_catalog(tmp_path / "c", {"a.yaml": PROFILE.replace("kernel:", "kernal:"), "ignition.json": "{}"})
    try:
        serve("--catalog", str(root), "--state", "memory://")
    except RuntimeError as exc:
        assert "did you mean 'kernel'" in str(exc) and "not starting" in str(exc)
    else:
        raise AssertionError("server started with a broken catalog")
