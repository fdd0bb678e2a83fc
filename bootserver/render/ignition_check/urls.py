"""URLs as Ignition parses them: Go's url.Parse, S3 ARNs and version ids, RFC 2397 data URLs."""

from __future__ import annotations

import base64
import re


_GO_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def go_url_scheme(value: str) -> str | None:
    """The lower-cased scheme ("" for none) if Go's url.Parse accepts `value`, else None."""
    if _CONTROL.search(value) or value.startswith(":"):
        return None
    found = _GO_SCHEME.match(value)
    scheme = found.group(1).lower() if found else ""
    rest = value[found.end():] if found else value
    if not found and ":" in rest.split("/", 1)[0]:
        return None  # "first path segment in URL cannot contain colon"
    before_fragment, _, fragment = rest.partition("#")
    opaque = bool(found) and not rest.startswith("/")  # "data:,…": Go keeps it as it is
    if _BAD_ESCAPE.search(fragment) or (not opaque and _BAD_ESCAPE.search(before_fragment.split("?", 1)[0])):
        return None
    if rest.startswith("//"):
        authority = rest[2:].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rpartition("@")[2]
        if authority.startswith("["):
            if "]" not in authority:
                return None
            port = authority.split("]", 1)[1]
        else:
            port = authority[authority.index(":"):] if ":" in authority else ""
        if port and not re.fullmatch(r":[0-9]*", port):
            return None
    return scheme


def s3_version_problem(url: str) -> str | None:
    query = url.partition("?")[2].partition("#")[0]
    for pair in query.split("&") if query else ():
        key, _, value = pair.partition("=")
        if key == "versionId" and not value:
            return "invalid S3 object VersionId"
    return None


def s3_arn_problem(url: str) -> str | None:
    """arn:PARTITION:s3:REGION:ACCOUNT:bucket/key or …:accesspoint/NAME/object/key (Ignition 3.4)."""
    arn = url.partition("?")[0]
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[2] != "s3":
        return "invalid S3 ARN format"
    segments = arn.split("/")
    if len(segments) < (3 if parts[5].startswith("accesspoint/") else 2):
        return "invalid S3 ARN format"
    return None


_DATA_CHARS = re.compile(r"^[A-Za-z0-9\-_.!~*'();/?:@&=+$,%\[\]#]*$")
_TOKEN = re.compile(r"^[!#$&'*+.^_`|~0-9A-Za-z-]+$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/=]*$")


def data_url_problem(url: str) -> str | None:
    """What Ignition's data URL decoder (vincent-petithory/dataurl) says about `url`, or None."""
    header, comma, payload = url[len("data:"):].partition(",")
    if not comma:
        return "missing data prefix"
    media, *params = header.split(";")
    if media and not (media.count("/") == 1 and all(_TOKEN.match(part) for part in media.split("/"))):
        return "invalid character for media type"
    is_base64 = bool(params) and params[-1] == "base64"
    for param in params[:-1] if is_base64 else params:
        attribute, equals, value = param.partition("=")
        if not equals or not _TOKEN.match(attribute):
            return "invalid character for parameter attribute"
        if not value:
            return "invalid character for parameter value"
    if is_base64:
        if not _BASE64.match(payload):
            return "invalid data character"
        try:
            base64.b64decode(payload, validate=True)
        except ValueError:
            return f"illegal base64 data at input byte {len(payload) - len(payload) % 4}"
        return None
    if not _DATA_CHARS.match(payload):
        return "invalid data character"
    at = payload.find("%")
    while at >= 0:
        for digit in payload[at + 1:at + 3]:
            if digit not in "0123456789abcdefABCDEF":
                return "rfc2396: invalid char 0x25 in unescape sequence"  # sic: the escape's '%'
        if len(payload) - at < 3:
            return "rfc2396: unexpected end of unescape sequence"
        at = payload.find("%", at + 3)
    return None
