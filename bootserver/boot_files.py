"""Finding a boot loader or TFTP file under the boot-file roots: the one rule TFTP and HTTP's
/loaders/<name> share.

A name that could leave a root (`..`, an absolute path, a backslash) is refused outright, even if a
later root might have held a harmless file of that name. Symlinks are judged by where they lead:
in the folders of `tftp_root` a link must stay inside its folder; the iPXE folder is a package's
(Debian links `ipxe.efi` to `/boot/ipxe.efi`), so its links are followed wherever they point.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence


class PathRefused(Exception):
    """The name tries to leave the TFTP root: answered with an access violation and logged."""


@dataclass(frozen=True)
class Root:
    path: str
    confined: bool = True  # symlinks must stay inside


def resolve(filename: str, roots: Sequence[Root]) -> str | None:
    """The real path of the first regular file named `filename` under one of `roots`, or None."""
    if "\\" in filename:
        raise PathRefused("backslash in file name")
    if filename.startswith("/"):
        raise PathRefused("absolute path")
    if "\0" in filename:
        raise PathRefused("NUL in file name")
    if ".." in filename.split("/"):
        raise PathRefused("'..' in file name")
    for root in roots:
        real_root = os.path.realpath(root.path)
        candidate = os.path.realpath(os.path.join(real_root, filename))
        if root.confined and os.path.commonpath([real_root, candidate]) != real_root:
            raise PathRefused(f"symlink leaves the root {real_root}")
        if os.path.isfile(candidate):
            return candidate
    return None
