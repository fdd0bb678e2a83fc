"""Concurrent writers share commits (group commit), and the metrics say so."""

from __future__ import annotations

import asyncio

import pytest

from bootserver.metrics import REGISTRY
from bootserver.state import Event


def sample(name: str, backend: str) -> float:
    return REGISTRY.get_sample_value(name, {"backend": backend}) or 0.0


@pytest.mark.parametrize("store_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
async def test_concurrent_events_share_commits(store, store_url):
    backend = "sqlite" if store_url.startswith("sqlite") else "postgresql"
    commits = sample("bootserver_state_commit_batch_writes_count", backend)
    committed = sample("bootserver_state_events_committed_total", backend)
    results = await asyncio.gather(*(store.record(Event(f"52:54:00:00:00:{n:02x}", "http.ipxe"))
                                     for n in range(200)))
    assert results == [True] * 200
    assert sample("bootserver_state_events_committed_total", backend) - committed == 200
    used = sample("bootserver_state_commit_batch_writes_count", backend) - commits
    assert 1 <= used <= 20, f"200 concurrent events took {used:.0f} commits"
