"""/assets transfers against real clients: byte-exact files, ranges, conditional requests, hang-ups."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from email.utils import formatdate

import pytest

from tests.http.assets_support import BIG, curl, metric, raw_get, sha256
from tests.support.waiting import until


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
        # 64 MB cannot fit the socket buffers: the transfer is open and blocked until we hang up
        assert await until(lambda: metric("bootserver_http_asset_open_transfers") == 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST while the server is still sending
    assert await until(lambda: metric("bootserver_http_asset_open_transfers") == 0)
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
