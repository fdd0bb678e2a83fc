"""Machines the server knows: list, inspect, follow a timeline, reinstall, forget, adopt.

Works on the configured state store directly (the `state` setting; safe beside a running server),
or on a running server's admin API with --server URL (token: --token, else the admin_token
setting, e.g. BOOTSERVER_ADMIN_TOKEN). --json prints what scripts should parse.

  bootserver machines list [--in STATE]
  bootserver machines show MAC
  bootserver machines timeline MAC [--limit N] [--before SEQ]
  bootserver machines reinstall MAC        the next boot installs the machine again
  bootserver machines forget MAC           drop the machine and its timeline
  bootserver machines discovered           unknown MACs that PXE-booted
  bootserver machines adopt MAC --profile P [--name NAME]   print a Machine document for the catalog
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import yaml

from bootserver.boot.lifecycle import STATES
from bootserver.catalog.loader import CatalogError, load_catalog
from bootserver.catalog.mac import MacError, normalize_mac
from bootserver.config import Settings
from bootserver.state import StoreError, UnknownMachine, connect_store
from bootserver.state.views import (NotAdopted, event_view, machine_view, machine_views, next_boot, reinstall,
                                    update_of)


class CommandError(Exception):
    """Ends the command with a message and exit status 1."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    common.add_argument("--server", metavar="URL", help="ask a running server's admin API instead of the store")
    common.add_argument("--token", metavar="TOKEN", help="admin token for --server (default: admin_token setting)")
    for flag, meta, text in (("--config", "FILE", "settings file (YAML)"), ("--catalog", "DIR", "catalog directory"),
                             ("--assets", "DIR", "assets folder"),
                             ("--state", "URL", "state store: sqlite:///PATH, postgresql://… or memory://")):
        # the settings options also work after the action; SUPPRESS keeps one given before it
        common.add_argument(flag, metavar=meta, default=argparse.SUPPRESS, help=text)
    sub = parser.add_subparsers(dest="machines_command", metavar="ACTION", required=True)
    p = sub.add_parser("list", parents=[common], help="all machines with their state")
    p.add_argument("--in", dest="only", choices=STATES, help="only machines in this lifecycle state")
    sub.add_parser("show", parents=[common], help="one machine's record").add_argument("mac")
    p = sub.add_parser("timeline", parents=[common], help="what a machine got, and when")
    p.add_argument("mac")
    p.add_argument("--limit", type=int, default=50, help="newest events to show (default 50, at most 1000)")
    p.add_argument("--before", type=int, metavar="SEQ", help="only events older than SEQ (paging)")
    sub.add_parser("reinstall", parents=[common], help="install the machine again on its next boot").add_argument("mac")
    sub.add_parser("forget", parents=[common], help="drop a machine and its timeline").add_argument("mac")
    sub.add_parser("discovered", parents=[common], help="unknown MACs seen booting")
    p = sub.add_parser("adopt", parents=[common], help="print a Machine document for a discovered MAC")
    p.add_argument("mac")
    p.add_argument("--profile", required=True, help="profile the machine should boot")
    p.add_argument("--name", help="machine name (default: machine-<mac digits>)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        mac = normalize_mac(args.mac) if getattr(args, "mac", None) else None
        source = ApiSource(args.server, args.token or settings.admin_token) if args.server else StoreSource(settings)
        out = asyncio.run(_dispatch(args, mac, source))
    except (CommandError, StoreError, MacError) as exc:
        print(f"bootserver machines: {exc}", file=sys.stderr)
        return 1
    if out:
        print(out)
    return 0


async def _dispatch(args: argparse.Namespace, mac: str | None, source) -> str:
    action = args.machines_command
    async with source:
        if action == "list":
            machines = await source.machines(args.only)
            return _dump({"machines": machines}) if args.json else machine_table(machines)
        if action == "discovered":
            machines = await source.machines("discovered")
            return _dump({"machines": machines}) if args.json else discovered_table(machines)
        if action == "show":
            machine = await source.machine(mac)
            return _dump(machine) if args.json else show_text(machine)
        if action == "timeline":
            if not 1 <= args.limit <= 1000:
                raise CommandError("--limit must be from 1 to 1000")
            page = await source.events(mac, args.limit, args.before)
            return _dump(page) if args.json else timeline_table(page)
        if action == "reinstall":
            result = await source.reinstall(mac)
            if args.json:
                return _dump(result)
            return (f"{result['name'] or mac} ({mac}): {result['previous']} -> {result['state']}; "
                    "its next boot installs it again")
        if action == "forget":
            await source.forget(mac)
            return _dump({"mac": mac, "forgotten": True}) if args.json else f"forgot {mac} and its timeline"
        if action == "adopt":
            known = source.profiles()
            if known is not None and args.profile not in known:
                raise CommandError(f"profile {args.profile!r} is not in the catalog; it has: "
                                   f"{', '.join(sorted(known)) or 'no profiles'}")
            try:
                machine = await source.machine(mac)
            except CommandError:
                machine = None
                print(f"bootserver machines: note: {mac} has not been seen booting", file=sys.stderr)
            document = adopt_document(mac, args.profile, args.name, machine)
            return _dump(document) if args.json else adopt_yaml(document, machine)
    raise CommandError(f"unknown action {action!r}")


# -- where the answers come from ------------------------------------------------------------------

class StoreSource:
    """The configured state store, opened for this one command."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._store = None

    async def __aenter__(self):
        url = self._settings.state
        options = {"start_timeout": 10.0} if url.startswith(("postgres://", "postgresql://")) else {}
        self._store = await connect_store(url, self._settings.event_retention, **options)
        return self

    async def __aexit__(self, *exc) -> None:
        await self._store.close()

    def _catalog(self):
        try:
            return load_catalog(self._settings.catalog, self._settings.assets)
        except (CatalogError, OSError):
            return None

    def profiles(self) -> set[str] | None:
        """Profile names in the configured catalog, or None when it cannot be read."""
        catalog = self._catalog()
        return set(catalog.profiles) if catalog else None

    async def machines(self, state: str | None) -> list[dict]:
        return await machine_views(self._store, state)

    async def machine(self, mac: str) -> dict:
        record = await self._store.get(mac)
        if record is None:
            raise CommandError(f"no machine {mac} in the state store")
        view = machine_view(record, await update_of(self._store, mac))
        catalog = self._catalog()
        if catalog is None:
            return view
        return {**view, "next_boot": next_boot(record, catalog, self._settings)}

    async def events(self, mac: str, limit: int, before: int | None) -> dict:
        events = await self._store.events(mac, limit, before)
        if not events and await self._store.get(mac) is None:
            raise CommandError(f"no machine {mac} in the state store")
        return {"mac": mac, "events": [event_view(e) for e in events],
                "before": events[0].seq if len(events) == limit else None}

    async def reinstall(self, mac: str) -> dict:
        try:
            previous, record = await reinstall(self._store, mac, "cli")
        except UnknownMachine:
            raise CommandError(f"no machine {mac} in the state store") from None
        except NotAdopted as exc:
            raise CommandError(str(exc)) from None
        return {**machine_view(record), "previous": previous}

    async def forget(self, mac: str) -> None:
        if not await self._store.forget(mac):
            raise CommandError(f"no machine {mac} in the state store")


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
        return await asyncio.get_running_loop().run_in_executor(None, _fetch, request)

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


def _fetch(request: urllib.request.Request) -> Any:
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


# -- output -----------------------------------------------------------------------------------------

def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False)


def _short(value: str | None) -> str:
    """An ISO time without the date's T and the milliseconds, for tables."""
    return value[:19].replace("T", " ") if value else "-"


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def machine_table(machines: list[dict]) -> str:
    if not machines:
        return "no machines yet"
    return table(["MAC", "NAME", "PROFILE", "STATE", "ARCH", "OS", "UPDATE", "LAST SEEN (UTC)"],
                 [[m["mac"], m["name"], m["profile"], m["state"], m["arch"], m.get("os_version"), _update(m),
                   _short(m["last_seen"])] for m in machines])


def _update(machine: dict) -> str | None:
    """The update state, with the version it is heading to while an update is under way."""
    state, target = machine.get("update"), machine.get("update_target")
    if state in ("offered", "downloading", "downloaded", "applied") and target:
        return f"{state} -> {target}"
    return state


def discovered_table(machines: list[dict]) -> str:
    if not machines:
        return "no unknown machines have booted"
    return table(["MAC", "ARCH", "VENDOR", "UUID", "INTERFACE", "FIRST SEEN (UTC)", "LAST SEEN (UTC)"],
                 [[m["mac"], m["arch"], m["vendor"], m["uuid"], m["interface"] or m["client_ip"],
                   _short(m["first_seen"]), _short(m["last_seen"])] for m in machines])


def show_text(machine: dict) -> str:
    fields = {k: v for k, v in machine.items() if k != "next_boot"}
    nxt = machine.get("next_boot")
    if nxt:
        fields["next boot"] = f"{nxt['action']}: {nxt['reason']}"
    width = max(len(k) for k in fields)
    return "\n".join(f"{k.replace('_', ' '):<{width}}  {'-' if v is None else v}" for k, v in fields.items())


def timeline_table(page: dict) -> str:
    events = page["events"]
    if not events:
        return f"no events for {page['mac']}"
    text = table(["SEQ", "TIME (UTC)", "KIND", "SOURCE", "DETAIL"],
                 [[e["seq"], e["time"].replace("T", " ").rstrip("Z"), e["kind"], e["source"],
                   " ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in e["detail"].items())]
                  for e in events])
    if page.get("before"):
        text += f"\n(older events: --before {page['before']})"
    return text


def adopt_document(mac: str, profile: str, name: str | None, machine: dict | None) -> dict:
    return {"apiVersion": "bootserver/v1", "kind": "Machine",
            "metadata": {"name": name or (machine or {}).get("name") or "machine-" + mac.replace(":", "")},
            "spec": {"mac": mac, "profile": profile}}


def adopt_yaml(document: dict, machine: dict | None) -> str:
    notes = []
    if machine:
        seen = {k: machine.get(k) for k in ("arch", "vendor", "uuid", "interface", "client_ip", "first_seen",
                                            "last_seen") if machine.get(k)}
        notes = [f"# {k.replace('_', ' ')}: {v}" for k, v in seen.items()]
    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
    return "\n".join(["---", *notes, body.rstrip()])
