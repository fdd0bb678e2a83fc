"""The board's pure parts: secret masking, the bounded change feed, the Machine snippet."""

from __future__ import annotations

import asyncio

from bootserver.board.snippets import machine_yaml
from bootserver.boot.machine import MachineRecord
from bootserver.catalog.loader import load_catalog
from bootserver.changes import Changes, TooManySubscribers
from bootserver.overview import mask_secrets, masked_text
from tests.conftest import PROFILE, write_catalog


def test_secrets_are_masked_wherever_they_sit():
    config = {"passwd": {"users": [{"name": "core", "passwordHash": "$6$x", "sshAuthorizedKeys": ["ssh-ed25519 A"]}]},
              "storage": {"files": [{"contents": {"source": "http://h/x?token=abc&y=1"}}]}, "client_secret": 7}
    masked = mask_secrets(config)
    assert masked["passwd"]["users"][0]["passwordHash"].startswith("****")
    assert masked["passwd"]["users"][0]["sshAuthorizedKeys"] == ["ssh-ed25519 A"]  # public keys stay
    assert masked["storage"]["files"][0]["contents"]["source"] == "http://h/x?token=MASKED&y=1"
    assert masked["client_secret"].startswith("****")
    assert masked_text("events?token=s3cr3t-x_y done") == "events?token=MASKED done"


async def test_the_change_feed_is_bounded_and_coalesces():
    hub = Changes(max_subscribers=2, max_pending=3)
    a, b = hub.subscribe(), hub.subscribe()
    try:
        hub.subscribe()
        raise AssertionError("a third subscriber was accepted")
    except TooManySubscribers:
        pass
    for mac in ("m1", "m2", "m1", "m1"):
        hub.publish(mac)
    assert await a.wait(0) == (["m1", "m2"], False)
    for n in range(5):
        hub.publish(f"x{n}")
    assert await b.wait(0) == ([], True)  # fell behind: resync instead of holding memory
    assert await a.wait(0) == ([], True)
    assert await asyncio.wait_for(a.wait(0.05), 1) == ([], False)
    a.close()
    hub.subscribe()  # the slot came back


def test_the_machine_snippet_is_a_valid_catalog_document(tmp_path):
    record = MachineRecord(mac="02:00:00:aa:bb:cc", state="discovered", token="t", arch="x86_64-efi",
                           vendor="Acme #1 <NIC>", client_ip="10.0.0.5")
    snippet = machine_yaml(record, profile="install")
    root = write_catalog(tmp_path / "c", {"profiles.yaml": PROFILE, "adopted.yaml": snippet,
                                          "ignition.json": '{"ignition": {"version": "3.3.0"}}'})
    catalog = load_catalog(root, tmp_path / "assets")
    assert catalog.by_mac["02:00:00:aa:bb:cc"].name == "machine-020000aabbcc"
    assert "<" not in snippet and "#1" not in snippet.split("\n", 1)[1]


def test_durations_read_as_people_say_them():
    from bootserver.board.pages import ago, took

    assert [took(0.25), took(4.0), took(300), took(90000), took(None)] == ["250 ms", "4.0 s", "5m", "25h", ""]
    assert ago(1000.0, now=1030.0) == "30s ago" and ago(None) == "—" and ago(1000.0, now=1000.0 + 3 * 86400) == "3d ago"
