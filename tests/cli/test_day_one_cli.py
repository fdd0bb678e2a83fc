"""Day-one command-line mistakes (issue 18): clear errors naming the flag, no tracebacks, the
command's own usage, one meaning per exit code (2: the command line or a setting is wrong, 1: it
failed while running), `config show` with serve's flags, `machines` by name, logs with fields."""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from bootserver.cli.main import _formatter, _subcommands, build_parser
from tests.conftest import REPO


def run(*args, cwd=None, prefix=()):
    return subprocess.run([*prefix, sys.executable, "-m", "bootserver", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})


def clean(out: subprocess.CompletedProcess) -> str:
    text = out.stdout + out.stderr
    assert "Traceback" not in text and "Errno" not in text, text
    return text


def test_a_port_out_of_range_is_a_usage_error_naming_the_flag(catalog_dir):
    out = run("serve", "--catalog", str(catalog_dir), "--state", "memory://", "--http", "127.0.0.1:99999")
    assert out.returncode == 2 and "--http: port 99999" in clean(out)


def test_a_busy_port_names_the_flag(catalog_dir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = run("serve", "--catalog", str(catalog_dir), "--state", "memory://", "--http", f"127.0.0.1:{port}")
    assert out.returncode == 1
    assert f"cannot listen on --http 127.0.0.1:{port}: address already in use" in clean(out)


def test_an_unknown_host_names_the_flag(catalog_dir):
    if os.geteuid() != 0:
        pytest.fail("needs root for a network namespace (the name lookup must not leave the machine)")
    ns = "bsday1-" + secrets.token_hex(3)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:  # a namespace with no network: the lookup fails here, without asking any outside server
        out = run("serve", "--catalog", str(catalog_dir), "--state", "memory://", "--http", "nosuchhost.invalid:8080",
                  prefix=("ip", "netns", "exec", ns))
    finally:
        subprocess.run(["ip", "netns", "del", ns])
    assert out.returncode == 1 and "cannot listen on --http nosuchhost.invalid:8080: unknown host" in clean(out)


def test_a_missing_dhcp_interface_is_refused_before_anything_binds(catalog_dir):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        tftp_port = probe.getsockname()[1]
    out = run("serve", "--catalog", str(catalog_dir), "--state", "memory://", "--dhcp", "nosuch0",
              "--http", "127.0.0.1:0", "--tftp", f"127.0.0.1:{tftp_port}")
    text = clean(out)
    assert out.returncode == 1 and "--dhcp nosuch0: no such network interface (there are: lo" in text
    assert "listening" not in text and "proxyDHCP on" not in text  # nothing was bound first


def test_a_file_given_as_the_catalog(catalog_dir):
    file = catalog_dir / "profiles.yaml"
    for command in (("validate", str(file)), ("serve", "--catalog", str(file), "--state", "memory://",
                                              "--http", "127.0.0.1:0")):
        out = run(*command)
        assert out.returncode == 1 and "is a file, not a directory" in clean(out), command


def test_an_unknown_flag_prints_the_commands_own_usage():
    for command in (["serve"], ["machines", "list"], ["render", "ipxe", "--mac", "52:54:00:00:00:01"]):
        out = run(*command, "--no-such-flag")
        assert out.returncode == 2
        assert out.stderr.startswith(f"usage: bootserver {' '.join(command[:2] if command[0] == 'machines' else command[:1])}")
        assert "unrecognized arguments: --no-such-flag" in out.stderr


def test_the_same_mistake_exits_the_same_everywhere(catalog_dir, tmp_path):
    bad_state = [("serve", "--http", "127.0.0.1:0"), ("machines", "list"), ("config", "show"),
                 ("render", "ipxe", "--mac", "52:54:00:00:00:01")]
    for command in bad_state:  # a setting that cannot be right: usage, 2
        out = run(*command, "--catalog", str(catalog_dir), "--state", "bogus://x")
        assert out.returncode == 2 and "--state: 'bogus://x' is not a state URL" in clean(out), command
    missing = tmp_path / "nowhere"
    for command in (("serve", "--http", "127.0.0.1:0", "--state", "memory://"), ("validate",),
                    ("render", "ipxe", "--mac", "52:54:00:00:00:01")):  # a catalog that is not there: runtime, 1
        out = run(*command, "--catalog", str(missing))
        assert out.returncode == 1 and "does not exist" in clean(out), command


def test_config_show_takes_serves_flags():
    out = run("config", "show", "--json", "--http", "127.0.0.1:9999", "--dhcp", "eth7", "--tftp", "off",
              "--log-format", "json", "--advertise-url", "http://10.0.0.2:9999")
    data = json.loads(out.stdout)
    assert data["http"] == {"value": "127.0.0.1:9999", "source": "flag --http"}
    assert data["dhcp"]["source"] == "flag --dhcp" and "eth7" in data["dhcp"]["value"]
    assert data["log_format"]["value"] == "json" and data["advertise_url"]["source"] == "flag --advertise-url"


def test_every_leaf_command_has_a_description_and_defaults_in_help():
    parser, _areas = build_parser()
    missing = []

    def walk(p: argparse.ArgumentParser, path: str) -> None:
        sub = _subcommands(p)
        if sub is not None:
            for name, child in sub.choices.items():
                walk(child, f"{path} {name}")
            return
        if not p.description:
            missing.append(f"{path}: no description")
        formatter = _formatter(path)
        for action in p._actions:
            flag_only = isinstance(action, (argparse._StoreTrueAction, argparse._HelpAction, argparse._VersionAction))
            if not action.option_strings or action.required or flag_only or action.help == argparse.SUPPRESS:
                continue
            if "default" not in formatter._get_help_string(action).lower():
                missing.append(f"{path} {action.option_strings[-1]}: no default in --help")

    walk(parser, "bootserver")
    assert missing == []
    help_text = run("machines", "show", "--help").stdout
    assert "One machine's record." in help_text and "(default: sqlite:///state/bootserver.db)" in help_text


async def test_machines_by_name_group_members_by_their_own_name_and_json_access_log(serve, catalog_dir, tmp_path):
    state = f"sqlite:///{tmp_path / 's.db'}"
    server = serve("--catalog", str(catalog_dir), "--state", state, "--log-format", "json")
    group_member = "52:54:00:99:99:99"  # matched by Group lab (mac_prefix 52:54:00), not named in the catalog
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{server.url}/ipxe?mac=52:54:00:00:00:01&arch=x86_64-efi") as r:
            assert r.status == 200
        async with s.get(f"{server.url}/ipxe?mac={group_member}&arch=x86_64-efi") as r:
            assert r.status == 200
        async with s.get(f"{server.url}/ipxe?mac=zz") as r:
            assert r.status == 400
        async with s.get(f"{server.url}/ignition?mac=52:54:00:00:00:01") as r:
            etag = r.headers["ETag"]
        async with s.get(f"{server.url}/ignition?mac=52:54:00:00:00:01", headers={"If-None-Match": etag}) as r:
            assert r.status == 304
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "bootserver.access"]
    ok = next(line for line in access if line["path"] == "/ipxe" and line["status"] == 200)
    assert ok["mac"] == "52:54:00:00:00:01" and ok["machine"] == "node1" and ok["bytes"] > 0 and ok["ms"] >= 0
    refused = next(line for line in access if line["status"] == 400)
    assert refused["reason"] == "bad query parameter 'mac': 'zz' is not a MAC address"
    assert next(line for line in access if line["status"] == 304)["bytes"] == 0
    server.stop()
    shown = run("machines", "show", "node1", "--catalog", str(catalog_dir), "--state", state)
    assert shown.returncode == 0 and "52:54:00:00:00:01" in shown.stdout
    timeline = json.loads(run("machines", "timeline", "node1", "--json", "--catalog", str(catalog_dir),
                              "--state", state).stdout)
    ignition = [e for e in timeline["events"] if e["kind"] == "http.ignition"]
    assert [(e["detail"]["status"], e["detail"]["bytes"] > 0) for e in ignition] == [(200, True), (304, False)]
    assert ignition[1]["detail"]["bytes"] == 0
    listed = json.loads(run("machines", "list", "--json", "--catalog", str(catalog_dir), "--state", state).stdout)
    names = {m["mac"]: m["name"] for m in listed["machines"]}
    assert names == {"52:54:00:00:00:01": "node1", group_member: None}  # not "lab", the group's name
    unknown = run("machines", "show", "nosuch", "--catalog", str(catalog_dir), "--state", state)
    assert unknown.returncode == 1 and "neither a MAC address nor the name" in clean(unknown)


def test_a_reload_repeats_no_unchanged_asset_warning(serve, catalog_dir):
    server = serve("--catalog", str(catalog_dir), "--state", "memory://")
    warning = "asset 'os/vmlinuz' is not in"
    assert server.log().count(warning) == 1
    (catalog_dir / "extra.yaml").write_text(
        "apiVersion: bootserver/v1\nkind: Profile\nmetadata: {name: extra}\nspec: {boot: {kernel: os/other}}\n")
    server.wait_log(r"catalog reloaded \(file change\): generation 2")
    log = server.log()
    assert log.count(warning) == 1 and log.count("asset 'os/other' is not in") == 1
