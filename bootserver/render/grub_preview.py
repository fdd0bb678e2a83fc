"""`bootserver render grub --mac …`: the grub.cfg the server would serve (TFTP grub/grub.cfg and
GET /grub.cfg), from the same decision and the same renderer, without a server."""

from __future__ import annotations

from urllib.parse import urlsplit

from bootserver.boot.lifecycle import BootDecision
from bootserver.boot.request import BootRequest
from bootserver.render.grub import config_for


def preview_grub(decision: BootDecision, request: BootRequest, base: str, token: str) -> tuple[str, int]:
    """GRUB fetches from the server's IPv4 address: the host of `base`."""
    try:
        return config_for(decision, request, base, token, urlsplit(base).hostname or ""), 0
    except ValueError as exc:  # ArgError, GrubRenderError (say, a base URL with a host name)
        return f"bootserver render: {exc}", 1
