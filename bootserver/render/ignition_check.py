"""bootserver's own structural check of an Ignition 3.x config, run on every config before it is served.

It mirrors the checks Ignition itself makes (paths absolute and simplified, valid modes, URL schemes,
compression, hashes, filesystem formats, partitions, RAID levels, unit names and contents, duplicate
entries, …) with Ignition's messages, so a config that would fail on the machine fails here first.
Paths in the report are JSON paths into the config (("storage", "files", 0, "mode") = $.storage.files.0.mode).
"""

from __future__ import annotations

import base64
import posixpath
import re
from urllib.parse import unquote_to_bytes, urlsplit

from .butane.report import Path, Report

KNOWN_VERSIONS = frozenset(("3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.4.0-experimental"))
DUPLICATE = "duplicate entry defined"
_SCHEMES = frozenset(("http", "https", "tftp", "gs", "s3", "data", "oem"))
_HASH_SIZES = {"sha512": 128, "sha256": 64}
_HEX = re.compile(r"^[0-9a-fA-F]*$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_FORMATS = frozenset(("ext4", "btrfs", "xfs", "vfat", "swap", "none"))
_LABEL_MAX = {"ext4": 16, "btrfs": 256, "xfs": 12, "swap": 15, "vfat": 11}
_RAID_LEVELS = frozenset(("linear", "raid0", "raid1", "raid4", "raid5", "raid6", "raid10"))
_UNIT_TYPES = frozenset((
    ".service", ".socket", ".device", ".mount", ".automount", ".swap", ".target",
    ".path", ".timer", ".snapshot", ".slice", ".scope",
))
_DATA_CHARS = re.compile(r"^[A-Za-z0-9\-_.!~*'();/?:@&=+$,%\[\]#]*$")


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

    def dups(self, items, path: Path, key, shared: dict | None = None, list_path: Path | None = None) -> None:
        seen = {} if shared is None else shared
        for index, item in enumerate(items):
            k = key(item)
            if k is None:
                continue
            if k in seen:
                self.error((list_path or path) + (index,), DUPLICATE)
            seen[k] = True

    def path(self, value, where: Path) -> bool:
        if not value:
            self.error(where, "path not specified")
            return False
        if not value.startswith("/"):
            self.error(where, "path not absolute")
            return False
        clean = posixpath.normpath(value)
        if clean.startswith("//"):
            clean = clean[1:]
        if clean != value:
            self.error(where, "path is not fully simplified")
            return False
        return True

    def url(self, value: str, where: Path) -> str | None:
        """The scheme of a valid URL, else None (error recorded)."""
        try:
            parts = urlsplit(value)
        except ValueError:
            self.error(where, "unable to parse url")
            return None
        scheme = parts.scheme.lower()
        if scheme == "arn" and self.version not in ("3.0.0", "3.1.0", "3.2.0", "3.3.0"):
            return scheme
        if scheme not in _SCHEMES:
            self.error(where, "invalid url scheme")
            return None
        if scheme == "data":
            problem = _data_url_problem(value)
            if problem:
                self.error(where, problem)
                return None
        return scheme

    def resource(self, res: dict, where: Path, source_required: bool = False) -> None:
        if not isinstance(res, dict):
            return
        source = res.get("source")
        scheme = self.url(source, where + ("source",)) if source else None
        if source_required and not source:
            self.error(where, "source is required")
        compression = res.get("compression")
        if compression not in (None, "", "gzip"):
            self.error(where + ("compression",), "invalid compression method")
        digest = (res.get("verification") or {}).get("hash")
        if digest is not None:
            hash_path = where + ("verification", "hash")
            if not source:
                self.error(hash_path, "source must be specified if verification is specified")
            function, sep, hexsum = digest.partition("-")
            if not sep:
                self.error(hash_path, "malformed hash specifier")
            elif function not in _HASH_SIZES:
                self.error(hash_path, "unrecognized hash function")
            elif len(hexsum) != _HASH_SIZES[function] or not _HEX.match(hexsum):
                self.error(hash_path, "incorrect size for hash sum")
        headers = res.get("httpHeaders") or []
        if headers:
            if source and scheme not in ("http", "https", None):
                self.error(where + ("httpHeaders",), "cannot use HTTP headers with this source scheme")
            for index, header in enumerate(headers):
                if not header.get("name"):
                    self.error(where + ("httpHeaders", index, "name"), "HTTP header name can't be empty")
            self.dups(headers, where + ("httpHeaders",), lambda h: h.get("name"))

    def mode(self, mode, where: Path) -> None:
        if mode is None:
            return
        if not isinstance(mode, int) or mode < 0 or mode > 0o7777:
            self.error(where, "illegal file mode")
        elif mode & 0o7000 and self.version in ("3.0.0", "3.1.0", "3.2.0", "3.3.0"):
            self.report.warn(where, "setuid/setgid/sticky bits are not supported in spec versions older than 3.4.0")

    def owner(self, node: dict, where: Path) -> None:
        for key in ("user", "group"):
            who = node.get(key) or {}
            if who.get("id") is not None and who.get("name") is not None:
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
        if cfg.get("replace"):
            self.resource(cfg["replace"], ("ignition", "config", "replace"))
        for index, res in enumerate(((ign.get("security") or {}).get("tls") or {}).get("certificateAuthorities") or []):
            self.resource(res, ("ignition", "security", "tls", "certificateAuthorities", index), source_required=True)
        proxy = ign.get("proxy") or {}
        for key in ("httpProxy", "httpsProxy"):
            if proxy.get(key):
                try:
                    scheme = urlsplit(proxy[key]).scheme
                    if proxy[key].startswith(":"):
                        raise ValueError
                except ValueError:
                    self.error(("ignition", "proxy", key), "unable to parse url")
                    continue
                if scheme not in ("http", "https"):
                    self.error(("ignition", "proxy", key), "proxies must be http(s)")

    def storage(self, storage: dict) -> None:
        base: Path = ("storage",)
        links = storage.get("links") or []
        symlinks = [l.get("path") for l in links if l.get("path") and not l.get("hard")]
        nodes = {}
        for kind, noun in (("files", "file"), ("directories", "directory"), ("links", "link")):
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
                    if node.get("overwrite") and not contents.get("source"):
                        self.error(where + ("overwrite",), "overwrite must be false if source is unspecified")
                if kind == "links" and not node.get("target"):
                    self.error(where + ("target",), "link target is required")
                p = node.get("path") or ""
                if any(p.startswith(link + "/") for link in symlinks):
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
            if raid.get("level") is not None and raid["level"] not in _RAID_LEVELS:
                self.error(where + ("level",), "unrecognized raid level")
            elif raid.get("spares") and raid.get("level") in ("linear", "raid0"):
                self.error(where + ("level",), "spares unsupported for linear and raid0 arrays")
            if not raid.get("devices"):
                self.error(where + ("devices",), "raid devices required")
            for i, device in enumerate(raid.get("devices") or []):
                self.path(device, where + ("devices", i))
        self.dups(storage.get("raid") or [], base + ("raid",), lambda r: r.get("name"))
        for index, luks in enumerate(storage.get("luks") or []):
            where = base + ("luks", index)
            if not luks.get("device"):
                self.error(where + ("device",), "disk device is required")
            else:
                self.path(luks["device"], where + ("device",))
            before = len(self.report.entries)
            self.resource(luks.get("keyFile") or {}, where + ("keyFile",))
            if len(self.report.entries) > before:
                self.error(where + ("keys",), "invalid key-file source")
            for i, tang in enumerate((luks.get("clevis") or {}).get("tang") or []):
                if not tang.get("url"):
                    self.error(where + ("clevis", "tang", i, "url"), "url is required")
                if not tang.get("thumbprint"):
                    self.error(where + ("clevis", "tang", i, "thumbprint"), "thumbprint is required")
        self.dups(storage.get("luks") or [], base + ("luks",), lambda l: l.get("name"))

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
            if not part.get("number") and not label:
                self.error(here, "a partition number >= 1 or a label must be specified")
            if part.get("shouldExist") is False and any(
                    part.get(k) is not None for k in ("label", "typeGuid", "guid", "sizeMiB", "startMiB", "resize")):
                self.error(here, "shouldExist specified false with other options also specified")
        self.dups(parts, where + ("partitions",), lambda p: p.get("number") or p.get("label"))

    def systemd(self, systemd: dict) -> None:
        units = systemd.get("units") or []
        for index, unit in enumerate(units):
            where = ("systemd", "units", index)
            name = unit.get("name") or ""
            if posixpath.splitext(name)[1] not in _UNIT_TYPES:
                self.error(where + ("name",), "invalid systemd unit extension")
            contents = unit.get("contents")
            sections = None
            if contents:
                problem, sections = parse_unit(contents)
                if problem:
                    self.error(where + ("contents",), f"invalid unit content: {problem}")
            if unit.get("enabled") and contents and sections is not None and "Install" not in sections:
                self.report.warn(where + ("contents",),
                                 f'unit "{name}" is enabled, but has no install section so enable does nothing')
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


def parse_unit(text: str) -> tuple[str | None, set[str] | None]:
    """(problem, section names) for systemd unit text, as go-systemd's deserializer reads it."""
    sections: set[str] = set()
    continuing = False
    for raw in text.split("\n"):
        line = raw.strip()
        if continuing:
            continuing = line.endswith("\\")
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                return "unable to find end of section", None
            sections.add(line[1:-1])
            continue
        if "=" not in line:
            return f"unable to parse line {line!r}: missing '='", None
        continuing = line.endswith("\\")
    return None, sections


def _data_url_problem(url: str) -> str | None:
    header, comma, payload = url[len("data:"):].partition(",")
    if not comma:
        return "missing data prefix"
    if header.endswith(";base64"):
        try:
            base64.b64decode(unquote_to_bytes(payload), validate=True)
        except ValueError:
            return "invalid data character"
        return None
    if not _DATA_CHARS.match(payload):
        return "invalid data character"
    return None
