"""The early config embedded in bootserver's arm64 GRUB for UEFI HTTP Boot (arch 19).

A GRUB started by the firmware's HTTP Boot finds no network configuration (GRUB 2.06 reads the
PXE base code's DHCP packet, which HTTP Boot never fills) and no prefix, so it would stop at its
prompt. This config brings the network up itself (`net_dhcp`) and loads the machine's own
config from bootserver over HTTP, naming itself by the MAC GRUB configured; that config then
fetches kernel and initrds over HTTP too (`assets=http`), so the path needs no TFTP at all.

The server address is written into the image, so it is checked (render.grub.http_server): an IPv4
address or a DNS name and a port, nothing GRUB's script parser could read as more than one word.
"""

from __future__ import annotations

from bootserver.render.grub import http_server

def early_config(host: str, port: int) -> str:
    """Network up on every NIC, then the per-machine config over HTTP; back to the firmware if either fails."""
    server = http_server(host, port)
    return "\n".join([
        f"echo 'bootserver: GRUB for UEFI HTTP Boot, server http://{server}'",
        "net_dhcp",
        f"configfile \"(http,{server})/grub.cfg?arch=arm64-efi&assets=http&mac=${{net_default_mac}}\"",
        f"echo 'bootserver: no boot config from http://{server}'",
        "sleep 3",
        "exit 1",
    ]) + "\n"
