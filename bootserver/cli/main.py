"""The `bootserver` command: parse, call, print. The work happens in the modules it calls."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from pathlib import Path

from bootserver import __version__
from bootserver.config import FIELDS, Settings, SettingsError, load_settings, show

MAIN_HELP = """\
bootserver answers network-booting machines: a proxyDHCP beside your ordinary DHCP server,
TFTP for the first-stage iPXE binaries, and HTTP for iPXE scripts, kernels, initramfs images
and rendered Ignition configs. Each machine is recognised by its MAC address and matched to a
YAML profile in the catalog (default ./profiles); once it reports "installed", it boots from
its own disk.
"""

MAIN_EPILOG = """\
examples:
  bootserver serve                          HTTP on :8080 with ./profiles, state in ./state
  bootserver serve --dhcp eth1              also proxyDHCP + TFTP on eth1
  bootserver validate profiles/             check a catalog; exit 1 with every error
  bootserver render ipxe --mac 52:54:00:a1:9c:ae
  bootserver config show                    effective settings and where each came from

settings:
  Every setting has a default. Layers, lowest first: defaults, the settings file (--config FILE,
  $BOOTSERVER_CONFIG, or ./bootserver.yaml), environment variables BOOTSERVER_<NAME> (for example
  BOOTSERVER_STATE=postgresql://...), then command-line flags.

docs: docs/ in the source tree (getting-started.md, catalog.md, ...).
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; every option's default in its help (from the option, or for the
    settings options from the settings' own defaults)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or not action.option_strings or action.required:
            return text
        default = action.default
        if default == [] and isinstance(action, argparse._AppendAction):
            return f"{text} (default: none)"
        if not (default is None or default is False or default == argparse.SUPPRESS or default in ([], "")):
            return f"{text} (default: {default})"
        name = action.dest.replace("-", "_")
        if name == "config":
            return f"{text} (default: $BOOTSERVER_CONFIG, else ./bootserver.yaml if present)"
        if name in FIELDS and name != "sources":
            default = FIELDS[name].default
            return f"{text} (default: {default if default not in (None, ()) else 'unset'})"
        return text


def _formatter(prog: str) -> argparse.HelpFormatter:
    return _HelpFormatter(prog, max_help_position=36)


def _global_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("settings")
    g.add_argument("--config", metavar="FILE", help="settings file (YAML); default ./bootserver.yaml if present")
    g.add_argument("--catalog", metavar="DIR", help="catalog directory of YAML profiles (default: profiles)")
    g.add_argument("--assets", metavar="DIR", help="assets folder served under /assets (default: assets)")
    g.add_argument("--state", metavar="URL",
                   help="state store: sqlite:///PATH (default sqlite:///state/bootserver.db), "
                        "postgresql://USER@HOST/DB, or memory://")


def _settings(args: argparse.Namespace, **extra: object) -> Settings:
    flags = {"catalog": getattr(args, "catalog", None), "assets": getattr(args, "assets", None),
             "state": getattr(args, "state", None), **extra}
    return load_settings(getattr(args, "config", None), flags)


# --------------------------------------------------------------------------- serve
def _add_serve(sub) -> None:
    p = sub.add_parser("serve", formatter_class=_formatter, help="run the boot server",
                       description="Run HTTP, and TFTP + proxyDHCP on the boot interfaces, on one event loop.\n\n"
                                   "With no --dhcp interfaces only HTTP starts (the log says why): machines\n"
                                   "can still chain to it from another DHCP/TFTP setup. The catalog is\n"
                                   "reloaded within 2 s of any edit, and on SIGHUP; a broken edit is logged\n"
                                   "and the last good catalog keeps being served. SIGTERM/SIGINT stop cleanly.",
                       epilog="examples:\n  bootserver serve --dhcp eth1 --advertise-url http://10.0.0.2:8080\n"
                              "  bootserver serve --state postgresql://bootserver@db/bootserver")
    _global_options(p)
    _serve_options(p)


def _serve_options(p: argparse.ArgumentParser) -> None:
    """The listener and logging flags (serve, and config show, which shows what serve would use)."""
    g = p.add_argument_group("listeners")
    g.add_argument("--http", metavar="HOST:PORT", help="HTTP listen address (default 0.0.0.0:8080)")
    g.add_argument("--tftp", metavar="HOST:PORT|off",
                   help="TFTP listen address (default: 0.0.0.0:69, every interface, when --dhcp interfaces "
                        "are set; otherwise off)")
    g.add_argument("--tftp-root", metavar="DIR", action="append",
                   help="extra folder served over TFTP beside the iPXE binaries (repeatable; default: none)")
    g.add_argument("--https", metavar="HOST:PORT",
                   help="also serve HTTPS here (admin API, board), with --tls-cert and --tls-key; firmware keeps "
                        "HTTP (default: no HTTPS)")
    g.add_argument("--tls-cert", metavar="FILE", help="PEM certificate chain for --https (default: none)")
    g.add_argument("--tls-key", metavar="FILE", help="PEM private key for --https (default: none)")
    g.add_argument("--dhcp", metavar="IFACE[,IFACE...]|off",
                   help="interfaces for proxyDHCP, ports 67 and 4011 (default: none, proxyDHCP off)")
    g.add_argument("--http-workers", metavar="N|auto",
                   help="processes serving HTTP on the same port (SO_REUSEPORT), for a big rack on several cores: "
                        "this one (also proxyDHCP and TFTP) and N - 1 workers; auto = one per core. They share state "
                        "through the store, so not with memory://; about 60 MB each (default 1)")
    g.add_argument("--advertise-url", metavar="URL",
                   help="base URL machines use to reach HTTP (default: the boot interface's address)")
    g.add_argument("--floating-address", metavar="IP",
                   help="keepalived's floating address: every replica names it as next-server and URL host")
    g = p.add_argument_group("logging")
    g.add_argument("--log-format", choices=("human", "json"), help="log line format (default human)")
    g.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="(default info)")


def _serve_flags(args: argparse.Namespace) -> dict:
    return {"http": args.http, "https": args.https, "tls_cert": args.tls_cert, "tls_key": args.tls_key,
            "http_workers": args.http_workers, "tftp": args.tftp, "tftp_root": args.tftp_root, "dhcp": args.dhcp,
            "advertise_url": args.advertise_url, "floating_address": args.floating_address,
            "log_format": args.log_format, "log_level": args.log_level}


def _run_serve(args: argparse.Namespace) -> int:
    from bootserver import app, logs

    settings = _settings(args, **_serve_flags(args))
    logs.setup(settings.log_format, settings.log_level)
    return app.serve(settings)


# --------------------------------------------------------------------------- validate
def _add_validate(sub) -> None:
    p = sub.add_parser("validate", formatter_class=_formatter, help="check a catalog and report every problem",
                       description="Load the catalog and print every error and warning with file, line,\n"
                                   "document and field. Exit 0 when valid (warnings allowed), 1 otherwise.",
                       epilog="example:\n  bootserver validate profiles/")
    p.add_argument("dir", nargs="?", metavar="DIR", help="catalog directory (default: the catalog setting)")
    _global_options(p)


def _run_validate(args: argparse.Namespace) -> int:
    from bootserver.catalog.loader import validate

    settings = _settings(args)
    root = Path(args.dir) if args.dir else settings.catalog
    problems = validate(root, settings.assets)
    for problem in problems:
        print(problem, file=sys.stderr if problem.severity == "error" else sys.stdout)
    errors = sum(p.severity == "error" for p in problems)
    if errors:
        print(f"{root}: {errors} error(s)", file=sys.stderr)
        return 1
    print(f"{root}: valid ({len(problems)} warning(s))")
    return 0


# --------------------------------------------------------------------------- render
def _add_render(sub) -> None:
    p = sub.add_parser("render", formatter_class=_formatter, help="preview what a machine would be served",
                       description="Print what the running server would serve a MAC, without a server:\n"
                                   "  ipxe      the /ipxe script\n  grub      the grub.cfg (boot.loader: grub)\n"
                                   "  ignition  the /ignition config\n"
                                   "  metadata  the /metadata KEY=value lines\n"
                                   "  match     which Machine or Group matched, and the profile",
                       epilog="example:\n  bootserver render ignition --mac 52:54:00:a1:9c:ae --arch x86_64-efi")
    p.add_argument("what", choices=("ipxe", "grub", "ignition", "metadata", "match"))
    p.add_argument("--mac", required=True, help="the machine's MAC, any common spelling")
    p.add_argument("--arch", help="x86_64-bios, x86_64-efi, i386-efi or arm64-efi (default: not given, as a "
                                  "client that does not say)")
    p.add_argument("--label", action="append", default=[], metavar="K=V",
                   help="request label (repeatable; default: none)")
    p.add_argument("--client-ip", metavar="IP", help="client address, for subnet selectors (default: none)")
    p.add_argument("--base-url", metavar="URL", help="base URL in links (default: the advertise URL)")
    p.add_argument("--stage", choices=("final",), default="",
                   help="with ignition: the final config an installer writes to disk (?stage=final; "
                        "default: the machine's own config)")
    _global_options(p)


def _run_render(args: argparse.Namespace) -> int:
    from bootserver.cli import render as preview

    settings = _settings(args)
    labels = {}
    for item in args.label:
        key, sep, value = item.partition("=")
        if not sep:
            raise SettingsError(f"--label takes K=V, got {item!r}")
        labels[key] = value
    out, code = asyncio.run(preview.render(settings, args.what, args.mac, args.arch, labels, args.client_ip,
                                           args.base_url, args.stage))
    print(out, end="" if out.endswith("\n") else "\n", file=sys.stdout if code == 0 else sys.stderr)
    return code


# --------------------------------------------------------------------------- config
def _add_config(sub) -> None:
    p = sub.add_parser("config", formatter_class=_formatter, help="show the effective settings",
                       description="config show: every setting, its effective value, and where it came from\n"
                                   "(default, file, env BOOTSERVER_*, or flag). Takes serve's flags, so\n"
                                   "`bootserver config show FLAGS` shows what `bootserver serve FLAGS` would use.")
    p.add_argument("action", choices=("show",))
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _global_options(p)
    _serve_options(p)


def _run_config(args: argparse.Namespace) -> int:
    settings = _settings(args, **_serve_flags(args))
    if args.json:
        from bootserver.config import FIELDS

        print(json.dumps({n: {"value": str(getattr(settings, n)) if getattr(settings, n) is not None else None,
                              "source": settings.sources[n]} for n in FIELDS}, indent=2))
    else:
        print(show(settings))
    return 0


# --------------------------------------------------------------------------- areas with their own commands
AREAS = {
    "butane": ("bootserver.render.butane.commands", "translate a Butane file to Ignition, like the butane tool"),
    "machines": ("bootserver.cli.machines", "list, inspect, reinstall and adopt machines"),
    "assets": ("bootserver.assets.commands", "fetch, verify, list and prune OS images"),
    "updates": ("bootserver.cli.updates", "show, pause and resume Flatcar update rollouts"),
    "lab": ("bootserver.lab.commands", "a QEMU + network-namespace lab that boots through bootserver"),
}


def _add_areas(sub) -> dict:
    loaded = {}
    for name, (module_name, summary) in AREAS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=summary, formatter_class=_formatter,
                           description=(module.__doc__ or summary).strip())
        if name != "butane":
            _global_options(p)
        module.add_arguments(p)
        loaded[name] = module
    return loaded


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(prog="bootserver", formatter_class=_formatter, description=MAIN_HELP,
                                     epilog=MAIN_EPILOG)
    parser.add_argument("--version", action="version", version=f"bootserver {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_serve(sub)
    _add_validate(sub)
    _add_render(sub)
    _add_config(sub)
    areas = _add_areas(sub)
    _finish(parser)
    return parser, areas


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def _finish(parser: argparse.ArgumentParser) -> None:
    """Every command below `parser` shows defaults in its help and has a description (its summary
    line when it was given none)."""
    sub = _subcommands(parser)
    if sub is None:
        return
    summaries = {choice.dest: choice.help for choice in sub._choices_actions}
    for name, child in sub.choices.items():
        child.formatter_class = _formatter
        if not child.description and summaries.get(name):
            child.description = summaries[name][0].upper() + summaries[name][1:] + "."
        _finish(child)


def _leaf(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The deepest command parser `argv` names (whose usage a mistake in its flags should print)."""
    for token in argv:
        sub = _subcommands(parser)
        if sub is not None and token in sub.choices:
            parser = sub.choices[token]
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done, 1 it failed while running (the message says why), 2 the command line or
    a setting is wrong (the usage of the command concerned is printed)."""
    parser, areas = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _leaf(parser, argv).error(f"unrecognized arguments: {' '.join(unknown)}")
    runners = {"serve": _run_serve, "validate": _run_validate, "render": _run_render, "config": _run_config}
    try:
        if args.command in runners:
            return runners[args.command](args)
        if args.command in areas:
            module = areas[args.command]
            return module.run(args) if args.command == "butane" else module.run(args, _settings(args))
        parser.print_help()
        return 2
    except SettingsError as exc:
        print(f"bootserver: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
