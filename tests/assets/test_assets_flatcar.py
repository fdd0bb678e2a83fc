"""Mirroring Flatcar releases from a fake release server signed with a test key."""

import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

from bootserver.assets.mirror import MANIFEST, STAGING

from .fakeflatcar import IMAGE, PXE, UPDATE, SigningKey, digests, publish

CPIO = PXE[1]


def fetch(cli, server, key, *extra, channel="stable"):
    return cli("fetch", "flatcar", "--channel", channel, "--base-url", f"{server.url}/amd64-usr",
               "--keyring", str(key.armored), *extra)


def manifest(assets):
    return json.loads((assets / MANIFEST).read_text())


def test_fetch_verifies_places_and_points(cli, server, signing_key, assets, capsys):
    genuine = publish(server, signing_key, "4081.2.0")
    assert fetch(cli, server, signing_key) == 0
    release = assets / "flatcar/amd64/4081.2.0"
    for name in (*PXE, IMAGE, "version.txt"):
        assert (release / name).read_bytes() == genuine[name]
    for name in (*PXE, IMAGE):
        assert (release / f"{name}.sig").is_file() and (release / f"{name}.DIGESTS").is_file()
    assert os.readlink(assets / "flatcar/amd64/current") == "4081.2.0"
    assert os.readlink(assets / "flatcar/amd64/stable/current") == "../4081.2.0"
    assert (assets / "flatcar/amd64/current/flatcar_production_pxe.vmlinuz").read_bytes() == genuine[PXE[0]]
    record = manifest(assets)["flatcar"]["amd64"]["releases"]["4081.2.0"]
    for name in (*PXE, IMAGE):
        assert record["files"][name]["signed_by"] == signing_key.fingerprint
        assert record["files"][name]["digests_checked"] is True
    assert not (assets / STAGING / "flatcar-amd64-4081.2.0").exists()
    out = capsys.readouterr()
    assert "downloading flatcar_production_image.bin.bz2" in out.err  # plain lines, not a TTY bar
    assert "\r" not in out.err
    assert "fetched and verified" in out.out


def test_binary_keyring_is_accepted(cli, server, signing_key, assets):
    publish(server, signing_key, "4081.2.0")
    assert cli("fetch", "flatcar", "--base-url", f"{server.url}/amd64-usr",
               "--keyring", str(signing_key.binary)) == 0
    assert (assets / "flatcar/amd64/4081.2.0" / IMAGE).is_file()


def test_signature_by_another_key_is_refused(cli, server, signing_key, assets, capsys):
    publish(server, signing_key, "4081.2.0")
    # no --keyring: Flatcar's shipped key, which did not sign the test release
    assert cli("fetch", "flatcar", "--base-url", f"{server.url}/amd64-usr") == 1
    assert "OpenPGP signature check failed" in capsys.readouterr().err
    assert not (assets / "flatcar/amd64/4081.2.0").exists()
    assert not (assets / "flatcar/amd64/current").exists()


def test_tampered_file_is_refused_and_previous_release_stays(cli, server, signing_key, assets, capsys):
    old = publish(server, signing_key, "4081.2.0")
    assert fetch(cli, server, signing_key) == 0
    publish(server, signing_key, "4116.2.0", tamper=IMAGE)
    capsys.readouterr()
    assert fetch(cli, server, signing_key) == 1
    err = capsys.readouterr().err
    assert f"{IMAGE}: OpenPGP signature check failed" in err
    assert not (assets / "flatcar/amd64/4116.2.0").exists()
    assert not (assets / STAGING / "flatcar-amd64-4116.2.0" / IMAGE).exists()
    assert os.readlink(assets / "flatcar/amd64/current") == "4081.2.0"
    assert os.readlink(assets / "flatcar/amd64/stable/current") == "../4081.2.0"
    for name in (*PXE, IMAGE):
        assert (assets / "flatcar/amd64/4081.2.0" / name).read_bytes() == old[name]
    assert "4116.2.0" not in manifest(assets)["flatcar"]["amd64"]["releases"]


def test_digests_mismatch_is_refused(cli, server, signing_key, assets, capsys):
    publish(server, signing_key, "4081.2.0")
    server.files[f"/amd64-usr/4081.2.0/{CPIO}.DIGESTS"] = digests(CPIO, b"something else")
    assert fetch(cli, server, signing_key) == 1
    assert f"{CPIO}: SHA-512 does not match" in capsys.readouterr().err
    assert not (assets / "flatcar/amd64/4081.2.0").exists()


def test_interrupted_download_is_resumed_with_range(cli, server, signing_key, assets, capsys):
    genuine = publish(server, signing_key, "4081.2.0")
    path = f"/amd64-usr/4081.2.0/{CPIO}"
    server.drops[path] = 1  # the first GET is cut off halfway
    assert fetch(cli, server, signing_key) == 0
    gets = server.requests(path)
    assert len(gets) == 2
    assert "Range" not in gets[0].headers
    half = len(genuine[CPIO]) // 2
    assert gets[1].headers["Range"] == f"bytes={half}-"
    assert gets[1].headers["If-Range"] == server.etag
    assert (assets / "flatcar/amd64/4081.2.0" / CPIO).read_bytes() == genuine[CPIO]
    assert "retrying with Range" in capsys.readouterr().err


def test_partial_file_from_an_earlier_run_is_continued(cli, server, signing_key, assets):
    genuine = publish(server, signing_key, "4081.2.0")
    staging = assets / STAGING / "flatcar-amd64-4081.2.0"
    staging.mkdir(parents=True)
    third = len(genuine[IMAGE]) // 3
    (staging / IMAGE).write_bytes(genuine[IMAGE][:third])  # what an interrupted run leaves
    (staging / f"{IMAGE}.validator").write_text(server.etag)
    assert fetch(cli, server, signing_key) == 0
    (get,) = server.requests(f"/amd64-usr/4081.2.0/{IMAGE}")
    assert get.headers["Range"] == f"bytes={third}-"
    assert (assets / "flatcar/amd64/4081.2.0" / IMAGE).read_bytes() == genuine[IMAGE]


def test_partial_file_of_a_changed_remote_file_starts_over(cli, server, signing_key, assets):
    genuine = publish(server, signing_key, "4081.2.0")
    staging = assets / STAGING / "flatcar-amd64-4081.2.0"
    staging.mkdir(parents=True)
    (staging / IMAGE).write_bytes(b"x" * 1000)
    (staging / f"{IMAGE}.validator").write_text('"an older file"')
    assert fetch(cli, server, signing_key) == 0  # If-Range does not match: the server sends it whole
    assert (assets / "flatcar/amd64/4081.2.0" / IMAGE).read_bytes() == genuine[IMAGE]


def test_release_without_pxe_files_gets_a_clear_error(cli, server, signing_key, assets, capsys):
    publish(server, signing_key, "4593.2.2", omit=PXE)
    assert fetch(cli, server, signing_key) == 1
    err = capsys.readouterr().err
    assert "Flatcar 4593.2.2 (stable, amd64) ships no PXE files" in err
    assert "flatcar_production_pxe.vmlinuz" in err and "cannot be network-booted" in err
    assert not server.requests(f"/amd64-usr/4593.2.2/{IMAGE}")  # refused before downloading anything big
    assert not (assets / "flatcar/amd64/4593.2.2").exists()


def test_current_is_resolved_through_version_txt(cli, server, signing_key, assets, capsys):
    publish(server, signing_key, "4081.2.0")
    assert fetch(cli, server, signing_key) == 0
    publish(server, signing_key, "4116.2.0")  # the channel moves on
    assert fetch(cli, server, signing_key) == 0
    assert server.requests("/amd64-usr/current/version.txt")
    assert os.readlink(assets / "flatcar/amd64/current") == "4116.2.0"
    assert (assets / "flatcar/amd64/4081.2.0").is_dir()
    # a pinned version is mirrored without moving current
    publish(server, signing_key, "4100.2.0", current=False)
    assert fetch(cli, server, signing_key, "--version", "4100.2.0") == 0
    assert os.readlink(assets / "flatcar/amd64/current") == "4116.2.0"
    assert os.readlink(assets / "flatcar/amd64/stable/4100.2.0") == "../4100.2.0"
    # fetching what is already mirrored downloads nothing big again
    before = len(server.log)
    assert fetch(cli, server, signing_key) == 0
    assert [r.path for r in server.log[before:]] == ["/amd64-usr/current/version.txt"]
    assert "already present" in capsys.readouterr().out


def test_each_channel_has_its_own_current_and_the_default_is_explicit(cli, server, signing_key, assets):
    publish(server, signing_key, "4081.2.0")
    assert fetch(cli, server, signing_key) == 0
    publish(server, signing_key, "4152.1.0", board="beta-amd64-usr")
    beta = ["--base-url", f"{server.url}/beta-amd64-usr", "--keyring", str(signing_key.armored)]
    assert cli("fetch", "flatcar", "--channel", "beta", *beta) == 0
    assert os.readlink(assets / "flatcar/amd64/beta/current") == "../4152.1.0"
    assert os.readlink(assets / "flatcar/amd64/current") == "4081.2.0"  # stays on stable
    assert cli("fetch", "flatcar", "--channel", "beta", "--default", *beta) == 0
    assert os.readlink(assets / "flatcar/amd64/current") == "4152.1.0"
    assert cli("fetch", "flatcar", "--version", "4081.2.0", "--default", *beta) == 1
    assert os.readlink(assets / "flatcar/amd64/current") == "4152.1.0"


def test_bad_version_and_version_txt_are_refused(cli, server, signing_key, assets, capsys):
    assert fetch(cli, server, signing_key, "--version", "../../etc") == 1
    assert "expected current or a version like" in capsys.readouterr().err
    server.files["/amd64-usr/current/version.txt"] = b"FLATCAR_VERSION=../../x\n"
    assert fetch(cli, server, signing_key) == 1
    assert "is not a version like" in capsys.readouterr().err
    assert not (assets / "flatcar").exists()


def test_release_version_txt_must_match(cli, server, signing_key, assets, capsys):
    publish(server, signing_key, "4081.2.0")
    server.files["/amd64-usr/4081.2.0/version.txt"] = b"FLATCAR_VERSION=4000.0.0\n"
    assert fetch(cli, server, signing_key) == 1
    assert "names 4000.0.0, not 4081.2.0" in capsys.readouterr().err
    assert not (assets / "flatcar/amd64/4081.2.0").exists()


def test_unreachable_server_is_a_clear_error(cli, assets, capsys, monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as sock:  # an ephemeral port nobody listens on any more
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert cli("fetch", "flatcar", "--base-url", f"http://127.0.0.1:{port}/amd64-usr") == 1
    assert "cannot connect" in capsys.readouterr().err


def test_signature_by_a_revoked_subkey_is_refused(cli, server, assets, capsys):
    # gpgv itself exits 0 for such a signature (status REVKEYSIG): bootserver must refuse it
    home = Path(tempfile.mkdtemp(prefix="bsas-rev-", dir="/tmp"))
    home.chmod(0o700)
    key = SigningKey(home, signing_subkey=True)
    try:
        publish(server, key, "4081.2.0")
        assert fetch(cli, server, key) == 0  # signed by a valid subkey: accepted
        publish(server, key, "4116.2.0")
        key.revoke_signing_subkey()
        assert fetch(cli, server, key) == 1
        assert "signed by a revoked key" in capsys.readouterr().err
        assert os.readlink(assets / "flatcar/amd64/current") == "4081.2.0"
    finally:
        key.close()
        shutil.rmtree(home, ignore_errors=True)


def test_a_refused_release_fixed_upstream_reuses_the_good_downloads(cli, server, signing_key, assets):
    genuine = publish(server, signing_key, "4081.2.0", tamper=IMAGE)
    assert fetch(cli, server, signing_key) == 1
    server.files[f"/amd64-usr/4081.2.0/{IMAGE}"] = genuine[IMAGE]  # fixed upstream
    before = len(server.log)
    assert fetch(cli, server, signing_key) == 0
    for name in PXE:  # complete and verified last time: a Range request past the end, answered 416
        (get,) = server.requests(f"/amd64-usr/4081.2.0/{name}")[-1:]
        assert server.log.index(get) >= before
        assert get.headers["Range"] == f"bytes={len(genuine[name])}-"
    assert len(server.requests(f"/amd64-usr/4081.2.0/{IMAGE}")) == 2  # the refused copy was not kept
    for name in (*PXE, IMAGE):
        assert (assets / "flatcar/amd64/4081.2.0" / name).read_bytes() == genuine[name]


def test_default_base_url_is_the_official_release_server():
    from bootserver.assets.flatcar import base_url_for

    assert base_url_for("beta", "arm64", None) == "https://beta.release.flatcar-linux.net/arm64-usr"
    assert base_url_for("stable", "amd64", "http://mirror/x/") == "http://mirror/x"


def test_unknown_version_is_not_mistaken_for_a_release_without_pxe_files(cli, server, signing_key, capsys):
    publish(server, signing_key, "4081.2.0")
    assert fetch(cli, server, signing_key, "--version", "9999.0.0") == 1
    err = capsys.readouterr().err
    assert "Flatcar 9999.0.0 not found at" in err and "PXE" not in err


def test_the_shipped_profiles_find_their_flatcar_assets_in_the_mirror(cli, server, signing_key, assets):
    from bootserver.catalog.loader import load_catalog

    profiles = Path(__file__).resolve().parents[2] / "profiles"
    for arch in ("amd64", "arm64"):  # the amd64 profiles and the arm64 ones beside them
        missing = [w for w in load_catalog(profiles, assets).warnings if f"flatcar/{arch}/current" in str(w)]
        assert missing  # before the fetch, the catalog says what is not there yet
    publish(server, signing_key, "4081.2.0")
    assert fetch(cli, server, signing_key) == 0
    assert [w for w in load_catalog(profiles, assets).warnings if "flatcar/amd64" in str(w)] == []
    publish(server, signing_key, "4081.2.0", board="arm64-usr")
    assert cli("fetch", "flatcar", "--arch", "arm64", "--base-url", f"{server.url}/arm64-usr",
               "--keyring", str(signing_key.armored)) == 0
    assert [w for w in load_catalog(profiles, assets).warnings if "flatcar/" in str(w)] == []


def test_update_payload_and_oem_package_are_mirrored_with_omaha_hashes(cli, server, signing_key, assets, capsys):
    import base64
    import hashlib

    genuine = publish(server, signing_key, "4116.0.0", update_files=(UPDATE, "oem-azure.gz", "flatcar-docker.gz"))
    assert fetch(cli, server, signing_key) == 0
    assert not (assets / "flatcar/amd64/4116.0.0" / UPDATE).exists()  # only when asked
    assert fetch(cli, server, signing_key, "--oem", "azure", "--sysext", "docker") == 0
    release = assets / "flatcar/amd64/4116.0.0"
    record = manifest(assets)["flatcar"]["amd64"]["releases"]["4116.0.0"]
    for name in (UPDATE, "oem-azure.gz", "flatcar-docker.gz"):
        data = genuine[name]
        assert (release / name).read_bytes() == data  # unchanged: update_engine checks its own signature
        info = record["files"][name]
        assert info["size"] == len(data) and info["signed_by"] == signing_key.fingerprint
        assert info["sha1_b64"] == base64.b64encode(hashlib.sha1(data).digest()).decode()
        assert info["sha256_b64"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
        assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["update"] == {"payload": UPDATE, "extras": ["flatcar-docker.gz", "oem-azure.gz"]}
    out = capsys.readouterr().out
    payload = genuine[UPDATE]
    assert f"update package {UPDATE}: {len(payload)} bytes, sha256 {hashlib.sha256(payload).hexdigest()}" in out
    server.log.clear()
    assert fetch(cli, server, signing_key, "--update-payload") == 0  # already there: nothing downloaded again
    assert not server.requests(f"/amd64-usr/4116.0.0/{UPDATE}")
    capsys.readouterr()
    assert cli("list", "--check") == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("flatcar/amd64/4116.0.0"))
    assert "signature" in row and row.endswith("update payload + flatcar-docker.gz + oem-azure.gz")


def test_tampered_update_payload_is_refused_and_not_placed(cli, server, signing_key, assets, capsys):
    publish(server, signing_key, "4116.0.0", tamper=UPDATE)
    assert fetch(cli, server, signing_key, "--update-payload") == 1
    assert f"{UPDATE}: OpenPGP signature check failed" in capsys.readouterr().err
    assert not (assets / "flatcar/amd64/4116.0.0" / UPDATE).exists()
    assert "update" not in manifest(assets)["flatcar"]["amd64"]["releases"]["4116.0.0"]


def test_bad_oem_name_is_refused(cli, server, signing_key, capsys):
    publish(server, signing_key, "4116.0.0")
    assert fetch(cli, server, signing_key, "--oem", "../etc") == 1
    assert "--oem '../etc'" in capsys.readouterr().err
