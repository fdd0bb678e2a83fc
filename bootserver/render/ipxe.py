"""iPXE scripts. Every value that reaches a script was checked (render.args) or comes from settings."""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import urlsplit

from bootserver.boot.lifecycle import BootDecision
from bootserver.boot.request import BootRequest
from bootserver.catalog.model import Profile
from bootserver.render.args import UNSAFE, render_args
from bootserver.render.context import asset_url, template_context

IDENTITY = ("mac=${net0/mac}&uuid=${uuid}&arch=${buildarch}&platform=${platform}"
            "&serial=${serial:uristring}&manufacturer=${manufacturer:uristring}"
            "&product=${product:uristring}&hostname=${hostname:uristring}")


def _checked(text: str, what: str) -> str:
    bad = UNSAFE.search(text)
    if bad:
        raise ValueError(f"{what} {text!r} contains {bad.group()!r}, which is not allowed in an iPXE script")
    return text


def chain_script(base: str, attempts: int = 3) -> str:
    """The one script every iPXE client gets first: make sure DHCP is done, then chain to /ipxe.

    iPXE sometimes misses the proxy's offer, so both DHCP and the chain are retried a few times
    before giving up and returning to the firmware (next boot device).
    """
    url = _checked(base.rstrip("/"), "advertise URL") + "/ipxe?" + IDENTITY
    lines = ["#!ipxe", "# bootserver: identify this machine, then fetch its own script"]
    for n in range(1, attempts + 1):
        lines += [f":try{n}",
                  f"isset ${{net0/ip}} || dhcp || goto fail{n}",
                  f"chain --autofree {url} || goto fail{n}",
                  f":fail{n}",
                  f"echo bootserver: attempt {n} of {attempts} failed, retrying" if n < attempts
                  else "echo bootserver: no boot script after retries; returning to the firmware",
                  "sleep 2" if n < attempts else "exit 1"]
    return "\n".join(lines) + "\n"


def _basename(url: str) -> str:
    return PurePosixPath(urlsplit(url).path).name


def boot_script(name: str, profile: Profile, context: dict, base: str) -> str:
    """Kernel, every initrd (with `initrd=<basename>` for UEFI's sake) and the rendered args."""
    kernel = _checked(asset_url(base, profile.boot.kernel), "kernel URL")
    initrds = [_checked(asset_url(base, ref), "initrd URL") for ref in profile.boot.initrd]
    args = [f"initrd={_basename(u)}" for u in initrds] + render_args(profile.boot.args, context)
    lines = ["#!ipxe", f"echo bootserver: {name} boots profile {profile.name}",
             " ".join(["kernel", kernel, *args])]
    lines += [f"initrd {u}" for u in initrds]
    lines.append("boot")
    return "\n".join(lines) + "\n"


def local_disk_script(name: str, firmware: str | None, base: str = "", server_ip: str | None = None) -> str:
    """Boot from the local disk. BIOS: sanboot the first disk. UEFI: chain Debian's netboot GRUB,
    whose config (grub/grub.cfg, the local-disk answer) finds the disk's EFI loader; GRUB reads
    it from the DHCP next-server, so that is set to this server first. If GRUB is missing or
    finds nothing, `exit 1` hands back to the firmware's next boot entry.
    Unknown firmware decides at run time from ${platform}."""
    head = ["#!ipxe", f"echo bootserver: {name} is installed, booting from local disk"]
    uefi = ["exit 1"]
    if base and server_ip:
        grub = _checked(base.rstrip("/"), "advertise URL") + "/loaders/grubx64.efi"
        uefi = [f"set netX/next-server {_checked(server_ip, 'server address')}",
                f"chain --autofree {grub} || exit 1"]
    if firmware == "bios":
        body = ["sanboot --no-describe --drive 0x80"]
    elif firmware == "uefi":
        body = uefi
    else:
        body = ["iseq ${platform} efi || sanboot --no-describe --drive 0x80", *uefi]
    return "\n".join(head + body) + "\n"


def no_boot_script(reason: str) -> str:
    """For machines bootserver will not boot: say why on the console and hand back to the firmware."""
    return "#!ipxe\n" + f"echo bootserver: not booting this machine: {_checked_line(reason)}\nexit\n"


def _checked_line(text: str) -> str:
    return "".join(c if c.isprintable() and c not in "$\\" else "?" for c in text)


def script_for(decision: BootDecision, request: BootRequest, base: str, token: str | None,
               server_ip: str | None = None) -> str:
    """The /ipxe script for a decision: the one place a decision becomes iPXE (HTTP and `bootserver
    render` both call it). Raises ArgError or ValueError when the profile cannot be rendered."""
    if decision.action == "ignore" or decision.match is None:
        return no_boot_script(decision.reason)
    name = decision.match.name
    if decision.action == "local-disk":
        return local_disk_script(name, request.firmware, base, server_ip)
    context = template_context(decision.match, request, base, token)
    return boot_script(name, decision.match.profile, context, base)
