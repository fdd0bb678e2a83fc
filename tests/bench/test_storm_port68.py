"""The storm's shared port-68 receiver: every load process gets every broadcast reply, so each must take
only the replies for its own machines (by xid), count the rest, and still hand its own the parsed reply.
Real UDP on loopback (the test's own ephemeral ports; nothing goes to port 67)."""

import asyncio
import socket

from bench.storm_protocols import Port68, dhcp_packet

MINE, OTHERS, MAC = 0x11223344, 0x55667788, bytes.fromhex("525401000001")


def reply(xid: int) -> bytes:
    packet = bytearray(dhcp_packet(2, xid, MAC))
    packet[0] = 2  # BOOTREPLY
    return bytes(packet)


async def receive_three() -> tuple[dict, bool, Port68]:
    loop = asyncio.get_running_loop()
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    transport, port68 = await loop.create_datagram_endpoint(Port68, local_addr=("127.0.0.1", 0))
    try:
        mine, unanswered = loop.create_future(), loop.create_future()
        port68.waiting.update({MINE: mine, 0x99: unanswered})  # two machines of this process waiting
        for packet in (reply(OTHERS), b"\x02short", reply(MINE)):  # another process's, a runt, ours
            server.sendto(packet, transport.get_extra_info("sockname"))
        answer, _source = await asyncio.wait_for(mine, 2)
        await asyncio.sleep(0.05)
        return answer, unanswered.done(), port68
    finally:
        transport.close()
        server.close()


def test_port68_takes_only_its_own_xids():
    answer, other_answered, port68 = asyncio.run(receive_three())
    assert answer["xid"] == MINE and answer["chaddr"] == MAC
    assert not other_answered
    assert port68.counts["received"] == 3 and port68.counts["matched"] == 1
