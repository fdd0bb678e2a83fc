"""/assets against a real aiohttp server on loopback, with real clients (aiohttp, curl, raw sockets)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
from email.utils import formatdate
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bootserver.catalog.loader import load_catalog
from bootserver.config import Settings
from bootserver.http import assets
from bootserver.http.server import make_app
from bootserver.metrics import REGISTRY
from bootserver.runtime import Runtime
from bootserver.state.base import StoreUnavailable
from bootserver.state.memory import MemoryStore

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


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """assets/ with a 64 MB file, a versioned tree with a `current` pointer, and escape attempts."""
    base = tmp_path_factory.mktemp("assets-test")
    root = base / "assets"
    (root / "flatcar" / "4081.2.0").mkdir(parents=True)
    (root / "big.img").write_bytes(os.urandom(BIG))
    (root / "boot.ipxe").write_text("#!ipxe\nchain /ipxe\n")
    (root / "flatcar" / "4081.2.0" / "vmlinuz").write_bytes(b"kernel-4081" * 1000)
    (root / "flatcar" / "current").symlink_to("4081.2.0")
    (root / "a file.txt").write_text("spaced\n")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret").write_text("TOP-SECRET\n")
    (root / "escape").symlink_to(outside / "secret")
    (root / "escape-rel").symlink_to("../outside/secret")
    (root / "outdir").symlink_to(outside)
    return root


@pytest.fixture
async def server(folder, tmp_path):
    """The whole HTTP app (access log and request metrics included) on an ephemeral loopback port."""
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "catalog.yaml").write_text(CATALOG)
    settings = Settings(assets=folder, catalog=tmp_path / "catalog", state="memory://")
    runtime = Runtime(settings, load_catalog(settings.catalog, settings.assets), MemoryStore())
    app = make_app(runtime, runtime.settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", port, runtime
    finally:
        await runner.cleanup()


@pytest.fixture
async def client():
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


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


# --- whole files, byte-exact -------------------------------------------------------------------

async def test_large_file_is_byte_exact_with_validators(server, client, folder):
    base, _, _ = server
    expected = folder / "big.img"
    sent_before = metric("bootserver_http_asset_bytes_sent_total")
    async with client.get(f"{base}/assets/big.img") as resp:
        body = await resp.read()
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(BIG)
        assert resp.headers["Accept-Ranges"] == "bytes"
        st = expected.stat()
        assert resp.headers["ETag"] == f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
        assert resp.headers["Last-Modified"] == formatdate(st.st_mtime, usegmt=True)
    assert sha256(body) == sha256(expected.read_bytes())
    assert metric("bootserver_http_asset_bytes_sent_total") - sent_before == BIG
    assert metric("bootserver_http_asset_open_transfers") == 0


async def test_curl_downloads_large_file_exactly(server, folder, tmp_path):
    base, _, _ = server
    out = tmp_path / "big.out"
    await curl("-o", str(out), f"{base}/assets/big.img")
    assert sha256(out.read_bytes()) == sha256((folder / "big.img").read_bytes())


async def test_keep_alive_connection_serves_files_back_to_back(server, client, folder):
    base, _, _ = server
    big = (folder / "big.img").read_bytes()
    for _ in range(3):
        async with client.get(f"{base}/assets/big.img", headers={"Range": "bytes=0-1048575"}) as resp:
            assert await resp.read() == big[:1048576]
        async with client.get(f"{base}/assets/boot.ipxe") as resp:
            assert await resp.text() == "#!ipxe\nchain /ipxe\n"


async def test_small_file_served_again_after_it_changes(server, client, tmp_path, folder):
    base, _, _ = server
    path = folder / "changing.ipxe"
    path.write_text("#!ipxe\necho one\n")
    try:
        async with client.get(f"{base}/assets/changing.ipxe") as resp:
            assert await resp.text() == "#!ipxe\necho one\n"
            first_etag = resp.headers["ETag"]
        path.write_text("#!ipxe\necho two, longer\n")
        os.utime(path, (1_700_000_000, 1_700_000_000))
        async with client.get(f"{base}/assets/changing.ipxe") as resp:
            assert await resp.text() == "#!ipxe\necho two, longer\n"
            assert resp.headers["ETag"] != first_etag
    finally:
        path.unlink()


async def test_percent_encoded_ordinary_characters_are_decoded(server, client):
    base, port, _ = server
    status, body = await raw_get(port, "/assets/a%20file.txt")
    assert (status, body) == (200, b"spaced\n")


# --- HEAD ------------------------------------------------------------------------------------

async def test_head_large_file_has_length_and_no_body(server, client, folder):
    base, port, _ = server
    async with client.head(f"{base}/assets/big.img") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(BIG)
        assert "ETag" in resp.headers and "Last-Modified" in resp.headers
    status, body = await raw_get(port, "/assets/big.img", method="HEAD")
    assert status == 200 and body == b""
    _, out = await curl("-I", f"{base}/assets/big.img")
    assert f"content-length: {BIG}".encode() in out.lower()


async def test_head_small_file_keeps_its_length(server):
    base, port, _ = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"HEAD /assets/boot.ipxe HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Content-Length: 19" in head and body == b""


# --- ranges ----------------------------------------------------------------------------------

@pytest.mark.parametrize("header,start,end", [
    ("bytes=1000-1999", 1000, 2000),
    ("bytes=-500", BIG - 500, BIG),
    ("bytes=63000000-", 63000000, BIG),
    ("bytes=67108000-99999999999", 67108000, BIG),
    ("bytes=0-0", 0, 1),
])
async def test_single_range_is_206_with_exact_bytes(server, client, folder, header, start, end):
    base, _, _ = server
    big = (folder / "big.img").read_bytes()
    async with client.get(f"{base}/assets/big.img", headers={"Range": header}) as resp:
        body = await resp.read()
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes {start}-{end - 1}/{BIG}"
        assert resp.headers["Content-Length"] == str(end - start)
    assert body == big[start:end]


async def test_curl_range_and_resume(server, folder, tmp_path):
    base, _, _ = server
    big = (folder / "big.img").read_bytes()
    _, out = await curl("-r", "5000000-5999999", f"{base}/assets/big.img")
    assert out == big[5000000:6000000]
    partial = tmp_path / "resume.img"
    partial.write_bytes(big[:40_000_000])
    await curl("-C", "-", "-o", str(partial), f"{base}/assets/big.img")
    assert sha256(partial.read_bytes()) == sha256(big)


@pytest.mark.parametrize("header", [f"bytes={BIG}-", f"bytes={BIG + 10}-{BIG + 20}", "bytes=-0"])
async def test_unsatisfiable_range_is_416(server, client, header):
    base, _, _ = server
    async with client.get(f"{base}/assets/big.img", headers={"Range": header}) as resp:
        assert resp.status == 416
        assert resp.headers["Content-Range"] == f"bytes */{BIG}"
        assert await resp.read() == b""


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "bytes=9-3", "items=0-10", "bytes=abc"])
async def test_multi_or_malformed_range_sends_whole_file(server, client, header):
    base, _, _ = server
    async with client.get(f"{base}/assets/boot.ipxe", headers={"Range": header}) as resp:
        assert resp.status == 200
        assert await resp.text() == "#!ipxe\nchain /ipxe\n"


async def test_if_range_with_stale_etag_sends_whole_file(server, client):
    base, _, _ = server
    headers = {"Range": "bytes=0-5", "If-Range": '"stale-etag"'}
    async with client.get(f"{base}/assets/boot.ipxe", headers=headers) as resp:
        assert resp.status == 200 and len(await resp.read()) == 19
        etag = resp.headers["ETag"]
    async with client.get(f"{base}/assets/boot.ipxe", headers={"Range": "bytes=0-5", "If-Range": etag}) as resp:
        assert resp.status == 206 and await resp.read() == b"#!ipxe"


# --- conditional requests --------------------------------------------------------------------

async def test_conditional_requests_on_large_file(server, client, folder):
    base, _, _ = server
    url = f"{base}/assets/big.img"
    async with client.head(url) as resp:
        etag, last_modified = resp.headers["ETag"], resp.headers["Last-Modified"]
    for headers in ({"If-None-Match": etag}, {"If-None-Match": f'"other", W/{etag}'}, {"If-None-Match": "*"},
                    {"If-Modified-Since": last_modified},
                    {"If-Modified-Since": formatdate((folder / "big.img").stat().st_mtime + 3600, usegmt=True)}):
        async with client.get(url, headers=headers) as resp:
            assert resp.status == 304, headers
            assert resp.headers["ETag"] == etag
            assert await resp.read() == b""
    for headers in ({"If-None-Match": '"other"'}, {"If-Modified-Since": "Thu, 01 Jan 2015 00:00:00 GMT"},
                    {"If-None-Match": '"other"', "If-Modified-Since": last_modified},  # If-None-Match wins
                    {"If-Modified-Since": "not a date"}):
        async with client.head(url, headers=headers) as resp:
            assert resp.status == 200, headers
            assert resp.headers["Content-Length"] == str(BIG)


async def test_curl_conditional_get(server, folder, tmp_path):
    base, _, _ = server
    _, out = await curl("-o", "/dev/null", "-w", "%{http_code}", "-z", str(folder / "big.img"), f"{base}/assets/big.img")
    assert out == b"304"


# --- refusals --------------------------------------------------------------------------------

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


# --- events and robustness -------------------------------------------------------------------

async def events_of(runtime, mac, expected: int):
    """The machine's events once `expected` are there: the server records a fetch after sending it."""
    for _ in range(100):
        events = await runtime.store.events(mac)
        if len(events) >= expected:
            break
        await asyncio.sleep(0.01)
    return [(e.kind, e.detail) for e in events]


async def test_kernel_fetch_by_known_machine_is_observed_and_starts_install(server, client, caplog):
    base, _, runtime = server
    caplog.set_level(logging.INFO, logger="bootserver.access")
    await runtime.store.ensure(KNOWN_MAC, state="ready", name="node1", profile="flatcar-install")
    async with client.get(f"{base}/assets/flatcar/current/vmlinuz?mac=52-54-00-12-34-56") as resp:
        assert resp.status == 200
        await resp.read()
    async with client.get(f"{base}/assets/big.img?mac={KNOWN_MAC}", headers={"Range": "bytes=0-99"}) as resp:
        assert resp.status == 206
    assert await events_of(runtime, KNOWN_MAC, 2) == [
        ("http.kernel", {"path": "flatcar/current/vmlinuz", "file": "flatcar/4081.2.0/vmlinuz", "status": 200,
                         "bytes": 11000, "method": "GET"}),
        ("http.asset", {"path": "big.img", "file": "big.img", "status": 206, "bytes": 100, "method": "GET"}),
    ]
    assert (await runtime.store.get(KNOWN_MAC)).state == "installing"
    lines = [r.getMessage() for r in caplog.records if r.name == "bootserver.access"]
    assert any(f"node1 {KNOWN_MAC} GET /assets/big.img 206 100B" in line for line in lines), lines


async def test_fetch_without_mac_is_attributed_by_client_address(server, client):
    base, _, runtime = server
    await runtime.store.ensure(KNOWN_MAC, state="ready", name="node1", profile="flatcar-install")
    runtime.remember_ip("127.0.0.1", KNOWN_MAC)
    async with client.head(f"{base}/assets/flatcar/current/vmlinuz") as resp:
        assert resp.status == 200
    assert await events_of(runtime, KNOWN_MAC, 1) == [
        ("http.asset", {"path": "flatcar/current/vmlinuz", "file": "flatcar/4081.2.0/vmlinuz", "status": 200,
                        "bytes": 0, "method": "HEAD"})]
    assert (await runtime.store.get(KNOWN_MAC)).state == "ready"  # a HEAD does not start an install


@pytest.mark.parametrize("query", ["", "?mac=52:54:00:99:99:99", "?mac=not-a-mac"])
async def test_fetch_by_unknown_or_no_machine_is_not_observed(server, client, query):
    base, _, runtime = server
    runtime.remember_ip("127.0.0.1", "52:54:00:99:99:98")  # an address seen, but no such machine stored
    async with client.get(f"{base}/assets/boot.ipxe{query}") as resp:
        assert resp.status == 200
    await asyncio.sleep(0.1)  # a recorded fetch would be in by now
    for mac in ("52:54:00:99:99:99", "52:54:00:99:99:98"):
        assert await runtime.store.events(mac) == []


async def test_metrics_endpoint_shows_asset_counters(server, client):
    base, _, _ = server
    async with client.get(f"{base}/assets/boot.ipxe") as resp:
        await resp.read()
    async with client.get(f"{base}/metrics") as resp:
        text = await resp.text()
    for name in ("bootserver_http_asset_bytes_sent_total", "bootserver_http_asset_open_transfers",
                 "bootserver_http_asset_refused_total"):
        assert name in text


class BrokenStore(MemoryStore):
    async def get(self, mac):
        raise StoreUnavailable("database is locked for good")


async def test_store_outage_does_not_fail_the_download(server, client, folder, caplog):
    base, _, runtime = server
    runtime.store = BrokenStore()
    async with client.get(f"{base}/assets/flatcar/current/vmlinuz?mac={KNOWN_MAC}") as resp:
        assert resp.status == 200
        assert await resp.read() == b"kernel-4081" * 1000
    assert any("not recorded" in r.getMessage() for r in caplog.records)


async def test_access_log_counts_sendfile_bytes(server, client, caplog):
    base, _, _ = server
    caplog.set_level(logging.INFO, logger="bootserver.access")
    async with client.get(f"{base}/assets/big.img") as resp:
        assert len(await resp.read()) == BIG
    lines = [r.getMessage() for r in caplog.records if r.name == "bootserver.access"]
    assert any(f"unknown - GET /assets/big.img 200 {BIG}B" in line for line in lines), lines


async def test_client_hanging_up_mid_transfer_leaves_server_healthy(server, client, folder, caplog):
    base, port, _ = server
    caplog.set_level(logging.INFO)
    loop = asyncio.get_running_loop()
    for _ in range(3):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, b"GET /assets/big.img HTTP/1.1\r\nHost: t\r\n\r\n")
        await loop.sock_recv(sock, 65536)
        await asyncio.sleep(0.05)  # the server is now blocked on a full socket buffer
        assert metric("bootserver_http_asset_open_transfers") == 1
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST while the server is still sending
    for _ in range(100):
        if metric("bootserver_http_asset_open_transfers") == 0:
            break
        await asyncio.sleep(0.02)
    assert metric("bootserver_http_asset_open_transfers") == 0
    async with client.get(f"{base}/assets/big.img", headers={"Range": "bytes=-1000"}) as resp:
        assert await resp.read() == (folder / "big.img").read_bytes()[-1000:]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # a hang-up is no server error
    assert sum("went away after" in r.getMessage() for r in caplog.records) == 3


async def test_concurrent_downloads_are_each_exact(server, client, folder):
    base, _, _ = server
    expected = sha256((folder / "big.img").read_bytes()[:16 * 1024 * 1024])

    async def fetch():
        async with client.get(f"{base}/assets/big.img", headers={"Range": "bytes=0-16777215"}) as resp:
            return sha256(await resp.read())

    assert await asyncio.gather(*(fetch() for _ in range(8))) == [expected] * 8


# --- the pure parts --------------------------------------------------------------------------

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
