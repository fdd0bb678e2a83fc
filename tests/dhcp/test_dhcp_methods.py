"""The boot-method table and the per-MAC limiter: pure code, no sockets."""

from __future__ import annotations

import pytest

from bootserver.boot.methods import Answer, Silence, arch_for, choose, installed_answers, stage_for
from bootserver.boot.request import Stage
from bootserver.config import Settings
from bootserver.dhcp.ratelimit import MacRateLimiter

URL = "http://10.0.0.2:8080"


@pytest.mark.parametrize("code, vendor, user_class, settings, expected", [
    (0, "PXEClient:Arch:00000:UNDI:002001", (), {}, Answer("pxe-bios", "undionly.kpxe", "PXEClient", True)),
    (7, "PXEClient:Arch:00007:UNDI:003000", (), {}, Answer("pxe-uefi-x64", "ipxe.efi", "PXEClient", False)),
    (9, "PXEClient:Arch:00009:UNDI:003000", (), {"uefi_loader": "snponly.efi"},
     Answer("pxe-uefi-x64", "snponly.efi", "PXEClient", False)),
    (11, "PXEClient:Arch:00011:UNDI:003000", (), {"arm64_loader": "ipxe-arm64.efi"},
     Answer("pxe-uefi-arm64", "ipxe-arm64.efi", "PXEClient", False)),
    (11, "PXEClient:Arch:00011:UNDI:003000", (), {"arm64_loader": "grubaa64.efi"},
     Answer("pxe-uefi-arm64", "grubaa64.efi", "PXEClient", False)),
    (16, "HTTPClient:Arch:00016:UNDI:003000", (), {},
     Answer("http-uefi-x64", URL + "/loaders/ipxe.efi", "HTTPClient", False)),
    (19, "HTTPClient:Arch:00019:UNDI:003000", (), {"arm64_loader": "ipxe-arm64.efi"},
     Answer("http-uefi-arm64", URL + "/loaders/ipxe-arm64.efi", "HTTPClient", False)),
    (0, "PXEClient", (b"iPXE",), {}, Answer("ipxe-script", URL + "/boot.ipxe", "PXEClient", True)),
    (7, "PXEClient:Arch:00007:UNDI:003010", (b"iPXE",), {}, Answer("ipxe-script", URL + "/boot.ipxe", "PXEClient",
                                                                   False)),
    (11, "PXEClient:Arch:00011:UNDI:003010", (b"iPXE",), {},  # iPXE already runs: no loader needed
     Answer("ipxe-script", URL + "/boot.ipxe", "PXEClient", False)),
])
def test_table(code, vendor, user_class, settings, expected):
    stage = stage_for(vendor, user_class, False)
    assert choose(code, stage, vendor, "boot", "matched", Settings(**settings), URL) == expected


@pytest.mark.parametrize("code, reason", [
    (11, "arm64_loader is not set"), (19, "arm64_loader is not set"), (6, "no iPXE binary exists"),
])
def test_missing_loaders_are_silence_with_a_notice(code, reason):
    result = choose(code, Stage.PXE, "PXEClient", "boot", "matched", Settings(), URL)
    assert isinstance(result, Silence) and result.notice and reason in result.reason


def test_arm64_http_boot_gets_bootservers_own_grub_as_an_http_url():
    """UEFI spec (HTTP Boot): the answer echoes HTTPClient in option 60 and the file is a URI.
    Debian's image finds no network after HTTP Boot, so arch 19 gets grubhttpaa64.efi, machine
    installed or not; with arm64_http_boot off it is silence, and the firmware's PXE entry boots it."""
    settings = Settings(arm64_loader="grubaa64.efi")
    for action in ("boot", "local-disk"):
        result = choose(19, Stage.HTTPBOOT, "HTTPClient:Arch:00019:UNDI:003000", action, "m", settings, URL)
        assert result == Answer("http-uefi-arm64", URL + "/loaders/grubhttpaa64.efi", "HTTPClient", False)
    off = Settings(arm64_loader="grubaa64.efi", arm64_http_boot=False)
    result = choose(19, Stage.HTTPBOOT, "HTTPClient:Arch:00019:UNDI:003000", "boot", "m", off, URL)
    assert isinstance(result, Silence) and result.notice and "PXE entry (arch 11)" in result.reason
    pxe = choose(11, Stage.PXE, "PXEClient:Arch:00011:UNDI:003000", "boot", "m", settings, URL)
    assert pxe == Answer("pxe-uefi-arm64", "grubaa64.efi", "PXEClient", False)  # PXE keeps the signed image


def test_unknown_architecture_and_ignored_machines_are_silent():
    assert isinstance(choose(10, Stage.PXE, "PXEClient", "boot", "m", Settings(), URL), Silence)
    silence = choose(7, Stage.PXE, "PXEClient", "ignore", "unknown MAC", Settings(), URL)
    assert isinstance(silence, Silence) and "unknown MAC" in silence.reason and not silence.notice


@pytest.mark.parametrize("setting, bios, uefi", [("auto", True, True), ("answer", True, True),
                                                 ("silent", False, False)])
def test_installed_machines(setting, bios, uefi):
    assert installed_answers(setting) is bios is uefi
    settings = Settings(installed_dhcp=setting)
    assert isinstance(choose(0, Stage.PXE, "PXEClient", "local-disk", "installed", settings, URL), Answer) is bios
    assert isinstance(choose(7, Stage.PXE, "PXEClient", "local-disk", "installed", settings, URL), Answer) is uefi


def test_stages_and_arches():
    assert stage_for("PXEClient:Arch:00007:UNDI:003000", (), False) is Stage.PXE
    assert stage_for("PXEClient", (), True) is Stage.IPXE  # option 175 alone is enough
    assert stage_for("HTTPClient:Arch:00016", (), False) is Stage.HTTPBOOT
    assert stage_for("udhcp 1.35.0", (), False) is None
    assert [arch_for(c) for c in (0, 6, 7, 9, 11, 16, 19, 10)] == [
        "x86_64-bios", "i386-efi", "x86_64-efi", "x86_64-efi", "arm64-efi", "x86_64-efi", "arm64-efi", None]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_limiter_burst_then_refill():
    clock = Clock()
    limiter = MacRateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.allow("a")[0] for _ in range(5)] == [True, True, True, False, False]
    assert limiter.allow("a") == (False, 3)  # third drop in a row
    assert limiter.allow("b")[0]  # other MACs are not affected
    clock.now += 0.5  # one token back at 2/s
    assert limiter.allow("a") == (True, 0)
    assert limiter.allow("a")[0] is False


def test_limiter_memory_is_bounded():
    clock = Clock()
    limiter = MacRateLimiter(rate=1.0, burst=2, max_macs=1000, clock=clock)
    for i in range(300_000):
        limiter.allow(f"02:00:{i >> 24 & 255:02x}:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}")
    assert len(limiter) == 1000
    # the most recent MAC (299,999) is remembered with one token left; the oldest starts afresh
    assert [limiter.allow("02:00:00:04:93:df")[0] for _ in range(2)] == [True, False]
    assert [limiter.allow("02:00:00:00:00:00")[0] for _ in range(2)] == [True, True]
    assert len(limiter) == 1000


def test_grub_loader_gives_uefi_firmware_the_signed_shim():
    settings = Settings()
    pxe = choose(7, Stage.PXE, "PXEClient:Arch:00007:UNDI:003000", "boot", "m", settings, URL, "grub")
    assert isinstance(pxe, Answer) and pxe.boot_file == "shimx64.efi" and pxe.vendor_class == "PXEClient"
    http = choose(16, Stage.HTTPBOOT, "HTTPClient:Arch:00016", "local-disk", "m", settings, URL, "grub")
    assert http.boot_file == URL + "/loaders/shimx64.efi" and http.vendor_class == "HTTPClient"
    # BIOS and iPXE clients are not affected by the loader choice
    assert choose(0, Stage.PXE, "PXEClient", "boot", "m", settings, URL, "grub").boot_file == "undionly.kpxe"
    assert choose(7, Stage.IPXE, "PXEClient", "boot", "m", settings, URL, "grub").boot_file == URL + "/boot.ipxe"
    ignored = choose(7, Stage.PXE, "PXEClient", "ignore", "unknown MAC", settings, URL, "grub")
    assert isinstance(ignored, Silence)
