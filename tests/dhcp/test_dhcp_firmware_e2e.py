"""Real firmware through bootserver's proxy: SeaBIOS + iPXE ROM, and genuine OVMF (edk2) PXE, under QEMU.

One namespace holds a tap for QEMU, dnsmasq as the ordinary DHCP server (addresses, and IPv6 RAs so
iPXE does not stall), and `bootserver serve --dhcp TAP` (proxyDHCP, its TFTP for the iPXE binaries,
HTTP). The boot counts as
reaching bootserver when iPXE, loaded through the proxy's answers, fetches `/ipxe?mac=<the VM>` over
HTTP (seen in the access log). The end-to-end issue boots all the way to an installed OS.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.dhcp.dhcp_support import PROFILE, SERVER_IP, sh
from tests.support.processes import stop

pytestmark = [pytest.mark.e2e, pytest.mark.netns]

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
TIMEOUT = 150  # TCG: about 15 s for BIOS and 25 s for UEFI in the lab, more on a busy machine


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing or not OVMF_CODE.exists() or not Path("/usr/lib/ipxe/ipxe.efi").exists():
        pytest.skip(f"needs qemu, dnsmasq, OVMF and ipxe ({', '.join(missing) or 'files missing'})")
    if os.geteuid() != 0 or not Path("/dev/net/tun").exists():
        pytest.skip("needs root and /dev/net/tun")


# A master boot record that writes a marker to COM1 and halts: proof that the BIOS booted the disk.
#   xor ax,ax; mov ds,ax; mov si,msg; mov dx,0x3f8
#   next: lodsb; test al,al; jz hang; out dx,al; jmp next
#   hang: hlt; jmp hang
DISK_MARKER = b"BSDH-LOCAL-DISK-BOOTED"
MBR_CODE = bytes.fromhex("31c08ed8be157cbaf803ac84c07403eeebf8f4ebfd") + DISK_MARKER + b"\r\n\0"


def marker_disk(path: Path) -> Path:
    image = bytearray(1 << 20)
    image[:len(MBR_CODE)] = MBR_CODE
    image[510:512] = b"\x55\xaa"
    path.write_bytes(image)
    return path


def _network(tmp_path: Path, ns: str, tap: str) -> subprocess.Popen:
    """The namespace with QEMU's tap, and dnsmasq for addresses and RAs; returns dnsmasq."""
    sh("ip", "netns", "add", ns)
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "netns", "exec", ns, "ip", "tuntap", "add", "dev", tap, "mode", "tap")
    sh("ip", "-n", ns, "addr", "add", f"{SERVER_IP}/24", "dev", tap)
    sh("ip", "-n", ns, "addr", "add", "fd77::3/64", "dev", tap, "nodad")
    sh("ip", "-n", ns, "link", "set", tap, "up")
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--user=root",
         "--pid-file=", "--port=0", f"--interface={tap}", "--bind-interfaces", "--no-ping",
         "--dhcp-range=10.77.0.100,10.77.0.199,255.255.255.0,10m", "--enable-ra",
         "--dhcp-range=fd77::,ra-only,64", f"--dhcp-leasefile={tmp_path / 'leases'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _qemu(tmp_path: Path, firmware: str, mac: str, tap: str, serial: Path, disk: bool = False) -> list[str]:
    qemu = ["qemu-system-x86_64", "-nodefaults", "-no-user-config", "-accel", "tcg",
            "-uuid", f"00000000-0000-4000-8000-{mac.replace(':', '')}", "-m", "512", "-smp", "1",
            "-display", "none", "-monitor", "none", "-serial", f"file:{serial}", "-no-reboot",
            "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no"]
    if firmware == "bios":  # QEMU's default NIC ROM is iPXE
        if disk:
            qemu += ["-drive", f"file={marker_disk(tmp_path / 'disk.img')},format=raw,if=ide"]
        return qemu + ["-device", f"virtio-net-pci,netdev=n0,mac={mac},bootindex=1",
                       "-machine", "pc,graphics=off", "-boot", "order=n"]
    shutil.copy(OVMF_VARS, tmp_path / "vars.fd")  # romfile= (none): OVMF's own PXE, not an iPXE ROM
    return qemu + ["-device", f"virtio-net-pci,netdev=n0,mac={mac},bootindex=1,romfile=", "-machine", "q35",
                   "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
                   "-drive", f"if=pflash,format=raw,unit=1,file={tmp_path / 'vars.fd'}"]


def _catalog(tmp_path: Path, mac: str) -> Path:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "machines.yaml").write_text(
        PROFILE + f"---\napiVersion: bootserver/v1\nkind: Machine\nmetadata: {{name: vm}}\n"
                  f"spec: {{mac: \"{mac}\", profile: install}}\n")
    return catalog


@pytest.mark.parametrize("firmware, mac", [
    ("bios", "52:54:00:77:00:01"),  # SeaBIOS + iPXE option ROM: iPXE from the first packet
    ("uefi", "52:54:00:77:00:11"),  # OVMF's own PXE: OFFER, REQUEST on 4011, TFTP ipxe.efi, then iPXE
])
def test_firmware_boots_through_the_proxy(tmp_path, firmware, mac):
    _need("qemu-system-x86_64", "dnsmasq")
    tag = secrets.token_hex(3)
    ns, tap = f"bsdh-{tag}-fw", f"bsdh{tag}t"
    catalog = _catalog(tmp_path, mac)
    procs: list[subprocess.Popen] = []
    serve_log, serial = tmp_path / "serve.log", tmp_path / "serial.log"
    try:
        procs.append(_network(tmp_path, ns, tap))
        with open(serve_log, "wb") as out:
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, "-m", "bootserver", "serve", "--catalog", str(catalog),
                 "--state", "memory://", "--dhcp", tap, "--http", "0.0.0.0:8080",
                 "--log-level", "debug"], stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path))
        deadline = time.monotonic() + 20
        while "bootserver ready" not in serve_log.read_text():
            assert procs[-1].poll() is None and time.monotonic() < deadline, serve_log.read_text()
            time.sleep(0.1)
        procs.append(subprocess.Popen(["ip", "netns", "exec", ns, *_qemu(tmp_path, firmware, mac, tap, serial)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wanted = re.compile(re.escape(mac) + r" GET /ipxe 200")  # the access log line of iPXE's /ipxe fetch
        deadline = time.monotonic() + TIMEOUT
        while not wanted.search(serve_log.read_text()):
            assert time.monotonic() < deadline, (
                f"no /ipxe request from {mac} in {TIMEOUT}s\n--- serve log\n{serve_log.read_text()[-4000:]}"
                f"\n--- serial\n{serial.read_text(errors='replace')[-3000:] if serial.exists() else ''}")
            assert procs[-1].poll() is None, "QEMU exited"
            time.sleep(0.5)
    finally:
        for proc in reversed(procs):
            stop(proc)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    log = serve_log.read_text()
    offers = re.findall(rf"dhcp\.(offer|ack) to {mac} \(([\w-]+), (\w+)\) on {tap}:(\d+) -> ([\d.]+):(\d+): (\S+)",
                        log)
    if firmware == "bios":
        assert ("offer", "x86_64-bios", "ipxe", "67", "255.255.255.255", "68",
                f"http://{SERVER_IP}:8080/boot.ipxe") in offers
    else:  # edk2 PXE: OFFER, then the ACK on 4011 unicast back to port 4011; then iPXE's own DHCP
        assert ("offer", "x86_64-efi", "pxe", "67", "255.255.255.255", "68", "ipxe.efi") in offers
        assert any(o[0] == "ack" and o[3] == "4011" and o[5] == "4011" and o[6] == "ipxe.efi" for o in offers), offers
        assert ("offer", "x86_64-efi", "ipxe", "67", "255.255.255.255", "68",
                f"http://{SERVER_IP}:8080/boot.ipxe") in offers


# -- installed machines with the default installed_dhcp (auto) -------------------------------------

@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("firmware, mac, expect", [
    # BIOS: answered; iPXE runs the local-disk script, `sanboot --drive 0x80` boots the disk's MBR
    ("bios", "52:54:00:77:00:01", DISK_MARKER.decode()),
    # UEFI: answered too (the firmware is told to load iPXE, whose local-disk script chains GRUB to
    # find the disk's EFI loader: that chain runs in tests/e2e/test_lab.py; here the in-process
    # TFTP's per-transfer sockets would open outside the test's namespace)
    ("uefi", "52:54:00:77:00:11", "NBP filename is ipxe.efi"),
])
async def test_installed_machine_leaves_the_network_boot(reactor, tmp_path, caplog, firmware, mac, expect):
    _need("qemu-system-x86_64", "dnsmasq")
    from bootserver.app import Server
    from bootserver.config import Settings
    from tests.dhcp.dhcp_support import inside, set_installed

    tag = secrets.token_hex(3)
    ns, tap = f"bsdh-{tag}-in", f"bsdh{tag}i"
    catalog = _catalog(tmp_path, mac)
    serial = tmp_path / "serial.log"
    server = Server(Settings(catalog=catalog, assets=tmp_path, state="memory://", dhcp=(tap,),
                             http="0.0.0.0:8080"))
    procs: list[subprocess.Popen] = []
    try:
        procs.append(_network(tmp_path, ns, tap))
        with inside(ns):
            await server.start()  # its sockets (proxy and HTTP) are created in the namespace
        await set_installed(server.runtime, mac)
        procs.append(subprocess.Popen(["ip", "netns", "exec", ns, *_qemu(tmp_path, firmware, mac, tap, serial, disk=True)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        with caplog.at_level("DEBUG", logger="bootserver.dhcp"):
            while expect not in (serial.read_text(errors="replace") if serial.exists() else ""):
                assert loop.time() < deadline, serial.read_text(errors="replace")[-3000:]
                assert procs[-1].poll() is None, "QEMU exited: " + serial.read_text(errors="replace")[-3000:]
                await asyncio.sleep(0.5)
    finally:
        for proc in reversed(procs):
            stop(proc)
        await server.stop()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    kinds = [e.kind for e in await server.runtime.store.events(mac)]
    assert "dhcp.offer" in kinds
    if firmware == "bios":
        assert "http.ipxe" in kinds
        assert "is installed, booting from local disk" in serial.read_text(errors="replace")
