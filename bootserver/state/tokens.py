"""Installer tokens: 24 bytes from the OS's CSPRNG, URL-safe base64 (what secrets.token_urlsafe(24) gives).

Every new machine record gets one, and a flood of new MACs (a rack powering on, the DHCP benchmark)
made one getrandom() call per record a tenth of a proxy answer's CPU. The bytes are drawn and
encoded `BATCH` tokens at a time (24 bytes are exactly 32 base64 characters, so one encoding of the
whole draw is the tokens side by side) into a list that is dropped in a forked child, so two
processes never hand out the same token.
"""

from __future__ import annotations

import base64
import os
import threading

TOKEN_BYTES = 24
TOKEN_CHARS = TOKEN_BYTES * 4 // 3  # no padding: 24 is a multiple of 3
BATCH = 256

_lock = threading.Lock()
_tokens: list[str] = []


def new_token() -> str:
    while True:
        try:
            return _tokens.pop()  # one atomic step: no two callers get the same token
        except IndexError:
            pass
        with _lock:  # one refill, however many callers found the list empty
            if not _tokens:
                text = base64.urlsafe_b64encode(os.urandom(TOKEN_BYTES * BATCH)).decode("ascii")
                _tokens.extend(text[i:i + TOKEN_CHARS] for i in range(0, len(text), TOKEN_CHARS))


def _forget_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a lock held by another thread at the fork would never be released here
    _tokens.clear()


os.register_at_fork(after_in_child=_forget_in_child)
