"""Protocol edges with a raw socket, plus refusals seen by real clients."""

from __future__ import annotations

import asyncio
import logging
import struct

import pytest

from bootserver.tftp import TFTPServer, metrics
from tests.support.waiting import until
from tests.tftp.tftp_helpers import CLIENT_MAC, RawClient, ack, counter, parse_error, parse_oack, rrq, run, transfers

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def patient_server(runtime):
    """Retransmits only after 5 s: nothing resent by timeout within these tests."""
    srv = TFTPServer(runtime, runtime.settings, retransmit_timeout=5.0)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def client():
    c = RawClient()
    yield c
    c.close()


async def error_for(client, server, packet) -> tuple[int, str]:
    client.send(packet, server.address)
    data, _ = await client.recv()
    return parse_error(data)


# -- refusals ------------------------------------------------------------------------------------

async def test_write_request_refused(server, client, files, tmp_path):
    assert await error_for(client, server, rrq("new-file", opcode=2)) == (2, "read-only server")
    src = tmp_path / "upload"
    src.write_bytes(b"x" * 1000)
    rc, log = await run("curl", "-sS", "-T", str(src), f"tftp://127.0.0.1:{server.address[1]}/upload")
    assert rc == 69, log  # CURLE_TFTP_PERM
    assert not (files / "upload").exists()
    assert not server.sessions


@pytest.mark.parametrize("name", ["../etc/passwd", "sub/../../etc/passwd", "/etc/passwd", "sub\\nested.bin",
                                  "escape-link", "escape-dir/passwd"])
async def test_path_escape_refused_and_logged(server, client, caplog, name):
    before = counter(metrics.ERRORS, "access_violation")
    with caplog.at_level(logging.WARNING, logger="bootserver.tftp"):
        assert await error_for(client, server, rrq(name)) == (2, "access violation")
    assert any("refused" in r.message and repr(name) in r.message for r in caplog.records)
    assert counter(metrics.ERRORS, "access_violation") == before + 1
    assert not server.sessions


async def test_path_escape_with_curl(server, tmp_path):
    rc, log = await run("curl", "-sS", "-o", str(tmp_path / "o"),
                        f"tftp://127.0.0.1:{server.address[1]}/escape-link")
    assert rc == 69, log  # CURLE_TFTP_PERM: access violation
    assert not (tmp_path / "o").exists() or (tmp_path / "o").read_bytes() == b""


async def test_missing_file_is_error_1(server, client, tmp_path):
    assert (await error_for(client, server, rrq("no-such-file")))[0] == 1
    assert (await error_for(client, server, rrq("sub")))[0] == 1  # a directory is not a file
    rc, log = await run("curl", "-sS", "-o", str(tmp_path / "o"), f"tftp://127.0.0.1:{server.address[1]}/nope")
    assert rc == 68, log  # CURLE_TFTP_NOTFOUND


async def test_netascii_refused(server, client):
    assert await error_for(client, server, rrq("f1m", mode=b"netascii")) == (0, "only octet mode is supported")


# -- options -------------------------------------------------------------------------------------

async def test_unknown_options_ignored_without_oack(server, client, files):
    client.send(rrq("sub/nested.bin", color="blue", rollover=0), server.address)
    data, _ = await client.recv()
    assert data[:4] == b"\0\x03\0\x01" and len(data) == 4 + 512


@pytest.mark.parametrize("options", [b"multicast\0\0", b"blksize\0", b"blksize\0\0tsize\x000\0", b"\0\0"])
async def test_undecodable_options_served_as_plain_request(server, client, options):
    """tftpy cannot read these options (RFC 2090's empty "multicast" value, a dangling name): the
    request is still served, without options."""
    client.send(rrq("sub/nested.bin") + options, server.address)
    data, _ = await client.recv()
    assert data[:4] == b"\0\x03\0\x01" and len(data) == 4 + 512


async def test_oack_carries_only_known_options(patient_server, client, files):
    server = patient_server
    client.send(rrq("sub/nested.bin", tsize=0, color="blue", blksize=1000, timeout=3, windowsize=2),
                server.address)
    data, tid = await client.recv()
    assert parse_oack(data) == {"tsize": "3000", "blksize": "1000", "timeout": "3", "windowsize": "2"}
    client.send(ack(0), tid)
    first, _ = await client.recv()
    second, _ = await client.recv()
    assert (first[:4], len(first), second[:4]) == (b"\0\x03\0\x01", 1004, b"\0\x03\0\x02")
    await client.recv_none(0.3)  # a window of 2: nothing more until the ACK
    client.send(ack(2), tid)
    third, _ = await client.recv()
    assert third[:4] == b"\0\x03\0\x03" and len(third) == 4 + 1000
    client.send(ack(3), tid)
    last, _ = await client.recv()
    assert last[:4] == b"\0\x03\0\x04" and len(last) == 4  # 3000 = 3 x 1000: an empty block ends it
    client.send(ack(4), tid)
    assert await until(lambda: not server.sessions)  # the last ACK ends the session


async def test_blksize_capped_by_setting(runtime, client):
    from dataclasses import replace
    runtime.settings = replace(runtime.settings, tftp_blksize_max=1024)
    srv = TFTPServer(runtime, runtime.settings)
    await srv.start()
    try:
        client.send(rrq("f1m", blksize=1468), srv.address)
        data, _ = await client.recv()
        assert parse_oack(data) == {"blksize": "1024"}
    finally:
        await srv.stop()


async def test_blksize_default_cap_fits_loopback_mtu(server, client):
    client.send(rrq("f1m", blksize=100000), server.address)
    data, _ = await client.recv()
    assert parse_oack(data) == {"blksize": "65464"}  # lo: MTU 65536; 65464 is also RFC 2348's maximum


async def test_out_of_range_options_are_dropped(server, client):
    client.send(rrq("sub/nested.bin", blksize=4, timeout=0, windowsize=0, tsize="x"), server.address)
    data, _ = await client.recv()
    assert data[:4] == b"\0\x03\0\x01" and len(data) == 516


# -- robustness ----------------------------------------------------------------------------------

MALFORMED = [b"", b"\0", b"\0\x01", b"\xff\xff\xff\xff", b"\0\x01no-nul-terminators", b"\0\x01f1m\0octet",
             b"\0\x01\xff\xfe\0octet\0", b"\0\x03\0\x01data", b"\0\x04\0\x01",
             b"\0\x06blksize\0512\0", b"\0\x01\0octet\0", b"\0\x09junk\0"]


async def test_malformed_packets_dropped_and_server_lives(server, client, files, tmp_path):
    before = counter(metrics.ERRORS, "malformed")
    for packet in MALFORMED:
        client.send(packet, server.address)
    await client.recv_none(0.3)  # dropped, not answered
    assert counter(metrics.ERRORS, "malformed") == before + len(MALFORMED)
    assert not server.sessions
    rc, log = await run("curl", "-sS", "-o", str(tmp_path / "o"), f"tftp://127.0.0.1:{server.address[1]}/f1m")
    assert rc == 0, log
    assert (tmp_path / "o").read_bytes() == (files / "f1m").read_bytes()


async def test_malformed_packets_inside_a_session_ignored(server, client, files):
    expected = (files / "sub" / "nested.bin").read_bytes()
    client.send(rrq("sub/nested.bin"), server.address)
    received = b""
    block = 1
    while True:
        data, tid = await client.recv()
        assert struct.unpack("!HH", data[:4]) == (3, block)
        received += data[4:]
        for junk in (b"", b"\0", b"\0\x04", b"\0\x03\0\x01xx", b"\x07\x07\x07\x07", ack(block + 7)):
            client.send(junk, tid)
        client.send(ack(block), tid)
        if len(data) < 516:
            break
        block += 1
    assert received == expected
    assert await until(lambda: not server.sessions)  # the last ACK ends the session


async def test_duplicate_acks_never_cause_duplicate_data(patient_server, client, files):
    """The Sorcerer's Apprentice: every duplicate ACK answered would double the traffic."""
    client.send(rrq("sub/nested.bin"), patient_server.address)
    data, tid = await client.recv()
    for _ in range(3):
        client.send(ack(1), tid)
    data, _ = await client.recv()
    assert data[:4] == b"\0\x03\0\x02"
    await client.recv_none(0.3)
    client.send(ack(1), tid)  # a late duplicate of an old ACK
    await client.recv_none(0.3)


async def test_retransmitted_request_does_not_start_a_second_transfer(server, client):
    client.send(rrq("f1m"), server.address)
    client.send(rrq("f1m"), server.address)
    marker = RawClient()  # requests are handled in arrival order: once this one has a session, so had both
    try:
        marker.send(rrq("f1m"), server.address)
        assert await until(lambda: marker.sock.getsockname() in server.sessions)
        assert sorted(server.sessions) == sorted([client.sock.getsockname(), marker.sock.getsockname()])
    finally:
        marker.close()


async def test_client_that_stops_acking_is_dropped_and_freed(runtime, client):
    """timeout 0.1 s, 3 retries, backing off (0.1, 0.2, 0.4, 0.8 s): block 1 is sent 4 times, then
    an error, and nothing is held any more."""
    srv = TFTPServer(runtime, runtime.settings, retransmit_timeout=0.1, retries=3)
    await srv.start()
    try:
        before = counter(metrics.RETRANSMITS)
        client.send(rrq("f1m"), srv.address)
        got = []
        try:
            while True:
                data, _ = await client.recv(timeout=1.2)
                got.append(data[:4])
        except asyncio.TimeoutError:
            pass
        assert got.count(b"\0\x03\0\x01") == 4
        assert sum(1 for g in got if g[:2] == b"\0\x05") == 1  # "timed out"
        assert srv.sessions == {} and len(srv.files) == 0
        assert counter(metrics.RETRANSMITS) == before + 3
        assert (await transfers(runtime))[-1]["outcome"] == "timeout"
    finally:
        await srv.stop()


async def test_client_error_mid_transfer_ends_session(server, client, runtime):
    client.send(rrq("f1m", blksize=1024), server.address)
    _, tid = await client.recv()
    client.send(ack(0), tid)
    await client.recv()
    client.send(b"\0\x05\0\x00disk full\0", tid)
    assert await until(lambda: not server.sessions)  # the last ACK ends the session and len(server.files) == 0
    assert (await transfers(runtime))[-1]["outcome"] == "client_error"


async def edk2_fetch(client, server, name: str) -> bytes:
    """What OVMF's PXE does: a tsize probe ended by an ERROR, then the real request, windowsize 4.
    The second RRQ reaches the request port before the ERROR reaches the session's port."""
    client.send(rrq(name, tsize=0, blksize=1468, windowsize=4), server.address)
    oack, tid = await client.recv()
    assert parse_oack(oack) == {"tsize": str((server.runtime.settings.tftp_root[0] / name).stat().st_size),
                                "blksize": "1468", "windowsize": "4"}
    client.send(rrq(name, blksize=1468, windowsize=4), server.address)
    await asyncio.sleep(0.01)
    client.send(b"\0\x05\0\x08size probe\0", tid)
    oack, tid = await client.recv()
    assert parse_oack(oack) == {"blksize": "1468", "windowsize": "4"}
    client.send(ack(0), tid)
    received, expected, in_window = bytearray(), 1, 0
    while True:
        data, _ = await client.recv()
        block = struct.unpack("!H", data[2:4])[0]
        assert data[:2] == b"\0\x03" and block == expected & 0xFFFF
        received += data[4:]
        expected += 1
        in_window += 1
        if len(data) < 4 + 1468:
            client.send(ack(block), tid)
            return bytes(received)
        if in_window == 4:
            client.send(ack(block), tid)
            in_window = 0


async def test_edk2_probe_then_windowed_transfer(patient_server, client, runtime, files):
    assert await edk2_fetch(client, patient_server, "f1m") == (files / "f1m").read_bytes()
    await asyncio.sleep(0.05)
    assert not patient_server.sessions
    detail, = await transfers(runtime)  # the probe is no transfer
    assert (detail["outcome"], detail["windowsize"], detail["blksize"]) == ("complete", 4, 1468)


async def test_shared_mapping_while_two_transfers_run(server, files):
    a, b = RawClient(), RawClient()
    try:
        a.send(rrq("f1m"), server.address)
        b.send(rrq("f1m"), server.address)
        await a.recv()
        await b.recv()
        assert len(server.sessions) == 2 and len(server.files) == 1
    finally:
        a.close()
        b.close()


# -- dynamic files -------------------------------------------------------------------------------

async def test_dynamic_file_rendered_per_client(server, runtime, tmp_path):
    seen = []

    async def boot_ipxe(req):
        seen.append(req)
        await asyncio.sleep(0.01)  # generators may do I/O (the store, the catalog)
        return f"#!ipxe\necho hello {req.client_ip} {req.mac}\n".encode()

    async def nothing(req):
        return None

    async def broken(req):
        raise RuntimeError("template error")

    server.register("boot.ipxe", boot_ipxe)
    server.register("nothing.ipxe", nothing)
    server.register("broken.ipxe", broken)
    base = f"tftp://127.0.0.1:{server.address[1]}"
    rc, log = await run("curl", "-sS", "-o", str(tmp_path / "o"), f"{base}/boot.ipxe")
    assert rc == 0, log
    assert (tmp_path / "o").read_text() == f"#!ipxe\necho hello 127.0.0.1 {CLIENT_MAC}\n"
    assert (seen[0].filename, seen[0].client_ip, seen[0].mac) == ("boot.ipxe", "127.0.0.1", CLIENT_MAC)
    assert (await transfers(runtime))[-1]["file"] == "boot.ipxe"
    rc, log = await run("curl", "-sS", "-o", str(tmp_path / "o"), f"{base}/nothing.ipxe")
    assert rc == 68, log
    client = RawClient()
    try:
        client.send(rrq("broken.ipxe"), server.address)
        data, _ = await client.recv()
        assert parse_error(data) == (0, "cannot generate file")
    finally:
        client.close()
    assert not server.sessions


# -- a hostile network, simulated by the client -------------------------------------------------

async def lossy_windowed_fetch(client, server, name: str, blksize: int, windowsize: int, rng) -> bytes:
    """An RFC 7440 receiver that loses 10% of DATA, acknowledges the block before a gap, repeats 10%
    of its ACKs and re-sends its last ACK after 0.3 s of silence: every byte must arrive, in order."""
    client.send(rrq(name, blksize=blksize, windowsize=windowsize), server.address)
    oack, tid = await client.recv()
    assert parse_oack(oack) == {"blksize": str(blksize), "windowsize": str(windowsize)}
    received, expected, in_window, last_ack, gap_acked = bytearray(), 1, 0, ack(0), 0
    client.send(last_ack, tid)
    while True:
        try:
            data, _ = await client.recv(timeout=0.3)
        except asyncio.TimeoutError:
            client.send(last_ack, tid)
            continue
        if rng.random() < 0.1:
            continue  # lost
        block = struct.unpack("!H", data[2:4])[0]
        if block != expected & 0xFFFF:
            if gap_acked != expected:  # a gap: say once where we are, as RFC 7440 asks
                gap_acked, last_ack, in_window = expected, ack(expected - 1), 0
                client.send(last_ack, tid)
            continue
        received += data[4:]
        expected += 1
        in_window += 1
        final = len(data) < 4 + blksize
        if final or in_window == windowsize:
            last_ack, in_window = ack(block), 0
            client.send(last_ack, tid)
            if rng.random() < 0.1:
                client.send(last_ack, tid)
        if final:
            return bytes(received)


@pytest.mark.parametrize("seed", range(6))
async def test_windows_survive_loss_and_duplicate_acks(runtime, client, files, seed):
    import random
    rng = random.Random(seed)
    srv = TFTPServer(runtime, runtime.settings, retransmit_timeout=0.05, retries=10)
    await srv.start()
    try:
        blksize, windowsize = rng.choice([8, 512, 1468]), rng.randint(1, 8)
        name = "sub/nested.bin" if blksize == 8 else "f100k"
        got = await asyncio.wait_for(lossy_windowed_fetch(client, srv, name, blksize, windowsize, rng), 60)
        assert got == (files / name).read_bytes()
        await asyncio.sleep(0.05)
        assert not srv.sessions and len(srv.files) == 0
    finally:
        await srv.stop()
