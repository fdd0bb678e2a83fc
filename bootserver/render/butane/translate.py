"""Butane (decoded values) -> Ignition JSON, the way Butane's base v0_4/v0_5 translators do it.

Fields are copied under their camelCase names; Butane-only fields are turned into what Ignition
understands: `inline`/`local` into data URLs, `contents_local` and `ssh_authorized_keys_local`
into contents and keys, `with_mount_unit` into systemd units, `trees` into files and links.
Whenever an output path does not follow from the input path by camel-casing, the translation is
recorded so errors found in the output can be reported at the right place in the source.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat

from . import dataurl, localfiles, schema
from .checks import check_embedded_ignition
from .jsonorder import reorder
from .mount_units import is_remote, merge_unit, mount_unit
from ..report import Path, Report
from .schema import ListOf, Struct

NODE_EXISTS = "matching filesystem node has existing contents or different type"
TREE_NOT_DIRECTORY = "root of tree must be a directory"
TREE_FILE_TYPE = "trees may only contain files, directories, and symlinks"
_LINE_SPLIT = re.compile(r"\r?\n")
_MISSING = object()


class Translations:
    """Where an output (JSON) path came from in the source (YAML), where that is not obvious."""

    REWRITE, COLLAPSE = "rewrite", "collapse"

    def __init__(self) -> None:
        self.map: dict[Path, tuple[Path, str]] = {}

    def add(self, json_path: Path, yaml_path: Path, mode: str = REWRITE) -> None:
        self.map[tuple(json_path)] = (tuple(yaml_path), mode)

    def source_of(self, json_path: Path) -> Path:
        json_path = tuple(json_path)
        for cut in range(len(json_path), -1, -1):
            found = self.map.get(json_path[:cut])
            if found is not None:
                yaml_path, mode = found
                if mode == self.COLLAPSE:
                    return yaml_path
                return yaml_path + snake_path(json_path[cut:])
        return snake_path(json_path)


_SNAKE = re.compile(r"(MiB|[A-Z])")


def snake(name: str) -> str:
    return _SNAKE.sub(r"_\1", name).lower()


def snake_path(path: Path) -> Path:
    return tuple(snake(p) if isinstance(p, str) else p for p in path)


class Translator:
    def __init__(self, version: tuple, files_dir: str | None = None, auto_compression: bool = True):
        self.version = version
        self.files_dir = str(files_dir) if files_dir else None
        self.auto_compression = auto_compression
        self.report = Report()
        self.translations = Translations()
        self._hooks = {
            "Resource": self._resource,
            "PasswdUser": self._user,
            "Unit": self._contents_local,
            "Dropin": self._contents_local,
            "Ignition": self._ignition,
        }

    # generic copy -----------------------------------------------------------------------------
    def struct(self, kind: Struct, value: dict, ypath: Path, jpath: Path) -> dict:
        out: dict = {}
        for spec in kind.fields_for(self.version).values():
            name = spec.json_name
            if name is None:
                continue
            item = value.get(spec.yaml, _MISSING)
            if item is _MISSING:
                if spec.always:
                    out[name] = schema.ZERO[spec.type]  # type: ignore[index]
                continue
            kind_ = spec.type
            if isinstance(kind_, Struct):
                converted = self.struct(kind_, item, ypath + (spec.yaml,), jpath + (name,))  # type: ignore[arg-type]
                if converted:
                    out[name] = converted
            elif isinstance(kind_, ListOf):
                if not item:
                    continue
                if isinstance(kind_.item, Struct):
                    out[name] = [
                        self.struct(kind_.item, element, ypath + (spec.yaml, i), jpath + (name, i))
                        for i, element in enumerate(item)  # type: ignore[arg-type]
                    ]
                else:
                    out[name] = list(item)  # type: ignore[arg-type]
            elif not (spec.omitzero and not item):
                out[name] = item
        hook = self._hooks.get(kind.name)
        if hook is not None:
            hook(value, out, ypath, jpath)
        return out

    # Butane-only fields -----------------------------------------------------------------------
    def _ignition(self, value: dict, out: dict, ypath: Path, jpath: Path) -> None:
        out["version"] = schema.IGNITION_VERSION[self.version]

    def _resource(self, value: dict, out: dict, ypath: Path, jpath: Path) -> None:
        for field in ("local", "inline"):
            if field not in value:
                continue
            here = ypath + (field,)
            if field == "local":
                try:
                    contents = localfiles.read(value["local"], self.files_dir)
                except localfiles.LocalFileError as exc:
                    self.report.error(here, str(exc))
                    return
                if here[:2] == ("ignition", "config"):  # a local file's contents are only known now
                    check_embedded_ignition(contents, ypath, self.report)
            else:
                contents = value["inline"].encode("utf-8", "surrogateescape")
            source, compression = dataurl.make(contents, out.get("compression"), self.auto_compression)
            out["source"] = source
            self.translations.add(jpath + ("source",), here)
            if compression is not None:
                out["compression"] = compression
                self.translations.add(jpath + ("compression",), here)
        if "source" in out:
            reorder(out, ("compression", "httpHeaders", "source", "verification"))

    def _user(self, value: dict, out: dict, ypath: Path, jpath: Path) -> None:
        files = value.get("ssh_authorized_keys_local")
        if not files:
            return
        here = ypath + ("ssh_authorized_keys_local",)
        self.translations.add(jpath + ("sshAuthorizedKeys",), here)
        if not self.files_dir:
            self.report.error(here, localfiles.NO_FILES_DIR)
            return
        keys = out.setdefault("sshAuthorizedKeys", [])
        for index, name in enumerate(files):
            try:
                text = localfiles.read(name, self.files_dir).decode("utf-8", "replace")
            except localfiles.LocalFileError as exc:
                self.report.error(here + (index,), str(exc))
                continue
            for line in _LINE_SPLIT.split(text):
                if line:
                    self.translations.add(jpath + ("sshAuthorizedKeys", len(keys)), here + (index,))
                    keys.append(line)
        if not keys:
            del out["sshAuthorizedKeys"]
        reorder(out, [f.json_name for f in schema.PasswdUser.fields if f.json_name])

    def _contents_local(self, value: dict, out: dict, ypath: Path, jpath: Path) -> None:
        name = value.get("contents_local")
        if not name:
            return
        here = ypath + ("contents_local",)
        try:
            contents = localfiles.read(name, self.files_dir)
        except localfiles.LocalFileError as exc:
            self.report.error(here, str(exc))
            return
        self.translations.add(jpath + ("contents",), here)
        out["contents"] = contents.decode("utf-8", "replace")
        reorder(out, ("contents", "dropins", "enabled", "mask", "name"))

    # whole config -----------------------------------------------------------------------------
    def config(self, value: dict) -> dict:
        out = self.struct(schema.Config, value, (), ())
        if "ignition" not in out:
            out = {"ignition": {"version": schema.IGNITION_VERSION[self.version]}, **out}
        storage = value.get("storage", {})
        self._mount_units(storage, out)
        self._trees(storage, out)
        return out

    def _mount_units(self, storage: dict, out: dict) -> None:
        generated: list[tuple[int, dict]] = []
        for index, fs in enumerate(storage.get("filesystems", ())):
            if fs.get("with_mount_unit") is True:
                generated.append((index, mount_unit(fs, is_remote(fs, storage.get("luks", ())))))
        if not generated:
            return
        user_units = out.get("systemd", {}).get("units", [])
        by_name = {unit.get("name"): i for i, unit in enumerate(user_units)}
        used: set[int] = set()
        units: list[dict] = []
        for fs_index, unit in generated:
            source = ("storage", "filesystems", fs_index, "with_mount_unit")
            where = ("systemd", "units", len(units))
            user_index = by_name.get(unit["name"])
            if user_index is None or user_index in used:
                self.translations.add(where, source, Translations.COLLAPSE)
                units.append(unit)
                continue
            used.add(user_index)
            user = user_units[user_index]
            self.translations.add(where, ("systemd", "units", user_index))
            for key in ("contents", "enabled"):
                if key not in user:
                    self.translations.add(where + (key,), source, Translations.COLLAPSE)
            units.append(merge_unit(unit, user))
        for user_index, user in enumerate(user_units):
            if user_index not in used:
                self.translations.add(("systemd", "units", len(units)), ("systemd", "units", user_index))
                units.append(user)
        out.setdefault("systemd", {})["units"] = units

    def _trees(self, storage: dict, out: dict) -> None:
        trees = storage.get("trees")
        if not trees:
            return
        tracker = _NodeTracker(out)
        for index, tree in enumerate(trees):
            ypath: Path = ("storage", "trees", index)
            if not self.files_dir:
                self.report.error(ypath, localfiles.NO_FILES_DIR)
                return
            src_base = os.path.normpath(os.path.join(self.files_dir, tree.get("local", "")))
            try:
                localfiles.ensure_within(src_base, self.files_dir)
            except localfiles.LocalFileError as exc:
                self.report.error(ypath, str(exc))
                continue
            try:
                info = os.stat(src_base)
            except OSError as exc:
                self.report.error(ypath, str(localfiles.os_error("stat", src_base, exc)))
                continue
            if not stat.S_ISDIR(info.st_mode):
                self.report.error(ypath, TREE_NOT_DIRECTORY)
                continue
            self._walk(ypath, tracker, src_base, src_base, tree.get("path") or "/")
        if tracker.files:
            out.setdefault("storage", {})["files"] = tracker.files
        if tracker.links:
            out.setdefault("storage", {})["links"] = tracker.links
        if "storage" in out:
            reorder(out["storage"], [f.json_name for f in schema.Storage.fields if f.json_name])

    def _walk(self, ypath: Path, tracker: "_NodeTracker", src_base: str, src: str, dest_base: str) -> None:
        """filepath.Walk: lexical order, symlinks not followed, errors recorded and walking goes on."""
        try:
            info = os.lstat(src)
        except OSError as exc:
            self.report.error(ypath, str(localfiles.os_error("lstat", src, exc)))
            return
        rel = os.path.relpath(src, src_base)
        dest = posixpath.normpath(posixpath.join(dest_base, rel.replace(os.sep, "/")))
        if dest.startswith("//"):
            dest = dest[1:]
        mode = info.st_mode
        if stat.S_ISDIR(mode):
            try:
                names = sorted(os.listdir(src))
            except OSError as exc:
                self.report.error(ypath, str(localfiles.os_error("open", src, exc)))
                return
            for name in names:
                self._walk(ypath, tracker, src_base, os.path.join(src, name), dest_base)
        elif stat.S_ISREG(mode):
            self._tree_file(ypath, tracker, src, dest, mode)
        elif stat.S_ISLNK(mode):
            self._tree_link(ypath, tracker, src, dest)
        else:
            self.report.error(ypath, TREE_FILE_TYPE)

    def _claim(self, ypath: Path, tracker: "_NodeTracker", kind: str, dest: str, filled):
        """The config's entry in storage.<kind> at `dest` for a tree to fill (a new one if there is none),
        or None after reporting a collision: an entry that is already `filled`, or one of another type."""
        index, node = tracker.get(kind, dest)
        if node is not None:
            if filled(node):
                self.report.error(ypath, NODE_EXISTS)
                return None
            return index, node
        if tracker.exists(dest):
            self.report.error(ypath, NODE_EXISTS)
            return None
        index, node = tracker.add(kind, dest)
        self.translations.add(("storage", kind, index), ypath, Translations.COLLAPSE)
        return index, node

    def _tree_file(self, ypath: Path, tracker: "_NodeTracker", src: str, dest: str, mode: int) -> None:
        claimed = self._claim(ypath, tracker, "files", dest, lambda f: f.get("contents", {}).get("source"))
        if claimed is None:
            return
        index, file = claimed
        try:
            with open(src, "rb") as handle:
                contents = handle.read()
        except OSError as exc:
            self.report.error(ypath, str(localfiles.os_error("open", src, exc)))
            return
        resource = file.setdefault("contents", {})
        source, compression = dataurl.make(contents, resource.get("compression"), self.auto_compression)
        resource["source"] = source
        if compression is not None:
            resource["compression"] = compression
        reorder(resource, ("compression", "httpHeaders", "source", "verification"))
        for key in ("contents", "mode"):
            self.translations.add(("storage", "files", index, key), ypath, Translations.COLLAPSE)
        if "mode" not in file:
            file["mode"] = 0o755 if mode & 0o111 else 0o644
        reorder(file, ("group", "overwrite", "path", "user", "append", "contents", "mode"))

    def _tree_link(self, ypath: Path, tracker: "_NodeTracker", src: str, dest: str) -> None:
        claimed = self._claim(ypath, tracker, "links", dest, lambda link: link.get("target"))
        if claimed is None:
            return
        index, link = claimed
        try:
            target = os.readlink(src)
        except OSError as exc:
            self.report.error(ypath, str(localfiles.os_error("readlink", src, exc)))
            return
        link["target"] = target.replace(os.sep, "/")
        self.translations.add(("storage", "links", index, "target"), ypath, Translations.COLLAPSE)


class _NodeTracker:
    """Files, directories and links of the config by path, so trees can fill or collide with them."""

    def __init__(self, out: dict):
        storage = out.get("storage", {})
        self.nodes: dict[str, list[dict]] = {kind: storage.get(kind, []) for kind in ("files", "links")}
        self.index = {kind: {n["path"]: i for i, n in enumerate(nodes)} for kind, nodes in self.nodes.items()}
        self.dirs = {d["path"] for d in storage.get("directories", [])}

    @property
    def files(self) -> list[dict]:
        return self.nodes["files"]

    @property
    def links(self) -> list[dict]:
        return self.nodes["links"]

    def get(self, kind: str, path: str) -> tuple[int, dict | None]:
        i = self.index[kind].get(path)
        return (i, self.nodes[kind][i]) if i is not None else (0, None)

    def exists(self, path: str) -> bool:
        return path in self.index["files"] or path in self.index["links"] or path in self.dirs

    def add(self, kind: str, path: str) -> tuple[int, dict]:
        self.nodes[kind].append({"path": path})
        self.index[kind][path] = len(self.nodes[kind]) - 1
        return len(self.nodes[kind]) - 1, self.nodes[kind][-1]
