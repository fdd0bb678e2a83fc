"""Mirror Flatcar releases: resolve, download, verify every signature, place atomically, point.

The result is laid out the way `flatcar-install -b BASEURL` reads a mirror
(`<base>/current/version.txt`, `<base>/<version>/flatcar_production_image.bin.bz2` and `.sig`),
with `<base>` = `<assets URL>/flatcar/<arch>` (default channel) or `.../flatcar/<arch>/<channel>`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bootserver.assets import AssetError
from bootserver.assets.download import NotFound, download, exists, fetch_small
from bootserver.assets.keys import KEY_NAME_RE, KEYS_DIR, publish_key
from bootserver.assets.mirror import ARCHES, CHANNELS, STAGING, VERSION_RE, load_manifest, locked, point, save_manifest
from bootserver.assets.progress import Progress
from bootserver.assets.updates import fetch_update_files
from bootserver.assets.verify import VerificationError, check_digests, file_hash, keyring, verify_signature

PXE_FILES = ("flatcar_production_pxe.vmlinuz", "flatcar_production_pxe_image.cpio.gz")
IMAGE_FILE = "flatcar_production_image.bin.bz2"
RELEASE_FILES = (*PXE_FILES, IMAGE_FILE)
DEFAULT_BASE_URL = "https://{channel}.release.flatcar-linux.net/{arch}-usr"


class MissingPXEFiles(AssetError):
    """The release exists but ships no PXE kernel/initramfs (Flatcar 4593.2.2 is one)."""


@dataclass
class FetchResult:
    version: str
    path: Path
    already_present: bool
    pointers: list[str] = field(default_factory=list)


def base_url_for(channel: str, arch: str, base_url: str | None) -> str:
    return (base_url or DEFAULT_BASE_URL.format(channel=channel, arch=arch)).rstrip("/")


def parse_version_txt(text: str, source: str) -> str:
    """FLATCAR_VERSION from a version.txt; refuses anything that is not a plain X.Y.Z."""
    for line in text.splitlines():
        key, _, value = line.strip().partition("=")
        if key == "FLATCAR_VERSION":
            value = value.strip().strip('"')
            if VERSION_RE.match(value):
                return value
            raise AssetError(f"{source}: FLATCAR_VERSION={value!r} is not a version like 4081.2.0")
    raise AssetError(f"{source}: no FLATCAR_VERSION line; is this a Flatcar release server?")


def resolve_current(base: str) -> str:
    url = f"{base}/current/version.txt"
    try:
        text = fetch_small(url).decode("utf-8", errors="replace")
    except NotFound:
        raise AssetError(f"{url} not found: the base URL does not look like a Flatcar release mirror") from None
    return parse_version_txt(text, url)


def fetch_release(assets: Path, channel: str = "stable", version: str = "current", arch: str = "amd64",
                  base_url: str | None = None, key_file: Path | None = None,
                  progress: Progress | None = None, make_default: bool = False,
                  update_files: list[str] | None = None) -> FetchResult:
    """Mirror one Flatcar release into `assets/flatcar/<arch>/<version>/` and update pointers.

    Nothing is placed unless every file's signature verified; a failure leaves the previous
    releases and pointers exactly as they were. `update_files` (see updates.update_file_names)
    adds the update payload and OEM/sysext packages the Omaha responder offers.
    """
    if channel not in CHANNELS:
        raise AssetError(f"unknown channel {channel!r} (one of {', '.join(CHANNELS)})")
    if arch not in ARCHES:
        raise AssetError(f"unknown arch {arch!r} (one of {', '.join(ARCHES)})")
    if version != "current" and not VERSION_RE.match(version):
        raise AssetError(f"--version {version!r}: expected current or a version like 4081.2.0")
    if make_default and version != "current":
        raise AssetError("--default moves flatcar/<arch>/current, so it needs --version current")
    if key_file is not None and not KEY_NAME_RE.match(Path(key_file).name):
        raise AssetError(f"--keyring {Path(key_file).name!r}: the key is published under its file name, so use "
                         "letters, digits, '.', '_' and '-'")
    progress = progress or Progress()
    base = base_url_for(channel, arch, base_url)
    follow_current = version == "current"
    if follow_current:
        version = resolve_current(base)
        progress.note(f"current {channel} release is {version}")
    arch_dir = assets / "flatcar" / arch
    target = arch_dir / version
    with locked(assets):
        manifest = load_manifest(assets)
        flatcar = manifest["flatcar"].setdefault(arch, {})
        releases = flatcar.setdefault("releases", {})
        already = target.is_dir() and version in releases and _intact(target, releases[version])
        if already:
            progress.note(f"flatcar {arch} {version} is already mirrored and verified")
        else:
            staging = assets / STAGING / f"flatcar-{arch}-{version}"
            record = _download_and_verify(f"{base}/{version}", version, channel, arch, staging, key_file, progress)
            _place(staging, target)
            releases[version] = record
            save_manifest(assets, manifest)
        if key_file is not None and (not already or releases[version].get("key") == f"{KEYS_DIR}/{key_file.name}"):
            # verified against it (now, or when it was mirrored): installers may be pointed at it
            releases[version]["key"] = publish_key(assets, key_file)
            progress.note(f"image key published as {releases[version]['key']}")
        if update_files:
            with keyring(key_file) as ring:
                fetch_update_files(assets, target, f"{base}/{version}", update_files, ring, releases[version],
                                   progress)
            save_manifest(assets, manifest)
        moved = [f"{channel}/{version}"]
        point(arch_dir / channel / version, f"../{version}")
        if follow_current:
            point(arch_dir / channel / "current", f"../{version}")
            moved.append(f"{channel}/current")
            if flatcar.get("default_channel") in (None, channel) or make_default:
                flatcar["default_channel"] = channel
                point(arch_dir / "current", version)
                moved.append("current")
        save_manifest(assets, manifest)
    return FetchResult(version, target, already, moved)


def _intact(release: Path, record: dict) -> bool:
    return all((release / name).is_file() and (release / name).stat().st_size == info["size"]
               for name, info in record.get("files", {}).items())


def _download_and_verify(release_url: str, version: str, channel: str, arch: str, staging: Path,
                         key_file: Path | None, progress: Progress) -> dict:
    missing = [name for name in RELEASE_FILES if exists(f"{release_url}/{name}") is False]
    _refuse_missing(missing, release_url, version, channel, arch)
    staging.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict] = {}
    with keyring(key_file) as ring:
        signed_by = set()
        for name in RELEASE_FILES:
            data, sig, digests = staging / name, staging / f"{name}.sig", staging / f"{name}.DIGESTS"
            try:
                download(f"{release_url}/{name}", data, progress)
            except NotFound:
                _refuse_missing([name], release_url, version, channel, arch)
            _fetch_to(f"{release_url}/{name}.sig", sig, required=f"{name} has no signature ({name}.sig)")
            has_digests = _fetch_to(f"{release_url}/{name}.DIGESTS", digests, required=None)
            try:
                fingerprint = verify_signature(ring, sig, data)
                sha512 = file_hash(data, "sha512")
                digests_checked = has_digests and check_digests(digests, data, sha512)
            except VerificationError:
                for path in (data, sig, digests):
                    path.unlink(missing_ok=True)
                raise
            signed_by.add(fingerprint)
            files[name] = {"size": data.stat().st_size, "sha512": sha512, "signed_by": fingerprint,
                           "digests_checked": digests_checked}
            progress.note(f"verified {name}: signature by {fingerprint[-16:]}"
                          + (", SHA-512 matches DIGESTS" if digests_checked else ""))
        files["version.txt"] = _version_txt(release_url, version, staging, ring)
    return {"channel": channel, "source": release_url, "signed_by": ", ".join(sorted(signed_by)),
            "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"), "files": files}


def _refuse_missing(missing: list[str], release_url: str, version: str, channel: str, arch: str) -> None:
    pxe = [name for name in missing if name in PXE_FILES]
    if len(missing) == len(RELEASE_FILES):
        raise AssetError(f"Flatcar {version} not found at {release_url}/ (is it a {channel} {arch} release? "
                         f"check --version, --channel and --arch)")
    if pxe:
        raise MissingPXEFiles(
            f"Flatcar {version} ({channel}, {arch}) ships no PXE files: {', '.join(pxe)} not found under "
            f"{release_url}/. This release cannot be network-booted; choose another with --version.")
    if missing:
        raise AssetError(f"Flatcar {version} ({channel}, {arch}): {', '.join(missing)} not found under "
                         f"{release_url}/")


def _fetch_to(url: str, dest: Path, required: str | None) -> bool:
    """A small companion file (.sig, .DIGESTS, version.txt); False if absent and not required."""
    try:
        dest.write_bytes(fetch_small(url))
        return True
    except NotFound:
        dest.unlink(missing_ok=True)
        if required:
            raise AssetError(f"{required}: {url} not found") from None
        return False


def _version_txt(release_url: str, version: str, staging: Path, ring: Path) -> dict:
    """The release's version.txt must name the version asked for; its .sig is checked when served."""
    path = staging / "version.txt"
    _fetch_to(f"{release_url}/version.txt", path, required=f"release {version} has no version.txt")
    named = parse_version_txt(path.read_text(errors="replace"), f"{release_url}/version.txt")
    if named != version:
        path.unlink()
        raise VerificationError(f"{release_url}/version.txt names {named}, not {version}")
    record = {"size": path.stat().st_size}
    sig = staging / "version.txt.sig"
    if _fetch_to(f"{release_url}/version.txt.sig", sig, required=None):
        try:
            record["signed_by"] = verify_signature(ring, sig, path)
        except VerificationError:
            path.unlink()
            sig.unlink()
            raise
    return record


def _place(staging: Path, target: Path) -> None:
    """Rename the verified staging folder into place (same filesystem, so the rename is atomic)."""
    for leftover in staging.glob("*.validator"):
        leftover.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():  # an unverified or damaged copy: replace it whole
        aside = target.with_name(f".{target.name}.replaced")
        shutil.rmtree(aside, ignore_errors=True)
        os.rename(target, aside)
        os.rename(staging, target)
        shutil.rmtree(aside)
    else:
        os.rename(staging, target)
