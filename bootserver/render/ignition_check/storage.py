"""Partition and path rules of Ignition's storage section."""

from __future__ import annotations

import posixpath


def overlapping_partition(parts: list[dict]) -> int | None:
    """Index of the first partition an explicitly placed partition overlaps (Ignition's order)."""
    def placed(part):
        return part.get("startMiB") and part.get("sizeMiB") is not None

    def end(part):
        return part["startMiB"] if part["sizeMiB"] == 0 else part["startMiB"] + part["sizeMiB"] - 1

    for p in filter(placed, parts):
        for index, o in enumerate(parts):
            if o is p or not placed(o):
                continue
            if (o["startMiB"] <= p["startMiB"] <= end(o) or o["startMiB"] <= end(p) <= end(o)
                    or (p["startMiB"] < o["startMiB"] and end(p) > end(o))):
                return index
    return None


def hard_link_target(link: dict) -> str:
    """Where Ignition takes a hard link's target to be: relative targets are joined to the link's own path."""
    target = link["target"]
    if target.startswith("/"):
        return clean_path(target)
    return clean_path(posixpath.join(link.get("path") or "", target)) if link.get("path") else clean_path(target)


def clean_path(path: str) -> str:
    """Go's path.Clean (posixpath.normpath keeps a leading "//")."""
    clean = posixpath.normpath(path)
    return clean[1:] if clean.startswith("//") else clean


def partition_key(part: dict) -> str:
    if part.get("number"):
        return f"number:{part['number']}"
    return f"label:{part['label']}" if part.get("label") is not None else ""
