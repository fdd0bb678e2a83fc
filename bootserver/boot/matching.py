"""Matching a `BootRequest` against the catalog: pure functions, no I/O.

A Machine whose MAC matches wins. Otherwise the Group whose selector matches with the most keys
wins (a tie is rejected when the catalog loads). Metadata layers: profile < group < machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any, Mapping

import netaddr

from bootserver.boot.request import BootRequest
from bootserver.catalog.model import Catalog, Group, Machine, Profile, Selector
from bootserver.config import Settings


@dataclass(frozen=True)
class Match:
    profile: Profile
    metadata: Mapping[str, Any]
    machine: Machine | None = None
    group: Group | None = None

    @property
    def name(self) -> str:
        """The machine's name, else the group's: what logs and templates call this machine."""
        if self.machine is not None:
            return self.machine.name
        return self.group.name if self.group is not None else self.profile.name

    @cached_property
    def why(self) -> str:
        """Why it matched, for logs and the timeline (every answer's reason: one string per shared Match)."""
        if self.machine is not None:
            return f"Machine {self.machine.name} (MAC {self.machine.mac})"
        if self.group is not None:
            return f"Group {self.group.name} (selector with {self.group.selector.size} key(s))"
        return f"unknown MAC served unknown_profile {self.profile.name}"


def selector_matches(selector: Selector, request: BootRequest) -> bool:
    if selector.mac_prefix is not None and not request.mac.startswith(selector.mac_prefix):
        return False
    if selector.arch is not None and request.arch != selector.arch:
        return False
    if selector.subnet is not None:
        address = request.subnet_address
        if not address:
            return False
        try:
            if netaddr.IPAddress(address) not in selector.subnet:
                return False
        except (netaddr.AddrFormatError, ValueError):
            return False
    if selector.uuid is not None and (request.uuid or "").lower() != selector.uuid:
        return False
    return not selector.labels or all(request.labels.get(k) == v for k, v in selector.labels.items())


def best_group(catalog: Catalog, request: BootRequest) -> Group | None:
    """The matching Group with the largest selector (the first of those, as max() would pick)."""
    best, size = None, -1
    for group in catalog.groups:
        selector = group.selector
        if selector.size > size and selector_matches(selector, request):
            best, size = group, selector.size
    return best


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` wins; nested mappings merge key by key; lists and scalars are replaced whole."""
    out: dict[str, Any] = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _frozen(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    return value


Entries = tuple[Profile, Machine | None, Group | None]


def match_entries(catalog: Catalog, request: BootRequest, fallback_profile: str | None = None) -> Entries | None:
    """The catalog entries that match `request` (profile, Machine, Group), or None. `fallback_profile`
    serves MACs nothing else matches."""
    machine = catalog.by_mac.get(request.mac)
    group = best_group(catalog, request)
    if machine is not None:
        profile = catalog.profiles[machine.profile]
    elif group is not None:
        profile = catalog.profiles[group.profile]
    elif fallback_profile is not None and fallback_profile in catalog.profiles:
        profile = catalog.profiles[fallback_profile]
    else:
        return None
    return profile, machine, group


def match_of(profile: Profile, machine: Machine | None, group: Group | None) -> Match:
    """The Match of these entries: metadata layered profile < group < machine. It names no MAC, so
    every machine with the same entries can share one."""
    metadata = deep_merge(profile.metadata, group.metadata if group else {})
    metadata = deep_merge(metadata, machine.metadata if machine else {})
    return Match(profile=profile, metadata=_frozen(metadata), machine=machine, group=group)


def match(catalog: Catalog, request: BootRequest, fallback_profile: str | None = None) -> Match | None:
    """The match for `request`, or None. `fallback_profile` serves MACs nothing else matches."""
    entries = match_entries(catalog, request, fallback_profile)
    return None if entries is None else match_of(*entries)


def fallback_for(settings: Settings) -> str | None:
    """The server's unknown-machine rule: with `unknown_machines: discover`, an unknown MAC gets
    `unknown_profile` (when set); with `ignore`, nothing. The one place it is applied."""
    return settings.unknown_profile if settings.unknown_machines == "discover" else None


def match_for(catalog: Catalog, request: BootRequest, settings: Settings) -> Match | None:
    """The match under the server's unknown-machine rule (fallback_for)."""
    return match(catalog, request, fallback_for(settings))


def named_by_catalog(found: Match | None) -> bool:
    """A Machine entry of the catalog: their number is the catalog's, so their records are never held back."""
    return found is not None and found.machine is not None
