"""Generic URL + SHA-256 assets, `assets list` and `assets prune`."""

import hashlib
import json
import os

import pytest

from bootserver.assets.mirror import MANIFEST, STAGING

from .fakeflatcar import IMAGE, publish


def fetch_flatcar(cli, server, key, *extra):
    return cli("fetch", "flatcar", "--base-url", f"{server.url}/amd64-usr", "--keyring", str(key.armored), *extra)


def test_generic_file_is_placed_only_with_the_right_sha256(cli, server, assets, capsys):
    body = os.urandom(50_000)
    server.files["/ubuntu/vmlinuz"] = body
    url = f"{server.url}/ubuntu/vmlinuz"
    wrong = hashlib.sha256(b"other").hexdigest()
    assert cli("fetch", url, "--sha256", wrong, "--to", "ubuntu/24.04/vmlinuz") == 1
    assert "SHA-256 is" in capsys.readouterr().err
    assert not (assets / "ubuntu").exists()
    assert not list((assets / STAGING).iterdir())
    right = hashlib.sha256(body).hexdigest()
    assert cli("fetch", url, "--sha256", right.upper(), "--to", "ubuntu/24.04/vmlinuz") == 0
    assert (assets / "ubuntu/24.04/vmlinuz").read_bytes() == body
    entry = json.loads((assets / MANIFEST).read_text())["files"]["ubuntu/24.04/vmlinuz"]
    assert entry == {**entry, "sha256": right, "size": len(body), "source": url}
    before = len(server.log)
    assert cli("fetch", url, "--sha256", right, "--to", "ubuntu/24.04/vmlinuz") == 0
    assert len(server.log) == before  # already there with that hash: nothing downloaded
    assert "already present" in capsys.readouterr().out


def test_generic_fetch_resumes(cli, server, assets):
    body = os.urandom(80_000)
    server.files["/big.iso"] = body
    server.drops["/big.iso"] = 1
    assert cli("fetch", f"{server.url}/big.iso", "--sha256", hashlib.sha256(body).hexdigest(), "--to", "big.iso") == 0
    assert server.requests("/big.iso")[1].headers["Range"] == f"bytes={len(body) // 2}-"
    assert (assets / "big.iso").read_bytes() == body


@pytest.mark.parametrize("to", ["/etc/passwd", "../outside", "a/../../b", ".manifest.json", "x/.hidden",
                                "flatcar/amd64/current/evil", ""])
def test_generic_destination_must_stay_inside_the_assets_folder(cli, server, assets, capsys, to):
    server.files["/f"] = b"data"
    assert cli("fetch", f"{server.url}/f", "--sha256", hashlib.sha256(b"data").hexdigest(), "--to", to) == 1
    assert "--to" in capsys.readouterr().err
    assert not server.log


def test_generic_needs_sha256_and_to(cli, capsys):
    assert cli("fetch", "http://127.0.0.1:1/x") == 1
    assert "needs --sha256 HEX and --to PATH" in capsys.readouterr().err
    assert cli("fetch", "http://127.0.0.1:1/x", "--sha256", "abc", "--to", "x") == 1
    assert "64 hexadecimal digits" in capsys.readouterr().err


def test_list_shows_versions_sizes_pointers_and_verification(cli, server, signing_key, assets, capsys):
    publish(server, signing_key, "4081.2.0", size=10_000)
    assert fetch_flatcar(cli, server, signing_key) == 0
    (assets / "flatcar/amd64/3999.2.0").mkdir()  # copied in by hand: not verified
    (assets / "flatcar/amd64/3999.2.0" / IMAGE).write_bytes(b"?")
    capsys.readouterr()
    assert cli("list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["PATH", "SIZE", "VERIFIED", "POINTERS"]
    (new,) = [line for line in lines if line.startswith("flatcar/amd64/4081.2.0")]
    assert f"signature {signing_key.fingerprint[-16:]}" in new
    assert "current, stable/current" in new
    assert "KiB" in new
    (hand,) = [line for line in lines if line.startswith("flatcar/amd64/3999.2.0")]
    assert "NOT VERIFIED" in hand
    # a verified file changed on disk in place (same size): only --check sees it
    image = assets / "flatcar/amd64/4081.2.0" / IMAGE
    data = image.read_bytes()
    image.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert cli("list") == 0
    assert "CHANGED" not in capsys.readouterr().out
    assert cli("list", "--check") == 0
    assert "CHANGED since verified" in capsys.readouterr().out
    with open(image, "ab") as f:  # a size change shows without --check
        f.write(b"!")
    assert cli("list") == 0
    assert "CHANGED since verified" in capsys.readouterr().out


def test_list_of_an_empty_folder(cli, assets, capsys):
    assert cli("list") == 0
    assert "no assets" in capsys.readouterr().out


def test_prune_keeps_the_newest_and_every_pointed_release(cli, server, signing_key, assets, capsys):
    for version in ("4000.2.0", "4050.2.0", "4100.2.0", "4150.2.0"):
        publish(server, signing_key, version, current=False, size=4000)
    publish(server, signing_key, "4050.2.0", size=4000)  # stable's current is an older release
    assert fetch_flatcar(cli, server, signing_key) == 0
    for version in ("4000.2.0", "4100.2.0", "4150.2.0"):
        assert fetch_flatcar(cli, server, signing_key, "--version", version) == 0
    capsys.readouterr()
    assert cli("prune", "--keep", "1", "--dry-run") == 0
    assert capsys.readouterr().out.split("\n")[:2] == ["would remove flatcar/amd64/4100.2.0",
                                                       "would remove flatcar/amd64/4000.2.0"]
    assert (assets / "flatcar/amd64/4000.2.0").is_dir()
    assert cli("prune", "--keep", "1") == 0
    arch = assets / "flatcar/amd64"
    assert sorted(p.name for p in arch.iterdir() if p.name[0].isdigit()) == ["4050.2.0", "4150.2.0"]
    assert sorted(p.name for p in (arch / "stable").iterdir()) == ["4050.2.0", "4150.2.0", "current"]
    releases = json.loads((assets / MANIFEST).read_text())["flatcar"]["amd64"]["releases"]
    assert sorted(releases) == ["4050.2.0", "4150.2.0"]
    assert (arch / "current" / IMAGE).is_file()
    assert cli("prune", "--keep", "0") == 1
    assert "at least 1" in capsys.readouterr().err


def test_prune_removes_abandoned_partial_downloads(cli, server, signing_key, assets, capsys):
    publish(server, signing_key, "4081.2.0", tamper=IMAGE)
    assert fetch_flatcar(cli, server, signing_key) == 1  # refused: the good PXE files stay staged
    assert (assets / STAGING / "flatcar-amd64-4081.2.0").is_dir()
    capsys.readouterr()
    assert cli("prune", "--keep", "3") == 0
    assert capsys.readouterr().out == f"removed {STAGING}/flatcar-amd64-4081.2.0\n"
    assert not list((assets / STAGING).iterdir())


def test_assets_folder_can_be_given_after_the_subcommand():
    import argparse

    from bootserver.assets import commands

    parser = argparse.ArgumentParser()
    parser.add_argument("--assets")  # as the main CLI's settings options do, before the subcommand
    commands.add_arguments(parser)
    assert parser.parse_args(["--assets", "before", "list"]).assets == "before"
    assert parser.parse_args(["list", "--assets", "after"]).assets == "after"
    assert parser.parse_args(["--assets", "before", "prune", "--keep", "1", "--assets", "after"]).assets == "after"
