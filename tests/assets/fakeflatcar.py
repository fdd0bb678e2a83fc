"""A fake Flatcar release server on 127.0.0.1, and releases signed with a test key.

The server speaks enough HTTP for the fetcher: GET and HEAD, Range/If-Range with 206/416, 404,
and on request drops the connection midway through a body to exercise resuming.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PXE = ("flatcar_production_pxe.vmlinuz", "flatcar_production_pxe_image.cpio.gz")
IMAGE = "flatcar_production_image.bin.bz2"
UPDATE = "flatcar_production_update.gz"


@dataclass
class Logged:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class FakeServer:
    files: dict[str, bytes] = field(default_factory=dict)  # URL path -> body
    drops: dict[str, int] = field(default_factory=dict)  # URL path -> GETs still to cut short
    log: list[Logged] = field(default_factory=list)
    etag: str = '"v1"'
    url: str = ""

    def requests(self, path: str, method: str = "GET") -> list[Logged]:
        return [r for r in self.log if r.path == path and r.method == method]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeServer

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        fake = self.server.fake  # type: ignore[attr-defined]
        fake.log.append(Logged(self.command, self.path, dict(self.headers)))
        data = fake.files.get(self.path)
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, status = 0, 200
        wanted = self.headers.get("Range")
        if wanted and self.headers.get("If-Range", fake.etag) == fake.etag:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("ETag", fake.etag)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if not body:
            return
        if fake.drops.get(self.path, 0) > 0:
            fake.drops[self.path] -= 1
            self.wfile.write(data[start:start + (len(data) - start) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data[start:])


class running_server:
    """Context manager: a FakeServer listening on 127.0.0.1 on an ephemeral port."""

    def __enter__(self) -> FakeServer:
        self.fake = FakeServer()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.fake = self.fake  # type: ignore[attr-defined]
        self.fake.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self.fake

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class SigningKey:
    """An ed25519 signing key in its own GNUPGHOME, made fast with --quick-gen-key."""

    def __init__(self, home: Path, signing_subkey: bool = False) -> None:
        self.home = home
        uid = "bootserver test <test@bootserver.invalid>"
        self._gpg("--quick-gen-key", uid, "ed25519", "cert" if signing_subkey else "sign", "never")
        listing = self._gpg("--with-colons", "--list-keys").stdout.decode()
        self.fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
        if signing_subkey:  # like Flatcar's key: a certify-only primary with signing subkeys
            self._gpg("--quick-add-key", self.fingerprint, "ed25519", "sign", "never")
        self.binary = home / "test-key.gpg"
        self.armored = home / "test-key.asc"
        self._export()

    def _export(self) -> None:
        self.binary.write_bytes(self._gpg("--export").stdout)
        self.armored.write_bytes(self._gpg("--armor", "--export").stdout)

    def revoke_signing_subkey(self) -> None:
        """Revoke subkey 1 ("key has been compromised"), as Flatcar did with two of theirs."""
        script = b"key 1\nrevkey\ny\n0\n\ny\nsave\n"
        self._gpg("--command-fd", "0", "--edit-key", self.fingerprint, data=script)
        self._export()

    def _gpg(self, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
                               "--homedir", str(self.home), *args],
                              input=data, capture_output=True, check=True)

    def sign(self, data: bytes) -> bytes:
        return self._gpg("--detach-sign", "--output", "-", data=data).stdout

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "all"], check=False,
                       capture_output=True)


def digests(name: str, data: bytes) -> bytes:
    return (f"# MD5 HASH\n{hashlib.md5(data).hexdigest()}  {name}\n"
            f"# SHA1 HASH\n{hashlib.sha1(data).hexdigest()}  {name}\n"
            f"# SHA512 HASH\n{hashlib.sha512(data).hexdigest()}  {name}\n").encode()


def publish(fake: FakeServer, key: SigningKey, version: str, *, board: str = "amd64-usr", current: bool = True,
            size: int = 96 * 1024, omit: tuple[str, ...] = (), tamper: str | None = None,
            update_files: tuple[str, ...] = (UPDATE,)) -> dict[str, bytes]:
    """Put a signed release on the fake server; returns the genuine file contents.

    `tamper` names a file whose served bytes differ from what was signed; `omit` names files
    the release lacks (like 4593.2.2's missing PXE files). `update_files` are published beside
    the release with a detached .sig each, as Flatcar's release server publishes its update
    payload and OEM/sysext packages.
    """
    prefix = f"/{board}/{version}"
    genuine = {}
    release = (*PXE, IMAGE)  # published with a .DIGESTS file too; the update files are not
    for name in (*release, *update_files):
        data = os.urandom(size) + name.encode()
        genuine[name] = data
        if name in omit:
            continue
        fake.files[f"{prefix}/{name}"] = data if name != tamper else data[:-1] + bytes([data[-1] ^ 1])
        fake.files[f"{prefix}/{name}.sig"] = key.sign(data)
        if name in release:
            fake.files[f"{prefix}/{name}.DIGESTS"] = digests(name, data)
    version_txt = (f"FLATCAR_BUILD=0\nFLATCAR_BRANCH=0\nFLATCAR_PATCH=0\nFLATCAR_VERSION={version}\n"
                   f"FLATCAR_VERSION_ID={version}\nFLATCAR_BUILD_ID=\"test\"\nFLATCAR_SDK_VERSION=0\n").encode()
    fake.files[f"{prefix}/version.txt"] = version_txt
    genuine["version.txt"] = version_txt
    if current:
        fake.files[f"/{board}/current/version.txt"] = version_txt
    return genuine
