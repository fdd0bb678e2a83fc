"""Issue 19 items 2 and 5: a template that loops for ever or produces a gigabyte fails with a clear
error naming the template, while every other request keeps being answered; the render cache is keyed
only by what the template can see, so unique queries and Host headers cannot inflate it."""

from __future__ import annotations

import asyncio
import json
import re
import time

import aiohttp
import pytest

from tests.conftest import MACHINES, write_catalog

PROFILE = """\
apiVersion: bootserver/v1
kind: Profile
metadata: {name: install}
spec:
  boot: {kernel: os/vmlinuz, args: ["console=ttyS0"]}
  ignition: {butane: templates/node.bu}
---
apiVersion: bootserver/v1
kind: Profile
metadata: {name: live}
spec:
  boot: {kernel: os/vmlinuz}
"""
HEAD = "variant: flatcar\nversion: 1.0.0\n"
LOOPS = HEAD + "storage:\n  files:\n    - path: /x\n      contents: {inline: \"{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}\"}\n"
GIGABYTE = HEAD + "storage:\n  files:\n    - path: /x\n      contents: {inline: \"{% for a in range(100000) %}{{ 'y' * 10000 }}{% endfor %}\"}\n"
BIG_CONFIG = HEAD + "storage:\n  files:\n    - path: /x\n      contents: {inline: {{ machine.name | yaml_quote }}}\n"


def catalog(tmp_path, template: str):
    return write_catalog(tmp_path / "cat", {"p.yaml": PROFILE, "m.yaml": MACHINES, "templates/node.bu": template})


def rss_kb(pid: int) -> int:
    return int(next(l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")).split()[1])


@pytest.mark.parametrize("template,words", [(LOOPS, "took more than"), (GIGABYTE, "larger than")],
                         ids=["endless-loops", "gigabyte"])
async def test_a_runaway_template_fails_clearly_and_the_server_keeps_answering(serve, tmp_path, template, words):
    server = serve("--catalog", str(catalog(tmp_path, template)), "--state", "memory://")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        async def ignition():
            started = time.monotonic()
            async with s.get(server.url + "/ignition?mac=52:54:00:00:00:01") as r:
                return r.status, await r.text(), time.monotonic() - started

        async def healthz_while_rendering():
            await asyncio.sleep(0.3)
            started = time.monotonic()
            async with s.get(server.url + "/healthz") as r:
                return r.status, time.monotonic() - started

        (status, body, took), (health, health_took) = await asyncio.gather(ignition(), healthz_while_rendering())
    assert status == 500 and "node.bu" in json.loads(body)["error"] and words in body, body
    assert took < 20
    assert health == 200 and health_took < 1.0  # the loop was free while the template ran
    assert "Traceback" not in server.log()


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_unique_queries_and_hosts_do_not_grow_the_render_cache(serve, tmp_path):
    server = serve("--catalog", str(catalog(tmp_path, BIG_CONFIG)), "--state", "memory://",
                   env={"BOOTSERVER_HTTP_REQUESTS_PER_CLIENT": "0"})  # one client standing in for many
    async with aiohttp.ClientSession() as s:
        for n in range(100):  # the template does not look at the request: one render serves them all
            async with s.get(server.url + f"/ignition?mac=52:54:00:00:00:01&label{n}=v{n}",
                             headers={"Host": f"host{n}.example:8080"}) as r:
                assert r.status == 200
                size = len(await r.read())
        async with s.get(server.url + "/metrics") as r:
            metrics = await r.text()
    assert metric(metrics, 'bootserver_ignition_cache_total{result="miss"}') == 1
    assert metric(metrics, 'bootserver_ignition_cache_total{result="hit"}') == 99
    assert metric(metrics, "bootserver_ignition_cache_bytes") == size


def test_the_render_cache_holds_a_byte_budget():
    from bootserver.render.render_cache import RenderCache

    cache = RenderCache(size=4096, max_bytes=10 << 20)
    for n in range(100):
        cache.get_or_render(("m", 1, None, str(n)), lambda: bytes(1 << 20))
    assert cache.bytes <= 10 << 20 and len(cache) == 10
