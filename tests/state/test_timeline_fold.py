"""The same answer to the same machine again within a second folds into the timeline entry before
it (bootserver/timeline_fold.py): counted, not written; the next one written says how many."""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web

from bootserver.boot.machine import Event
from bootserver.catalog.loader import load_catalog
from bootserver.config import Settings
from bootserver.http.server import make_app
from bootserver.metrics import REGISTRY
from bootserver.runtime import Runtime
from bootserver.state.sqlite import SqliteStore
from bootserver.timeline_fold import RepeatFolder

from tests.http.assets_support import CATALOG, KNOWN_MAC

MAC = "52:54:00:00:00:01"
ANSWER = {"action": "boot", "reason": "matched", "profile": "install"}


def ipxe(at: float, detail=None, source="10.0.0.5", kind="http.ipxe", mac=MAC) -> Event:
    return Event(mac, kind, source, dict(detail or ANSWER), at=at)


def folded(kind: str) -> float:
    return REGISTRY.get_sample_value("bootserver_timeline_repeats_folded_total", {"kind": kind}) or 0.0


def test_a_repeat_within_the_window_folds_and_the_next_written_one_counts_it():
    folder, before = RepeatFolder(window=1.0), folded("http.ipxe")
    assert folder.fold(ipxe(100.0)) is not None
    assert folder.fold(ipxe(100.4)) is None and folder.fold(ipxe(100.9)) is None
    assert folded("http.ipxe") == before + 2
    later = folder.fold(ipxe(101.2))  # a second after the last one written: written, with the count
    assert later is not None and later.detail == {**ANSWER, "repeats": 2} and later.at == 101.2
    assert folder.fold(ipxe(101.5)) is None  # the window starts again at the one just written
    plain = folder.fold(ipxe(102.3))
    assert plain.detail == {**ANSWER, "repeats": 1}
    assert folder.fold(ipxe(103.4)).detail == ANSWER  # nothing folded since: no count


def test_another_answer_address_kind_or_machine_is_written():
    folder = RepeatFolder(window=1.0)
    assert folder.fold(ipxe(100.0)) is not None
    assert folder.fold(ipxe(100.1, {**ANSWER, "action": "local-disk"})) is not None  # a new answer
    assert folder.fold(ipxe(100.2, {**ANSWER, "action": "local-disk"})) is None
    assert folder.fold(ipxe(100.3, {**ANSWER, "action": "local-disk"}, source="10.0.0.6")) is not None
    assert folder.fold(ipxe(100.4, {**ANSWER, "action": "local-disk"}, mac="52:54:00:00:00:02")) is not None
    assert folder.fold(ipxe(100.5, {"profile": "install", "status": 200, "bytes": 9}, kind="http.ignition")) is not None


def test_events_that_are_not_answers_are_never_folded():
    folder = RepeatFolder(window=1.0)
    for kind in ("dhcp.offer", "tftp.transfer", "http.asset", "http.kernel", "installer.progress"):
        assert [folder.fold(ipxe(100.0 + i / 10, kind=kind)) is not None for i in range(3)] == [True] * 3


def test_forget_and_the_memory_bound_write_the_next_answer():
    folder = RepeatFolder(window=1.0, limit=2)
    assert folder.fold(ipxe(100.0)) is not None
    folder.forget(MAC)  # the machine moved: its next answer is news
    assert folder.fold(ipxe(100.1)) is not None
    folder.fold(ipxe(100.2, mac="52:54:00:00:00:02"))
    folder.fold(ipxe(100.2, mac="52:54:00:00:00:03"))  # past the limit: the memory starts over
    assert folder.fold(ipxe(100.3)) is not None


def test_a_clock_stepped_back_does_not_fold_forever():
    folder = RepeatFolder(window=1.0)
    assert folder.fold(ipxe(100.0)) is not None
    assert folder.fold(ipxe(50.0)) is not None


async def test_repeated_ipxe_over_http_one_entry_every_request_in_the_access_log(tmp_path, caplog):
    """The whole app over SQLite: ten /ipxe in a row are ten access-log lines, one decision line and
    one timeline entry; after the machine moves (a reinstall) its next answer is written again."""
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "catalog.yaml").write_text(CATALOG)
    (tmp_path / "assets").mkdir()
    settings = Settings(assets=tmp_path / "assets", catalog=tmp_path / "catalog")
    store = SqliteStore(tmp_path / "state.db")
    await store.open()
    runtime = Runtime(settings, load_catalog(settings.catalog, settings.assets), store)
    runner = web.AppRunner(make_app(runtime, settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/ipxe?mac={KNOWN_MAC}&arch=x86_64"
    caplog.set_level(logging.INFO)
    before = folded("http.ipxe")
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(10):
                async with session.get(url) as response:
                    assert response.status == 200 and "kernel " in await response.text()
            await runtime.reinstall(KNOWN_MAC)
            async with session.get(url) as response:
                assert response.status == 200
    finally:
        await runner.cleanup()
        await runtime.close()
    store = SqliteStore(tmp_path / "state.db")
    await store.open()
    try:
        kinds = [e.kind for e in await store.events(KNOWN_MAC)]
    finally:
        await store.close()
    assert kinds.count("http.ipxe") == 2 and kinds[-1] == "http.ipxe" and "reinstall" in kinds
    assert folded("http.ipxe") == before + 9
    access = [r for r in caplog.records if r.name == "bootserver.access" and "GET /ipxe 200" in r.getMessage()]
    decided = [r for r in caplog.records if r.name == "bootserver.http" and " gets " in r.getMessage()]
    assert len(access) == 11 and len(decided) == 2
