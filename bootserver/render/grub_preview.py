"""`bootserver render grub --mac …`: the grub.cfg the server would serve (TFTP grub/grub.cfg and
GET /grub.cfg), from the same decision and the same renderer, without a server."""

from __future__ import annotations

from urllib.parse import urlsplit

from bootserver.boot.lifecycle import BootDecision
from bootserver.boot.request import BootRequest
from bootserver.render.context import template_context
from bootserver.render.grub import boot_config, local_disk_config, no_boot_config


def preview_grub(decision: BootDecision, request: BootRequest, base: str, token: str) -> tuple[str, int]:
    if decision.action == "ignore":
        return no_boot_config(decision.reason), 0
    if decision.action == "local-disk":
        return local_disk_config(decision.match.name), 0
    server_ip = urlsplit(base).hostname or ""
    try:
        context = template_context(decision.match, request, base, token)
        return boot_config(decision.match.name, decision.match.profile, context, server_ip), 0
    except ValueError as exc:  # ArgError, GrubRenderError (say, a base URL with a host name)
        return f"bootserver render: {exc}", 1
