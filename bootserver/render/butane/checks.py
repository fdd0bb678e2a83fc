"""Butane's own checks on the source, before translation (base v0_4/v0_5 Validate methods)."""

from __future__ import annotations

import json

from .. import ignition_check
from ..report import Path, Report

TOO_MANY_RESOURCE_SOURCES = "only one of the following can be set: inline, local, source"
TOO_MANY_SYSTEMD_SOURCES = "only one of the following can be set: contents, contents_local"
DECIMAL_MODE = "unreasonable mode would be reasonable if specified in octal; remember to add a leading zero"
MOUNT_UNIT_NO_PATH = "path is required if with_mount_unit is true and format is not swap"
MOUNT_UNIT_NO_FORMAT = "format is required if with_mount_unit is true"
TREE_NO_LOCAL = "local is required"
CLEVIS_SUPPORT = "clevis is not supported in this spec version"
UNKNOWN_IGNITION_VERSION = "skipping validation for the merge/replace ignition config due to an unkown version"


def resource(value: dict, path: Path, report: Report) -> None:
    sources = [field for field in ("local", "inline", "source") if field in value]
    if len(sources) > 1:
        report.error(path + (sources[-1],), TOO_MANY_RESOURCE_SOURCES)
    if path[:2] == ("ignition", "config") and "inline" in value:
        check_embedded_ignition(value["inline"].encode("utf-8", "surrogateescape"), path, report)


def filesystem(value: dict, path: Path, report: Report) -> None:
    if value.get("with_mount_unit") is not True:
        return
    if not value.get("format"):
        report.error(path + ("format",), MOUNT_UNIT_NO_FORMAT)
    elif value["format"] != "swap" and not value.get("path"):
        report.error(path + ("path",), MOUNT_UNIT_NO_PATH)


def file(value: dict, path: Path, report: Report) -> None:
    if "mode" in value and is_decimal_mode(value["mode"], directory=False):
        report.warn(path + ("mode",), DECIMAL_MODE)


def directory(value: dict, path: Path, report: Report) -> None:
    if "mode" in value and is_decimal_mode(value["mode"], directory=True):
        report.warn(path + ("mode",), DECIMAL_MODE)


def tree(value: dict, path: Path, report: Report) -> None:
    if not value.get("local"):
        report.error(path, TREE_NO_LOCAL)


def unit(value: dict, path: Path, report: Report) -> None:
    if "contents_local" in value and "contents" in value:
        report.error(path + ("contents_local",), TOO_MANY_SYSTEMD_SOURCES)


VALIDATORS = {
    "Resource": resource,
    "Filesystem": filesystem,
    "File": file,
    "Directory": directory,
    "Tree": tree,
    "Unit": unit,
    "Dropin": unit,
}


def flatcar_filters(config: dict) -> Report:
    """Fields the flatcar variant forbids, on the translated (JSON) config: clevis."""
    report = Report()
    for index, luks in enumerate(config.get("storage", {}).get("luks", ())):
        if luks.get("clevis"):
            report.error(("storage", "luks", index, "clevis"), CLEVIS_SUPPORT)
    return report


def check_embedded_ignition(raw: bytes, path: Path, report: Report) -> None:
    """An inline/local config under ignition.config is itself checked as Ignition."""
    try:
        config = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        report.error(path, f"invalid merge/replace config: {exc}")
        return
    if not isinstance(config, dict):
        report.error(path, "invalid merge/replace config: not a JSON object")
        return
    version = config.get("ignition", {}).get("version") if isinstance(config.get("ignition"), dict) else None
    if version not in ignition_check.KNOWN_VERSIONS:
        report.warn(path + ("version",), UNKNOWN_IGNITION_VERSION)
        return
    for entry in ignition_check.check(config).entries:
        where = "$" + "".join(f".{p}" for p in entry.path)
        (report.error if entry.kind == "error" else report.warn)(path, f"merge/replace config {where}: {entry.message}")


def is_decimal_mode(mode: int, directory: bool) -> bool:
    """Butane's CheckForDecimalMode: 644 (decimal) looks like 0644 (octal) was meant."""
    if mode < 0 or mode > 7777:
        return False
    corrected = 0
    for divisor in (1000, 100, 10, 1):
        digit = (mode // divisor) % 10
        if digit > 7:
            return False
        corrected = (corrected << 3) | digit
    return not is_typical_mode(mode, directory) and is_typical_mode(corrected, directory)


def is_typical_mode(mode: int, directory: bool) -> bool:
    if mode == 0:
        return True
    had_r = had_w = had_x = False
    for perm in (mode & 0o7, (mode >> 3) & 0o7, (mode >> 6) & 0o7):  # other, group, user
        r, w, x = bool(perm & 4), bool(perm & 2), bool(perm & 1)
        if (not r and had_r) or (not w and had_w) or (not x and had_x):
            return False
        if x and had_r and not had_x:
            return False
        if (w or x) and not r:
            return False
        had_r, had_w, had_x = had_r or r, had_w or w, had_x or x
    if not had_r:
        return False
    if directory:
        if not had_x or mode & 0o4000:
            return False
        if mode & 0o3000 and not had_w:
            return False
    else:
        if mode & 0o6000 and (not had_x or mode & 0o2):
            return False
        if mode & 0o1000:
            return False
    return True
