"""The template context shared by kernel arguments and Butane templates."""

from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import quote

from bootserver.boot.request import BootRequest
from bootserver.boot.updates import policy_for
from bootserver.catalog.mac import mac_spellings
from bootserver.boot.matching import Match


def plain(value: Any) -> Any:
    """Frozen mappings/tuples back to dicts/lists, for templates and JSON."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def machine_urls(base: str, mac: str, token: str | None) -> dict[str, str]:
    """The machine's URLs. Without a token (the store could not be read) there is no events URL,
    so a template that needs one fails to render instead of handing out a URL that cannot work."""
    base = base.rstrip("/")
    urls = {
        "base": base,
        "ipxe": f"{base}/ipxe?mac={mac}",
        "ignition": f"{base}/ignition?mac={mac}",
        "metadata": f"{base}/metadata?mac={mac}",
        "assets": f"{base}/assets",
        "update": f"{base}/v1/update/",
    }
    if token:
        urls["events"] = f"{base}/api/v1/machines/{mac}/events?token={quote(token, safe='')}"
    return urls


def update_settings(match: Match, urls: dict[str, str]) -> dict[str, Any]:
    """What the installed system's /etc/flatcar/update.conf says when its policy enables updates:
    SERVER (bootserver's Omaha endpoint) and GROUP (the track its rollout follows)."""
    found = policy_for(match)
    if found is None or not found[1].enabled:
        return {"enabled": False, "server": urls["update"], "group": None}
    return {"enabled": True, "server": urls["update"], "group": found[1].track}


def asset_url(base: str, ref: str) -> str:
    """A profile's kernel/initrd reference as a URL: absolute URLs as they are, else under /assets."""
    if ref.startswith(("http://", "https://")):
        return ref
    return f"{base.rstrip('/')}/assets/{quote(ref)}"


def template_context(match: Match, request: BootRequest, base: str, token: str | None) -> dict[str, Any]:
    metadata = plain(match.metadata)
    urls = machine_urls(base, request.mac, token)
    return {
        "machine": {"name": match.name, **mac_spellings(request.mac), "metadata": metadata},
        "metadata": metadata,
        "profile": {"name": match.profile.name},
        "request": {"arch": request.arch, "uuid": request.uuid, "client_ip": request.client_ip,
                    "labels": dict(request.labels)},
        "urls": urls,
        "updates": update_settings(match, urls),
    }
