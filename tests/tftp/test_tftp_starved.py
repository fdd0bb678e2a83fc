"""A machine that is alive but slow (its CPU starved, its packets late) is not abandoned: seen in
the 10,000-machine storm, where a request resent while the first answer was on its way used to
restart the running transfer on a new port (the machine then saw its port unreachable), and a
machine silent for half a minute was given up."""

from __future__ import annotations

import asyncio
import struct

import pytest

from bootserver.tftp import TFTPServer, metrics
from bootserver.tftp.server import DEFAULT_RETRIES
from tests.support.waiting import until
from tests.tftp.tftp_helpers import RawClient, ack, counter, parse_oack, rrq, transfers

pytestmark = pytest.mark.timeout(60)

OLD_RETRIES = 5  # what the server gave up after before


@pytest.fixture
async def client():
    c = RawClient()
    yield c
    c.close()


async def lockstep_rest(client, tid, expected: int, blksize: int, received: bytearray) -> bytearray:
    """Receive and acknowledge DATA from block `expected` to the end, one at a time, from `tid` only;
    a duplicate is answered with the ACK of the block before, as firmware does."""
    while True:
        data, source = await client.recv(timeout=5)
        assert source == tid, f"DATA from {source}, the transfer runs on {tid}"
        assert data[:2] == b"\0\x03", f"expected DATA, got {data[:4]!r}"
        block = struct.unpack("!H", data[2:4])[0]
        if block != expected & 0xFFFF:
            client.send(ack(expected - 1), tid)
            continue
        received += data[4:]
        client.send(ack(block), tid)
        if len(data) < 4 + blksize:
            return received
        expected += 1


async def test_late_duplicate_request_does_not_restart_the_transfer(server, client, runtime, files):
    """The request is resent (byte for byte, same port) after the transfer has moved on: the transfer
    goes on on its port; no second one starts."""
    request = rrq("f100k", blksize=1468, tsize=0)
    client.send(request, server.address)
    oack, tid = await client.recv()
    assert parse_oack(oack) == {"blksize": "1468", "tsize": "100000"}
    client.send(ack(0), tid)
    received = bytearray()
    for block in (1, 2, 3):
        data, _ = await client.recv()
        assert data[:4] == struct.pack("!HH", 3, block)
        received += data[4:]
        if block < 3:
            client.send(ack(block), tid)
    client.send(request, server.address)  # the late copy, read while block 3 waits for its ACK
    await asyncio.sleep(0.05)
    assert list(server.sessions) == [client.sock.getsockname()] and server.sessions[client.sock.getsockname()].base == 3
    client.send(ack(3), tid)
    received = await lockstep_rest(client, tid, 4, 1468, received)
    assert bytes(received) == (files / "f100k").read_bytes()
    assert await until(lambda: not server.sessions)
    assert [(t["outcome"], t["bytes"]) for t in await transfers(runtime)] == [("complete", 100_000)]


async def test_client_silent_longer_than_the_old_give_up_then_resuming_completes(runtime, client, files):
    """Timeout 0.05 s: the server used to give up after 5 retries (0.05 + 0.1 + … + 1.6 = 3.15 s of
    silence). A client that reads nothing for 4 s (its CPU starved), then takes up where it was,
    finishes: the retransmitted copies wait in its socket and are answered as duplicates."""
    timeout = 0.05
    srv = TFTPServer(runtime, runtime.settings, retransmit_timeout=timeout)
    await srv.start()
    try:
        client.send(rrq("f100k", blksize=1468), srv.address)
        oack, tid = await client.recv()
        assert parse_oack(oack) == {"blksize": "1468"}
        client.send(ack(0), tid)
        first, _ = await client.recv()
        assert first[:4] == b"\0\x03\0\x01"
        client.send(ack(1), tid)
        before = counter(metrics.RETRANSMITS)
        old_give_up = sum(timeout * 2 ** k for k in range(OLD_RETRIES + 1))
        await asyncio.sleep(old_give_up + 0.85)  # starved: nothing read, nothing sent
        assert srv.sessions, "the transfer was given up while the client was only slow"
        assert counter(metrics.RETRANSMITS) - before >= OLD_RETRIES  # block 2, resent with backoff meanwhile
        received = await lockstep_rest(client, tid, 2, 1468, bytearray(first[4:]))
        assert bytes(received) == (files / "f100k").read_bytes()
        assert await until(lambda: not srv.sessions)
        assert (await transfers(runtime))[-1]["outcome"] == "complete"
    finally:
        await srv.stop()


def test_default_give_up_is_bounded_like_tftpd_hpa():
    """With the 1 s first timeout doubling up to 8 s, the default gives up after 63 s of silence
    (tftpd-hpa: 63 s; dnsmasq: 120 s without progress), never unbounded."""
    from bootserver.tftp.session import MAX_INTERVAL
    waits = [1.0] + [min(1.0 * 2 ** r, MAX_INTERVAL) for r in range(1, DEFAULT_RETRIES + 1)]
    assert sum(waits) == 63.0


async def test_requests_beyond_max_sessions_wait_for_a_free_slot(runtime):
    """At the limit a request is not refused (an error ends a machine's boot): it waits, unread,
    until a transfer ends, then is served; a resent copy that waited with it is a duplicate."""
    srv = TFTPServer(runtime, runtime.settings, max_sessions=2)
    await srv.start()
    clients = [RawClient() for _ in range(3)]
    try:
        tids = []
        for c in clients[:2]:
            c.send(rrq("f1m"), srv.address)
            data, tid = await c.recv()
            assert data[:4] == b"\0\x03\0\x01"
            tids.append(tid)
        before = counter(metrics.ERRORS, "busy")
        clients[2].send(rrq("f1m", blksize=1024), srv.address)
        await clients[2].recv_none(0.3)
        clients[2].send(rrq("f1m", blksize=1024), srv.address)  # resent by the waiting client
        assert len(srv.sessions) == 2 and counter(metrics.ERRORS, "busy") == before + 1
        clients[0].send(b"\0\x05\0\x00gave up\0", tids[0])  # one transfer ends
        oack, tid = await clients[2].recv()
        assert parse_oack(oack) == {"blksize": "1024"}
        await clients[2].recv_none(0.1)  # the resent copy started nothing more
        assert sorted(srv.sessions) == sorted(c.sock.getsockname() for c in clients[1:])
    finally:
        for c in clients:
            c.close()
        await srv.stop()
    assert not srv.sessions and len(srv.files) == 0
