"""Rollout control against a real bootserver: 200 nodes asking at once never get more than
max_updating offers, on SQLite and PostgreSQL; a paused rollout answers noupdate; the CLI drives it."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from .conftest import NEW, OLD, boot, session_from
from .omaha_client import UPDATE_COMPLETE, SUCCESS, Node, check_for_update, reboot_into, send_event
from tests.state.conftest import pg_url  # noqa: F401  (fixture: a fresh PostgreSQL database)

NODES = 200
LIMIT = 5


def address(i: int) -> str:
    return f"127.0.{2 + i // 250}.{1 + i % 250}"


def mac(i: int) -> str:
    return f"02:00:00:00:{i // 256:02x}:{i % 256:02x}"


async def wave(omaha: str, nodes: list[Node]) -> list[Node]:
    """Every node checks at the same moment; returns the nodes that were offered the update."""
    async def one(node: Node):
        async with session_from(node.local_addr) as session:
            return node, await check_for_update(session, omaha, node)
    results = await asyncio.wait_for(asyncio.gather(*(one(n) for n in nodes)), 120)
    offered = [node for node, offer in results if offer is not None]
    assert all(offer.version == NEW for _, offer in results if offer is not None)
    return offered


async def finish(omaha: str, nodes: list[Node]) -> None:
    """The offered nodes apply the update, reboot into it and report the new version."""
    for node in nodes:
        async with session_from(node.local_addr) as session:
            await send_event(session, omaha, node, UPDATE_COMPLETE, SUCCESS)
            reboot_into(node, NEW)
            assert await check_for_update(session, omaha, node) is None


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def state_url(request, tmp_path):
    return f"sqlite:///{tmp_path}/state.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")


async def test_200_nodes_at_once_never_get_more_than_the_limit(serve, mirror, catalog, state_url):
    assets, _ = mirror
    server = serve("--catalog", str(catalog(max_updating=LIMIT)), "--assets", str(assets), "--state", state_url)
    omaha = f"{server.url}/v1/update/"
    nodes = [Node(f"{i:032x}", version=OLD, local_addr=address(i)) for i in range(NODES)]
    for start in range(0, NODES, 25):
        await asyncio.gather(*(boot(server.url, mac(i), address(i)) for i in range(start, min(start + 25, NODES))))
    updated: set[str] = set()
    for round_ in range(3):
        offered = await wave(omaha, [n for n in nodes if n.machine_id not in updated])
        assert len(offered) == LIMIT, f"round {round_}: {len(offered)} offers for {LIMIT} slots"
        again = await wave(omaha, [n for n in nodes if n.machine_id not in updated])  # asking again changes nothing
        assert {n.machine_id for n in again} == {n.machine_id for n in offered}
        await finish(omaha, offered)
        updated |= {n.machine_id for n in offered}
    assert len(updated) == 3 * LIMIT


def cli(server_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bootserver", "updates", *args, "--server", server_url],
                          capture_output=True, text=True, timeout=30)


async def test_paused_rollout_answers_noupdate_until_resumed(serve, mirror, catalog):
    assets, _ = mirror
    server = serve("--catalog", str(catalog()), "--assets", str(assets), "--state", "memory://")
    omaha = f"{server.url}/v1/update/"
    node = Node("d" * 32, local_addr="127.0.1.20")
    await boot(server.url, "02:00:00:00:01:20", node.local_addr)
    done = cli(server.url, "pause")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("updates: PAUSED for every rollout")
    async with session_from(node.local_addr) as session:
        assert await check_for_update(session, omaha, node) is None
        assert cli(server.url, "resume").returncode == 0
        done = cli(server.url, "pause", "group/rack1")
        assert done.returncode == 0 and "group/rack1" in done.stdout and "paused" in done.stdout
        assert await check_for_update(session, omaha, node) is None
        assert cli(server.url, "resume", "group/rack1").returncode == 0
        offer = await check_for_update(session, omaha, node)
        assert offer is not None and offer.version == NEW
    status = cli(server.url, "status")
    assert status.returncode == 0
    assert "group/rack1" in status.stdout and "offered" in status.stdout and NEW in status.stdout
    unknown = cli(server.url, "pause", "group/nope")
    assert unknown.returncode == 1 and "no rollout 'group/nope'" in unknown.stderr
    server.wait_log(r"updates paused for every rollout")
    server.wait_log(r"updates resumed for group/rack1")
