"""Real clients (curl, atftp, tftp-hpa) fetch files over real sockets; content checked by sha256."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bootserver.config import Settings
from tests.tftp.tftp_helpers import CLIENT_MAC, run, sha256, transfers

pytestmark = pytest.mark.timeout(120)


def url(server, name: str) -> str:
    return f"tftp://127.0.0.1:{server.address[1]}/{name}"


@pytest.mark.parametrize("blksize", [None, 8, 1024, 1468, 8192, 65464])
async def test_curl_blksizes_1m(server, runtime, files, tmp_path, blksize):
    out = tmp_path / "out"
    extra = [] if blksize is None else ["--tftp-blksize", str(blksize)]
    rc, log = await run("curl", "-sS", *extra, "-o", str(out), url(server, "f1m"))
    assert rc == 0, log
    assert sha256(out) == sha256(files / "f1m")
    detail, = await transfers(runtime)
    assert detail["outcome"] == "complete"
    assert detail["file"] == "f1m"
    assert detail["bytes"] == 1 << 20
    assert detail["blksize"] == (blksize or 512)
    assert detail["windowsize"] == 1
    assert detail["duration"] > 0
    assert not server.sessions and len(server.files) == 0


@pytest.mark.parametrize("options", [["windowsize 16"], ["blksize 1468"], ["windowsize 16", "blksize 1468"],
                                     ["windowsize 4", "blksize 1468", "tsize 0"]])
async def test_atftp_options_1m(server, runtime, files, tmp_path, options):
    out = tmp_path / "out"
    flags = [arg for opt in options for arg in ("--option", opt)]
    rc, log = await run("atftp", *flags, "-g", "-r", "f1m", "-l", str(out), "127.0.0.1", str(server.address[1]))
    assert rc == 0, log
    assert sha256(out) == sha256(files / "f1m")
    detail = (await transfers(runtime))[-1]
    assert detail["windowsize"] == (16 if "windowsize 16" in options else 4 if "windowsize 4" in options else 1)
    assert detail["blksize"] == (1468 if "blksize 1468" in options else 512)


async def test_tftp_hpa_1m(server, files, tmp_path):
    out = tmp_path / "out"
    rc, log = await run("tftp", "-m", "binary", "127.0.0.1", str(server.address[1]), "-c", "get", "f1m", str(out))
    assert rc == 0, log
    assert sha256(out) == sha256(files / "f1m")


async def test_64m_atftp_windowsize_and_curl(server, files, tmp_path):
    expected = sha256(files / "f64m")
    out = tmp_path / "a"
    rc, log = await run("atftp", "--option", "windowsize 16", "--option", "blksize 1468", "-g", "-r", "f64m",
                        "-l", str(out), "127.0.0.1", str(server.address[1]))
    assert rc == 0, log
    assert sha256(out) == expected
    out = tmp_path / "c"
    rc, log = await run("curl", "-sS", "--tftp-blksize", "1468", "-o", str(out), url(server, "f64m"))
    assert rc == 0, log
    assert sha256(out) == expected


async def test_block_number_rollover_at_512(server, runtime, files, tmp_path):
    """More than 65,535 blocks of 512 bytes: the block number wraps and the bytes stay right."""
    expected = sha256(files / "rollover")
    out = tmp_path / "curl"
    rc, log = await run("curl", "-sS", "-o", str(out), url(server, "rollover"))
    assert rc == 0, log
    assert sha256(out) == expected
    out = tmp_path / "hpa"
    rc, log = await run("tftp", "-m", "binary", "127.0.0.1", str(server.address[1]), "-c", "get", "rollover",
                        str(out))
    assert rc == 0, log
    assert sha256(out) == expected
    out = tmp_path / "atftp"  # rollover inside windows
    rc, log = await run("atftp", "--option", "windowsize 16", "-g", "-r", "rollover", "-l", str(out), "127.0.0.1",
                        str(server.address[1]))
    assert rc == 0, log
    assert sha256(out) == expected
    assert [(d["blksize"], d["windowsize"]) for d in await transfers(runtime)] == [(512, 1), (512, 1), (512, 16)]


@pytest.mark.parametrize("name", ["empty", "exact1024", "sub/nested.bin", "inside-link"])
async def test_edge_sizes_and_links_inside_root(server, files, tmp_path, name):
    """(atftp: curl 7.88 fails on any empty TFTP file, with tftpd-hpa too: getpeername() errno 107.)"""
    out = tmp_path / "out"
    rc, log = await run("atftp", "--option", "blksize 1024", "-g", "-r", name, "-l", str(out),
                        "127.0.0.1", str(server.address[1]))
    assert rc == 0, log
    assert out.read_bytes() == (files / name).read_bytes()


async def test_ipxe_dir_links_are_followed_outside_it(server, runtime, files, tmp_path):
    """The iPXE folder is a package's (Debian links ipxe.efi to /boot/ipxe.efi): its links are
    followed; tftp_root's links must stay inside (see test_path_escape_refused_and_logged)."""
    (runtime.settings.ipxe_dir / "linked.efi").symlink_to(files / "sub" / "nested.bin")
    out = tmp_path / "out"
    rc, log = await run("curl", "-sS", "-o", str(out), url(server, "linked.efi"))
    assert rc == 0, log
    assert out.read_bytes() == (files / "sub" / "nested.bin").read_bytes()


@pytest.mark.skipif(not Path("/usr/lib/ipxe/ipxe.efi").exists(), reason="Debian package ipxe not installed")
@pytest.mark.parametrize("name", ["ipxe.efi", "snponly.efi", "undionly.kpxe"])
async def test_debian_ipxe_binaries_with_default_settings(runtime, tmp_path, name):
    from dataclasses import replace

    from bootserver.tftp import TFTPServer
    runtime.settings = replace(runtime.settings, ipxe_dir=Settings().ipxe_dir, tftp_root=())
    srv = TFTPServer(runtime, runtime.settings)
    await srv.start()
    try:
        out = tmp_path / "out"
        rc, log = await run("atftp", "--option", "blksize 1468", "--option", "windowsize 4", "--option", "tsize 0",
                            "-g", "-r", name, "-l", str(out), "127.0.0.1", str(srv.address[1]))
        assert rc == 0, log
        assert sha256(out) == sha256(Path("/usr/lib/ipxe", name).resolve())
    finally:
        await srv.stop()


async def test_ipxe_dir_searched_before_tftp_root(server, runtime, tmp_path):
    (runtime.settings.ipxe_dir / "undionly.kpxe").write_bytes(b"from ipxe_dir")
    out = tmp_path / "out"
    rc, log = await run("curl", "-sS", "-o", str(out), url(server, "undionly.kpxe"))
    assert rc == 0, log
    assert out.read_bytes() == b"from ipxe_dir"


async def test_event_source_and_unknown_clients(server, runtime, tmp_path, caplog):
    rc, log = await run("curl", "-sS", "-o", str(tmp_path / "out"), url(server, "sub/nested.bin"))
    assert rc == 0, log
    event, = await runtime.store.events(CLIENT_MAC)
    assert (event.kind, event.source, event.detail["file"], event.detail["bytes"]) == (
        "tftp.transfer", "127.0.0.1", "sub/nested.bin", 3000)
    # A client DHCP never told us about: logged by address, no machine event.
    runtime._ip_to_mac.clear()
    with caplog.at_level(logging.INFO, logger="bootserver.tftp"):
        rc, log = await run("curl", "-sS", "-o", str(tmp_path / "out"), url(server, "sub/nested.bin"))
        assert rc == 0, log
    assert any(r.message.startswith("tftp: complete sub/nested.bin to 127.0.0.1:") for r in caplog.records)
    assert len(await runtime.store.events(CLIENT_MAC)) == 1
    assert [m.mac for m in await runtime.store.machines()] == []


async def test_concurrent_sessions_share_one_mapping(server, files, tmp_path):
    import asyncio
    results = await asyncio.gather(*(
        run("curl", "-sS", "--tftp-blksize", "512", "-o", str(tmp_path / f"o{i}"), url(server, "f1m"))
        for i in range(8)))
    assert all(rc == 0 for rc, _ in results), results
    expected = sha256(files / "f1m")
    assert all(sha256(tmp_path / f"o{i}") == expected for i in range(8))
    assert not server.sessions and len(server.files) == 0
