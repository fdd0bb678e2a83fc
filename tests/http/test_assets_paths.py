"""/assets refuses every path that would leave the folder, and the pure path/range parsers."""

from __future__ import annotations

import logging

import pytest

from bootserver.http import assets

from tests.http.assets_support import curl, metric, raw_get


TRAVERSALS = [
    "/assets/../outside/secret",
    "/assets/flatcar/../../outside/secret",
    "/assets/%2e%2e/outside/secret",
    "/assets/%2E%2E/outside/secret",
    "/assets/.%2e/outside/secret",
    "/assets/..%2foutside%2fsecret",
    "/assets/..%2Foutside/secret",
    "/assets/%252e%252e/outside/secret",
    "/assets/..%5coutside%5csecret",
    "/assets/..\\outside\\secret",
    "/assets//etc/passwd",
    "/assets/%2fetc/passwd",
    "/assets/./boot.ipxe",
    "/assets/..",
    "/assets/flatcar/%00",
    "http://test/assets/../outside/secret",
    "/assets/.manifest.json",
    "/assets/flatcar/.staging/partial",
    "/assets/..foo/bar",
]


@pytest.mark.parametrize("target", TRAVERSALS)
async def test_traversal_is_refused_and_logged(server, caplog, target):
    _, port, _ = server
    refused_before = metric("bootserver_http_asset_refused_total")
    with caplog.at_level(logging.WARNING, logger="bootserver.http.assets"):
        status, body = await raw_get(port, target)
    assert status == 403
    assert b"TOP-SECRET" not in body and b"root:" not in body
    assert any("refused asset request" in r.getMessage() and repr(target) in r.getMessage() for r in caplog.records)
    assert metric("bootserver_http_asset_refused_total") == refused_before + 1


async def test_curl_path_as_is_traversal_is_refused(server):
    base, _, _ = server
    _, out = await curl("--path-as-is", "-o", "/dev/null", "-w", "%{http_code}",
                        f"{base}/assets/flatcar/../../outside/secret")
    assert out == b"403"


@pytest.mark.parametrize("path", ["escape", "escape-rel", "outdir/secret"])
async def test_symlink_leading_outside_is_refused(server, client, caplog, path):
    base, _, _ = server
    with caplog.at_level(logging.WARNING, logger="bootserver.http.assets"):
        async with client.get(f"{base}/assets/{path}") as resp:
            assert resp.status == 403
            assert b"TOP-SECRET" not in await resp.read()
    assert any("symlink leads outside" in r.getMessage() for r in caplog.records)


async def test_symlink_inside_folder_is_served(server, client):
    base, _, _ = server
    async with client.get(f"{base}/assets/flatcar/current/vmlinuz") as resp:
        assert resp.status == 200
        assert await resp.read() == b"kernel-4081" * 1000


@pytest.mark.parametrize("path", ["", "flatcar", "flatcar/", "flatcar/current", "flatcar/current/"])
async def test_directories_are_not_listed(server, client, path):
    base, _, _ = server
    async with client.get(f"{base}/assets/{path}") as resp:
        body = await resp.read()
        assert resp.status == 404
    assert b"vmlinuz" not in body and b"4081" not in body and b"big.img" not in body


async def test_missing_file_is_404(server, client):
    base, _, _ = server
    async with client.get(f"{base}/assets/flatcar/nope.img") as resp:
        assert resp.status == 404
    async with client.get(f"{base}/assets/boot.ipxe/below") as resp:
        assert resp.status == 404


@pytest.mark.parametrize("target,expected", [
    ("/assets/flatcar/current/vmlinuz?mac=x", "flatcar/current/vmlinuz"),
    ("/assets/a%20b", "a b"),
    ("/assets/a//b", "a//b"),
    ("/assets/foo../bar..", "foo../bar.."),
])
def test_relative_asset_path_accepts(target, expected):
    assert assets.relative_asset_path(target) == expected


@pytest.mark.parametrize("header,size,expected", [
    (None, 10, None), ("bytes=0-", 10, (0, 10)), ("bytes=2-4", 10, (2, 5)), ("bytes=-3", 10, (7, 10)),
    ("bytes=-30", 10, (0, 10)), ("bytes=5-100", 10, (5, 10)), ("BYTES=1-1", 10, (1, 2)),
    ("bytes=1-2, 4-5", 10, None), ("bytes=4-2", 10, None), ("bytes=-", 10, None),
])
def test_byte_range(header, size, expected):
    assert assets.byte_range(header, size) == expected


@pytest.mark.parametrize("header,size", [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=0-", 0), ("bytes=-1", 0)])
def test_byte_range_unsatisfiable(header, size):
    with pytest.raises(assets.Unsatisfiable):
        assets.byte_range(header, size)
