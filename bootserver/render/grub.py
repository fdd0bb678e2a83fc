"""GRUB configs for machines that boot through shim and GRUB (`boot.loader: grub`) and for the
UEFI local-disk answer. The same decision and the same checks as the iPXE scripts (render.ipxe):
every interpolated value passed render.args' checks, and each word is single-quoted on top, so
nothing a catalog says can split a GRUB command or expand inside it.

Debian's signed netboot GRUB has TFTP and no HTTP module (and under Secure Boot it loads no
unsigned modules), so kernel and initrds come from bootserver's TFTP server, which serves the
assets folder under `assets/`: `(tftp,SERVER)/assets/<ref>`. bootserver's own arm64 HTTP Boot GRUB
has HTTP and asks for `(http,HOST:PORT)/assets/<ref>` instead. Profiles whose kernel is an
absolute URL cannot boot through GRUB.
"""

from __future__ import annotations

import ipaddress
import re

from bootserver.boot.lifecycle import BootDecision
from bootserver.boot.request import BootRequest
from bootserver.catalog.model import Profile
from bootserver.render.args import UNSAFE, render_args
from bootserver.render.context import template_context

ASSETS_ON_TFTP = "assets/"  # the TFTP name prefix under which the assets folder is served

#: EFI loaders GRUB tries on the local disks, in order: the removable-media path every installer
#: can write (and Flatcar uses), then the usual per-distribution shim locations.
DISK_LOADERS = ("/EFI/BOOT/BOOTX64.EFI", "/EFI/debian/shimx64.efi", "/EFI/ubuntu/shimx64.efi",
                "/EFI/fedora/shimx64.efi", "/EFI/redhat/shimx64.efi", "/EFI/centos/shimx64.efi")
#: the same on arm64 (GRUB says which it is in $grub_cpu, so one config serves both)
DISK_LOADERS_ARM64 = ("/EFI/BOOT/BOOTAA64.EFI", "/EFI/debian/shimaa64.efi", "/EFI/ubuntu/shimaa64.efi",
                      "/EFI/fedora/shimaa64.efi", "/EFI/redhat/shimaa64.efi", "/EFI/centos/shimaa64.efi")


class GrubRenderError(ValueError):
    pass


_DNS_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def http_server(host: str, port: int) -> str:
    """`HOST:PORT` as GRUB's http device names it (in a config, or built into the arm64 HTTP Boot
    GRUB); GrubRenderError for anything else."""
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise GrubRenderError(f"HTTP port {port!r} is not a port number (1-65535)")
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        if not _DNS_NAME.match(host) or host.replace(".", "").isdigit():
            raise GrubRenderError(f"HTTP host {host!r} is neither an IPv4 address nor a DNS name, so GRUB "
                                  "is not pointed at it") from None
    return f"{host}:{port}"


def _word(text: str, what: str) -> str:
    bad = UNSAFE.search(text)
    if bad:
        raise GrubRenderError(f"{what} {text!r} contains {bad.group()!r}, which is not allowed in a GRUB config")
    return f"'{text}'"


def grub_path(ref: str, server_ip: str, http: tuple[str, int] | None = None) -> str:
    """An asset reference as GRUB's name for it on bootserver's TFTP server, or on its HTTP server
    (`http`: host and port, for a GRUB that has HTTP)."""
    if ref.startswith(("http://", "https://")):
        raise GrubRenderError(f"{ref!r}: GRUB fetches assets from bootserver only (Debian's signed image over "
                              "TFTP), so the kernel and initrds must be assets")
    if http is not None:
        return f"(http,{http_server(*http)})/{ASSETS_ON_TFTP}{ref}"
    try:
        ipaddress.IPv4Address(server_ip)
    except ValueError:
        raise GrubRenderError(f"GRUB fetches from bootserver's IPv4 address, and {server_ip!r} is not one") from None
    return f"(tftp,{server_ip})/{ASSETS_ON_TFTP}{ref}"


def _echo(text: str) -> str:
    clean = "".join(c if c.isprintable() and c not in "'\\$" else "?" for c in text)
    return f"echo '{clean}'"


def boot_config(name: str, profile: Profile, context: dict, server_ip: str,
                http: tuple[str, int] | None = None) -> str:
    """Kernel (verified by shim under Secure Boot), initrds, the rendered args."""
    kernel = _word(grub_path(profile.boot.kernel, server_ip, http), "kernel path")
    initrds = [_word(grub_path(ref, server_ip, http), "initrd path") for ref in profile.boot.initrd]
    args = [_word(arg, "kernel argument") for arg in render_args(profile.boot.args, context)]
    lines = [_echo(f"bootserver: {name} boots profile {profile.name}"), " ".join(["linux", kernel, *args])]
    if initrds:
        lines.append(" ".join(["initrd", *initrds]))
    lines.append("boot")
    return "\n".join(lines) + "\n"


def local_disk_config(name: str) -> str:
    """Find an EFI loader on the local disks and start it; back to the firmware if there is none."""
    def try_loaders(loaders: tuple[str, ...]) -> list[str]:
        return [f"  for loader in {' '.join(loaders)}; do",
                "    if search --no-floppy --file --set=root $loader; then",
                "      echo \"bootserver: starting ($root)$loader\"",
                "      chainloader $loader",
                "      boot",
                "    fi",
                "  done"]

    return "\n".join([
        _echo(f"bootserver: {name} is installed, booting from local disk"),
        'if [ "$grub_cpu" = "arm64" ]; then',
        *try_loaders(DISK_LOADERS_ARM64),
        "else",
        *try_loaders(DISK_LOADERS),
        "fi",
        _echo("bootserver: no EFI boot loader found on any local disk"),
        "sleep 3",
        "exit 1",
    ]) + "\n"


def no_boot_config(reason: str) -> str:
    """For machines bootserver will not boot: say why, hand back to the firmware."""
    return _echo(f"bootserver: not booting this machine: {reason}") + "\nsleep 3\nexit 1\n"


def config_for(decision: BootDecision, request: BootRequest, base: str, token: str | None, server_ip: str,
               http: tuple[str, int] | None = None) -> str:
    """The GRUB config for a decision: the one place a decision becomes GRUB (TFTP, HTTP and
    `bootserver render grub` all call it); `http`: assets from this host and port over HTTP.
    Raises ArgError or GrubRenderError (ValueErrors)."""
    if decision.action == "ignore" or decision.match is None:
        return no_boot_config(decision.reason)
    if decision.action == "local-disk":
        return local_disk_config(decision.match.name)
    context = template_context(decision.match, request, base, token)
    return boot_config(decision.match.name, decision.match.profile, context, server_ip, http)
