"""The arm64 HTTP Boot GRUB: its early config (the server address is the only value in it, and a
hostile one is refused) and the image grub-mkimage really builds from Debian's arm64 modules."""

import struct
import subprocess

import pytest

from bootserver.arm64_http_grub import MODULES, Arm64HttpGrub, BuildError, status
from bootserver.config import Settings
from bootserver.render.grub import GrubRenderError
from bootserver.render.grub_http_boot import early_config, http_server

ARM64 = Settings(arm64_loader="grubaa64.efi")


def test_early_config_takes_an_address_then_loads_the_machines_config_over_http():
    lines = early_config("10.0.0.2", 8080).splitlines()
    dhcp = next(i for i, l in enumerate(lines) if "net_dhcp" in l)
    config = next(i for i, l in enumerate(lines) if l.startswith("configfile"))
    assert dhcp < config and lines[dhcp].startswith('if [ -z "$net_default_ip" ]')  # only without an address
    assert lines[config] == ('configfile "(http,10.0.0.2:8080)/grub.cfg?arch=arm64-efi&assets=http'
                             '&mac=${bootserver_mac}"')
    assert 'set bootserver_mac="$net_default_mac"' in lines  # the NIC the firmware booted from
    assert lines[-1] == "exit 1"  # no config: back to the firmware, which tries its next entry
    assert http_server("boot.example.internal", 80) == "boot.example.internal:80"
    check = subprocess.run(["grub-script-check"], input="\n".join(lines), capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr  # GRUB's own parser accepts it


@pytest.mark.parametrize("host", [
    "10.0.0.2'; reboot; echo '", "10.0.0.2\nreboot", "boot server", "$(reboot)", "${prefix}", "a;b", "a\"b",
    "(http,evil)", "", "-x", "a..b", "1.2.3.4.5", "::1", "[::1]", "bad_name", "x" * 254, "host\\n",
])
def test_a_hostile_or_unusable_host_is_refused(host):
    with pytest.raises(GrubRenderError):
        early_config(host, 8080)


@pytest.mark.parametrize("port", [0, 65536, -1, True, "8080", "80; reboot"])
def test_a_bad_port_is_refused(port):
    with pytest.raises(GrubRenderError):
        early_config("10.0.0.2", port)


def pe_machine(image: bytes) -> int:
    """The COFF machine type of a PE image (0xAA64: arm64)."""
    assert image[:2] == b"MZ"
    pe = struct.unpack_from("<I", image, 0x3C)[0]
    assert image[pe:pe + 4] == b"PE\0\0"
    return struct.unpack_from("<H", image, pe + 4)[0]


async def test_grub_mkimage_builds_an_arm64_efi_image_with_the_early_config_in_it():
    assert status(ARM64)[0], status(ARM64)[1]
    builder = Arm64HttpGrub(ARM64)
    first = await builder.image("10.0.0.2", 8080)
    again = await builder.image("10.0.0.2", 8080)
    other = await builder.image("10.0.0.3", 8081)
    assert pe_machine(first) == 0xAA64 and first is again  # built once per address
    assert early_config("10.0.0.2", 8080).encode() in first
    assert early_config("10.0.0.3", 8081).encode() in other and b"10.0.0.2" not in other
    with pytest.raises(GrubRenderError):
        await builder.image("10.0.0.2 -o /etc/x", 8080)


async def test_builder_failure_is_a_build_error(tmp_path):
    (tmp_path / "kernel.img").write_bytes(b"not a kernel")
    broken = Arm64HttpGrub(Settings(arm64_loader="grubaa64.efi", grub_arm64_modules=tmp_path))
    with pytest.raises(BuildError):
        await broken.image("10.0.0.2", 8080)


def test_status_says_why_http_boot_is_not_answered(tmp_path):
    assert "needs arm64_loader: grubaa64.efi" in status(Settings())[1]
    assert "arm64_http_boot: false" in status(Settings(arm64_loader="grubaa64.efi", arm64_http_boot=False))[1]
    answered, line = status(Settings(arm64_loader="grubaa64.efi", grub_arm64_modules=tmp_path))
    assert not answered and str(tmp_path) in line and "grub-efi-arm64-bin" in line
    answered, line = status(ARM64)
    assert answered and line.startswith("arm64 HTTP Boot: serving grubhttpaa64.efi") and len(MODULES) > 10
