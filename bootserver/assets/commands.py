"""Keep a verified local mirror of OS images in the assets folder.

`fetch flatcar` mirrors a Flatcar release (PXE kernel and initramfs, install image) after checking
every OpenPGP signature, in the layout `flatcar-install -b` reads; `fetch URL --sha256 HEX --to PATH`
fetches any other file and places it only if its SHA-256 matches; `list` shows what is mirrored and
how it was verified; `prune` removes old releases.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bootserver.assets import AssetError
from bootserver.assets.flatcar import fetch_release
from bootserver.assets.generic import fetch_file
from bootserver.assets.mirror import ARCHES, CHANNELS, listing, load_manifest, prune
from bootserver.assets.updates import release_from_manifest, update_file_names
from bootserver.assets.progress import Progress, human_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="assets_command", metavar="{fetch,list,prune}", required=True)
    fetch = sub.add_parser(
        "fetch", help="mirror a Flatcar release, or fetch any file by URL and SHA-256",
        description="`fetch flatcar` mirrors a signed Flatcar release into flatcar/<arch>/<version>/ and "
                    "moves the channel's current pointer; `fetch URL --sha256 HEX --to PATH` fetches any file "
                    "and places it under the assets folder only if its SHA-256 matches.")
    fetch.add_argument("source", help="'flatcar', or an http(s) URL")
    fetch.add_argument("--channel", choices=CHANNELS, default="stable", help="Flatcar channel (default stable)")
    fetch.add_argument("--version", default="current", help="current (via version.txt) or X.Y.Z")
    fetch.add_argument("--arch", choices=ARCHES, default="amd64")
    fetch.add_argument("--base-url", help="release server or mirror, the folder holding current/ and <version>/ "
                                          "(default https://<channel>.release.flatcar-linux.net/<arch>-usr)")
    fetch.add_argument("--keyring", type=Path, help="OpenPGP key file (armored or binary) to verify against "
                                                    "(default: Flatcar's image signing key, shipped with bootserver)")
    fetch.add_argument("--default", action="store_true",
                       help="make this channel the one flatcar/<arch>/current follows")
    fetch.add_argument("--update-payload", action="store_true",
                       help="also mirror flatcar_production_update.gz, what the Omaha responder offers")
    fetch.add_argument("--oem", action="append", default=[], metavar="ID",
                       help="also mirror oem-ID.gz for machines with that OEM ID (repeatable; implies "
                            "--update-payload)")
    fetch.add_argument("--sysext", action="append", default=[], metavar="NAME",
                       help="also mirror the flatcar-NAME.gz sysext package (repeatable; implies --update-payload)")
    fetch.add_argument("--sha256", help="with a URL: the expected SHA-256 (required with a URL; no default)")
    fetch.add_argument("--to", help="with a URL: where to place it, relative to the assets folder (required with a URL; "
                                     "no default)")
    lister = sub.add_parser("list", help="mirrored releases and files: sizes, pointers, verification")
    lister.add_argument("--check", action="store_true",
                        help="hash every file again against what was verified (slow on big images)")
    pruner = sub.add_parser("prune", help="remove old Flatcar releases (never one a current pointer names) "
                                          "and abandoned partial downloads")
    pruner.add_argument("--keep", type=int, required=True, help="newest releases to keep per arch")
    pruner.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    for leaf in (fetch, lister, pruner):
        # also accepted after the subcommand; SUPPRESS keeps a value given before it
        leaf.add_argument("--assets", metavar="DIR", default=argparse.SUPPRESS,
                          help="assets folder (default: the `assets` setting)")
        leaf.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="settings file (YAML)")


def run(args: argparse.Namespace, settings) -> int:
    assets = Path(settings.assets)
    try:
        if args.assets_command == "fetch":
            return _fetch(args, assets)
        if args.assets_command == "list":
            return _list(assets, args.check)
        if args.assets_command == "prune":
            removed = prune(assets, args.keep, dry_run=args.dry_run)
            verb = "would remove" if args.dry_run else "removed"
            for path in removed:
                print(f"{verb} {path}")
            if not removed:
                print("nothing to prune")
            return 0
    except AssetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    raise AssertionError(args.assets_command)


def _fetch(args: argparse.Namespace, assets: Path) -> int:
    progress = Progress()
    if args.source == "flatcar":
        if args.sha256 or args.to:
            raise AssetError("--sha256/--to are for fetching a URL; Flatcar releases are verified by signature")
        wanted = args.update_payload or args.oem or args.sysext
        result = fetch_release(assets, args.channel, args.version, args.arch, args.base_url, args.keyring,
                               progress, make_default=args.default,
                               update_files=update_file_names(args.oem, args.sysext) if wanted else None)
        state = "already present" if result.already_present else "fetched and verified"
        print(f"flatcar {args.arch} {result.version}: {state} in {result.path}")
        for name in result.pointers:
            print(f"  flatcar/{args.arch}/{name} -> {result.version}")
        release = release_from_manifest(load_manifest(assets), args.arch, result.version) if wanted else None
        for package in (release.payload, *release.extras) if release else ():
            print(f"  update package {package.name}: {package.size} bytes, sha256 {package.sha256_hex}")
        return 0
    if args.update_payload or args.oem or args.sysext:
        raise AssetError("--update-payload/--oem/--sysext are for 'fetch flatcar'")
    if not (args.sha256 and args.to):
        raise AssetError("fetching a URL needs --sha256 HEX and --to PATH (or use 'flatcar' as the source)")
    result = fetch_file(assets, args.source, args.sha256, args.to, progress)
    state = "already present" if result.already_present else "fetched and verified"
    print(f"{result.version}: {state} ({human_size(result.path.stat().st_size)})")
    return 0


def _list(assets: Path, check: bool) -> int:
    rows = listing(assets, check)
    if not rows:
        print(f"no assets in {assets}")
        return 0
    table = [("PATH", "SIZE", "VERIFIED", "POINTERS")] + [
        (row.path, human_size(row.size), row.verified, row.note) for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    for r in table:
        print(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip())
    return 0
