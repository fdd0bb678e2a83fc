"""Reading `local:` files under the files directory, refusing paths that climb out of it.

Error texts follow Go's os errors ("open PATH: no such file or directory"), which is what Butane
prints and what the conformance vectors expect.
"""

from __future__ import annotations

import os

NO_FILES_DIR = "local file paths are relative to a files directory that must be specified with -d/--files-dir"
FILES_DIR_ESCAPE = "local file path traverses outside the files directory"


class LocalFileError(Exception):
    pass


def os_error(op: str, path: str, exc: OSError) -> LocalFileError:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return LocalFileError(f"{op} {path}: {reason[:1].lower()}{reason[1:]}")


def resolve(config_path: str, files_dir: str | None) -> str:
    """The absolute path of `config_path` inside `files_dir` (LocalFileError when refused)."""
    if not files_dir:
        raise LocalFileError(NO_FILES_DIR)
    joined = os.path.normpath(os.path.join(files_dir, config_path))
    ensure_within(joined, files_dir)
    return joined


def ensure_within(path: str, files_dir: str) -> None:
    base = os.path.abspath(files_dir)
    target = os.path.abspath(path)
    if target != base and not target.startswith(base + os.sep):
        raise LocalFileError(FILES_DIR_ESCAPE)


def read(config_path: str, files_dir: str | None) -> bytes:
    """The file's bytes. Unlike Butane, a symlink that leads out of the files directory is refused too:
    the server reads these files on behalf of whoever can edit the catalog."""
    path = resolve(config_path, files_dir)
    real, real_base = os.path.realpath(path), os.path.realpath(files_dir)  # type: ignore[arg-type]
    if real != real_base and not real.startswith(real_base + os.sep):
        raise LocalFileError(FILES_DIR_ESCAPE)
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except IsADirectoryError as exc:
        raise os_error("read", path, exc) from None
    except OSError as exc:
        raise os_error("open", path, exc) from None
