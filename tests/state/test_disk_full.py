"""SQLite on a full disk: writes fail clearly (nothing acknowledged), the store recovers with space."""

from __future__ import annotations

import os
import subprocess

import pytest

from bootserver.state import Event, StoreUnavailable, connect_store

MAC = "52:54:00:a1:9c:ae"


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "bsst-tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_full_disk_fails_writes_then_recovers(small_disk):
    store = await connect_store(f"sqlite:///{small_disk}/state.db", retention=100_000)
    try:
        await store.ensure(MAC, state="ready")
        filler = small_disk / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        with pytest.raises(StoreUnavailable, match="full"):
            for i in range(5000):  # WAL pages run out within a few hundred events
                await store.record(Event(MAC, "http.asset", detail={"pad": "x" * 200, "i": i}))
        filler.unlink()
        assert await store.record(Event(MAC, "after", detail={})) is True
        kinds = [e.kind for e in await store.events(MAC, limit=10)]
        assert kinds[-1] == "after"
    finally:
        await store.close()
