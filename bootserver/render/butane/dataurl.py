"""Data URLs as Butane makes them: URL-escaped or base64, gzipped when that is shorter."""

from __future__ import annotations

import base64
import gzip

# dataurl.Escape keeps only these bytes; every other byte becomes %XX (upper-case hex)
_UNRESERVED = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()")
_ESCAPE = [chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in range(256)]
GZIP = "gzip"


def escape(data: bytes) -> str:
    return "".join([_ESCAPE[b] for b in data])


def make(contents: bytes, compression: str | None, allow_compression: bool = True) -> tuple[str, str | None]:
    """(data URL, compression to record).

    When the config already names a compression the contents are the user's compressed bytes:
    pick an encoding but never compress again, and return None so the caller keeps the user's
    value. Otherwise the compression is recorded explicitly ("" or "gzip") so that a child config
    cannot inherit a parent's setting.
    """
    user_compressed = bool(compression)
    recorded: str | None = None if user_compressed else ""
    opaque = "," + escape(contents)
    b64 = ";base64," + base64.b64encode(contents).decode("ascii")
    if len(b64) < len(opaque):
        opaque = b64
    # gzip output is at least ~20 bytes, so it can only win when the text is longer than that
    if not user_compressed and allow_compression and len(opaque) > 40:
        packed = gzip.compress(contents, compresslevel=9, mtime=0)
        gz = ";base64," + base64.b64encode(packed).decode("ascii")
        if len(gz) + len(GZIP) < len(opaque):
            opaque, recorded = gz, GZIP
    return "data:" + opaque, recorded


def decode(url: str) -> bytes:
    """The bytes in a data: URL (used by tests and by the structural check)."""
    from urllib.parse import unquote_to_bytes

    if not url.startswith("data:") or "," not in url:
        raise ValueError("not a data URL")
    header, _, payload = url[len("data:"):].partition(",")
    if header.endswith(";base64"):
        return base64.b64decode(payload, validate=True)
    return unquote_to_bytes(payload)
