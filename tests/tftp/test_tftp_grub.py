"""The GRUB files over TFTP from `bootserver serve`, fetched with real clients (curl, and raw
requests for the leading-slash names GRUB sends): the signed loaders, the assets folder under
assets/ and the per-machine grub/grub.cfg, which matches GET /grub.cfg."""

from __future__ import annotations

import socket
import subprocess
import urllib.request
from pathlib import Path

from tests.tftp.tftp_helpers import ack, parse_error, rrq

MAC = "52:54:00:00:00:01"


def curl(port: int, name: str, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "-o", str(out), f"tftp://127.0.0.1:{port}/{name}"],
                          capture_output=True, text=True, timeout=60)


def raw_get(port: int, name: str) -> tuple[bytes | None, tuple[int, str] | None]:
    """Fetch `name` exactly as given (GRUB asks for /grub/grub.cfg); (data, None) or (None, error)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(rrq(name), ("127.0.0.1", port))
        data = b""
        while True:
            packet, peer = sock.recvfrom(70000)
            if packet[:2] == b"\0\x05":
                return None, parse_error(packet)
            block = int.from_bytes(packet[2:4], "big")
            data += packet[4:]
            sock.sendto(ack(block), peer)
            if len(packet) - 4 < 512:
                return data, None


def test_grub_files_over_tftp(serve, catalog_dir, tmp_path):
    assets = tmp_path / "assets"
    (assets / "os").mkdir(parents=True)
    (assets / "os" / "vmlinuz").write_bytes(bytes(range(256)) * 40)
    (assets / ".manifest.json").write_text("{}")
    server = serve("--catalog", str(catalog_dir), "--state", "memory://", "--tftp", "127.0.0.1:0",
                   "--assets", str(assets))
    port = int(server.wait_log(r"tftp: listening on 127\.0\.0\.1:(\d+)").group(1))
    out = tmp_path / "out"
    for name, source in (("grubx64.efi", "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"),
                         ("shimx64.efi", "/usr/lib/shim/shimx64.efi.signed"), ("assets/os/vmlinuz", assets / "os/vmlinuz")):
        done = curl(port, name, out)
        assert done.returncode == 0, done.stderr
        assert out.read_bytes() == Path(source).read_bytes(), name
    assert raw_get(port, "/assets/os/vmlinuz")[0] == (assets / "os/vmlinuz").read_bytes()
    for refused in ("/assets/.manifest.json", "assets/../catalog/machines.yaml", "/etc/passwd"):
        assert raw_get(port, refused) == (None, (2, "access violation")), refused
    # before bootserver has seen the machine, its address means nothing: a config that hands back
    unknown, _ = raw_get(port, "/grub/grub.cfg")
    assert b"does not know the machine at 127.0.0.1" in unknown and unknown.rstrip().endswith(b"exit 1")
    urllib.request.urlopen(f"{server.url}/ipxe?mac={MAC}", timeout=10).read()  # learns 127.0.0.1 -> MAC
    over_tftp, _ = raw_get(port, "/grub/grub.cfg")
    over_http = urllib.request.urlopen(f"{server.url}/grub.cfg?mac={MAC}", timeout=10).read()
    assert over_tftp == over_http and b"linux '(tftp,127.0.0.1)/assets/os/vmlinuz'" in over_tftp
