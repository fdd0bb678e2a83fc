"""`bootserver butane FILE`: Butane -> Ignition like the butane tool (JSON on stdout, errors on stderr)."""

from __future__ import annotations

import argparse
import json
import sys

from . import ButaneError, translate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Translate a Butane config (variant: flatcar, version 1.0.0 or 1.1.0) to Ignition\n"
                          "(3.3.0 or 3.4.0) like the butane tool: the Ignition JSON on stdout, errors and\n"
                          "warnings on stderr with their path and line, exit status 1 on any error.")
    parser.epilog = ("examples:\n  bootserver butane node.bu --pretty > node.ign\n"
                     "  bootserver butane --files-dir files --strict node.bu -o node.ign")
    parser.add_argument("file", metavar="FILE", help="Butane config (variant: flatcar), or - for stdin")
    parser.add_argument("-d", "--files-dir", metavar="DIR", help="folder that local: paths are relative to (default: none; local: paths are refused)")
    parser.add_argument("-s", "--strict", action="store_true", help="fail on any warning")
    parser.add_argument("-p", "--pretty", action="store_true", help="indent the JSON output")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the Ignition config here (default: stdout)")


def run(args: argparse.Namespace) -> int:
    try:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8", errors="surrogateescape") as handle:
                text = handle.read()
    except OSError as exc:
        print(f"Error reading {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        result = translate(text, files_dir=args.files_dir, strict=args.strict)
    except ButaneError as exc:
        sys.stderr.write(str(exc.report))
        if args.strict and not exc.report.errors:
            print("Config produced warnings and --strict was specified", file=sys.stderr)
        return 1
    sys.stderr.write(str(result.report))
    if args.pretty:
        body = json.dumps(result.config, indent=2) + "\n"
    else:
        body = json.dumps(result.config, separators=(",", ":"))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(body)
    else:
        sys.stdout.write(body)
    return 0
