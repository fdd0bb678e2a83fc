"""Every kind of catalog mistake is reported, with file, line and field, all at once."""

from pathlib import Path

import pytest

from bootserver.catalog.loader import CatalogError, load_catalog, validate
from tests.conftest import MACHINES, PROFILE, write_catalog

REPO = Path(__file__).resolve().parents[2]


def errors(root: Path) -> list:
    return [p for p in validate(root) if p.severity == "error"]


def one_error(tmp_path, files) -> object:
    found = errors(write_catalog(tmp_path / "c", {"ignition.json": "{}", **files}))
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


def test_example_catalog_is_valid():
    assert errors(REPO / "profiles") == []


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    p = one_error(tmp_path, {"a.yaml": PROFILE, "bad.yaml": "apiVersion: bootserver/v1\nkind: [Profile\n"})
    assert p.file.name == "bad.yaml" and (p.line, p.column) == (2, 7) and "YAML syntax error" in p.message  # the [


def test_duplicate_yaml_key(tmp_path):
    p = one_error(tmp_path, {"a.yaml": PROFILE.replace("  after_install: local-disk",
                                                       "  after_install: local-disk\n  after_install: none")})
    assert "duplicate key 'after_install'" in p.message and p.line == 12


def test_unknown_key_with_did_you_mean(tmp_path):
    p = one_error(tmp_path, {"a.yaml": PROFILE.replace("    initrd:", "    initrds:")})
    assert p.field == "spec.boot.initrds" and "did you mean 'initrd'" in p.message and p.line == 7


def test_wrong_type(tmp_path):
    p = one_error(tmp_path, {"a.yaml": PROFILE.replace('args: ["console=ttyS0"]', "args: console=ttyS0")})
    assert p.field == "spec.boot.args" and "expected a list" in p.message and p.line == 19


def test_missing_required_field(tmp_path):
    p = one_error(tmp_path, {"a.yaml": PROFILE.replace("    kernel: os/vmlinuz\n", "")})
    assert p.field == "spec.boot" and "missing required field 'kernel'" in p.message
    assert p.document == "Profile install"


def test_duplicate_names_per_kind(tmp_path):
    p = one_error(tmp_path, {"a.yaml": PROFILE, "b.yaml": PROFILE.split("---")[0]})
    assert "duplicate Profile name 'install'" in p.message and "a.yaml:1" in p.message


def test_same_mac_in_two_machines_names_both_files(tmp_path):
    other = MACHINES.split("---")[0].replace("node1", "node9").replace("52:54:00:00:00:01", "52-54-00-00-00-01")
    p = one_error(tmp_path, {"a.yaml": PROFILE, "m.yaml": MACHINES, "z.yaml": other})
    assert p.file.name == "z.yaml" and "already used by Machine node1" in p.message and "m.yaml" in p.message


def test_missing_profile(tmp_path):
    p = one_error(tmp_path, {"a.yaml": PROFILE, "m.yaml": MACHINES.replace("profile: live", "profile: lve")})
    assert "profile 'lve' does not exist" in p.message and p.document == "Group lab"


def test_missing_template_file(tmp_path):
    p = one_error(tmp_path, {"a.yaml": PROFILE.replace("config: ignition.json", "config: nope.json")})
    assert "template file 'nope.json' does not exist" in p.message and p.field == "spec.ignition.config"


@pytest.mark.parametrize("field,value,message", [
    ("mac: 52:54:00:00:00:01", "mac: 52:54:00:00:01", "not a MAC address"),
    ('mac_prefix: "52:54:00"', 'mac_prefix: "52:5"', "not a MAC prefix"),
    ('mac_prefix: "52:54:00"', 'subnet: 10.0.0.0/33', "not a subnet"),
])
def test_invalid_mac_prefix_subnet(tmp_path, field, value, message):
    p = one_error(tmp_path, {"a.yaml": PROFILE, "m.yaml": MACHINES.replace(field, value)})
    assert message in p.message


def test_tied_groups(tmp_path):
    groups = MACHINES + """\
---
apiVersion: bootserver/v1
kind: Group
metadata: {name: efi}
spec:
  selector: {arch: x86_64-efi}
  profile: live
"""
    p = one_error(tmp_path, {"a.yaml": PROFILE, "m.yaml": groups})
    assert "ties with Group lab" in p.message and p.document == "Group efi"


def test_disjoint_groups_do_not_tie(tmp_path):
    groups = MACHINES + """\
---
apiVersion: bootserver/v1
kind: Group
metadata: {name: other-vendor}
spec:
  selector: {mac_prefix: "00:1b:21"}
  profile: live
"""
    assert errors(write_catalog(tmp_path / "c", {"a.yaml": PROFILE, "m.yaml": groups, "ignition.json": "{}"})) == []


def test_missing_asset_is_only_a_warning(tmp_path):
    root = write_catalog(tmp_path / "c", {"a.yaml": PROFILE, "ignition.json": "{}"})
    problems = validate(root, tmp_path / "assets")
    assert problems and all(p.severity == "warning" for p in problems)
    assert any("os/vmlinuz" in p.message for p in problems)


def test_every_problem_reported_at_once(tmp_path):
    bad = PROFILE.replace("    initrd:", "    initrds:").replace("after_install: local-disk", "after_install: disk")
    root = write_catalog(tmp_path / "c", {"a.yaml": bad, "m.yaml": MACHINES.replace("52:54:00:00:00:01", "nope"),
                                          "x.yaml": "kind: Profile\n", "ignition.json": "{}"})
    with pytest.raises(CatalogError) as info:
        load_catalog(root)
    messages = "\n".join(str(p) for p in info.value.problems)
    for expected in ("did you mean 'initrd'", "'disk' is not one of", "not a MAC address",
                     "missing required field 'apiVersion'", "x.yaml:1"):
        assert expected in messages


def test_unsafe_arg_template_syntax_is_an_error(tmp_path):
    p = one_error(tmp_path, {"a.yaml": PROFILE.replace('"console=ttyS0", "hostname', '"console={{ x", "hostname')})
    assert "template syntax error" in p.message and p.field == "spec.boot.args[0]"


def test_validate_cli_exit_codes(tmp_path, capsys):
    from bootserver.cli import main

    good = write_catalog(tmp_path / "good", {"a.yaml": PROFILE, "ignition.json": "{}"})
    bad = write_catalog(tmp_path / "bad", {"a.yaml": PROFILE.replace("kernel:", "kernal:"), "ignition.json": "{}"})
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "a.yaml:6:5" in err and "did you mean 'kernel'" in err
