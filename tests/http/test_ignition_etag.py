"""The /ignition ETag: a SHA-256 prefix of the body, hashed once per served body (kept, bounded)."""

import hashlib

from bootserver.http import ignition


def test_the_etag_is_the_bodys_hash_and_is_kept_bounded(monkeypatch):
    monkeypatch.setattr(ignition, "_ETAGS", {})
    monkeypatch.setattr(ignition, "ETAGS_KEPT", 3)
    body = b'{"ignition": {"version": "3.3.0"}}'
    tag = ignition.etag_of(body)
    assert tag == '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    assert ignition.etag_of(bytes(bytearray(body))) == tag  # an equal body from elsewhere: the same tag
    others = [ignition.etag_of(b"%d" % n) for n in range(5)]
    assert len(set(others + [tag])) == 6 and len(ignition._ETAGS) <= 3
    assert ignition.etag_of(body) == tag  # forgotten and hashed again: still the same


def test_the_kept_bodies_are_bounded_in_bytes_too(monkeypatch):
    monkeypatch.setattr(ignition, "_ETAGS", {})
    monkeypatch.setattr(ignition, "_etag_bytes", 0)
    monkeypatch.setattr(ignition, "ETAG_BYTES_KEPT", 1000)
    for n in range(10):
        ignition.etag_of(bytes([n]) * 300)
        assert sum(map(len, ignition._ETAGS)) <= 1000 and ignition._etag_bytes == sum(map(len, ignition._ETAGS))
