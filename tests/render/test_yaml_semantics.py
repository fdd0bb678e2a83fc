"""Butane reads YAML as go-yaml v3 does, not as PyYAML's YAML 1.1 defaults would."""

from __future__ import annotations

import pytest

from bootserver.render import butane

from . import ignition_validate

HEAD = "variant: flatcar\nversion: 1.1.0\n"


def translate(body: str, **kw):
    return butane.translate(HEAD + body, **kw)


@pytest.mark.parametrize("written, mode", [("0644", 420), ("0o644", 420), ("0o0755", 493), ("0755", 493),
                                           ("420", 420), ("0x1a4", 420), ("0_644", 420), ("+0644", 420)])
def test_modes_are_go_integers(written, mode):
    result = translate(f"storage:\n  files:\n  - path: /etc/x\n    mode: {written}\n")
    assert result.config["storage"]["files"][0]["mode"] == mode
    assert not result.warnings
    ignition_validate.assert_valid(result.config)


def test_quoted_mode_is_a_type_error_with_its_line():
    with pytest.raises(butane.ButaneError) as info:
        translate("storage:\n  files:\n  - path: /etc/x\n    mode: '0644'\n")
    (entry,) = info.value.entries
    assert (butane.path_string(entry.path), entry.line, entry.column) == ("$.storage.files.0.mode", 6, 11)
    assert entry.message == "cannot unmarshal !!str `0644` into int"


def test_yes_no_are_booleans_only_in_boolean_fields():
    result = translate(
        "storage:\n  files:\n  - path: /etc/x\n    overwrite: yes\n    contents: {inline: 'a'}\n"
        "  filesystems:\n  - device: /dev/vdb\n    format: ext4\n    wipe_filesystem: off\n"
        "    mount_options: [yes, no, on, off, y, n]\n    label: no\n"
        "passwd:\n  users:\n  - name: yes\n    no_create_home: Y\n    gecos: on\n"
    )
    config = result.config
    fs = config["storage"]["filesystems"][0]
    assert config["storage"]["files"][0]["overwrite"] is True
    assert fs["wipeFilesystem"] is False
    assert fs["mountOptions"] == ["yes", "no", "on", "off", "y", "n"]
    assert fs["label"] == "no"
    user = config["passwd"]["users"][0]
    assert (user["name"], user["noCreateHome"], user["gecos"]) == ("yes", True, "on")
    ignition_validate.assert_valid(config)


def test_strings_keep_the_text_as_written():
    result = translate("storage:\n  filesystems:\n  - device: /dev/vdb\n    format: ext4\n    uuid: 0123\n"
                       "    label: 1e3\n    options: [1.50, true, ~x]\n")
    fs = result.config["storage"]["filesystems"][0]
    assert (fs["uuid"], fs["label"], fs["options"]) == ("0123", "1e3", ["1.50", "true", "~x"])


def test_boolean_field_refuses_other_words():
    with pytest.raises(butane.ButaneError, match=r"cannot unmarshal !!str `maybe` into bool"):
        translate("storage:\n  files:\n  - path: /x\n    overwrite: maybe\n")


def test_duplicate_keys_are_an_error_with_both_lines():
    with pytest.raises(butane.ButaneError) as info:
        translate("storage:\n  files:\n  - path: /a\n    mode: 0644\n    path: /b\n")
    (entry,) = info.value.entries
    assert entry.line == 7
    assert entry.message == 'yaml: mapping key "path" already defined at line 5'


def test_yaml_syntax_error_has_a_line():
    with pytest.raises(butane.ButaneError) as info:
        translate("storage:\n  files: [\n")
    assert info.value.entries[0].line is not None and info.value.entries[0].message.startswith("yaml:")


def test_decimal_looking_mode_warns_and_strict_refuses():
    body = "storage:\n  files:\n  - path: /etc/x\n    mode: 644\n    contents: {inline: a}\n"
    result = translate(body)
    (warning,) = [w for w in result.warnings if "octal" in w.message]
    assert (butane.path_string(warning.path), warning.line) == ("$.storage.files.0.mode", 6)
    assert result.config["storage"]["files"][0]["mode"] == 644
    with pytest.raises(butane.ButaneError) as info:
        translate(body, strict=True)
    assert "remember to add a leading zero" in str(info.value.report)


def test_unknown_keys_warn_with_path_and_strict_refuses():
    body = "storage:\n  files:\n  - path: /etc/x\n    contents: {inlin: a}\n"
    result = translate(body)
    assert [(butane.path_string(w.path), w.message, w.line) for w in result.warnings] == [
        ("$.storage.files.0.contents.inlin", "Unused key inlin", 6)]
    with pytest.raises(butane.ButaneError):
        translate(body, strict=True)


def test_version_1_0_does_not_know_1_1_fields():
    result = butane.translate("variant: flatcar\nversion: 1.0.0\nsystemd:\n  units:\n  - name: a.service\n"
                              "    contents_local: a.service\n")
    assert [w.message for w in result.warnings] == ["Unused key contents_local"]
    assert result.config["ignition"]["version"] == "3.3.0"


@pytest.mark.parametrize("head, message", [
    ("version: 1.0.0\n", "error parsing variant; must be specified"),
    ("variant: flatcar\n", "error parsing version; must be a valid semver"),
    ("variant: flatcar\nversion: 1.2.0\n", "No translator exists for variant flatcar with version 1.2.0"),
    ("variant: fcos\nversion: 1.4.0\n", "No translator exists for variant fcos with version 1.4.0"),
])
def test_variant_and_version_are_required(head, message):
    with pytest.raises(butane.ButaneError, match=message):
        butane.translate(head)


def test_anchors_aliases_and_merge_keys():
    result = translate("x-unit: &unit\n  enabled: true\n  contents: \"[Service]\\nExecStart=/bin/true\\n"
                       "[Install]\\nWantedBy=multi-user.target\\n\"\n"
                       "systemd:\n  units:\n  - <<: *unit\n    name: a.service\n  - <<: *unit\n    name: b.service\n")
    assert [u["name"] for u in result.config["systemd"]["units"]] == ["a.service", "b.service"]
    assert all(u["enabled"] is True for u in result.config["systemd"]["units"])
    assert [w.message for w in result.warnings] == ["Unused key x-unit"]


def test_ignition_errors_point_at_the_butane_source():
    with pytest.raises(butane.ButaneError) as info:
        translate("storage:\n  files:\n  - path: relative/x\n    contents:\n      inline: hi\n"
                  "systemd:\n  units:\n  - name: nosuffix\n")
    got = [(butane.path_string(e.path), e.line, e.message) for e in info.value.report.errors]
    assert got == [("$.storage.files.0.path", 5, "path not absolute"),
                   ("$.systemd.units.0.name", 10, "invalid systemd unit extension")]


def test_errors_in_generated_and_inline_content_map_back():
    with pytest.raises(butane.ButaneError) as info:
        translate("storage:\n  files:\n  - path: /x\n    contents:\n      inline: hi\n      compression: bz2\n")
    (entry,) = info.value.report.errors
    assert butane.path_string(entry.path) == "$.storage.files.0.contents.compression"
    assert entry.message == "invalid compression method"
