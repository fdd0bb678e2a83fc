"""Generic assets: any file declared by URL and SHA-256, fetched, verified and placed atomically."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from bootserver.assets import AssetError
from bootserver.assets.download import download
from bootserver.assets.flatcar import FetchResult
from bootserver.assets.mirror import STAGING, load_manifest, locked, save_manifest
from bootserver.assets.progress import Progress
from bootserver.assets.verify import VerificationError, file_hash

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def asset_path(to: str) -> str:
    """A safe path relative to the assets folder: no absolute paths, no `..`, no hidden parts."""
    pure = PurePosixPath(to)
    if not to or pure.is_absolute():
        raise AssetError(f"--to {to!r}: give a path relative to the assets folder, like ubuntu/24.04/vmlinuz")
    if any(part in ("..", "") or part.startswith(".") for part in pure.parts):
        raise AssetError(f"--to {to!r}: '..' and hidden (dot) parts are not allowed")
    if pure.parts[0] == "flatcar":
        raise AssetError(f"--to {to!r}: flatcar/ is managed by `bootserver assets fetch flatcar`")
    return str(pure)


def fetch_file(assets: Path, url: str, sha256: str, to: str, progress: Progress | None = None) -> FetchResult:
    """Download `url` to `assets/<to>` if and only if its SHA-256 is `sha256`."""
    sha256 = sha256.lower()
    if not SHA256_RE.match(sha256):
        raise AssetError(f"--sha256 {sha256!r}: expected 64 hexadecimal digits")
    if not url.startswith(("http://", "https://")):
        raise AssetError(f"{url!r}: only http:// and https:// URLs can be fetched")
    rel = asset_path(to)
    progress = progress or Progress()
    dest = assets / rel
    with locked(assets):
        manifest = load_manifest(assets)
        if dest.is_file() and file_hash(dest, "sha256") == sha256:
            progress.note(f"{rel} is already present with that SHA-256")
            already = True
        else:
            staging = assets / STAGING / f"file-{sha256}"
            staging.parent.mkdir(parents=True, exist_ok=True)
            download(url, staging, progress)
            got = file_hash(staging, "sha256")
            if got != sha256:
                staging.unlink()
                raise VerificationError(f"{url}: SHA-256 is {got}, expected {sha256}; nothing was placed")
            if dest.is_dir():
                raise AssetError(f"{rel} is a folder; not replacing it")
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging, dest)
            already = False
        manifest["files"][rel] = {"size": dest.stat().st_size, "sha256": sha256, "source": url,
                                  "fetched_at": datetime.now(UTC).isoformat(timespec="seconds")}
        save_manifest(assets, manifest)
    return FetchResult(rel, dest, already)
