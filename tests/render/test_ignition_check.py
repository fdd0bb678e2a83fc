"""bootserver's structural check agrees with the real ignition-validate on valid and broken configs."""

from __future__ import annotations

import pytest

from bootserver.render import ignition_check
from bootserver.render.report import path_string

from . import ignition_validate

V33 = {"version": "3.3.0"}
GOOD = "sha512-" + "a" * 128

CONFIGS = {
    "minimal": {"ignition": V33},
    "minimal_3_4": {"ignition": {"version": "3.4.0"}},
    "full_valid": {
        "ignition": {"version": "3.3.0", "proxy": {"httpProxy": "http://proxy:3128", "noProxy": ["10.0.0.0/8"]},
                     "config": {"merge": [{"source": "https://x/y.ign", "verification": {"hash": GOOD}}]},
                     "timeouts": {"httpTotal": 30}},
        "storage": {
            "files": [{"path": "/etc/a", "mode": 420, "overwrite": True, "user": {"name": "core"},
                       "contents": {"source": "data:,x", "compression": ""},
                       "append": [{"source": "https://x/a", "httpHeaders": [{"name": "A", "value": "b"}]}]}],
            "directories": [{"path": "/var/d", "mode": 493}],
            "links": [{"path": "/etc/l", "target": "/etc/a", "hard": False}],
            "disks": [{"device": "/dev/vda", "wipeTable": True, "partitions": [
                {"number": 1, "label": "ROOT", "sizeMiB": 1024, "typeGuid": "0FC63DAF-8483-4772-8E79-3D69D8477DE4"},
                {"label": "DATA", "startMiB": 0}]}],
            "filesystems": [{"device": "/dev/disk/by-partlabel/ROOT", "format": "ext4", "label": "root",
                             "path": "/var", "mountOptions": ["noatime"]}],
            "raid": [{"name": "md0", "level": "raid1", "devices": ["/dev/vdb", "/dev/vdc"], "spares": 1}],
            "luks": [{"name": "data", "device": "/dev/vdd", "keyFile": {"source": "data:,secret"}}],
        },
        "systemd": {"units": [{"name": "a.service", "enabled": True,
                               "contents": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
                               "dropins": [{"name": "10-x.conf", "contents": "[Service]\nEnvironment=A=1\n"}]},
                              {"name": "b.timer", "mask": True}]},
        "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": ["ssh-ed25519 AAAA"], "groups": ["sudo"]}],
                   "groups": [{"name": "ops", "gid": 2000}]},
        "kernelArguments": {"shouldExist": ["quiet"], "shouldNotExist": ["splash"]},
    },
    "resource_errors": {"ignition": V33, "storage": {"files": [{"path": "/a", "contents": {
        "source": "ftp://x", "compression": "bz2", "verification": {"hash": "md5-abc"}}}]}},
    "node_duplicates_and_links": {"ignition": V33, "storage": {"files": [{"path": "/a"}, {"path": "/a"}],
                                                               "links": [{"path": "/a"}]}},
    "dirty_path_mode_owner": {"ignition": V33, "storage": {"files": [
        {"path": "/a/../b", "overwrite": True, "mode": 70000, "user": {"id": 1, "name": "x"}}]}},
    "units": {"ignition": V33, "systemd": {"units": [
        {"name": "foo"}, {"name": "a.service", "contents": "[Service\nfoo", "dropins": [{"name": "x"}]},
        {"name": "a.service"}]}},
    "enabled_without_install": {"ignition": V33, "systemd": {"units": [
        {"name": "a.service", "enabled": True, "contents": "[Service]\nExecStart=/bin/true\n"}]}},
    "users_groups": {"ignition": V33, "passwd": {"users": [{"name": "a", "sshAuthorizedKeys": ["k", "k"],
                                                            "groups": ["g", "g"]}, {"name": "a"}],
                                                 "groups": [{"name": "g"}, {"name": "g"}]}},
    "kernel_arguments": {"ignition": V33, "kernelArguments": {"shouldExist": ["a", "a"], "shouldNotExist": ["a"]}},
    "filesystems_disks_raid": {"ignition": V33, "storage": {
        "filesystems": [{"device": "", "format": "zfs", "path": "rel"}, {"device": "/dev/a", "label": "x"},
                        {"device": "/dev/b", "format": "ext4", "label": "a" * 17, "path": "/x"}],
        "disks": [{"device": "", "partitions": [{"number": 1}, {"number": 1, "label": "a" * 39}]}],
        "raid": [{"name": "r0", "level": "raid7", "devices": []}]}},
    "partitions": {"ignition": V33, "storage": {"disks": [{"device": "/dev/a", "partitions": [
        {"label": "a:b", "guid": "x", "typeGuid": "y"}, {"number": 0}]}],
        "raid": [{"name": "r", "level": "raid0", "devices": ["/dev/a"], "spares": 1}]}},
    "luks": {"ignition": V33, "storage": {"luks": [{"name": "l", "device": "rel", "keyFile": {"source": "ftp://x"}},
                                                   {"name": "m"}]}},
    "links_and_dirs": {"ignition": V33, "storage": {
        "files": [{"path": "/l/x"}], "links": [{"path": "/l", "target": "/t"}, {"path": "/h"}],
        "directories": [{"path": "relative"}, {"path": "/d", "mode": 4095}]}},
    "proxy_and_sources": {"ignition": {"version": "3.3.0", "proxy": {"httpProxy": "ftp://x"},
                                       "config": {"merge": [{"source": ""}]},
                                       "security": {"tls": {"certificateAuthorities": [{"source": ""}]}}}},
    "http_headers": {"ignition": V33, "storage": {"files": [{"path": "/a", "contents": {
        "source": "data:,x", "httpHeaders": [{"name": "a"}]}, "append": [{"source": "http://x", "httpHeaders": [
            {"name": ""}, {"name": "b"}, {"name": "b"}]}]}]}},
    "hash_without_source": {"ignition": V33, "storage": {"files": [{"path": "/a", "contents": {
        "compression": "gzip", "verification": {"hash": "sha512-00"}}}]}},
    "bad_data_url": {"ignition": V33, "storage": {"files": [{"path": "/a", "contents": {"source": "data:;base64,!!"}}]}},
    "unsupported_version": {"ignition": {"version": "3.9.0"}},
    "s3_and_hashes": {"ignition": V33, "storage": {"files": [
        {"path": "/a", "contents": {"source": "s3://b/k?versionId="}},
        {"path": "/b", "contents": {"source": "s3://b/k?versionId=1", "verification": {"hash": "sha256-" + "g" * 64}}},
        {"path": "/c", "contents": {"source": "gs://b/k"}}, {"path": "/d", "contents": {"source": "tftp://h/x"}},
        {"path": "/e", "contents": {"source": "oem:///x"}}]}},
    "s3_arns_3_4": {"ignition": {"version": "3.4.0"}, "storage": {"files": [
        {"path": f"/{i}", "contents": {"source": source}} for i, source in enumerate([
            "arn:aws:s3:::bucket/key", "arn:aws:iam::1:user/x", "arn:aws:s3:::bucket",
            "arn:aws:s3:us-east-1:1:accesspoint/ap/object/k?versionId=", "arn:aws:s3:us-east-1:1:accesspoint/ap"])]}},
    "data_and_escapes": {"ignition": V33, "storage": {"files": [
        {"path": f"/{i}", "contents": {"source": source}} for i, source in enumerate([
            "data:,é", 'data:,a"b', "data:,<>", "data:,{x}", "data:;base64,aGk", "data:;base64,a%3D", "data:,%4",
            "data:,a%", "data:,%%", "data:foo,x", "data:;charset=x,a", "data:text/plain;base64;x,aGk=",
            "data:text/plain,a", "data:,%zz", "data:,a b", "data:text/plain;charset=utf-8,hi", "http://x/%zz",
            "http://x/?a=%zz", "http://x/#%zz"])]}},
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_agrees_with_ignition_validate(name):
    config = CONFIGS[name]
    if name == "unsupported_version":  # ignition-validate refuses to parse it at all
        code, lines = ignition_validate.run(config)
        assert lines == ["couldn't parse config: unsupported config version"]
        assert [(e.kind, path_string(e.path), e.message) for e in ignition_check.check(config).entries] == [
            ("error", "$.ignition.version", "unsupported config version")]
        return
    ignition_validate.assert_agrees(config)
