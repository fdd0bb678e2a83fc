"""The early config embedded in bootserver's arm64 GRUB for UEFI HTTP Boot (arch 19).

A GRUB started by the firmware's HTTP Boot finds no network configuration (GRUB 2.06 reads the
PXE base code's DHCP packet, which HTTP Boot never fills) and no prefix, so it would stop at its
prompt. This config brings the network up itself (`net_dhcp`) and loads the machine's own
config from bootserver over HTTP, naming itself by the MAC GRUB configured.

The server address is written into the image, so it is checked here: an IPv4 address or a DNS
name and a port, nothing GRUB's script parser could read as more than one word.
"""

from __future__ import annotations

import ipaddress
import re

from bootserver.render.grub import GrubRenderError

_DNS_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def http_server(host: str, port: int) -> str:
    """`HOST:PORT` as GRUB's http device names it; GrubRenderError for anything else."""
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise GrubRenderError(f"HTTP port {port!r} is not a port number (1-65535)")
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        if not _DNS_NAME.match(host) or host.replace(".", "").isdigit():
            raise GrubRenderError(f"HTTP host {host!r} is neither an IPv4 address nor a DNS name, so it is "
                                  "not written into the arm64 HTTP Boot GRUB") from None
    return f"{host}:{port}"


def early_config(host: str, port: int) -> str:
    """Network up on every NIC, then the per-machine config over HTTP; back to the firmware if either fails."""
    server = http_server(host, port)
    return "\n".join([
        f"echo 'bootserver: GRUB for UEFI HTTP Boot, server http://{server}'",
        "net_dhcp",
        f"configfile \"(http,{server})/grub.cfg?arch=arm64-efi&mac=${{net_default_mac}}\"",
        f"echo 'bootserver: no boot config from http://{server}'",
        "sleep 3",
        "exit 1",
    ]) + "\n"
