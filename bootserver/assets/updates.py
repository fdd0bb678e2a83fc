"""Update payloads in the mirror: Flatcar's `flatcar_production_update.gz` (and, when asked, OEM
and sysext packages) beside a release, verified like the rest, with the sizes and hashes the Omaha
responder needs; and reading them back as the `Release` bootserver can offer.

The files are placed unchanged: update_engine checks their size, SHA-1 and SHA-256 against the
Omaha answer and the payload's embedded signature against Flatcar's update key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from pathlib import Path

from bootserver.assets import AssetError
from bootserver.assets.download import NotFound, download, fetch_small
from bootserver.assets.mirror import MANIFEST, STAGING
from bootserver.assets.progress import Progress
from bootserver.assets.verify import VerificationError, verify_signature
from bootserver.boot.updates import PackageFile, Release

UPDATE_PAYLOAD = "flatcar_production_update.gz"
EXTRA_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def update_file_names(oem: list[str], sysext: list[str]) -> list[str]:
    """The payload, then oem-<ID>.gz and flatcar-<NAME>.gz, as Flatcar's release server names them."""
    for kind, names in (("--oem", oem), ("--sysext", sysext)):
        for name in names:
            if not EXTRA_NAME_RE.match(name):
                raise AssetError(f"{kind} {name!r}: expected a name like azure or docker (a-z, 0-9, '-', '_')")
    return [UPDATE_PAYLOAD, *(f"oem-{name}.gz" for name in oem), *(f"flatcar-{name}.gz" for name in sysext)]


def hashes(path: Path) -> dict[str, str]:
    """SHA-1 and SHA-256 the way Omaha carries them (base64; SHA-256 also hex), and the SHA-512
    `assets list --check` compares, in one read."""
    digests = {name: hashlib.new(name) for name in ("sha1", "sha256", "sha512")}
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            for digest in digests.values():
                digest.update(chunk)
    return {"sha1_b64": base64.b64encode(digests["sha1"].digest()).decode(),
            "sha256_b64": base64.b64encode(digests["sha256"].digest()).decode(),
            "sha256": digests["sha256"].hexdigest(), "sha512": digests["sha512"].hexdigest()}


def fetch_update_files(assets: Path, release_dir: Path, release_url: str, names: list[str], ring: Path,
                       record: dict, progress: Progress) -> list[str]:
    """Download, verify and place each of `names` into `release_dir`, recording them in the
    release's manifest `record`. Returns the names placed now (those already intact are kept).

    Each file's detached OpenPGP signature (`NAME.sig`) must verify against `ring`, as every
    other mirrored file; a file that fails is deleted and nothing of it is placed."""
    staging = assets / STAGING / f"update-{release_dir.parent.name}-{release_dir.name}"
    staging.mkdir(parents=True, exist_ok=True)
    files = record.setdefault("files", {})
    placed = []
    for name in names:
        known = files.get(name)
        if known and "sha1_b64" in known and (release_dir / name).is_file() \
                and (release_dir / name).stat().st_size == known["size"]:
            continue
        data, sig = staging / name, staging / f"{name}.sig"
        try:
            download(f"{release_url}/{name}", data, progress)
        except NotFound:
            raise AssetError(f"{name} not found under {release_url}/ (is this release's update payload "
                             f"published there?)") from None
        try:
            sig.write_bytes(fetch_small(f"{release_url}/{name}.sig"))
        except NotFound:
            raise AssetError(f"{name} has no signature: {release_url}/{name}.sig not found") from None
        try:
            fingerprint = verify_signature(ring, sig, data)
        except VerificationError:
            data.unlink(missing_ok=True)
            sig.unlink(missing_ok=True)
            raise
        info = {"size": data.stat().st_size, "signed_by": fingerprint, **hashes(data)}
        for leftover in staging.glob(f"{name}*.validator"):
            leftover.unlink()
        os.replace(sig, release_dir / f"{name}.sig")
        os.replace(data, release_dir / name)
        files[name] = info
        placed.append(name)
        progress.note(f"verified {name}: signature by {fingerprint[-16:]}, {info['size']} bytes")
    update = record.setdefault("update", {"payload": UPDATE_PAYLOAD, "extras": []})
    update["extras"] = sorted(set(update["extras"]) | {n for n in names if n != UPDATE_PAYLOAD})
    if not any(staging.iterdir()):
        staging.rmdir()
    return placed


def _package(name: str, info: dict) -> PackageFile:
    return PackageFile(name=name, size=info["size"], sha1_b64=info["sha1_b64"], sha256_b64=info["sha256_b64"],
                       sha256_hex=info["sha256"])


def release_from_manifest(manifest: dict, arch: str, version: str) -> Release | None:
    """The offerable release `version` of `arch`, or None when its payload is not mirrored."""
    record = manifest.get("flatcar", {}).get(arch, {}).get("releases", {}).get(version)
    if not record or "update" not in record:
        return None
    files = record.get("files", {})
    payload = files.get(record["update"]["payload"])
    if not payload or "sha1_b64" not in payload:
        return None
    extras = tuple(_package(name, files[name]) for name in record["update"].get("extras", ()) if name in files)
    return Release(version=version, arch=arch, payload=_package(record["update"]["payload"], payload), extras=extras)


class MirrorReleases:
    """Answers "which release would channel C / version V offer" from the assets folder, reading
    the manifest again only when it changed (one stat per question)."""

    def __init__(self, assets: Path) -> None:
        self.assets = Path(assets)
        self._stamp: tuple[int, int] | None = None
        self._manifest: dict = {}

    def _load(self) -> dict:
        path = self.assets / MANIFEST
        try:
            stat = path.stat()
        except OSError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            try:
                self._manifest = json.loads(path.read_text())
            except (OSError, ValueError):
                return self._manifest  # a manifest being replaced: keep the last good one
            self._stamp = stamp
        return self._manifest

    def release(self, arch: str, channel: str, version: str | None) -> Release | None:
        manifest = self._load()
        if version is None:
            link = self.assets / "flatcar" / arch / channel / "current"
            try:
                version = Path(os.readlink(link)).name
            except OSError:
                return None
        return release_from_manifest(manifest, arch, version)
