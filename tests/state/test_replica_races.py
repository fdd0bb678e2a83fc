"""Races between replicas: three real `bootserver serve` processes share one PostgreSQL, and one
machine gets 100 concurrent `installed` / `reinstall` / `installed` requests spread over them,
installer retries included (the same Idempotency-Key sent to several replicas).

Whatever the interleaving, the outcome must be one a serial order explains: every transition the
timeline names starts where the previous one ended, the last one ends in the machine's state, each
idempotency key is in the timeline at most once, and every report that was answered 200 is there.
"""

from __future__ import annotations

import asyncio
import json
import random
import urllib.parse

import aiohttp
import pytest

from tests.state.test_install_once import TOKEN, http, start, story_catalog, token_from  # noqa: F401 (fixture)

pytestmark = pytest.mark.postgres

MAC = "52:54:00:0c:0c:0c"
ROUNDS = 5
REQUESTS = 100


def chain_problems(state: str, events: list[dict]) -> list[str]:
    """What is wrong with the timeline's transitions, replayed in seq order (empty: consistent)."""
    problems, current = [], None
    for event in events:
        transition = (event.get("detail") or {}).get("transition")
        if not transition:
            continue
        source, _, target = transition.partition("->")
        if current is not None and source != current:
            problems.append(f"seq {event['seq']} {event['kind']} moves {transition}, but the machine was {current}")
        current = target
    if current is not None and current != state:
        problems.append(f"the last transition ends in {current}, the machine is {state}")
    return problems


async def fire(session: aiohttp.ClientSession, urls: list[str], token: str) -> tuple[list[str], dict]:
    """REQUESTS requests at once over the replicas; returns the keys answered 200 and a tally."""
    keys = [f"k{random.getrandbits(48):x}" for _ in range(3)]  # a few installer runs, each retried often
    tally: dict[str, int] = {}
    acked: list[str] = []

    async def one(i: int) -> None:
        base = urls[i % len(urls)]
        if i % 3 == 1:
            async with session.post(f"{base}/api/v1/machines/{MAC}/reinstall",
                                    headers={"Authorization": f"Bearer {TOKEN}"}) as answer:
                tally[f"reinstall {answer.status}"] = tally.get(f"reinstall {answer.status}", 0) + 1
            return
        key = keys[i % len(keys)]
        async with session.post(f"{base}/api/v1/machines/{MAC}/events?token={urllib.parse.quote(token)}",
                                json={"event": "installed", "detail": "race"},
                                headers={"Idempotency-Key": key}) as answer:
            tally[f"installed {answer.status}"] = tally.get(f"installed {answer.status}", 0) + 1
            if answer.status == 200:
                acked.append(key)

    await asyncio.gather(*(one(i) for i in range(REQUESTS)))
    return acked, tally


async def test_installed_reinstall_installed_through_three_replicas(serve, story_catalog, pg_url, tmp_path):
    (story_catalog / "node.yaml").write_text(
        f"apiVersion: bootserver/v1\nkind: Machine\nmetadata: {{name: racer}}\nspec: {{mac: '{MAC}', profile: install}}\n")
    replicas = [start(serve, story_catalog, pg_url) for _ in range(3)]
    urls = [r.url for r in replicas]
    status, script = http("GET", f"{urls[0]}/ipxe?mac={MAC}&arch=x86_64&platform=efi")
    assert status == 200, script
    token = token_from(script)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        for round_ in range(ROUNDS):
            async with session.get(f"{urls[round_ % 3]}/ignition?mac={MAC}") as answer:  # the install starts
                assert answer.status == 200
            acked, tally = await fire(session, urls, token)
            async with session.get(f"{urls[(round_ + 1) % 3]}/api/v1/machines/{MAC}",
                                   headers={"Authorization": f"Bearer {TOKEN}"}) as answer:
                state = (await answer.json())["state"]
            async with session.get(f"{urls[(round_ + 2) % 3]}/api/v1/machines/{MAC}/events?limit=1000",
                                   headers={"Authorization": f"Bearer {TOKEN}"}) as answer:
                events = (await answer.json())["events"]
            print(f"round {round_}: {json.dumps(tally, sort_keys=True)} -> {state}")
            assert not [k for k in tally if not k.endswith(" 200")], tally  # no 409/500: every request is answered
            assert state in ("installed", "ready")
            assert chain_problems(state, events) == [], [(e["seq"], e["kind"], e["source"], e["detail"].get("transition"))
                                                         for e in events if e["detail"].get("transition")]
            keyed = [e["key"] for e in events if e["kind"] == "installer.installed" and e["key"]]
            assert len(keyed) == len(set(keyed)), "an idempotency key was recorded twice"
            assert set(acked) <= set(keyed), "a report answered 200 is missing from the timeline"
            assert all(e["key"] is None for e in events if e["kind"] != "installer.installed")
            # the next round starts from a known state
            async with session.post(f"{urls[0]}/api/v1/machines/{MAC}/reinstall",
                                    headers={"Authorization": f"Bearer {TOKEN}"}) as answer:
                assert answer.status == 200
