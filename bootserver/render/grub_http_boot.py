"""The early config embedded in bootserver's arm64 GRUB for UEFI HTTP Boot (arch 19).

Started by the firmware's HTTP Boot, Debian 12's GRUB takes the boot NIC's address from the
firmware (measured on AAVMF: `efinet0` with the lease, as `net_default_interface`) but has no
server to load a config from, so Debian's own image stops at its prompt. This config names the
server (built in) and loads the machine's own config from it over HTTP, naming the machine by the
boot NIC's MAC; that config fetches kernel and initrds over HTTP too (`assets=http`), so the path
needs no TFTP. Where the firmware left GRUB no address, `net_dhcp` asks for one on every NIC.

The server address is written into the image, so it is checked (render.grub.http_server): an IPv4
address or a DNS name and a port, nothing GRUB's script parser could read as more than one word.
"""

from __future__ import annotations

from bootserver.render.grub import http_server


def early_config(host: str, port: int) -> str:
    """An address (the firmware's, else DHCP), then the per-machine config over HTTP; back to the
    firmware if that fails."""
    server = http_server(host, port)
    return "\n".join([
        f"echo 'bootserver: GRUB for UEFI HTTP Boot, server http://{server}'",
        'if [ -z "$net_default_ip" ]; then net_dhcp; elif [ "$net_default_ip" = "0.0.0.0" ]; then net_dhcp; fi',
        'set bootserver_mac="$net_default_mac"',
        'if [ -z "$bootserver_mac" ]; then set bootserver_mac="$net_efinet0_dhcp_mac"; fi',
        f"configfile \"(http,{server})/grub.cfg?arch=arm64-efi&assets=http&mac=${{bootserver_mac}}\"",
        f"echo 'bootserver: no boot config from http://{server}'",
        "sleep 3",
        "exit 1",
    ]) + "\n"
