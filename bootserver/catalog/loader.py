"""Load a directory of YAML documents into a validated `Catalog`, reporting every problem at once."""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jinja2
import netaddr

from bootserver.catalog import kernel_arch, schema
from bootserver.catalog.mac import MacError, normalize_mac, normalize_mac_prefix
from bootserver.catalog.model import (ARCHES, BootSpec, Catalog, Group, IgnitionSpec, Machine, Problem, Profile,
                                      Selector, Source)
from bootserver.catalog.updates import parse_updates
from bootserver.catalog.yamlpos import MAX_FILE_BYTES, Broken, Document, load_documents

#: a kernel argument with no `=` that starts with a digit: what is left of `console=ttyS0,115200n8`
#: after a YAML flow list split it at the comma (real flags are words: quiet, ro, nomodeset)
SPLIT_TAIL = re.compile(r"^\d[^=]*$")
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
#: Only parses kernel-argument templates: syntax is the same in render.args' sandbox, which renders them.
_SYNTAX = jinja2.Environment(autoescape=False)


def template_syntax_error(template: str) -> str | None:
    """None when `template` is valid Jinja2, else a message naming the problem."""
    try:
        _SYNTAX.parse(template)
    except jinja2.TemplateSyntaxError as exc:
        return f"template syntax error: {exc.message}"
    return None


class CatalogError(Exception):
    """A catalog that failed validation; `problems` lists every error (and warning)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"]
        super().__init__(f"{len(errors)} error(s) in the catalog:\n" + "\n".join(str(p) for p in errors))


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def errors(self) -> int:
        return sum(p.severity == "error" for p in self.problems)

    def add(self, file: Path, doc: Document | None, label: str, path: tuple, message: str,
            severity: str = "error", line: int | None = None, column: int | None = None) -> None:
        if line is None and doc is not None:
            line, column = doc.where(path)
        self.problems.append(Problem(file, line or 1, column, label, _dotted(path), message, severity))


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _is_url(ref: str) -> bool:
    return ref.startswith(("http://", "https://"))


def load_catalog(root: Path | str, assets_dir: Path | str | None = None, generation: int = 1) -> Catalog:
    """Load and validate every `*.yaml`/`*.yml` file under `root`. Raises CatalogError."""
    root = Path(root)
    out = _Collector()
    if not root.is_dir():
        why = ("is a file, not a directory: the catalog is a folder of YAML files (give its folder)"
               if root.exists() else "catalog directory does not exist")
        raise CatalogError([Problem(root, 1, None, "catalog", "", why)])
    files = sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    docs: list[tuple[Path, Document, str]] = []
    for file in files:
        try:
            if file.stat().st_size > MAX_FILE_BYTES:  # not even read: a catalog file is hand-sized
                out.add(file, None, "file", (), f"larger than {MAX_FILE_BYTES} bytes", line=1)
                continue
            text = file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            out.add(file, None, "file", (), f"cannot read: {exc}", line=1)
            continue
        for doc in load_documents(text):
            if isinstance(doc, Broken):
                out.add(file, None, "file", (), doc.message, line=doc.line, column=doc.column)
                continue
            label = f"document {doc.index + 1}"
            for dup in doc.duplicates:
                out.add(file, None, label, (), f"duplicate key {dup.key!r} (first at line {dup.first_line})",
                        line=dup.line, column=dup.column)
            docs.append((file, doc, label))

    profiles: dict[str, Profile] = {}
    machines: dict[str, Machine] = {}
    groups: list[Group] = []
    by_mac: dict[str, Machine] = {}
    refs: list[tuple[Path, Document, str, tuple, str]] = []  # profile references to check at the end
    declared: set[str] = set()  # every Profile name seen, even one with errors (no "does not exist" for it)

    for file, doc, label in docs:
        data = doc.data
        problems = schema.check(data, schema.DOCUMENT)
        kind = data.get("kind") if isinstance(data, dict) else None
        name = None
        if isinstance(data, dict) and isinstance(data.get("metadata"), dict):
            name = data["metadata"].get("name")
        if kind in schema.SPECS and isinstance(name, str):
            label = f"{kind} {name}"
        if kind in schema.SPECS and isinstance(data.get("spec"), dict):
            problems += schema.check(data["spec"], schema.SPECS[kind], ("spec",))
        for path, message in problems:
            out.add(file, doc, label, path, message)
        spec = data.get("spec") if isinstance(data, dict) else None
        if kind == "Profile" and isinstance(name, str):
            declared.add(name)
            if isinstance(spec, dict) and isinstance(spec.get("final_profile"), str):
                refs.append((file, doc, label, ("spec", "final_profile"), spec["final_profile"]))
        elif kind in ("Machine", "Group") and isinstance(spec, dict) and isinstance(spec.get("profile"), str):
            refs.append((file, doc, label, ("spec", "profile"), spec["profile"]))  # checked even if the rest is bad
        if problems:
            selector = spec.get("selector") if kind == "Group" and isinstance(spec, dict) else None
            if isinstance(selector, dict) and not any(path[:2] == ("spec", "selector") for path, _ in problems):
                _selector(selector, out, file, doc, label)  # its values' errors too, in the same run
            continue
        if not NAME_RE.match(name):
            out.add(file, doc, label, ("metadata", "name"),
                    f"{name!r} is not a valid name (lower-case letters, digits, '.', '-', '_'; at most 63)")
        source = Source(file, doc.line)
        before = out.errors()
        if kind == "Profile":
            profile = _profile(name, spec, source, root, assets_dir, out, file, doc, label)
            if name in profiles:
                out.add(file, doc, label, ("metadata", "name"),
                        f"duplicate Profile name {name!r} (also at {profiles[name].source})")
            elif profile is not None and out.errors() == before:
                profiles[name] = profile
        elif kind == "Machine":
            try:
                mac = normalize_mac(spec["mac"])
            except MacError as exc:
                out.add(file, doc, label, ("spec", "mac"), str(exc))
                continue
            machine = Machine(name, mac, spec["profile"], source, _freeze(spec.get("metadata", {})),
                              spec.get("loader"), spec.get("arch"))
            if name in machines:
                out.add(file, doc, label, ("metadata", "name"),
                        f"duplicate Machine name {name!r} (also at {machines[name].source})")
            elif mac in by_mac:
                out.add(file, doc, label, ("spec", "mac"),
                        f"MAC {mac} is already used by Machine {by_mac[mac].name} at {by_mac[mac].source}")
            else:
                machines[name] = machine
                by_mac[mac] = machine
        elif kind == "Group":
            selector = _selector(spec.get("selector", {}), out, file, doc, label)
            updates = _updates(spec, out, file, doc, label)
            if selector is None or updates is False:
                continue
            if any(g.name == name for g in groups):
                other = next(g for g in groups if g.name == name)
                out.add(file, doc, label, ("metadata", "name"),
                        f"duplicate Group name {name!r} (also at {other.source})")
                continue
            groups.append(Group(name, selector, spec["profile"], source, _freeze(spec.get("metadata", {})),
                                updates=updates, loader=spec.get("loader")))

    for file, doc, label, path, ref in refs:
        if ref in declared and ref not in profiles:
            continue  # the Profile exists but has errors of its own, reported where it is
        if ref not in profiles:
            close = [p for p in profiles if p.startswith(ref[:3])]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            out.add(file, doc, label, path, f"profile {ref!r} does not exist{hint}")
        elif path == ("spec", "final_profile") and profiles[ref].ignition is None:
            out.add(file, doc, label, path, f"final profile {ref!r} has no ignition config to install")

    for i, a in enumerate(groups):
        for b in groups[i + 1:]:
            if a.selector.size == b.selector.size and a.selector.can_tie(b.selector):
                out.problems.append(Problem(
                    b.source.file, b.source.line, None, f"Group {b.name}", "spec.selector",
                    f"ties with Group {a.name} at {a.source}: a request can match both with "
                    f"{a.selector.size} key(s); add a key to one selector or make them disjoint"))

    _check_kernel_arches(profiles, machines, groups, assets_dir, out)

    if any(p.severity == "error" for p in out.problems):
        raise CatalogError(out.problems)
    return Catalog(root=root, profiles=MappingProxyType(profiles), machines=MappingProxyType(machines),
                   groups=tuple(groups), by_mac=MappingProxyType(by_mac), generation=generation,
                   warnings=tuple(out.problems))


def _check_kernel_arches(profiles, machines, groups, assets_dir, out) -> None:
    """An arm64 machine (a Group's `arch` selector, a Machine's `arch`) pointed at an amd64 kernel, or
    the reverse: an error when the kernel's header says so, a warning when only its path does."""
    users = [(g.source, f"Group {g.name}", "spec.selector.arch", g.selector.arch, g.profile) for g in groups]
    users += [(m.source, f"Machine {m.name}", "spec.arch", m.arch, m.profile) for m in machines.values()]
    for source, label, where, arch, profile_name in users:
        profile = profiles.get(profile_name)
        if arch is None or profile is None or _is_url(profile.boot.kernel):
            continue
        want = kernel_arch.FAMILY[arch]
        kernel = profile.boot.kernel
        header = kernel_arch.from_file(Path(assets_dir) / kernel) if assets_dir is not None else None
        found = header or kernel_arch.from_name(kernel)
        if found is None or found == want:
            continue
        how = "its header says" if header else "its path says"
        out.problems.append(Problem(
            source.file, source.line, None, label, where,
            f"{arch} machines get profile {profile.name}, whose kernel {kernel!r} is {found} ({how}); "
            f"point them at an {want} kernel (e.g. flatcar/{want}/current/...)", "error" if header else "warning"))


def _profile(name, spec, source, root, assets_dir, out, file, doc, label) -> Profile | None:
    boot = spec["boot"]
    args = boot.get("args", [])
    for i, arg in enumerate(args):
        error = template_syntax_error(arg)
        if error:
            out.add(file, doc, label, ("spec", "boot", "args", i), error)
        elif i > 0 and SPLIT_TAIL.match(arg) and "=" in args[i - 1]:
            out.add(file, doc, label, ("spec", "boot", "args", i),
                    f"{arg!r} looks like the tail of a split argument: in a YAML flow list a comma separates "
                    f"items, so write \"{args[i - 1]},{arg}\" in quotes if it is one argument", severity="warning")
    refs = [(("spec", "boot", "kernel"), boot["kernel"])]
    refs += [(("spec", "boot", "initrd", i), r) for i, r in enumerate(boot.get("initrd", []))]
    for path, ref in refs:
        if _is_url(ref):
            continue
        if ref.startswith("/") or ".." in Path(ref).parts:
            out.add(file, doc, label, path, f"{ref!r} must be a path under the assets folder or an http(s) URL")
        elif assets_dir is not None and not (Path(assets_dir) / ref).exists():
            out.add(file, doc, label, path, f"asset {ref!r} is not in {assets_dir} yet (fetch it before booting)",
                    severity="warning")
    ignition = None
    if "ignition" in spec:
        key = "butane" if "butane" in spec["ignition"] else "config"
        rel = spec["ignition"][key]
        path = (root / rel).resolve()
        if not path.is_relative_to(root.resolve()):
            out.add(file, doc, label, ("spec", "ignition", key), f"{rel!r} leaves the catalog folder")
            return None
        if not path.is_file():
            out.add(file, doc, label, ("spec", "ignition", key), f"template file {rel!r} does not exist in {root}")
            return None
        ignition = IgnitionSpec(**{key: path})
    updates = _updates(spec, out, file, doc, label)
    if updates is False:
        return None
    return Profile(name=name, source=source, ignition=ignition,
                   boot=BootSpec(boot["kernel"], tuple(boot.get("initrd", [])), tuple(boot.get("args", [])),
                                 boot.get("loader", "ipxe")),
                   after_install=spec.get("after_install", "none"), metadata=_freeze(spec.get("metadata", {})),
                   final_profile=spec.get("final_profile"), updates=updates)


def _updates(spec, out, file, doc, label):
    """The spec's update policy, None without one, False when it has errors (already reported)."""
    if "updates" not in spec:
        return None
    policy = parse_updates(spec["updates"], ("spec", "updates"),
                           lambda path, message: out.add(file, doc, label, path, message))
    return False if policy is None else policy


def _selector(raw: dict, out, file, doc, label) -> Selector | None:
    ok = True
    values: dict[str, Any] = {}
    if "mac_prefix" in raw:
        try:
            values["mac_prefix"] = normalize_mac_prefix(raw["mac_prefix"])
        except MacError as exc:
            out.add(file, doc, label, ("spec", "selector", "mac_prefix"), str(exc))
            ok = False
    if "arch" in raw:
        if raw["arch"] not in ARCHES:
            out.add(file, doc, label, ("spec", "selector", "arch"),
                    f"{raw['arch']!r} is not one of: {', '.join(ARCHES)}")
            ok = False
        values["arch"] = raw["arch"]
    if "subnet" in raw:
        try:
            values["subnet"] = netaddr.IPNetwork(raw["subnet"])
        except (netaddr.AddrFormatError, ValueError, TypeError):
            out.add(file, doc, label, ("spec", "selector", "subnet"),
                    f"{raw['subnet']!r} is not a subnet (e.g. 10.0.0.0/24)")
            ok = False
    if "uuid" in raw:
        values["uuid"] = str(raw["uuid"]).lower()
    values["labels"] = MappingProxyType({k: str(v) for k, v in raw.get("labels", {}).items()})
    return Selector(**values) if ok else None


def validate(root: Path | str, assets_dir: Path | str | None = None) -> list[Problem]:
    """Every problem (errors and warnings) of the catalog at `root`; empty when clean."""
    try:
        problems = list(load_catalog(root, assets_dir).warnings)
    except CatalogError as exc:
        problems = exc.problems
    return sorted(problems, key=lambda p: (str(p.file), p.line, p.column or 0))
