"""Debian's signed EFI loaders, served under the names the boot chain asks for.

Shim looks for `grubx64.efi` beside itself, so the signed netboot GRUB (`grubnetx64.efi.signed`)
is served under that name; shim itself as `shimx64.efi`. Both come from Debian packages
(grub-efi-amd64-signed, shim-signed) at paths set in the settings.

arm64 firmware loads Debian's signed netboot GRUB for arm64 (`grubnetaa64.efi.signed`, from the
arm64 package grub-efi-arm64-signed, which scripts/bootstrap.sh unpacks: it does not install on an
amd64 host) directly, served as `grubaa64.efi` when the `arm64_loader` setting names it.
"""

from __future__ import annotations

from pathlib import Path

from bootserver.boot.matching import Match
from bootserver.config import Settings

GRUB = "grubx64.efi"
SHIM = "shimx64.efi"
GRUB_ARM64 = "grubaa64.efi"
#: arm64 UEFI HTTP Boot: bootserver's own unsigned build (bootserver.arm64_http_grub), over HTTP only
GRUB_ARM64_HTTP = "grubhttpaa64.efi"
#: where Debian's grubnetx64 looks: $prefix/grub.cfg, $prefix being /grub on its TFTP server; it asks
#: with the leading slash, which TFTP otherwise refuses as an absolute path
GRUB_CONFIGS = ("/grub/grub.cfg", "grub/grub.cfg")


def loader_for(match: Match | None) -> str:
    """`ipxe` or `grub`: the Machine's `loader`, else its Group's, else the profile's `boot.loader`."""
    if match is None:
        return "ipxe"
    for source in (match.machine, match.group):
        if source is not None and source.loader:
            return source.loader
    return match.profile.boot.loader


def signed_loader(name: str, settings: Settings) -> Path | None:
    """The file behind a served loader name, or None when `name` is not one of them."""
    if name == GRUB:
        return settings.grub_efi
    if name == SHIM:
        return settings.shim_efi
    if name == GRUB_ARM64:
        return settings.grub_arm64_efi
    return None


def arm64_loader_status(settings: Settings) -> tuple[bool, str]:
    """Whether arm64 firmware gets an answer, and the line `bootserver serve` says about it at start."""
    name = settings.arm64_loader
    if not name:
        return False, ("arm64: not answered (arm64_loader is not set; set it to grubaa64.efi for Debian's "
                       "signed arm64 netboot GRUB)")
    if name == GRUB_ARM64:
        path = settings.grub_arm64_efi
        if not path.is_file():
            return False, (f"arm64: not answered: arm64_loader={name} but {path} is missing "
                           "(scripts/bootstrap.sh install unpacks grub-efi-arm64-signed there)")
        return True, f"arm64: serving {name} = {path} (GRUB, per-machine grub.cfg)"
    return True, f"arm64: serving {name} from the iPXE/TFTP folders"
