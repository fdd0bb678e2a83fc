"""Machines the server knows: list, inspect, follow a timeline, reinstall, forget, adopt.

Works on the configured state store directly (the `state` setting; safe beside a running server),
or on a running server's admin API with --server URL (token: --token, else the admin_token
setting, e.g. BOOTSERVER_ADMIN_TOKEN). --json prints what scripts should parse.

  bootserver machines list [--in STATE]
  bootserver machines show MAC|NAME
  bootserver machines timeline MAC|NAME [--limit N] [--before SEQ]
  bootserver machines reinstall MAC|NAME   the next boot installs the machine again
  bootserver machines forget MAC|NAME      drop the machine and its timeline
  bootserver machines discovered           unknown MACs that PXE-booted
  bootserver machines adopt MAC --profile P [--name NAME]   print a Machine document for the catalog
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import yaml

from bootserver.boot.machine import STATES
from bootserver.catalog.mac import MacError, normalize_mac
from bootserver.cli.machine_sources import ApiSource, CommandError, StoreSource
from bootserver.cli.tables import discovered_table, machine_table, show_text, timeline_table
from bootserver.config import Settings
from bootserver.state import StoreError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    common.add_argument("--server", metavar="URL", help="ask a running server's admin API instead of the store (default: read the store directly)")
    common.add_argument("--token", metavar="TOKEN", help="admin token for --server (default: admin_token setting)")
    for flag, meta, text in (("--config", "FILE", "settings file (YAML)"), ("--catalog", "DIR", "catalog directory"),
                             ("--assets", "DIR", "assets folder"),
                             ("--state", "URL", "state store: sqlite:///PATH, postgresql://… or memory://")):
        # the settings options also work after the action; SUPPRESS keeps one given before it
        common.add_argument(flag, metavar=meta, default=argparse.SUPPRESS, help=text)
    sub = parser.add_subparsers(dest="machines_command", metavar="ACTION", required=True)
    p = sub.add_parser("list", parents=[common], help="all machines with their state")
    p.add_argument("--in", dest="only", choices=STATES, help="only machines in this lifecycle state (default: every state)")
    sub.add_parser("show", parents=[common], help="one machine's record").add_argument("mac", metavar="MAC|NAME")
    p = sub.add_parser("timeline", parents=[common], help="what a machine got, and when")
    p.add_argument("mac", metavar="MAC|NAME")
    p.add_argument("--limit", type=int, default=50, help="newest events to show (default 50, at most 1000)")
    p.add_argument("--before", type=int, metavar="SEQ", help="only events older than SEQ (paging; default: the newest)")
    sub.add_parser("reinstall", parents=[common], help="install the machine again on its next boot").add_argument(
        "mac", metavar="MAC|NAME")
    sub.add_parser("forget", parents=[common], help="drop a machine and its timeline").add_argument("mac", metavar="MAC|NAME")
    sub.add_parser("discovered", parents=[common], help="unknown MACs seen booting")
    p = sub.add_parser("adopt", parents=[common], help="print a Machine document for a discovered MAC")
    p.add_argument("mac")
    p.add_argument("--profile", required=True, help="profile the machine should boot")
    p.add_argument("--name", help="machine name (default: machine-<mac digits>)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        source = ApiSource(args.server, args.token or settings.admin_token) if args.server else StoreSource(settings)
        out = asyncio.run(_dispatch(args, source))
    except (CommandError, StoreError, MacError) as exc:
        print(f"bootserver machines: {exc}", file=sys.stderr)
        return 1
    if out:
        print(out)
    return 0


async def _which(given: str, source) -> str:
    """The MAC of `given`: a MAC in any spelling, else the name of a machine the store knows."""
    try:
        return normalize_mac(given)
    except MacError:
        pass
    named = [m["mac"] for m in await source.machines(None) if m.get("name") == given]
    if not named:
        raise CommandError(f"{given!r} is neither a MAC address nor the name of a machine that has booted")
    if len(named) > 1:
        raise CommandError(f"{len(named)} machines are named {given!r}: {', '.join(named)}; give the MAC")
    return named[0]


async def _dispatch(args: argparse.Namespace, source) -> str:
    action = args.machines_command
    async with source:
        mac = await _which(args.mac, source) if getattr(args, "mac", None) else None
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


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False)


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
