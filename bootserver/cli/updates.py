"""Flatcar update rollouts: show them, pause and resume them, through a running server's admin API.

  bootserver updates status                  every rollout: what it follows, its target, its limits,
                                             machines updating; and every machine's OS version
  bootserver updates pause [ROLLOUT]         answer noupdate (all rollouts, or group/NAME, profile/NAME)
  bootserver updates resume [ROLLOUT]        offer updates again

--server URL (default: this host's HTTP port on loopback), --token (default: the admin_token
setting, e.g. BOOTSERVER_ADMIN_TOKEN). --json prints what scripts should parse.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
import urllib.request
from typing import Any

from bootserver.config import Settings, SettingsError, split_hostport
from bootserver.cli.machine_sources import CommandError, fetch_json
from bootserver.cli.tables import table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    common.add_argument("--server", metavar="URL", help="the running server (default: http://127.0.0.1:<http port>)")
    common.add_argument("--token", metavar="TOKEN", help="admin token (default: the admin_token setting)")
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="settings file (YAML)")
    sub = parser.add_subparsers(dest="updates_command", metavar="ACTION", required=True)
    sub.add_parser("status", parents=[common], help="rollouts, their targets and limits, and machines' versions")
    for action, text in (("pause", "stop offering updates"), ("resume", "offer updates again")):
        p = sub.add_parser(action, parents=[common], help=text)
        p.add_argument("rollout", nargs="?", help="group/NAME or profile/NAME (default: every rollout)")


def server_url(args: argparse.Namespace, settings: Settings) -> str:
    if args.server:
        return args.server.rstrip("/")
    host, port = split_hostport(settings.http)
    host = "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        base = server_url(args, settings)
        action = args.updates_command
        path = "/api/v1/updates" + ("" if action == "status" else f"/{action}")
        if action != "status" and args.rollout:
            path += "?" + urllib.parse.urlencode({"rollout": args.rollout})
        request = urllib.request.Request(base + path, method="GET" if action == "status" else "POST")
        token = args.token or settings.admin_token
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        status = fetch_json(request)
    except (CommandError, SettingsError) as exc:
        print(f"bootserver updates: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(status, indent=2) if args.json else status_text(status))
    return 0


def status_text(status: dict[str, Any]) -> str:
    lines = ["updates: PAUSED for every rollout" if status["paused_all"] else "updates: on"]
    if status["rollouts"]:
        lines.append(table(["ROLLOUT", "FOLLOWS", "TARGET", "STATE", "UPDATING", "LIMITS", "WINDOW", "MACHINES"], [
            [r["rollout"], r["follows"], r["target"] or "not mirrored",
             "paused" if r["paused"] else ("on" if r["enabled"] else "off"), r["updating"], _limits(r),
             r["window"] or "any time", ", ".join(f"{k} {v}" for k, v in sorted(r["states"].items())) or "-"]
            for r in status["rollouts"]]))
    else:
        lines.append("no Profile or Group in the catalog has an updates block")
    if status["machines"]:
        lines.append("")
        lines.append(table(["MACHINE-ID", "MAC", "ADDRESS", "VERSION", "UPDATE", "TARGET", "LAST CHECK (UTC)"], [
            [m["machine_id"][:12], m["mac"] or "unknown", m["client_ip"], m["version"],
             m["status"] + (f" ({m['error_code']})" if m["error_code"] is not None else ""), m["target"],
             (m["last_check"] or "-").replace("T", " ").rstrip("Z")] for m in status["machines"]]))
    return "\n".join(lines)


def _limits(rollout: dict[str, Any]) -> str:
    parts = []
    if rollout["max_updating"]:
        parts.append(f"{rollout['max_updating']} at once")
    if rollout["max_per_hour"]:
        parts.append(f"{rollout['max_per_hour']}/hour")
    return ", ".join(parts) or "none"
