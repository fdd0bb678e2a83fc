"""What each kind of network-boot client is told to load: a declarative table, in the style of MAAS.

A client is identified by its architecture type (DHCP option 93, RFC 4578) and by what is asking:
the firmware's PXE stack, UEFI HTTP Boot, or iPXE. Firmware gets a first-stage iPXE binary (over
TFTP, or over HTTP for HTTP Boot); iPXE gets the `boot.ipxe` chain script over HTTP.

`choose()` is pure: it turns (client, boot decision, settings) into an `Answer` or a `Silence` with
the reason, and the DHCP proxy only translates that into bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from bootserver.boot.loaders import GRUB_ARM64, GRUB_ARM64_HTTP, SHIM
from bootserver.boot.request import Stage
from bootserver.config import Settings

UEFI_LOADER = "setting:uefi_loader"  # ipxe.efi or snponly.efi, by setting
ARM64_LOADER = "setting:arm64_loader"  # unset: ARM64 firmware is not answered
HTTP_LOADER_PATH = "/loaders/"  # where the HTTP service serves iPXE binaries to UEFI HTTP Boot
IPXE_SCRIPT_PATH = "/boot.ipxe"


@dataclass(frozen=True)
class BootMethod:
    name: str
    arch_codes: tuple[int, ...]  # option 93 values this row covers
    arch: str  # canonical name (bootserver.boot.request.ARCHES)
    stage: Stage  # Stage.PXE (TFTP file name) or Stage.HTTPBOOT (HTTP URL)
    loader: str | None  # file name, a setting reference, or None when no binary exists for it


BOOT_METHODS: tuple[BootMethod, ...] = (
    BootMethod("pxe-bios", (0,), "x86_64-bios", Stage.PXE, "undionly.kpxe"),
    BootMethod("pxe-uefi-ia32", (6,), "i386-efi", Stage.PXE, None),  # Debian ships no i386 EFI iPXE
    BootMethod("pxe-uefi-x64", (7, 9), "x86_64-efi", Stage.PXE, UEFI_LOADER),
    BootMethod("pxe-uefi-arm64", (11,), "arm64-efi", Stage.PXE, ARM64_LOADER),
    BootMethod("http-uefi-x64", (16,), "x86_64-efi", Stage.HTTPBOOT, UEFI_LOADER),
    BootMethod("http-uefi-arm64", (19,), "arm64-efi", Stage.HTTPBOOT, ARM64_LOADER),
)

_BY_CODE = {code: method for method in BOOT_METHODS for code in method.arch_codes}


def method_for(arch_code: int) -> BootMethod | None:
    return _BY_CODE.get(arch_code)


def arch_for(arch_code: int) -> str | None:
    """Canonical arch name for an option 93 value, or None if bootserver does not boot it."""
    method = _BY_CODE.get(arch_code)
    return method.arch if method else None


def stage_for(vendor_class: str, user_classes: tuple[bytes, ...], has_ipxe_options: bool) -> Stage | None:
    """Who is asking: iPXE (user class `iPXE` or option 175), UEFI HTTP Boot, firmware PXE, or no boot client."""
    if vendor_class.startswith("PXEClient"):
        return Stage.IPXE if (b"iPXE" in user_classes or has_ipxe_options) else Stage.PXE
    if vendor_class.startswith("HTTPClient"):
        return Stage.IPXE if (b"iPXE" in user_classes or has_ipxe_options) else Stage.HTTPBOOT
    return None


@dataclass(frozen=True)
class Answer:
    method: str  # table row name, or "ipxe-script"
    boot_file: str  # TFTP file name or absolute URL
    vendor_class: str  # echoed as option 60: PXEClient or HTTPClient
    pxe_discovery_control: bool  # BIOS PXE: option 43 says "boot the file in this offer, no discovery"


@dataclass(frozen=True)
class Silence:
    reason: str
    notice: bool = False  # worth an info line (a configuration gap), not just a debug line


def installed_answers(setting: str) -> bool:
    """Whether an installed machine still gets a proxy answer (see docs/dhcp.md for why).

    auto and answer: yes, on BIOS and UEFI alike: BIOS gets iPXE's `sanboot --drive 0x80`, UEFI
    gets GRUB, which finds the disk's EFI loader (staying silent costs a UEFI machine about two
    minutes of PXE and HTTP Boot timeouts before the firmware tries its disk). silent: no answer.
    """
    return setting != "silent"


def _loader(method: BootMethod, settings: Settings) -> str | None:
    if method.loader == UEFI_LOADER:
        return settings.uefi_loader
    if method.loader == ARM64_LOADER:
        return settings.arm64_loader
    return method.loader


def choose(arch_code: int, stage: Stage, vendor_class: str, action: str, reason: str,
           settings: Settings, advertise_url: str, loader: str = "ipxe") -> Answer | Silence:
    """The proxy's answer for one client, given `runtime.decide()`'s action ("boot", "local-disk", "ignore")
    and the machine's loader (`grub`: x86-64 UEFI firmware gets Debian's signed shim, which loads GRUB)."""
    method = _BY_CODE.get(arch_code)
    if method is None:
        return Silence(f"architecture type {arch_code} has no boot method")
    if action == "ignore":
        return Silence(f"ignored: {reason}")
    firmware = "bios" if method.arch.endswith("-bios") else "uefi"
    if action == "local-disk" and not installed_answers(settings.installed_dhcp):
        return Silence(f"boots from its disk ({reason}); installed_dhcp={settings.installed_dhcp} "
                       f"keeps {firmware.upper()} firmware silent so it falls through to the disk")
    if action not in ("boot", "local-disk"):
        return Silence(f"unknown decision {action!r}", notice=True)
    echo = "HTTPClient" if vendor_class.startswith("HTTPClient") else "PXEClient"
    bios = firmware == "bios"
    if stage is Stage.IPXE:
        return Answer("ipxe-script", advertise_url + IPXE_SCRIPT_PATH, echo, bios)
    if loader == "grub" and method.arch == "x86_64-efi":
        if stage is Stage.HTTPBOOT or method.stage is Stage.HTTPBOOT:
            return Answer(f"{method.name}-shim", advertise_url + HTTP_LOADER_PATH + SHIM, "HTTPClient", False)
        return Answer(f"{method.name}-shim", SHIM, echo, False)
    loader = _loader(method, settings)
    if loader is None:
        what = "arm64_loader is not set" if method.loader == ARM64_LOADER else "no iPXE binary exists"
        return Silence(f"{method.name}: {what}, so {method.arch} firmware is not answered", notice=True)
    if stage is Stage.HTTPBOOT or method.stage is Stage.HTTPBOOT:
        if loader == GRUB_ARM64:  # Debian's image finds no config after HTTP Boot: bootserver's own build
            if not settings.arm64_http_boot:
                return Silence(f"{method.name}: arm64_http_boot is off (or its GRUB cannot be built), so HTTP "
                               "Boot is not answered; the firmware's PXE entry (arch 11) gets it", notice=True)
            loader = GRUB_ARM64_HTTP
        return Answer(method.name, advertise_url + HTTP_LOADER_PATH + loader, "HTTPClient", False)
    return Answer(method.name, loader, echo, bios)
