"""Verification: OpenPGP detached signatures with gpgv, DIGESTS files, SHA-256/512 of files."""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from bootserver.assets import AssetError

FLATCAR_KEY = "flatcar-image-signing-key.asc"


class VerificationError(AssetError):
    """A file did not match its signature or digest: it must never be placed."""


@contextlib.contextmanager
def keyring(key_file: Path | None = None) -> Iterator[Path]:
    """A temporary gpgv keyring made from `key_file` (armored or binary), or Flatcar's shipped key.

    gpgv only reads binary keyrings, so an armored key is dearmored with gpg into a throwaway
    home; nothing touches the user's ~/.gnupg.
    """
    with tempfile.TemporaryDirectory(prefix="bootserver-gpg-") as home:
        ring = Path(home) / "keyring.gpg"
        if key_file is None:
            data = resources.files("bootserver").joinpath("data", FLATCAR_KEY).read_bytes()
        else:
            try:
                data = Path(key_file).read_bytes()
            except OSError as exc:
                raise AssetError(f"cannot read keyring {key_file}: {exc.strerror}") from None
        if data.lstrip().startswith(b"-----BEGIN PGP"):
            proc = subprocess.run(["gpg", "--batch", "--quiet", "--homedir", home, "--dearmor"],
                                  input=data, capture_output=True, check=False)
            if proc.returncode != 0 or not proc.stdout:
                raise AssetError(f"cannot read the OpenPGP key {key_file or FLATCAR_KEY}: "
                                 f"{proc.stderr.decode(errors='replace').strip()}")
            data = proc.stdout
        ring.write_bytes(data)
        yield ring


def verify_signature(ring: Path, signature: Path, data: Path) -> str:
    """Check a detached signature with gpgv; return the signing key's primary fingerprint."""
    if shutil.which("gpgv") is None:
        raise AssetError("gpgv is not installed (Debian package gpgv); signatures cannot be checked")
    with tempfile.TemporaryDirectory(prefix="bootserver-gpgv-") as home:
        proc = subprocess.run(
            ["gpgv", "--homedir", home, "--status-fd", "1", "--keyring", str(ring.resolve()),
             str(signature), str(data)],
            capture_output=True, text=True, check=False)
    status = [line.split() for line in proc.stdout.splitlines() if line.startswith("[GNUPG:] ")]
    valid = [words for words in status if len(words) > 2 and words[1] == "VALIDSIG"]
    revoked = any(words[1] == "REVKEYSIG" for words in status if len(words) > 1)
    if proc.returncode != 0 or not valid or revoked:
        why = "signed by a revoked key" if revoked else _gpgv_reason(proc.stderr)
        raise VerificationError(f"{data.name}: OpenPGP signature check failed ({why})")
    return valid[0][-1]  # VALIDSIG's last field is the primary key fingerprint


def _gpgv_reason(stderr: str) -> str:
    lines = [line.removeprefix("gpgv: ").strip() for line in stderr.splitlines() if line.strip()]
    return "; ".join(lines[-2:]) or "no valid signature"


def file_hash(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


_HEADER = re.compile(r"^#\s*(\w+)\s+HASH\s*$", re.IGNORECASE)
_ENTRY = re.compile(r"^([0-9a-fA-F]+)\s+\*?(\S+)\s*$")


def parse_digests(text: str) -> dict[str, dict[str, str]]:
    """Flatcar's DIGESTS format: `# SHA512 HASH` headers, then `HEX  NAME` lines.

    Returns {file name: {algorithm (lower case): hex}}.
    """
    result: dict[str, dict[str, str]] = {}
    algorithm = None
    for line in text.splitlines():
        if m := _HEADER.match(line.strip()):
            algorithm = m.group(1).lower()
        elif algorithm and (m := _ENTRY.match(line.strip())):
            result.setdefault(m.group(2), {})[algorithm] = m.group(1).lower()
    return result


def check_digests(digests_file: Path, data: Path, sha512: str) -> bool:
    """Compare `data`'s SHA-512 with its DIGESTS entry; True when one was found and matched."""
    expected = parse_digests(digests_file.read_text(errors="replace")).get(data.name, {}).get("sha512")
    if expected is None:
        return False
    if expected != sha512:
        raise VerificationError(f"{data.name}: SHA-512 does not match {digests_file.name}")
    return True
