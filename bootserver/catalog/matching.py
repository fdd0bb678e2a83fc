"""Matching a `BootRequest` against the catalog: pure functions, no I/O.

A Machine whose MAC matches wins. Otherwise the Group whose selector matches with the most keys
wins (a tie is rejected when the catalog loads). Metadata layers: profile < group < machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

import netaddr

from bootserver.boot.request import BootRequest
from bootserver.catalog.model import Catalog, Group, Machine, Profile, Selector


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

    @property
    def why(self) -> str:
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
        if not request.client_ip:
            return False
        try:
            if netaddr.IPAddress(request.client_ip) not in selector.subnet:
                return False
        except (netaddr.AddrFormatError, ValueError):
            return False
    if selector.uuid is not None and (request.uuid or "").lower() != selector.uuid:
        return False
    return all(request.labels.get(k) == v for k, v in selector.labels.items())


def selectors_can_tie(a: Selector, b: Selector) -> bool:
    """True when some request could match both selectors (their keys do not contradict)."""
    if a.mac_prefix and b.mac_prefix and not (a.mac_prefix.startswith(b.mac_prefix)
                                              or b.mac_prefix.startswith(a.mac_prefix)):
        return False
    if a.arch and b.arch and a.arch != b.arch:
        return False
    if a.subnet is not None and b.subnet is not None and not (a.subnet in b.subnet or b.subnet in a.subnet):
        return False
    if a.uuid and b.uuid and a.uuid != b.uuid:
        return False
    return all(b.labels.get(k, v) == v for k, v in a.labels.items())


def best_group(catalog: Catalog, request: BootRequest) -> Group | None:
    candidates = [g for g in catalog.groups if selector_matches(g.selector, request)]
    return max(candidates, key=lambda g: g.selector.size, default=None)


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


def match(catalog: Catalog, request: BootRequest, fallback_profile: str | None = None) -> Match | None:
    """The match for `request`, or None. `fallback_profile` serves MACs nothing else matches."""
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
    metadata = deep_merge(profile.metadata, group.metadata if group else {})
    metadata = deep_merge(metadata, machine.metadata if machine else {})
    return Match(profile=profile, metadata=_frozen(metadata), machine=machine, group=group)
