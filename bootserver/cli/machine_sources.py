"""Where `bootserver machines` gets its answers: the configured store through a Runtime (the same
intent methods the admin API calls), or a running server's admin API over HTTP (--server)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from bootserver.catalog.loader import CatalogError, load_catalog
from bootserver.catalog.model import Catalog
from bootserver.config import Settings
from bootserver.http.views import as_last_asked, decision_view, event_view, machine_view
from bootserver.runtime import NotAdopted, Runtime
from bootserver.state import UnknownMachine, connect_store


class CommandError(Exception):
    """Ends the command with a message and exit status 1."""


class StoreSource:
    """The configured state store, opened for this one command, behind a Runtime."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._catalog: Catalog | None = None
        self._runtime: Runtime | None = None

    async def __aenter__(self):
        url = self._settings.state
        options = {"start_timeout": 10.0} if url.startswith(("postgres://", "postgresql://")) else {}
        store = await connect_store(url, self._settings.event_retention, **options)
        try:
            self._catalog = load_catalog(self._settings.catalog, self._settings.assets)
        except (CatalogError, OSError):
            self._catalog = None  # machines are still listed; only next-boot answers need the catalog
        self._runtime = Runtime(self._settings, self._catalog or Catalog(root=self._settings.catalog), store)
        return self

    async def __aexit__(self, *exc) -> None:
        await self._runtime.close()

    def profiles(self) -> set[str] | None:
        """Profile names in the configured catalog, or None when it cannot be read."""
        return set(self._catalog.profiles) if self._catalog else None

    async def machines(self, state: str | None) -> list[dict]:
        updates = await self._runtime.update_states()
        return [machine_view(m, updates.get(m.mac)) for m in await self._runtime.machines(state)]

    async def machine(self, mac: str) -> dict:
        record = await self._runtime.machine(mac)
        if record is None:
            raise CommandError(f"no machine {mac} in the state store")
        view = machine_view(record, (await self._runtime.update_states()).get(mac))
        if self._catalog is None:
            return view
        return {**view,
                "next_boot": decision_view(self._runtime.next_boot(record, as_last_asked(record)))}

    async def events(self, mac: str, limit: int, before: int | None) -> dict:
        try:
            events = await self._runtime.timeline(mac, limit, before)
        except UnknownMachine:
            raise CommandError(f"no machine {mac} in the state store") from None
        return {"mac": mac, "events": [event_view(e) for e in events],
                "before": events[0].seq if len(events) == limit else None}

    async def reinstall(self, mac: str) -> dict:
        try:
            previous, record = await self._runtime.reinstall(mac, "cli")
        except UnknownMachine:
            raise CommandError(f"no machine {mac} in the state store") from None
        except NotAdopted as exc:
            raise CommandError(str(exc)) from None
        return {**machine_view(record), "previous": previous}

    async def forget(self, mac: str) -> None:
        try:
            await self._runtime.forget(mac)
        except UnknownMachine:
            raise CommandError(f"no machine {mac} in the state store") from None


class ApiSource:
    """A running server's admin API."""

    def __init__(self, server: str, token: str | None) -> None:
        self._base = server.rstrip("/")
        self._token = token

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        pass

    def profiles(self) -> None:
        return None  # the admin API does not serve the catalog

    async def _call(self, method: str, path: str, query: dict[str, Any] | None = None) -> Any:
        url = self._base + path
        query = {k: v for k, v in (query or {}).items() if v is not None}
        if query:
            url += "?" + urllib.parse.urlencode(query)
        request = urllib.request.Request(url, method=method)
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        return await asyncio.get_running_loop().run_in_executor(None, fetch_json, request)

    async def machines(self, state: str | None) -> list[dict]:
        return (await self._call("GET", "/api/v1/machines", {"state": state}))["machines"]

    async def machine(self, mac: str) -> dict:
        return await self._call("GET", f"/api/v1/machines/{mac}")

    async def events(self, mac: str, limit: int, before: int | None) -> dict:
        return await self._call("GET", f"/api/v1/machines/{mac}/events", {"limit": limit, "before": before})

    async def reinstall(self, mac: str) -> dict:
        return await self._call("POST", f"/api/v1/machines/{mac}/reinstall")

    async def forget(self, mac: str) -> None:
        await self._call("DELETE", f"/api/v1/machines/{mac}")


def fetch_json(request: urllib.request.Request) -> Any:
    """GET/POST an admin API URL; its JSON answer, or CommandError saying what went wrong."""
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace").strip()
        if exc.code == 401:
            text += " (give --token, or set admin_token / BOOTSERVER_ADMIN_TOKEN)"
        raise CommandError(f"{request.full_url}: {exc.code} {text}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CommandError(f"cannot reach {request.full_url}: {reason}") from None
    except ValueError:
        raise CommandError(f"{request.full_url}: the answer is not JSON (is this a bootserver?)") from None
