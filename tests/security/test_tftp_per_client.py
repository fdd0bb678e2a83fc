"""Issue 19 item 4: one host cannot hold every TFTP session; another host is still served."""

from __future__ import annotations

import socket
import struct


def _rrq(name: str) -> bytes:
    return struct.pack("!H", 1) + name.encode() + b"\0octet\0"


def _first_reply(sock: socket.socket) -> int:
    data, _ = sock.recvfrom(2048)
    return struct.unpack("!H", data[:2])[0]  # 3 DATA, 5 ERROR


def test_one_client_address_is_capped_and_another_is_still_served(serve, catalog_dir, tmp_path):
    root = tmp_path / "tftproot"
    root.mkdir()
    (root / "big").write_bytes(b"x" * 512 * 50)
    server = serve("--catalog", str(catalog_dir), "--state", "memory://", "--tftp", "127.0.0.1:0",
                   "--tftp-root", str(root))
    port = int(server.wait_log(r"tftp: listening on 127\.0\.0\.1:(\d+)").group(1))
    hog = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(40)]
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        replies = []
        for sock in hog:  # 40 transfers from 127.0.0.1, none acknowledged: they stay open
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5)
            sock.sendto(_rrq("big"), ("127.0.0.1", port))
            replies.append(_first_reply(sock))
        other.bind(("127.0.0.2", 0))
        other.settimeout(5)
        other.sendto(_rrq("big"), ("127.0.0.1", port))
        assert _first_reply(other) == 3  # another host gets its DATA
    finally:
        for sock in hog + [other]:
            sock.close()
    served = replies.count(3)
    assert 1 <= served <= 16 and replies.count(5) == 40 - served, replies
