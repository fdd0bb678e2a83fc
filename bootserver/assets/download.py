"""Resumable HTTP downloads with urllib.

urllib rather than aiohttp: `assets fetch` is a one-shot command that fetches files one after
another, so blocking I/O is the simplest correct shape (no event loop to run, plain exceptions
when a connection drops), it needs nothing beyond the standard library, and it honours the usual
http(s)_proxy/no_proxy variables that air-gapped sites often rely on.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from pathlib import Path

from bootserver.assets import AssetError
from bootserver.assets.progress import Progress

CHUNK = 1 << 16
TIMEOUT = 30.0
USER_AGENT = "bootserver-assets/1"
MAX_TRIES = 100  # hard bound on GETs for one file, even while each try makes progress


class NotFound(AssetError):
    """The server answered 404 (or 410): the file does not exist there."""

    def __init__(self, url: str, status: int) -> None:
        super().__init__(f"{url}: HTTP {status} (not found)")
        self.url = url
        self.status = status


def _request(url: str, method: str = "GET", headers: dict[str, str] | None = None):
    req = urllib.request.Request(url, method=method, headers={"User-Agent": USER_AGENT, **(headers or {})})
    try:
        return urllib.request.urlopen(req, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410):
            raise NotFound(url, exc.code) from None
        if exc.code == 416:
            return exc  # the caller inspects Content-Range
        raise AssetError(f"{url}: HTTP {exc.code} {exc.reason}") from None


def fetch_small(url: str, limit: int = 1 << 20) -> bytes:
    """GET a small text file (version.txt) into memory."""
    try:
        with _request(url) as resp:
            data = resp.read(limit + 1)
    except (OSError, http.client.HTTPException) as exc:
        raise AssetError(f"{url}: {_reason(exc)}") from None
    if len(data) > limit:
        raise AssetError(f"{url}: larger than {limit} bytes, not what was expected")
    return data


def exists(url: str) -> bool | None:
    """HEAD probe: True/False, or None when the server cannot say (no HEAD support)."""
    try:
        with _request(url, method="HEAD"):
            return True
    except NotFound:
        return False
    except AssetError:
        return None
    except (OSError, http.client.HTTPException) as exc:
        raise AssetError(f"{url}: {_reason(exc)}") from None


def download(url: str, dest: Path, progress: Progress, attempts: int = 4, backoff: float = 0.5) -> None:
    """Download `url` into `dest`, continuing a partial `dest` with an HTTP Range request.

    A partial file from an earlier run is continued too. The server's validator (ETag or
    Last-Modified) is kept beside the partial file and sent as If-Range, so a file that changed
    on the server is downloaded again from the start instead of being spliced. `attempts` bounds
    consecutive tries that made no progress.
    """
    validator_file = dest.with_name(dest.name + ".validator")
    failures = 0
    for _ in range(MAX_TRIES):
        have = dest.stat().st_size if dest.exists() else 0
        try:
            if _one_attempt(url, dest, validator_file, have, progress):
                validator_file.unlink(missing_ok=True)
                return
            reason = "connection closed before the end of the file"
        except (OSError, http.client.HTTPException) as exc:
            reason = _reason(exc)
        got = dest.stat().st_size if dest.exists() else 0
        failures = 0 if got > have else failures + 1
        if failures >= attempts:
            break
        progress.note(f"{dest.name}: {reason} at {got} bytes, retrying with Range")
        time.sleep(backoff * failures)
    got = dest.stat().st_size if dest.exists() else 0
    raise AssetError(f"{url}: {reason} (gave up; {got} bytes kept, the next fetch resumes from there)")


def _one_attempt(url: str, dest: Path, validator_file: Path, have: int, progress: Progress) -> bool:
    """One GET; returns True when `dest` is complete, False when the body ended short."""
    headers = {}
    if have:
        headers["Range"] = f"bytes={have}-"
        if validator_file.exists():
            headers["If-Range"] = validator_file.read_text()
    resp = _request(url, headers=headers)
    with resp:
        status = resp.status
        if status == 416:
            total = _range_total(resp.headers.get("Content-Range", ""))
            if total == have:
                return True  # the partial file was already complete
            dest.unlink(missing_ok=True)  # the partial file does not fit the remote one: start over
            return False
        if status == 206:
            start, total = _range_start_total(resp.headers.get("Content-Range", ""), url)
            if start != have:
                raise AssetError(f"{url}: server resumed at byte {start}, expected {have}")
            mode = "ab"
        elif status == 200:
            have, mode = 0, "wb"
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        else:
            raise AssetError(f"{url}: unexpected HTTP {status}")
        validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
        if validator and not validator.startswith("W/"):
            validator_file.write_text(validator)
        progress.start(dest.name, total, have)
        with open(dest, mode) as out:
            while chunk := resp.read(CHUNK):
                out.write(chunk)
                progress.advance(len(chunk))
        size = dest.stat().st_size
        if total is not None and size < total:
            return False
        if total is not None and size > total:
            dest.unlink()
            raise AssetError(f"{url}: server sent more bytes than announced")
        progress.finish()
        return True


def _range_start_total(value: str, url: str) -> tuple[int, int | None]:
    try:
        _, _, rest = value.partition(" ")
        span, _, total = rest.partition("/")
        start = int(span.split("-")[0])
        return start, (None if total == "*" else int(total))
    except ValueError:
        raise AssetError(f"{url}: 206 answer with an unreadable Content-Range {value!r}") from None


def _range_total(value: str) -> int | None:
    _, _, total = value.partition("/")
    return int(total) if total.isdigit() else None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect ({exc.reason})"
    if isinstance(exc, http.client.IncompleteRead):
        return "connection closed before the end of the file"
    return str(exc) or type(exc).__name__
