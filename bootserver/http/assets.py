"""`GET`/`HEAD /assets/{path}`: the files under the assets folder (kernels, initramfs, images).

Why it is written by hand rather than with aiohttp's static route or `FileResponse`:
- the path is checked on the raw request target, before any decoding, so no spelling of `..`
  (literal, `%2e`, double-encoded `%252e`) or of a separator (`%2f`, `%5c`, `\\`) gets through, and
  every refusal is logged; then the real path must still lie in the folder, so a symlink pointing
  outside is refused while one inside (such as `current -> 4081.2.0`) keeps working;
- large files go out zero-copy (`os.sendfile`, in threads: bootserver.http.sendfile), and when a client
  hangs up the bytes that did go out are still counted (metrics, access log);
- small hot files (scripts, configs) are served from memory: `FileResponse` takes two thread-pool
  hops per file, which costs more than sending the file. `stat`/`open` run on the loop: the
  assets folder is a local directory, where they take microseconds.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import re
import stat
from collections import OrderedDict
from email.utils import formatdate, parsedate_to_datetime
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from prometheus_client import Counter, Gauge

from bootserver.http.common import MACHINE, MAC
from bootserver.http.sendfile import BYTES_SENT, TransferAborted, sendfile
from bootserver.catalog.mac import MacError, normalize_mac
from bootserver.metrics import REGISTRY
from bootserver.runtime import StoreError

log = logging.getLogger("bootserver.http.assets")

PREFIX = "/assets/"

OPEN_TRANSFERS = Gauge("bootserver_http_asset_open_transfers", "Asset responses being sent right now",
                       registry=REGISTRY)
REFUSED = Counter("bootserver_http_asset_refused", "Asset requests refused: the path would leave the folder",
                  registry=REGISTRY)

# %2e '.', %2f '/', %5c '\', %25 '%' (double encoding), %00 NUL: never needed in a real asset name.
_ENCODED_FORBIDDEN = re.compile(r"%(2e|2f|5c|25|00)", re.IGNORECASE)


class Refused(Exception):
    """The request path would leave the assets folder (or tries to look as if it might)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class NotServable(Exception):
    """No regular file at that path (missing, a directory, a device): 404 or 403."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def relative_asset_path(raw_target: str) -> str:
    """The decoded path below /assets/ from the raw request target, or raise Refused."""
    path = raw_target.partition("?")[0].partition("#")[0]
    if not path.startswith("/") and "://" in path:  # absolute-form target: http://host/assets/...
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    if not path.startswith(PREFIX):
        raise Refused("not below /assets/")
    rel = path[len(PREFIX):]
    encoded = _ENCODED_FORBIDDEN.search(rel)
    if encoded:
        raise Refused(f"percent-encoded {encoded.group(0)!r} in the path")
    try:
        rel = unquote(rel, errors="strict")
    except UnicodeDecodeError:
        raise Refused("path is not UTF-8") from None
    if "\\" in rel or "\x00" in rel:
        raise Refused("backslash or NUL in the path")
    if rel.startswith("/"):
        raise Refused("absolute path")
    if any(part in (".", "..") for part in rel.split("/")):
        raise Refused("dot segment in the path")
    if any(part.startswith(".") for part in rel.split("/")):
        raise Refused("hidden path (the mirror's manifest, staging and lock files are not served)")
    return rel


def resolve_inside(root: str, rel: str) -> str:
    """The real path of `rel` under `root`; Refused when a symlink leads outside `root`."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, rel))
    if real != real_root and not real.startswith(real_root + os.sep):
        raise Refused("a symlink leads outside the assets folder")
    return real


def etag_for(st: os.stat_result) -> str:
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


def not_modified(headers: Any, etag: str, mtime: float) -> bool:
    """RFC 9110 §13.2.2: If-None-Match (weak comparison) wins over If-Modified-Since."""
    inm = headers.get("If-None-Match")
    if inm is not None:
        tags = [t.strip() for t in inm.split(",")]
        return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)
    ims = headers.get("If-Modified-Since")
    if ims:
        try:
            since = parsedate_to_datetime(ims).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return False
        return int(mtime) <= since
    return False


class Unsatisfiable(Exception):
    pass


_RANGE = re.compile(r"bytes=[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*$", re.IGNORECASE)  # ASCII digits only
_HUGE = 1 << 63  # larger than any file: what a position with more than 18 digits means


def _position(digits: str) -> int:
    """A byte position; thousands of digits (which int() refuses past 4,300) mean "past any end"."""
    return int(digits) if len(digits) <= 18 else _HUGE


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) for a single satisfiable range; None to send the whole file.

    Multiple ranges and malformed headers are ignored (RFC 9110 allows it): the whole file goes out.
    Raises Unsatisfiable for a well-formed range that lies past the end (416).
    """
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m:
        return None
    first, last = m.groups()
    if first:
        start = _position(first)
        if last:
            end = _position(last)
            if end < start:
                return None
            end = min(end, size - 1)
        else:
            end = size - 1
        if start >= size:
            raise Unsatisfiable
        return start, end + 1
    if not last:
        return None
    suffix = _position(last)
    if suffix == 0 or size == 0:
        raise Unsatisfiable
    return max(0, size - suffix), size


class SmallFileCache:
    """Contents of small files, keyed by real path, valid while inode, size and mtime are unchanged."""

    def __init__(self, max_file: int = 256 * 1024, budget: int = 32 * 1024 * 1024):
        self.max_file = max_file
        self.budget = budget
        self._used = 0
        self._entries: OrderedDict[str, tuple[tuple[int, int, int], bytes]] = OrderedDict()

    @staticmethod
    def _key(st: os.stat_result) -> tuple[int, int, int]:
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def get(self, real: str, st: os.stat_result) -> bytes | None:
        entry = self._entries.get(real)
        if entry is None:
            return None
        if entry[0] != self._key(st):
            self._drop(real)
            return None
        self._entries.move_to_end(real)
        return entry[1]

    def put(self, real: str, st: os.stat_result, data: bytes) -> None:
        if len(data) > self.max_file or len(data) != st.st_size:
            return
        self._drop(real)
        self._entries[real] = (self._key(st), data)
        self._used += len(data)
        while self._used > self.budget:
            self._drop(next(iter(self._entries)))

    def _drop(self, real: str) -> None:
        entry = self._entries.pop(real, None)
        if entry is not None:
            self._used -= len(entry[1])


class SentFileResponse(web.StreamResponse):
    """A response whose body went out by sendfile, past aiohttp's writer: reports the real length."""

    sent = 0

    @property
    def body_length(self) -> int:
        return self.sent


class AssetsHandler:
    """Serves the `folder`; tells the runtime of every fetch (`asset_fetched`) for the timeline."""

    def __init__(self, runtime: Any, folder: str | os.PathLike, cache: SmallFileCache | None = None):
        self.runtime = runtime
        self.folder = str(folder)
        self.cache = cache or SmallFileCache()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            real = resolve_inside(self.folder, relative_asset_path(request.raw_path))
        except Refused as exc:
            REFUSED.inc()
            log.warning("refused asset request %r from %s: %s", request.raw_path, request.remote, exc.reason)
            return web.Response(status=403, text=f"refused: {exc.reason}\n")
        try:
            response, sent = await self._serve(request, real)
        except NotServable as exc:
            return web.Response(status=exc.status, text=f"{exc.reason}\n")
        try:
            await self._observe(request, real, response.status, sent)
        except StoreError as exc:  # the file went out; a store outage must not turn that into a 500
            log.warning("asset %s to %s: not recorded on the machine's timeline: %s", request.path,
                        request.remote, exc)
        return response

    async def _serve(self, request: web.Request, real: str) -> tuple[web.StreamResponse, int]:
        st = _stat(real)
        data = self.cache.get(real, st)
        fd = None
        if data is None:
            fd, st = _open(real)
            if st.st_size <= self.cache.max_file:
                try:
                    data = os.pread(fd, st.st_size, 0)
                finally:
                    os.close(fd)
                    fd = None
                self.cache.put(real, st, data)
        try:
            return await self._respond(request, real, st, data, fd)
        finally:
            if fd is not None:
                os.close(fd)

    async def _respond(self, request: web.Request, real: str, st: os.stat_result, data: bytes | None,
                       fd: int | None) -> tuple[web.StreamResponse, int]:
        etag = etag_for(st)
        last_modified = formatdate(st.st_mtime, usegmt=True)
        headers = {"ETag": etag, "Last-Modified": last_modified, "Accept-Ranges": "bytes"}
        if not_modified(request.headers, etag, st.st_mtime):
            return web.Response(status=304, headers=headers), 0
        size = st.st_size
        range_header = request.headers.get("Range")
        if_range = request.headers.get("If-Range")
        if range_header and if_range and if_range.strip() not in (etag, last_modified):
            range_header = None  # the client's copy is stale: send it the whole new file
        try:
            span = byte_range(range_header, size)
        except Unsatisfiable:
            headers["Content-Range"] = f"bytes */{size}"
            return web.Response(status=416, headers=headers), 0
        status, start, end = 200, 0, size
        if span is not None:
            status, (start, end) = 206, span
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Type"] = mimetypes.guess_type(real)[0] or "application/octet-stream"
        length = end - start
        head = request.method == "HEAD"
        if data is not None:
            # aiohttp derives Content-Length from the body and leaves the body out for HEAD
            response = web.Response(status=status, headers=headers, body=data[start:end])
            BYTES_SENT.inc(0 if head else length)
            return response, 0 if head else length
        response = SentFileResponse(status=status, headers=headers)
        response.content_length = length
        OPEN_TRANSFERS.inc()
        try:
            await response.prepare(request)
            sent = 0
            if not head and length:
                try:
                    sent = response.sent = await sendfile(request.transport, fd, start, length)
                except TransferAborted as exc:
                    response.sent = exc.sent
                    # Normal when firmware gives up or a user hits Ctrl-C: not a server error.
                    log.info("asset %s: client %s went away after %d of %d bytes (%s)",
                             request.path, request.remote, exc.sent, length, exc)
                    if request.transport is not None:
                        request.transport.close()
                    return response, exc.sent
            await response.write_eof()
        finally:
            OPEN_TRANSFERS.dec()
        return response, sent

    async def _observe(self, request: web.Request, real: str, status: int, sent: int) -> None:
        """Tell the runtime who fetched what. The machine is named by `?mac=` or, as iPXE asks for
        kernels without one, by its address (the runtime learnt it from DHCP or /ipxe)."""
        raw = request.query.get("mac")
        try:
            mac = normalize_mac(raw) if raw else None
        except MacError:
            return
        rel = relative_asset_path(request.raw_path)
        record = await self.runtime.asset_fetched(mac, request.remote, rel, {
            "file": os.path.relpath(real, os.path.realpath(self.folder)), "status": status, "bytes": sent,
            "method": request.method})
        if record is not None:
            request[MAC], request[MACHINE] = record.mac, record.name or "unknown"  # for the access log


def _refusal(exc: OSError) -> NotServable:
    """The answer for a file the OS would not give us."""
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return NotServable(404, "not found")
    if isinstance(exc, PermissionError):
        return NotServable(403, "not readable")
    return NotServable(404, f"not found ({exc.strerror})")  # a name too long, a symlink loop: no such file


def _stat(real: str) -> os.stat_result:
    try:
        return os.stat(real)
    except OSError as exc:
        raise _refusal(exc) from None


def _open(real: str) -> tuple[int, os.stat_result]:
    """Open for reading (never blocking on a FIFO) and return the fd with its own stat."""
    try:
        fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise _refusal(exc) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotServable(404, "not a file (directories are not listed)")
    return fd, st


def add_routes(app: web.Application, runtime: Any, settings: Any) -> None:
    """Register GET and HEAD /assets/{path} on `app`, serving the `assets` folder of the settings."""
    handler = AssetsHandler(runtime, settings.assets)
    app.router.add_route("GET", "/assets/{path:.*}", handler.handle)
    app.router.add_route("HEAD", "/assets/{path:.*}", handler.handle)
