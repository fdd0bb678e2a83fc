"""The walk over an Ignition config: each section checked as Ignition checks it, with its messages."""

from __future__ import annotations

import json
import re

from ..report import Path, Report
from .storage import clean_path, hard_link_target, overlapping_partition, partition_key
from .units import parse_unit
from .urls import data_url_problem, go_url_scheme, s3_arn_problem, s3_version_problem

KNOWN_VERSIONS = frozenset(("3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.4.0-experimental"))
DUPLICATE = "duplicate entry defined"
_SCHEMES = frozenset(("http", "https", "tftp", "gs", "s3", "data"))  # no oem://: Ignition 2.14 refuses it
_HASH_SIZES = {"sha512": 128, "sha256": 64}
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_FORMATS = frozenset(("ext4", "btrfs", "xfs", "vfat", "swap", "none"))
_LABEL_MAX = {"ext4": 16, "btrfs": 256, "xfs": 12, "swap": 15, "vfat": 11}
_RAID_LEVELS = frozenset(("linear", "raid0", "raid1", "raid4", "raid5", "raid6", "raid10"))
_UNIT_TYPES = frozenset((
    ".service", ".socket", ".device", ".mount", ".automount", ".swap", ".target",
    ".path", ".timer", ".snapshot", ".slice", ".scope",
))


def check(config: dict) -> Report:
    """Every error and warning Ignition would report about `config` (a parsed Ignition JSON object)."""
    return _Checker(config).run()


class _Checker:
    def __init__(self, config: dict):
        self.config = config
        self.report = Report()
        ignition = config.get("ignition")
        self.version = ignition.get("version") if isinstance(ignition, dict) else None

    def run(self) -> Report:
        config = self.config
        if not isinstance(config.get("ignition"), dict):
            self.report.error(("ignition", "version"), "invalid config version (couldn't parse)")
            return self.report
        self.ignition(config["ignition"])
        self.storage(config.get("storage") or {})
        self.systemd(config.get("systemd") or {})
        self.passwd(config.get("passwd") or {})
        self.kernel_arguments(config.get("kernelArguments") or {})
        return self.report

    # helpers ----------------------------------------------------------------------------------
    def error(self, path: Path, message: str) -> None:
        self.report.error(path, message)

    def dups(self, items, path: Path, key, shared: dict | None = None) -> None:
        """Ignition's duplicate check: a later item with the key of an earlier one (in `shared` lists too)."""
        seen = {} if shared is None else shared
        for index, item in enumerate(items):
            k = key(item)
            if k in seen:
                self.error(path + (index,), DUPLICATE)
            seen[k] = True

    def path(self, value, where: Path) -> None:
        if not value:
            self.error(where, "path not specified")
        elif not value.startswith("/"):
            self.error(where, "path not absolute")
        elif clean_path(value) != value:
            self.error(where, "path is not fully simplified")

    def url(self, value: str, where: Path, quiet: bool = False) -> str | None:
        """The scheme of a valid URL, else None (error recorded unless quiet)."""
        scheme = go_url_scheme(value)
        if scheme is None:
            problem = "unable to parse url"
        else:
            if scheme == "arn" and self.version not in ("3.0.0", "3.1.0", "3.2.0", "3.3.0"):
                problem = s3_arn_problem(value) or s3_version_problem(value)
            elif scheme not in _SCHEMES:
                problem = "invalid url scheme"
            elif scheme == "data":
                problem = data_url_problem(value)
            elif scheme == "s3":
                problem = s3_version_problem(value)
            else:
                problem = None
            if problem is None:
                return scheme
        if not quiet:
            self.error(where, problem)
        return None

    def resource(self, res: dict, where: Path, source_required: bool = False) -> None:
        if not isinstance(res, dict):
            return
        source = res.get("source")
        scheme = self.url(source, where + ("source",)) if source else None
        if source_required:  # merged configs and CAs: the item itself is reported too
            if not source:
                self.error(where, "source is required")
            elif scheme is None:
                self.url(source, where)
        compression = res.get("compression")
        if compression not in (None, "", "gzip"):
            self.error(where + ("compression",), "invalid compression method")
        digest = (res.get("verification") or {}).get("hash")
        if digest is not None:
            hash_path = where + ("verification", "hash")
            if source is None:  # an empty source is "specified" here
                self.error(hash_path, "source must be specified if verification is specified")
            function, sep, hexsum = digest.partition("-")
            if not sep:
                self.error(hash_path, "malformed hash specifier")
            elif function not in _HASH_SIZES:
                self.error(hash_path, "unrecognized hash function")
            elif len(hexsum) != _HASH_SIZES[function]:  # Ignition checks the length, not the digits
                self.error(hash_path, "incorrect size for hash sum")
        headers = res.get("httpHeaders") or []
        if headers:
            header_scheme = go_url_scheme(source) if source else None
            if header_scheme is None:
                self.error(where + ("httpHeaders",), "unable to parse url")
            elif header_scheme not in ("http", "https"):
                self.error(where + ("httpHeaders",), "cannot use HTTP headers with this source scheme")
            for index, header in enumerate(headers):
                if not header.get("name"):
                    self.error(where + ("httpHeaders", index, "name"), "HTTP header name can't be empty")
                if header.get("value") == "":
                    self.error(where + ("httpHeaders", index, "value"), "unable to parse HTTP header")
            self.dups(headers, where + ("httpHeaders",), lambda h: h.get("name"))

    def mode(self, mode, where: Path) -> None:
        if mode is None:
            return
        if not isinstance(mode, int) or mode < 0 or mode > 0o7777:
            self.error(where, "illegal file mode")
        if isinstance(mode, int) and mode & 0o7000 and self.version in ("3.0.0", "3.1.0", "3.2.0", "3.3.0"):
            self.report.warn(where, "setuid/setgid/sticky bits are not supported in spec versions older than 3.4.0")

    def owner(self, node: dict, where: Path) -> None:
        for key in ("user", "group"):
            who = node.get(key) or {}
            if who.get("id") is not None and who.get("name"):
                self.error(where + (key,), "cannot set both id and name")

    # sections ---------------------------------------------------------------------------------
    def ignition(self, ign: dict) -> None:
        version = ign.get("version")
        if version not in KNOWN_VERSIONS:
            message = "unsupported config version" if re.match(r"^\d+\.\d+\.\d+", str(version)) else \
                "invalid config version (couldn't parse)"
            self.error(("ignition", "version"), message)
        cfg = ign.get("config") or {}
        for index, res in enumerate(cfg.get("merge") or []):
            self.resource(res, ("ignition", "config", "merge", index), source_required=True)
        self.dups(cfg.get("merge") or [], ("ignition", "config", "merge"), lambda r: r.get("source") or "")
        if cfg.get("replace"):
            self.resource(cfg["replace"], ("ignition", "config", "replace"))
        authorities = ((ign.get("security") or {}).get("tls") or {}).get("certificateAuthorities") or []
        for index, res in enumerate(authorities):
            self.resource(res, ("ignition", "security", "tls", "certificateAuthorities", index), source_required=True)
        self.dups(authorities, ("ignition", "security", "tls", "certificateAuthorities"),
                  lambda r: r.get("source") or "")
        proxy = ign.get("proxy") or {}
        self.dups(proxy.get("noProxy") or [], ("ignition", "proxy", "noProxy"), lambda item: item)
        for key in ("httpProxy", "httpsProxy"):
            if proxy.get(key) is not None:
                scheme = go_url_scheme(proxy[key])
                if scheme is None:
                    self.error(("ignition", "proxy", key), "unable to parse url")
                    continue
                if scheme not in ("http", "https"):
                    self.error(("ignition", "proxy", key), "proxies must be http(s)")
                elif key == "httpsProxy" and scheme == "http":
                    self.report.warn(("ignition", "proxy", key),
                                     "insecure plaintext HTTP proxy specified for HTTPS resources")

    def storage(self, storage: dict) -> None:
        base: Path = ("storage",)
        link_paths = [link.get("path") or "" for link in storage.get("links") or []]
        directories = {d.get("path") for d in storage.get("directories") or []}
        nodes = {}
        for kind, noun in (("directories", "directory"), ("files", "file"), ("links", "link")):
            for index, node in enumerate(storage.get(kind) or []):
                where = base + (kind, index)
                self.path(node.get("path"), where + ("path",))
                self.owner(node, where)
                if kind != "links":
                    self.mode(node.get("mode"), where + ("mode",))
                if kind == "files":
                    contents = node.get("contents") or {}
                    self.resource(contents, where + ("contents",))
                    for i, res in enumerate(node.get("append") or []):
                        self.resource(res, where + ("append", i))
                    if node.get("overwrite") and contents.get("source") is None:
                        self.error(where + ("overwrite",), "overwrite must be false if source is unspecified")
                if kind == "links" and not node.get("target"):
                    self.error(where + ("target",), "link target is required")
                if (kind == "links" and node.get("hard") and node.get("target") is not None
                        and hard_link_target(node) in directories):
                    self.error(where, "hard link target is a directory")
                own = node.get("path") or ""
                for link in link_paths:  # as Ignition checks it: hard links and empty paths included
                    if own.startswith(link + "/"):
                        self.error(where, f"{noun} path includes link in config")
            self.dups(storage.get(kind) or [], base + (kind,), lambda n: n.get("path"), shared=nodes)
        for index, fs in enumerate(storage.get("filesystems") or []):
            self.filesystem(fs, base + ("filesystems", index))
        self.dups(storage.get("filesystems") or [], base + ("filesystems",), lambda f: f.get("device"))
        for index, disk in enumerate(storage.get("disks") or []):
            self.disk(disk, base + ("disks", index))
        self.dups(storage.get("disks") or [], base + ("disks",), lambda d: d.get("device"))
        for index, raid in enumerate(storage.get("raid") or []):
            where = base + ("raid", index)
            if not raid.get("level"):
                self.error(where + ("level",), "raid level is required")
            elif raid["level"] not in _RAID_LEVELS:
                self.error(where + ("level",), "unrecognized raid level")
            elif raid.get("spares") and raid.get("level") in ("linear", "raid0"):
                self.error(where + ("level",), "spares unsupported for linear and raid0 arrays")
            if not raid.get("devices"):
                self.error(where + ("devices",), "raid devices required")
            for i, device in enumerate(raid.get("devices") or []):
                self.path(device, where + ("devices", i))
            self.dups(raid.get("devices") or [], where + ("devices",), lambda d: d)
        self.dups(storage.get("raid") or [], base + ("raid",), lambda r: r.get("name"))
        for index, luks in enumerate(storage.get("luks") or []):
            where = base + ("luks", index)
            if not luks.get("device"):
                self.error(where + ("device",), "disk device is required")
            else:
                self.path(luks["device"], where + ("device",))
            key_file = luks.get("keyFile") or {}
            self.resource(key_file, where + ("keyFile",))
            if key_file.get("source") and self.url(key_file["source"], (), quiet=True) is None:
                self.error(where + ("keys",), "invalid key-file source")
            if "/" in (luks.get("name") or ""):
                self.error(where + ("name",), "device names cannot contain slashes")
            self.clevis(luks.get("clevis") or {}, where + ("clevis",))
        self.dups(storage.get("luks") or [], base + ("luks",), lambda l: l.get("name"))

    def clevis(self, clevis: dict, where: Path) -> None:
        tangs = clevis.get("tang") or []
        for i, tang in enumerate(tangs):
            scheme = go_url_scheme(tang.get("url") or "")
            if scheme is None:
                self.error(where + ("tang", i, "url"), "unable to parse url")
            elif scheme not in ("http", "https"):
                self.error(where + ("tang", i, "url"), "invalid url scheme")
            if not tang.get("thumbprint"):
                self.error(where + ("tang", i, "thumbprint"), "thumbprint is required")
        self.dups(tangs, where + ("tang",), lambda t: t.get("url") or "")
        custom = clevis.get("custom") or {}
        if not (custom.get("pin") or custom.get("config") or custom.get("needsNetwork")):
            return
        if custom.get("pin") and (clevis.get("tpm2") or tangs or clevis.get("threshold")):
            self.error(where, "cannot use custom clevis config with tpm2, tang, or threshold")
        if not custom.get("pin"):
            self.error(where + ("custom", "pin"), "missing required custom clevis pin")
        elif custom["pin"] not in ("tpm2", "tang", "sss"):
            self.error(where + ("custom", "pin"), "unsupported clevis pin")
        if not custom.get("config"):
            self.error(where + ("custom", "config"), "missing required custom clevis config")

    def filesystem(self, fs: dict, where: Path) -> None:
        self.path(fs.get("device"), where + ("device",))
        fmt = fs.get("format")
        if fs.get("path"):
            self.path(fs["path"], where + ("path",))
        if fmt:
            if fmt not in _FORMATS:
                self.error(where + ("format",), "invalid filesystem format")
            label = fs.get("label")
            if label and fmt in _LABEL_MAX and len(label) > _LABEL_MAX[fmt]:
                self.error(where + ("label",), f"filesystem labels cannot be longer than {_LABEL_MAX[fmt]} "
                                               f"characters when using {fmt}")
        else:
            if any(fs.get(k) for k in ("path", "label", "uuid", "wipeFilesystem", "options", "mountOptions")):
                self.error(where + ("format",), "format cannot be empty when path, label, uuid, wipeFilesystem, "
                                                "options, or mountOptions is specified")
            if fs.get("label"):
                self.error(where + ("label",), "filesystem must specify format if label is specified")

    def disk(self, disk: dict, where: Path) -> None:
        if not disk.get("device"):
            self.error(where + ("device",), "disk device is required")
        else:
            self.path(disk["device"], where + ("device",))
        parts = disk.get("partitions") or []
        for index, part in enumerate(parts):
            here = where + ("partitions", index)
            label = part.get("label")
            if label is not None:
                if len(label) > 36:
                    self.error(here + ("label",), "partition labels may not exceed 36 characters")
                elif ":" in label:
                    self.error(here + ("label",), "partition label will be truncated to text before the colon")
            for key in ("guid", "typeGuid"):
                if part.get(key) and not _GUID.match(part[key]):
                    self.error(here + (key,), 'doesn\'t match the form "01234567-89AB-CDEF-EDCB-A98765432101"')
            if not part.get("number") and label is None:
                self.error(here, "a partition number >= 1 or a label must be specified")
            if part.get("shouldExist") is False and (any(part.get(k) for k in ("typeGuid", "guid")) or any(
                    part.get(k) is not None for k in ("label", "sizeMiB", "startMiB"))):
                self.error(here, "shouldExist specified false with other options also specified")
        self.dups(parts, where + ("partitions",), partition_key)
        if not disk.get("device"):  # Ignition checks the partitions as a set only on a named disk
            return
        numbers: dict[int, list[int]] = {}
        for index, part in enumerate(parts):
            if part.get("number"):
                numbers.setdefault(part["number"], []).append(index)
        collision = next((indexes[1] for indexes in numbers.values() if len(indexes) > 1), None)
        if collision is not None:
            self.error(where + ("partitions", collision), "partition numbers collide")
        overlap = overlapping_partition(parts)
        if overlap is not None:
            self.error(where + ("partitions", overlap), "partitions overlap")
        if any(p.get("shouldExist") is False for p in parts) and any(not p.get("number") for p in parts):
            self.error(where + ("partitions",),
                       "shouldExist is false for a partition and other partition(s) has start or size 0")
        labels: set[str] = set()
        for index, part in enumerate(parts):
            if part.get("label") is not None:
                if part["label"] in labels:
                    self.error(where + ("partitions", index), "cannot use the same partition label twice")
                labels.add(part["label"])

    def systemd(self, systemd: dict) -> None:
        units = systemd.get("units") or []
        for index, unit in enumerate(units):
            where = ("systemd", "units", index)
            name = unit.get("name") or ""
            if name[name.rfind("."):] not in _UNIT_TYPES or "/" in name[name.rfind("."):]:  # Go's path.Ext
                self.error(where + ("name",), "invalid systemd unit extension")
            contents = unit.get("contents")
            sections = None
            if contents:
                problem, sections = parse_unit(contents)
                if problem:
                    self.error(where + ("contents",), f"invalid unit content: {problem}")
            if unit.get("enabled") and contents and sections is not None and "Install" not in sections:
                self.report.warn(where + ("contents",),
                                 f"unit {json.dumps(name, ensure_ascii=False)} is enabled, but has no install "
                                 "section so enable does nothing")
            for i, dropin in enumerate(unit.get("dropins") or []):
                if not (dropin.get("name") or "").endswith(".conf"):
                    self.error(where + ("dropins", i, "name"), "invalid systemd drop-in extension")
                if dropin.get("contents"):
                    problem, _ = parse_unit(dropin["contents"])
                    if problem:
                        self.error(where + ("dropins", i, "contents"), f"invalid unit content: {problem}")
            self.dups(unit.get("dropins") or [], where + ("dropins",), lambda d: d.get("name"))
        self.dups(units, ("systemd", "units"), lambda u: u.get("name"))

    def passwd(self, passwd: dict) -> None:
        users = passwd.get("users") or []
        for index, user in enumerate(users):
            where = ("passwd", "users", index)
            self.dups(user.get("sshAuthorizedKeys") or [], where + ("sshAuthorizedKeys",), lambda k: k)
            self.dups(user.get("groups") or [], where + ("groups",), lambda g: g)
        self.dups(users, ("passwd", "users"), lambda u: u.get("name"))
        self.dups(passwd.get("groups") or [], ("passwd", "groups"), lambda g: g.get("name"))

    def kernel_arguments(self, kargs: dict) -> None:
        seen: dict = {}
        for key in ("shouldExist", "shouldNotExist"):
            self.dups(kargs.get(key) or [], ("kernelArguments", key), lambda a: a, shared=seen)
