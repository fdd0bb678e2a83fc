"""Differential test: random Butane documents (seeded, so failures reproduce) are translated, and
bootserver's structural check must report exactly the errors and warnings the real ignition-validate
reports."""

from __future__ import annotations

import random

import pytest

from bootserver.render.butane import schema
from bootserver.render.butane.schema import ListOf, Struct
from bootserver.render.butane.translate import Translator

from . import ignition_validate

STRINGS = ["", "x", "/etc/x", "/var/data", "/var/data/sub", "a.service", ".swap", "b.conf", "/dev/vdb", "swap",
           "ext4", "xfs", "gzip", "data:,x", "http://x", "http://x:port", "ftp://x", "0644", "yes", "tpm2",
           "[Service]\nExecStart=/bin/true\n", "[Install]\nWantedBy=multi-user.target\n", "[Unit", "a:b"]
INTS = [0, 1, 420, 493, 644, 0o4755, -5, 70000]
CASES = 500


def random_value(rng: random.Random, kind, depth: int = 0):
    if isinstance(kind, Struct):
        return {f.yaml: random_value(rng, f.type, depth + 1) for f in kind.fields
                if f.json is not None and rng.random() < (0.5 if depth < 2 else 0.3)}
    if isinstance(kind, ListOf):
        return [random_value(rng, kind.item, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind == "str":
        return rng.choice(STRINGS)
    if kind == "int":
        return rng.choice(INTS)
    return rng.random() < 0.5


@pytest.mark.parametrize("seed", range(CASES))
def test_structural_check_matches_ignition_validate(seed):
    rng = random.Random(seed)
    version = rng.choice([schema.V1_0, schema.V1_1])
    config = Translator(version).config(random_value(rng, schema.Config))
    try:
        ignition_validate.assert_agrees(config)
    except AssertionError as exc:
        raise AssertionError(f"seed {seed}: {exc}") from None


def test_generator_covers_the_schema():
    """The random documents really exercise every section (so the comparison above means something)."""
    seen = set()
    for seed in range(CASES):
        rng = random.Random(seed)
        rng.choice([schema.V1_0, schema.V1_1])
        config = Translator(schema.V1_1).config(random_value(rng, schema.Config))
        for section in ("storage", "systemd", "passwd", "kernelArguments"):
            for key in config.get(section, {}):
                seen.add(f"{section}.{key}")
    assert {"storage.files", "storage.directories", "storage.links", "storage.disks", "storage.filesystems",
            "storage.raid", "storage.luks", "systemd.units", "passwd.users", "passwd.groups"} <= seen
