"""ProxyDHCP: packet codec (packet.py), reply bytes (reply.py) and the Twisted proxy on ports 67 and 4011 (proxy.py)."""

from bootserver.dhcp.proxy import ProxyDHCP

__all__ = ["ProxyDHCP"]
