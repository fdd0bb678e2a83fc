"""The validated, immutable catalog: what operators declared, in plain frozen data."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import netaddr

EMPTY: Mapping[str, Any] = MappingProxyType({})

#: Canonical architecture names used in catalogs (Group selectors), requests, the CLI and the store.
ARCHES = ("x86_64-bios", "x86_64-efi", "i386-efi", "arm64-efi")


@dataclass(frozen=True)
class Source:
    """Where a document came from, for messages and logs."""

    file: Path
    line: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Problem:
    file: Path
    line: int
    column: int | None
    document: str  # "Machine node1" or "document 2"
    field: str  # "spec.boot.kernel" ("" for the whole document)
    message: str
    severity: str = "error"  # error | warning

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" + (f":{self.column}" if self.column else "")
        what = f" {self.field}:" if self.field else ""
        return f"{where}: {self.severity}: {self.document}:{what} {self.message}"


@dataclass(frozen=True)
class BootSpec:
    kernel: str
    initrd: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    loader: str = "ipxe"  # ipxe | grub (Debian's signed shim + GRUB, for Secure Boot): docs/secure-boot.md


@dataclass(frozen=True)
class IgnitionSpec:
    butane: Path | None = None  # Jinja2-templated Butane, absolute path
    config: Path | None = None  # ready Ignition JSON served as is, absolute path


@dataclass(frozen=True)
class Window:
    """A daily maintenance window in UTC: `length_minutes` from `start_minute`, on `days` (all if empty)."""

    start_minute: int
    length_minutes: int
    days: tuple[str, ...] = ()  # mon, tue, ... as strftime("%a").lower() spells them

    def describe(self) -> str:
        start = f"{self.start_minute // 60:02d}:{self.start_minute % 60:02d}"
        return f"{start} UTC for {self.length_minutes} min" + (f" on {', '.join(self.days)}" if self.days else "")


@dataclass(frozen=True)
class UpdatePolicy:
    """A Profile's or Group's Flatcar updates: what to follow and how fast to roll it out."""

    enabled: bool = True
    channel: str = "stable"  # follow flatcar/<arch>/<channel>/current in the mirror ...
    version: str | None = None  # ... or pin this release
    group: str | None = None  # GROUP in update.conf (update_engine's track); default: the channel
    max_updating: int | None = None  # machines in an update at once (None: no limit)
    max_per_hour: int | None = None  # offers per rolling hour
    window: Window | None = None

    @property
    def track(self) -> str:
        return self.group or self.channel


@dataclass(frozen=True)
class Profile:
    name: str
    boot: BootSpec
    source: Source
    ignition: IgnitionSpec | None = None
    after_install: str = "none"  # none | local-disk
    final_profile: str | None = None  # whose Ignition an installer writes to disk (/ignition?stage=final)
    metadata: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    updates: UpdatePolicy | None = None


@dataclass(frozen=True)
class Machine:
    name: str
    mac: str
    profile: str
    source: Source
    metadata: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    loader: str | None = None  # overrides the profile's boot.loader
    arch: str | None = None  # what the machine is (ARCHES), declared so validation can check its kernel


@dataclass(frozen=True)
class Selector:
    mac_prefix: str | None = None
    arch: str | None = None
    subnet: netaddr.IPNetwork | None = None
    uuid: str | None = None
    labels: Mapping[str, str] = field(default_factory=lambda: EMPTY)

    @functools.cached_property
    def size(self) -> int:
        """How many keys the selector sets: more keys = more specific."""
        return sum(v is not None for v in (self.mac_prefix, self.arch, self.subnet, self.uuid)) + len(self.labels)

    def can_tie(self, other: "Selector") -> bool:
        """True when some request could match both selectors (their keys do not contradict)."""
        a, b = self, other
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


@dataclass(frozen=True)
class Group:
    name: str
    selector: Selector
    profile: str
    source: Source
    metadata: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    updates: UpdatePolicy | None = None
    loader: str | None = None  # overrides the profile's boot.loader


@dataclass(frozen=True)
class Catalog:
    root: Path
    profiles: Mapping[str, Profile] = field(default_factory=lambda: EMPTY)
    machines: Mapping[str, Machine] = field(default_factory=lambda: EMPTY)  # by name
    groups: tuple[Group, ...] = ()
    by_mac: Mapping[str, Machine] = field(default_factory=lambda: EMPTY)
    generation: int = 0  # bumped on every successful load
    warnings: tuple[Problem, ...] = field(default=(), compare=False)
