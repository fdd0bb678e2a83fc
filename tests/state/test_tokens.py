"""Installer tokens drawn from a buffer of OS randomness: unguessable format, never repeated, not
even by a forked child (the buffer is not inherited)."""

from __future__ import annotations

import base64
import os

from bootserver.state.tokens import BATCH, new_token


def test_tokens_are_24_random_bytes_in_url_safe_base64_and_never_repeat():
    tokens = [new_token() for _ in range(BATCH * 8 + 3)]  # across several refills
    assert len(set(tokens)) == len(tokens)
    for token in tokens[:50]:
        assert len(token) == 32 and "=" not in token
        assert len(base64.urlsafe_b64decode(token)) == 24


def test_a_forked_child_draws_tokens_the_parent_never_sees():
    new_token()  # the parent's buffer holds BATCH - 1 tokens' worth now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its tokens back and leave at once
        try:
            os.write(write, " ".join(new_token() for _ in range(20)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split()
    os.waitpid(pid, 0)
    parent = [new_token() for _ in range(BATCH)]
    assert len(child) == 20
    assert not set(child) & set(parent)
