"""Data URLs carry exactly the bytes they were made from, in the shortest of Butane's three encodings."""

from __future__ import annotations

import base64
import gzip

from hypothesis import given, settings, strategies as st

from bootserver.render.butane import dataurl


def content(url: str, compression: str) -> bytes:
    data = dataurl.decode(url)
    return gzip.decompress(data) if compression == "gzip" else data


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=600), st.text(max_size=600).map(str.encode),
                 st.sampled_from([b"", b"a" * 500, b"#!/bin/bash\necho hi\n" * 20])))
def test_round_trip_and_shortest(data):
    url, compression = dataurl.make(data, None)
    assert compression in ("", "gzip")
    assert content(url, compression) == data
    escaped = len("data:," + dataurl.escape(data))
    b64 = len("data:;base64," + base64.b64encode(data).decode())
    assert len(url) + (4 if compression == "gzip" else 0) <= min(escaped, b64)


@given(st.binary(max_size=200))
def test_user_compression_is_kept_and_never_applied_twice(data):
    url, compression = dataurl.make(data, "gzip")
    assert compression is None  # the caller keeps the user's "gzip"
    assert dataurl.decode(url) == data


def test_escaping_is_dataurl_escape():
    assert dataurl.escape(b"a-_.!~*'()Z9 /=%\n\xff") == "a-_.!~*'()Z9%20%2F%3D%25%0A%FF"
    assert dataurl.make(b"xyzzy", None) == ("data:,xyzzy", "")
    assert dataurl.make(b"z" * 200, None, allow_compression=False) == ("data:," + "z" * 200, "")
