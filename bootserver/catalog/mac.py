"""MAC address spellings: every common one in, one canonical form out."""

from __future__ import annotations

import re

import netaddr

_PREFIX_SPLIT = re.compile(r"[:\-.]")
_SPELLINGS = re.compile(r"(?i)(?:[0-9a-f]{2}:){5}[0-9a-f]{2}|(?:[0-9a-f]{2}-){5}[0-9a-f]{2}"
                        r"|[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}|[0-9a-f]{12}")


_CANONICAL = re.compile(r"(?i)(?:[0-9a-f]{2}:){5}[0-9a-f]{2}")  # the form every request uses


class MacError(ValueError):
    pass


def normalize_mac(value: object) -> str:
    """Return `aa:bb:cc:dd:ee:ff` for any common spelling (colons, hyphens, Cisco dots, bare hex)."""
    text = str(value).strip()
    if _CANONICAL.fullmatch(text):  # already colon form: only the case may differ (the hot path)
        return text.lower()
    if not _SPELLINGS.fullmatch(text):
        raise MacError(f"{value!r} is not a MAC address")
    try:
        mac = netaddr.EUI(text, version=48)
    except (netaddr.AddrFormatError, TypeError, ValueError):
        raise MacError(f"{value!r} is not a MAC address") from None
    mac.dialect = netaddr.mac_unix_expanded
    return str(mac)


def normalize_mac_prefix(value: object) -> str:
    """Return a lower-case colon form of a whole-octet MAC prefix (`52:54:00`)."""
    text = str(value).strip().lower()
    digits = _PREFIX_SPLIT.sub("", text)
    if not digits or len(digits) % 2 or len(digits) > 12 or not re.fullmatch(r"[0-9a-f]+", digits):
        raise MacError(f"{value!r} is not a MAC prefix (whole octets, e.g. 52:54:00)")
    if re.search(r"[:\-.]", text):
        groups = _PREFIX_SPLIT.split(text)
        if any(len(g) not in (2, 4) for g in groups):
            raise MacError(f"{value!r} is not a MAC prefix (whole octets, e.g. 52:54:00)")
    return ":".join(digits[i:i + 2] for i in range(0, len(digits), 2))


def mac_spellings(mac: str) -> dict[str, str]:
    """The spellings templates and scripts commonly need."""
    plain = mac.replace(":", "")
    return {"mac": mac, "mac_hyphen": mac.replace(":", "-"), "mac_plain": plain,
            "mac_upper": mac.upper()}
