"""The GRUB config a machine gets now: one intent over Runtime, shared by TFTP (`grub/grub.cfg`,
where Debian's netboot GRUB looks) and HTTP (`/grub.cfg?mac=`). Same decision as `/ipxe`."""

from __future__ import annotations

import logging

from bootserver.boot.request import BootRequest
from bootserver.render.context import template_context
from bootserver.render.grub import boot_config, local_disk_config, no_boot_config

log = logging.getLogger("bootserver.boot")


async def grub_config(runtime, boot: BootRequest, base: str, server_ip: str) -> tuple[str, str]:
    """(config text, action); a profile that cannot be rendered is logged, recorded and answered
    with a config that says so and returns to the firmware."""
    decision = await runtime.decide(boot)
    name = decision.match.name if decision.match else "unknown"
    if decision.action == "ignore":
        text = no_boot_config(decision.reason)
    elif decision.action == "local-disk":
        text = local_disk_config(name)
    else:
        context = template_context(decision.match, boot, base, decision.record.token)
        try:
            text = boot_config(name, decision.match.profile, context, server_ip)
        except ValueError as exc:  # render.args.ArgError, render.grub.GrubRenderError
            log.error("%s (%s): cannot render GRUB config for profile %s: %s", name, boot.mac,
                      decision.match.profile.name, exc)
            await runtime.observe(boot, "render.failed", {"what": "grub", "error": str(exc)})
            return no_boot_config(f"cannot render the boot config: {exc}"), "failed"
    log.info("%s (%s) gets GRUB %s: %s", name, boot.mac, decision.action, decision.reason)
    await runtime.observe(boot, "grub.config", {"action": decision.action, "reason": decision.reason,
                                                "profile": decision.match.profile.name if decision.match else None})
    return text, decision.action
