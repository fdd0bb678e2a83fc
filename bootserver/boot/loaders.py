"""Debian's signed EFI loaders, served under the names the boot chain asks for.

Shim looks for `grubx64.efi` beside itself, so the signed netboot GRUB (`grubnetx64.efi.signed`)
is served under that name; shim itself as `shimx64.efi`. Both come from Debian packages
(grub-efi-amd64-signed, shim-signed) at paths set in the settings.
"""

from __future__ import annotations

from pathlib import Path

from bootserver.boot.matching import Match
from bootserver.config import Settings

GRUB = "grubx64.efi"
SHIM = "shimx64.efi"
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
    return None
