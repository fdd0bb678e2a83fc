"""The assets folder on disk: the manifest of verified files, the lock, pointers, listing, pruning.

Layout (relative symlinks, so the tree can be copied or rsynced and any static HTTP server,
bootserver's own included, serves `flatcar/<arch>/current/...` without knowing about pointers):

    flatcar/<arch>/<version>/              verified release files, their .sig/.DIGESTS, version.txt
    flatcar/<arch>/current -> <version>    the default channel's current release
    flatcar/<arch>/<channel>/current -> ../<version>
    flatcar/<arch>/<channel>/<version> -> ../<version>
    flatcar/keys/<name>                    keys releases were verified with (fetch --keyring)
    .manifest.json                         what was verified, how, from where
    .staging/                              downloads in progress (resumed by the next fetch)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bootserver.assets import AssetError
from bootserver.assets.verify import file_hash

MANIFEST = ".manifest.json"
STAGING = ".staging"
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")
CHANNELS = ("stable", "beta", "alpha", "lts")
ARCHES = ("amd64", "arm64")


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


@contextlib.contextmanager
def locked(assets: Path) -> Iterator[None]:
    """One writer at a time per assets folder (a second fetch waits for the first)."""
    assets.mkdir(parents=True, exist_ok=True)
    with open(assets / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_manifest(assets: Path) -> dict:
    path = assets / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"flatcar": {}, "files": {}}
    except (OSError, ValueError) as exc:
        raise AssetError(f"{path}: unreadable manifest ({exc}); move it aside to start over") from None
    data.setdefault("flatcar", {})
    data.setdefault("files", {})
    return data


def save_manifest(assets: Path, manifest: dict) -> None:
    path = assets / MANIFEST
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def point(link: Path, target: str) -> None:
    """Make `link` a symlink to `target`, replacing any old link atomically."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.exists() and not link.is_symlink():
        raise AssetError(f"{link} exists and is not a pointer (symlink); not replacing it")
    tmp = link.with_name(f".{link.name}.tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


def release_dirs(arch_dir: Path) -> list[str]:
    """Version folders (real folders, not channel links), newest first."""
    if not arch_dir.is_dir():
        return []
    found = [p.name for p in arch_dir.iterdir()
             if VERSION_RE.match(p.name) and p.is_dir() and not p.is_symlink()]
    return sorted(found, key=version_key, reverse=True)


def pointers(arch_dir: Path) -> dict[str, str]:
    """{pointer name ("current", "stable/current", ...): version it names}."""
    found = {}
    candidates = [arch_dir / "current"] + [arch_dir / channel / "current" for channel in CHANNELS]
    for link in candidates:
        if link.is_symlink():
            found[str(link.relative_to(arch_dir))] = Path(os.readlink(link)).name
    return found


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@dataclass(frozen=True)
class Row:
    path: str  # relative to the assets folder
    size: int
    verified: str  # how it was verified, or "NOT VERIFIED"/"CHANGED"
    note: str = ""


def listing(assets: Path, check: bool = False) -> list[Row]:
    """Every Flatcar release and generic asset, with its size and what verified it.

    Whether a file is still the one verified is judged by its size, or with `check` by hashing it
    again against the SHA-512/SHA-256 recorded when it was verified.
    """
    manifest = load_manifest(assets)
    rows = []
    flatcar = assets / "flatcar"
    for arch_dir in _arch_dirs(flatcar):
        arch = arch_dir.name
        recorded = manifest["flatcar"].get(arch, {}).get("releases", {})
        named = pointers(arch_dir)
        for version in release_dirs(arch_dir):
            entry = recorded.get(version)
            release = arch_dir / version
            if entry is None:
                verified = "NOT VERIFIED"
            elif any(_changed(release / name, info, check) for name, info in entry["files"].items()):
                verified = "CHANGED since verified"
            else:
                verified = "signature " + _key_ids(entry.get("signed_by", ""))
            note = ", ".join(sorted(name for name, v in named.items() if v == version))
            if entry and "update" in entry:  # see assets/updates.py: what the Omaha responder offers
                note = "; ".join(filter(None, [note, "update payload" + "".join(
                    f" + {extra}" for extra in entry["update"].get("extras", ()))]))
            rows.append(Row(f"flatcar/{arch}/{version}", dir_size(release), verified, note))
    for rel, info in sorted(manifest["files"].items()):
        path = assets / rel
        if not path.is_file():
            rows.append(Row(rel, 0, "MISSING"))
        else:
            rows.append(Row(rel, path.stat().st_size,
                            "CHANGED since verified" if _changed(path, info, check) else "sha256", ""))
    return rows


def _arch_dirs(flatcar: Path) -> list[Path]:
    """flatcar/<arch> folders (flatcar/keys holds the published image keys, not releases)."""
    return [p for p in sorted(flatcar.iterdir()) if p.name in ARCHES] if flatcar.is_dir() else []


def _changed(path: Path, info: dict, check: bool) -> bool:
    try:
        if path.stat().st_size != info["size"]:
            return True
    except OSError:
        return True
    if check:
        algorithm = "sha512" if "sha512" in info else "sha256" if "sha256" in info else None
        return algorithm is not None and file_hash(path, algorithm) != info[algorithm]
    return False


def _key_ids(fingerprints: str) -> str:
    """Long key ids (the last 16 hex digits), as gpg shows them."""
    return ", ".join(fp.strip()[-16:] for fp in fingerprints.split(",")) or "?"


def prune(assets: Path, keep: int, dry_run: bool = False) -> list[str]:
    """Remove all but the `keep` newest releases per arch; a release a pointer names is always kept.

    Returns the removed paths (relative). Channel links to removed releases go too, and so do
    partial downloads left in .staging by interrupted or refused fetches.
    """
    if keep < 1:
        raise AssetError("--keep must be at least 1")
    removed = []
    with locked(assets):
        manifest = load_manifest(assets)
        flatcar = assets / "flatcar"
        for arch_dir in _arch_dirs(flatcar):
            named = set(pointers(arch_dir).values())
            versions = release_dirs(arch_dir)
            for version in versions[keep:]:
                if version in named:
                    continue
                removed.append(f"flatcar/{arch_dir.name}/{version}")
                if dry_run:
                    continue
                for channel in CHANNELS:
                    link = arch_dir / channel / version
                    if link.is_symlink():
                        link.unlink()
                shutil.rmtree(arch_dir / version)
                manifest["flatcar"].get(arch_dir.name, {}).get("releases", {}).pop(version, None)
        staging = assets / STAGING
        for leftover in sorted(staging.iterdir()) if staging.is_dir() else []:
            removed.append(f"{STAGING}/{leftover.name}")
            if not dry_run:
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        if removed and not dry_run:
            save_manifest(assets, manifest)
    return removed
