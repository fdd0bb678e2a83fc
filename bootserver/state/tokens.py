"""Installer tokens: 24 bytes from the OS's CSPRNG, URL-safe base64 (what secrets.token_urlsafe(24) gives).

Every new machine record gets one, and a flood of new MACs (a rack powering on, the DHCP benchmark)
made one getrandom() call per record a tenth of a proxy answer's CPU. The bytes are drawn
`BATCH` tokens at a time into a buffer that is dropped in a forked child, so two processes
never hand out the same token.
"""

from __future__ import annotations

import base64
import os
import threading

TOKEN_BYTES = 24
BATCH = 256

_lock = threading.Lock()
_pool = bytearray()


def new_token() -> str:
    with _lock:
        if not _pool:
            _pool.extend(os.urandom(TOKEN_BYTES * BATCH))
        raw = bytes(_pool[-TOKEN_BYTES:])
        del _pool[-TOKEN_BYTES:]
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _forget_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a lock held by another thread at the fork would never be released here
    _pool.clear()


os.register_at_fork(after_in_child=_forget_in_child)
