"""The OpenPGP keys a mirror was verified with, published beside it at a stable path.

`bootserver assets fetch flatcar --keyring FILE` verifies a release against FILE instead of
Flatcar's own key (a private mirror signs with its own). The installer then needs the same key
(`flatcar-install -k`), so a verified fetch places FILE at `flatcar/keys/<name of FILE>`, served
as `<assets URL>/flatcar/keys/<name>`; a profile names it with `metadata.flatcar_image_key`.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from bootserver.assets import AssetError

KEYS_DIR = "flatcar/keys"
KEY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_KEY_BYTES = 1 << 20


def publish_key(assets: Path, key_file: Path) -> str:
    """Place `key_file` at flatcar/keys/<its name> (atomically); returns that path, relative to
    the assets folder. A different key already published under the same name is refused: the
    URL must keep serving what installers were told to trust."""
    name = Path(key_file).name
    if not KEY_NAME_RE.match(name):
        raise AssetError(f"key file name {name!r}: use letters, digits, '.', '_' and '-' (it becomes a URL)")
    try:
        data = Path(key_file).read_bytes()
    except OSError as exc:
        raise AssetError(f"cannot read keyring {key_file}: {exc.strerror}") from None
    if len(data) > MAX_KEY_BYTES:
        raise AssetError(f"{key_file} is larger than {MAX_KEY_BYTES} bytes: not a key file")
    target = assets / KEYS_DIR / name
    if target.exists() and target.read_bytes() != data:
        raise AssetError(f"{KEYS_DIR}/{name} already holds a different key; give the new key file another name")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".key-", dir=target.parent)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    return f"{KEYS_DIR}/{name}"
