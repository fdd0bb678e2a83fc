"""What the /assets tests share besides their fixtures (tests/http/conftest.py): data and real clients."""

from __future__ import annotations

import asyncio
import hashlib

from bootserver.metrics import REGISTRY

BIG = 64 * 1024 * 1024
KNOWN_MAC = "52:54:00:12:34:56"


CATALOG = f"""\
apiVersion: bootserver/v1
kind: Profile
metadata: {{name: flatcar-install}}
spec:
  boot:
    kernel: flatcar/current/vmlinuz
    initrd: [boot.ipxe]
    args: [console=ttyS0]
  after_install: local-disk
---
apiVersion: bootserver/v1
kind: Machine
metadata: {{name: node1}}
spec:
  mac: {KNOWN_MAC}
  profile: flatcar-install
"""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def curl(*args: str) -> tuple[int, bytes]:
    proc = await asyncio.create_subprocess_exec("curl", "-sS", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return proc.returncode, out


async def raw_get(port: int, target: str, method: str = "GET") -> tuple[int, bytes]:
    """Send the request target byte for byte, so no client normalises or re-encodes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0
