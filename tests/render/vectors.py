"""Runs the Butane conformance vectors (../shared/conformance/butane) against bootserver's translator.

Each vector is run the way Butane's Go test ran it: `fragment` vectors through the one translator
function, `config` vectors through the unvalidated whole-config translation (or the full pipeline
when the vector names field filters), `validate` vectors through the schema checks, `end-to-end`
vectors through the full pipeline. `run_vector` returns the rendered configs so callers can also
hand them to the real ignition-validate.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import select
import signal
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bootserver.render import butane
from bootserver.render.butane import checks, schema, yamlsrc
from bootserver.render.butane.decode import decode
from bootserver.render.report import path_string
from bootserver.render.butane.translate import Translator
from tests.conftest import shared_dir



def load_vectors() -> list[dict]:
    """../shared/conformance/butane beside the clone (CI), else the workplace copy in /work/shared."""
    return json.loads((shared_dir() / "conformance" / "butane" / "vectors.json").read_text())


class NotApplicable(Exception):
    pass


@dataclass
class Outcome:
    rendered: list[tuple[dict, dict | None]] = field(default_factory=list)  # (config, vector's ignition-validate record)


FRAGMENT_TYPES = {
    "TestTranslateFile": schema.File,
    "TestTranslateDirectory": schema.Directory,
    "TestTranslateLink": schema.Link,
    "TestTranslateIgnition": schema.Ignition,
    "TestTranslateSSHAuthorizedKey": schema.PasswdUser,
    "TestTranslateUnitLocal": schema.Unit,
}
VALIDATE_TYPES = {
    "TestValidateResource": schema.Resource,
    "TestValidateTree": schema.Tree,
    "TestValidateFileMode": schema.File,
    "TestValidateDirMode": schema.Directory,
    "TestValidateFilesystem": schema.Filesystem,
    "TestValidateUnit": schema.Unit,
    "TestValidateDropin": schema.Dropin,
    "TestUnkownIgnitionVersion": schema.Resource,
}


def vector_version(vector: dict) -> tuple:
    if vector["name"].endswith("__v0_4") or "version: 1.0.0" in (vector.get("butane_yaml") or ""):
        return schema.V1_0
    return schema.V1_1


def make_files_dir(root: Path, spec: dict) -> None:
    root.mkdir(parents=True, exist_ok=True)
    dirs_to_lock = []
    for rel, entry in sorted(spec.items()):
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if "symlink" in entry:
            os.symlink(entry["symlink"], target)
        elif entry.get("type") == "dir":
            target.mkdir(exist_ok=True)
            dirs_to_lock.append((target, int(entry.get("mode", "0755"), 8)))
        elif entry.get("type") == "unix_socket":
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(str(target))
            sock.close()
        else:
            data = base64.b64decode(entry["content_base64"]) if "content_base64" in entry else entry["content"].encode()
            target.write_bytes(data)
            os.chmod(target, int(entry.get("mode", "0644"), 8))
    for target, mode in reversed(dirs_to_lock):  # after their contents were written
        os.chmod(target, mode)


def expand(vector: dict, text: str, dirs: dict) -> str:
    for key, value in dirs.items():
        text = text.replace("{" + key + "}", value)
    return text


def same(expected, actual, where="$") -> None:
    """Parsed-JSON equality where {"$gzip_data_url_of": TEXT} matches any gzip data URL of TEXT."""
    if isinstance(expected, dict) and set(expected) == {"$gzip_data_url_of"}:
        assert isinstance(actual, str) and actual.startswith("data:;base64,"), f"{where}: {actual!r} is not gzip base64"
        text = gzip.decompress(base64.b64decode(actual[len("data:;base64,"):])).decode()
        assert text == expected["$gzip_data_url_of"], f"{where}: gzip content differs"
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected object, got {actual!r}"
        assert set(expected) == set(actual), f"{where}: keys {sorted(actual)} != expected {sorted(expected)}"
        for key in expected:
            same(expected[key], actual[key], f"{where}.{key}")
        return
    if isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r} != {expected!r}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            same(e, a, f"{where}.{i}")
        return
    assert type(expected) is type(actual) and expected == actual, f"{where}: {actual!r} != expected {expected!r}"


def check_errors(vector: dict, report, dirs: dict) -> None:
    """The report must hold exactly the vector's expected error(s)."""
    expected = vector["expected_error"]
    errors = [(path_string(e.path), e.message) for e in report.errors]
    if "entries" in expected:
        wanted = [(e["path"], e["message"]) for e in expected["entries"]]
    elif "path" in expected:
        wanted = [(expected["path"], expand(vector, expected["message"], dirs))]
    else:
        wanted = []
        for line in expand(vector, expected["report_string"], dirs).splitlines():
            where, _, message = line.partition(": ")
            wanted.append((where[len("error at "):], message))
    assert errors == wanted, f"errors {errors} != expected {wanted}"


def run_vector(vector: dict, work: Path) -> Outcome:
    level = vector["level"]
    outcome = Outcome()
    dirs = {}
    files_dir = None
    options = vector.get("options", {})
    if options.get("files_dir"):
        if "other_dir" in options.get("note", ""):
            files_dir = work / "other"
            files_dir.mkdir()
            dirs["other_dir"] = str(files_dir)
        else:
            files_dir = work / "files"
            make_files_dir(files_dir, vector.get("files_dir", {}))
            dirs["files_dir"] = str(files_dir)
    auto = not options.get("no_resource_auto_compression")
    version = vector_version(vector)
    text = vector.get("butane_yaml")

    if level.startswith("helper"):
        return _decimal_modes(vector)
    if level.startswith("fragment"):
        kind = FRAGMENT_TYPES[vector["test_function"]]
        decoded = decode(yamlsrc.parse(text), kind, version, schema.BASE_NAME[version])
        assert not decoded.type_errors.fatal, str(decoded.type_errors)
        translator = Translator(version, str(files_dir) if files_dir else None, auto)
        out = translator.struct(kind, decoded.value, (), ())
        same(vector["expected_ignition_json"], out)
        if "expected_error" in vector:
            check_errors(vector, translator.report, dirs)
        else:
            assert not translator.report.entries, str(translator.report)
        return outcome
    if level.startswith("validate"):
        kind = VALIDATE_TYPES[vector["test_function"]]
        base = ("ignition", "config") if vector["test_function"] == "TestUnkownIgnitionVersion" else ()
        decoded = decode(yamlsrc.parse(text), kind, version, schema.BASE_NAME[version], checks.VALIDATORS, base)
        got = [(e.kind, path_string(e.path), e.message) for e in decoded.report.entries]
        if "expected_error" in vector:
            e = vector["expected_error"]
            want = [("error", e["path"], e["message"])]
        elif "expected_warning" in vector:
            e = vector["expected_warning"]
            want = [("warning", e["path"], e["message"])]
        else:
            want = [("error" if "error" in str(e) else "warning", e["path"], e["message"])
                    for e in vector["expected_report_entries"]]
        assert got == want, f"report {got} != expected {want}"
        return outcome
    if level.startswith("end-to-end") or "fieldFilters" in level:
        try:
            result = butane.translate(text, files_dir=str(files_dir) if files_dir else None, auto_compression=auto)
        except butane.ButaneError as exc:
            if "expected_error" not in vector:
                raise AssertionError(f"refused: {exc.report}") from None
            check_errors(vector, exc.report, dirs)
            return outcome
        assert "expected_error" not in vector, "translated a config the vector says must be refused"
        same(vector["expected_ignition_json"], result.config)
        outcome.rendered.append((result.config, vector.get("ignition_validate_2_14")))
        return outcome
    if level.startswith("config"):
        return _unvalidated_config(vector, text, version, files_dir, auto, dirs, outcome)
    raise NotApplicable(f"unknown level {level}")


def _unvalidated_config(vector, text, version, files_dir, auto, dirs, outcome) -> Outcome:
    if "root (root bypasses permission bits)" in vector.get("notes", "") and os.geteuid() == 0:
        return _as_unprivileged(vector)
    decoded = decode(yamlsrc.parse(text), schema.Config, version, schema.BASE_NAME[version])
    assert not decoded.type_errors.fatal, str(decoded.type_errors)
    translator = Translator(version, str(files_dir) if files_dir else None, auto)
    out = translator.config(decoded.value)
    if "expected_error" in vector:
        check_errors(vector, translator.report, dirs)
        return outcome
    assert not translator.report.fatal, str(translator.report)
    expected = vector["expected_ignition_json"]
    level = vector["level"]
    if "only storage.filesystems" in level:
        same(expected["storage"]["filesystems"], out["storage"]["filesystems"])
        return outcome  # the Go test translated a fragment of a config; nothing servable to validate
    if "storage.files/links compared" in level:
        storage = out.get("storage", {})
        assert "directories" not in storage
        for key in ("files", "links"):
            same(expected.get("storage", {}).get(key), storage.get(key), f"$.storage.{key}")
    else:
        same(expected, out)
    outcome.rendered.append((out, vector.get("ignition_validate_2_14")))
    if "clevis" in text:  # base-level vector: the flatcar variant itself must refuse it
        try:
            butane.translate(text, files_dir=str(files_dir) if files_dir else None)
        except butane.ButaneError as exc:
            assert any(e.message == checks.CLEVIS_SUPPORT for e in exc.report.errors), str(exc.report)
        else:
            raise AssertionError("flatcar variant accepted clevis")
    return outcome


def _as_unprivileged(vector: dict) -> Outcome:
    """Permission errors only happen to non-root users: run the vector as `nobody` in a child."""
    work = Path(tempfile.mkdtemp(prefix="butane-vector-"))
    os.chmod(work, 0o755)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop privileges, run the vector, report through the pipe
        status = 1
        try:
            os.close(read_fd)
            files = work / "files"
            make_files_dir(files, vector["files_dir"])
            os.chmod(files, 0o755)
            os.setgid(65534)
            os.setuid(65534)
            version = vector_version(vector)
            decoded = decode(yamlsrc.parse(vector["butane_yaml"]), schema.Config, version, schema.BASE_NAME[version])
            translator = Translator(version, str(files))
            translator.config(decoded.value)
            try:
                check_errors(vector, translator.report, {"files_dir": str(files)})
                os.write(write_fd, b"ok")
                status = 0
            except AssertionError as exc:
                os.write(write_fd, str(exc).encode()[:60000])
        finally:
            os._exit(status)
    os.close(write_fd)
    ready, _, _ = select.select([read_fd], [], [], 60)  # bounded: a stuck child is killed, not waited on
    if not ready:
        os.kill(pid, signal.SIGKILL)
    with os.fdopen(read_fd, "rb") as pipe:
        message = pipe.read().decode() if ready else "the unprivileged child did not answer in 60 s"
    os.waitpid(pid, 0)
    _remove_tree(work)
    assert message == "ok", message
    return Outcome()


def _remove_tree(root: Path) -> None:
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
    import shutil

    shutil.rmtree(root, ignore_errors=True)


def _decimal_modes(vector: dict) -> Outcome:
    spec = vector["expected_warning_modes"]
    low, high = spec["range_checked"]
    for directory, key in ((False, "files"), (True, "directories")):
        flagged = [m for m in range(low, high + 1) if checks.is_decimal_mode(m, directory)]
        assert flagged == spec[key], f"{key}: {flagged} != {spec[key]}"
    assert spec["message"] == checks.DECIMAL_MODE
    return Outcome()

