"""The `updates` block of Profiles and Groups: parsed into a policy, every mistake reported with
file, line and field like the rest of the catalog."""

from __future__ import annotations

import pytest

from bootserver.catalog.loader import load_catalog, validate
from bootserver.catalog.model import UpdatePolicy, Window
from tests.conftest import write_catalog

PROFILE = """\
apiVersion: bootserver/v1
kind: Profile
metadata: {name: flatcar}
spec:
  boot: {kernel: flatcar/vmlinuz}
  updates:
%s
---
apiVersion: bootserver/v1
kind: Group
metadata: {name: rack1}
spec:
  selector: {mac_prefix: "02:00:00"}
  profile: flatcar
  updates: {version: 4081.2.0, max_updating: 2, enabled: false}
"""


def catalog(tmp_path, block: str):
    return write_catalog(tmp_path / "c", {"p.yaml": PROFILE % block})


def test_policy_is_parsed(tmp_path):
    loaded = load_catalog(catalog(tmp_path, "    channel: beta\n    group: rack-beta\n    max_updating: 3\n"
                                            "    max_per_hour: 10\n"
                                            "    window: {start: '22:30', length: 3h30m, days: [sat, sun]}"))
    assert loaded.profiles["flatcar"].updates == UpdatePolicy(
        enabled=True, channel="beta", group="rack-beta", max_updating=3, max_per_hour=10,
        window=Window(start_minute=22 * 60 + 30, length_minutes=210, days=("sat", "sun")))
    assert loaded.profiles["flatcar"].updates.track == "rack-beta"
    group = loaded.groups[0].updates
    assert (group.enabled, group.version, group.channel, group.max_updating, group.track) == \
        (False, "4081.2.0", "stable", 2, "stable")


@pytest.mark.parametrize("block, field, message, line", [
    ("    channel: stable\n    version: 4081.2.0", "spec.updates.version", "either channel", 8),
    ("    version: latest", "spec.updates.version", "'latest' is not a Flatcar version", 7),
    ("    channel: nightly", "spec.updates.channel", "'nightly' is not one of: stable, beta, alpha, lts", 7),
    ("    max_updating: 0", "spec.updates.max_updating", "0 is out of range", 7),
    ("    max_updating: many", "spec.updates.max_updating", "expected a whole number", 7),
    ("    enabled: yes please", "spec.updates.enabled", "expected true or false", 7),
    ("    window: {start: '25:00', length: 1h}", "spec.updates.window.start", "not a time like 02:30", 7),
    ("    window: {start: '02:00', length: 2d}", "spec.updates.window.length", "not a length like 3h", 7),
    ("    window: {start: '02:00', length: 25h}", "spec.updates.window.length", "at most 24h", 7),
    ("    window: {start: '02:00', length: 1h, days: [monday]}", "spec.updates.window.days[0]",
     "'monday' is not one of: mon", 7),
    ("    window: {start: '02:00'}", "spec.updates.window", "missing required field 'length'", 7),
    ("    group: 'a b'", "spec.updates.group", "a group is 1-64 letters", 7),
    ("    max_per_hr: 3", "spec.updates.max_per_hr", "did you mean 'max_per_hour'", 7),
])
def test_mistakes_name_file_line_and_field(tmp_path, block, field, message, line):
    problems = [p for p in validate(catalog(tmp_path, block))
                if p.severity == "error" and p.document != "Group rack1"]  # (its profile is the broken one)
    assert len(problems) == 1, [str(p) for p in problems]
    problem = problems[0]
    assert (problem.file.name, problem.field, problem.document) == ("p.yaml", field, "Profile flatcar")
    assert message in problem.message, problem.message
    assert problem.line == line, str(problem)
