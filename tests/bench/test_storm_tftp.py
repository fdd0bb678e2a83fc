"""The storm's simulated firmware TFTP client against a server whose transfer port goes away, as
when the replica holding the floating address is killed mid-transfer: like edk2 (its UDP driver
hands the ICMP port unreachable to MTFTP), the transfer ends at once instead of after every timeout."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from bench.storm_protocols import StepError, tftp_get


async def one_oack_then(close_port: bool) -> tuple[str, float]:
    """A loopback server that answers the RRQ with an OACK from a transfer port, then closes that
    port (a dead server) or keeps it open and silent (a slow one); (the client's error, seconds)."""
    loop = asyncio.get_running_loop()
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.setblocking(False)
    transfer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    transfer.bind(("127.0.0.1", 0))

    async def serve() -> None:
        _request, client = await loop.sock_recvfrom(listener, 2048)
        transfer.sendto(b"\x00\x06blksize\x001468\x00tsize\x00100000\x00", client)
        if close_port:
            transfer.close()

    server = asyncio.ensure_future(serve())
    started = time.monotonic()
    try:
        with pytest.raises(StepError) as failure:
            await tftp_get("127.0.0.1", "127.0.0.1", "ipxe.efi", timeout=0.5, tries=3, port=listener.getsockname()[1])
        return str(failure.value), time.monotonic() - started
    finally:
        server.cancel()
        listener.close()
        transfer.close()


async def test_a_transfer_port_that_goes_away_ends_the_transfer_at_once():
    error, seconds = await one_oack_then(close_port=True)
    assert error == "tftp: port unreachable"
    assert seconds < 0.5  # before the first retransmission timeout: the ICMP answer ended it


async def test_a_silent_server_is_waited_out_with_retransmissions():
    error, seconds = await one_oack_then(close_port=False)
    assert error == "tftp: timed out"
    assert seconds >= 3 * 0.5  # every try waited its timeout
