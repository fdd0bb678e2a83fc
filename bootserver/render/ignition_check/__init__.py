"""bootserver's own structural check of an Ignition 3.x config, run on every config before it is served.

It mirrors the checks Ignition itself makes (paths absolute and simplified, valid modes, URL schemes,
compression, hashes, filesystem formats, partitions, RAID levels, unit names and contents, duplicate
entries, …) with Ignition's messages, so a config that would fail on the machine fails here first.
Paths in the report are JSON paths into the config (("storage", "files", 0, "mode") = $.storage.files.0.mode).

The check itself is in `checker.py`; URLs (Go's url.Parse, S3 ARNs, data URLs), systemd unit files and
partition/path rules are separate parsers beside it.
"""

from .checker import DUPLICATE, KNOWN_VERSIONS, check

__all__ = ["DUPLICATE", "KNOWN_VERSIONS", "check"]
