"""profiles/templates/flatcar-install.bu against bootserver's own mirror, for every combination of
channel, pinned version and custom image key.

bootserver serves the install config; the installer script in it runs under bash with the real
curl (flatcar-install is a stand-in recording its arguments). Then the recorded arguments are
followed the way flatcar-install's prep_url and install_from_url follow them (flatcar/init,
bin/flatcar-install): with `-b BASE` its URLs are `BASE/<version>/...` whatever `-C` says, and
`-V current` is resolved through `BASE/current/version.txt`. Every URL must resolve on the running
bootserver and yield the release the profile asked for; with `-k` the downloaded key must verify
the image's signature.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import REPO, write_catalog
from tests.render.test_install_flow import installer_script, run_installer

from .fakeflatcar import IMAGE, publish

STABLE, OLD_STABLE, BETA = "4081.2.0", "4050.1.0", "4152.1.0"
KEY_NAME = "site-mirror.asc"

PROFILES = (REPO / "profiles" / "flatcar.yaml").read_text()

#: name -> (metadata, flatcar-install arguments after -d and -i, the release it must install)
COMBINATIONS = {
    "default": ({}, ["-V", "current", "-b", "{assets}/flatcar/amd64"], STABLE),
    "channel": ({"flatcar_channel": "beta"},
                ["-V", "current", "-C", "beta", "-b", "{assets}/flatcar/amd64/beta"], BETA),
    "pinned": ({"flatcar_version": OLD_STABLE}, ["-V", OLD_STABLE, "-b", "{assets}/flatcar/amd64"], OLD_STABLE),
    "pinned-channel": ({"flatcar_version": OLD_STABLE, "flatcar_channel": "stable"},
                       ["-V", OLD_STABLE, "-C", "stable", "-b", "{assets}/flatcar/amd64/stable"], OLD_STABLE),
    "key": ({"flatcar_channel": "beta", "flatcar_image_key": KEY_NAME},
            ["-V", "current", "-C", "beta", "-b", "{assets}/flatcar/amd64/beta", "-k", "{work}/image-key.asc"],
            BETA),
}


def machines_yaml() -> str:
    docs = []
    for index, (name, (metadata, _, _)) in enumerate(COMBINATIONS.items(), 1):
        values = {"hostname": name, "install_disk": "/dev/vda", **metadata}
        docs.append(f"apiVersion: bootserver/v1\nkind: Machine\nmetadata: {{name: {name}}}\n"
                    f"spec: {{mac: '52:54:00:00:10:{index:02x}', profile: flatcar-install, "
                    f"metadata: {json.dumps(values)}}}\n")
    return "---\n".join(docs)


@pytest.fixture
def mirror(cli, server, signing_key, assets, tmp_path):
    """bootserver's assets: stable (current and an older pinned one) and beta, all verified with a
    site key given as --keyring (so it is published at flatcar/keys/<name>)."""
    key = tmp_path / KEY_NAME
    shutil.copyfile(signing_key.armored, key)
    genuine = {STABLE: publish(server, signing_key, STABLE),
               BETA: publish(server, signing_key, BETA, board="beta-amd64-usr"),
               OLD_STABLE: publish(server, signing_key, OLD_STABLE, current=False)}
    stable, beta = f"{server.url}/amd64-usr", f"{server.url}/beta-amd64-usr"
    assert cli("fetch", "flatcar", "--base-url", stable, "--keyring", str(key)) == 0
    assert cli("fetch", "flatcar", "--base-url", stable, "--version", OLD_STABLE, "--keyring", str(key)) == 0
    assert cli("fetch", "flatcar", "--channel", "beta", "--base-url", beta, "--keyring", str(key)) == 0
    assert (assets / "flatcar" / "keys" / KEY_NAME).read_bytes() == key.read_bytes()
    return genuine


def follow_flatcar_install(args: list[str], workdir: Path) -> tuple[str, bytes]:
    """flatcar-install's URLs for these arguments, fetched with wget as it does; returns the
    version and the image. With -k, gpg verifies the image against that key, as it would."""
    options = dict(zip(args[::2], args[1::2]))
    base, version = options["-b"].rstrip("/"), options["-V"]
    wget = ["wget", "--no-proxy", "--tries", "1", "--timeout=20"]
    if version == "current":
        out = subprocess.run([*wget, "-qO-", f"{base}/current/version.txt"], capture_output=True, text=True)
        assert out.returncode == 0, f"{base}/current/version.txt"
        version = next(line.split("=", 1)[1] for line in out.stdout.splitlines() if line.startswith("FLATCAR_VERSION="))
    image_url = f"{base}/{version}/{IMAGE}"
    for url in (image_url, f"{image_url}.sig"):
        assert subprocess.run([*wget, "--spider", "--quiet", url]).returncode == 0, url
        assert subprocess.run([*wget, "-q", "-O", str(workdir / Path(url).name), url]).returncode == 0, url
    if "-k" in options:
        home = Path(tempfile.mkdtemp(prefix="bsfi-", dir="/tmp"))
        try:
            gpg = ["gpg", "--batch", "--homedir", str(home)]
            with open(options["-k"], "rb") as key:
                assert subprocess.run([*gpg, "--quiet", "--import"], stdin=key, capture_output=True).returncode == 0
            verify = subprocess.run([*gpg, "--verify", str(workdir / f"{IMAGE}.sig"), str(workdir / IMAGE)],
                                    capture_output=True, text=True)
            assert verify.returncode == 0, verify.stderr
        finally:
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)
            shutil.rmtree(home, ignore_errors=True)
    return version, (workdir / IMAGE).read_bytes()


async def test_every_combination_installs_the_release_it_names(mirror, assets, serve, tmp_path):
    catalog = write_catalog(tmp_path / "catalog", {"flatcar.yaml": PROFILES, "machines.yaml": machines_yaml()})
    shutil.copytree(REPO / "profiles" / "templates", catalog / "templates")
    bootserver = serve("--catalog", str(catalog), "--assets", str(assets), "--state", "memory://")
    base = f"{bootserver.url}/assets"
    for index, (name, (_, expected, release)) in enumerate(COMBINATIONS.items(), 1):
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{bootserver.url}/ignition?mac=52:54:00:00:10:{index:02x}") as response:
                assert response.status == 200, await response.text()
                config = json.loads(await response.text())
        run_dir = tmp_path / name
        run_dir.mkdir()
        proc, stubs = run_installer(run_dir, installer_script(config), "")
        assert proc.returncode == 0, proc.stderr
        work = run_dir / "work"
        args = (stubs / "flatcar-install.args").read_text().splitlines()
        assert args == ["-d", "/dev/vda", "-i", str(work / "final.ign"),
                        *(a.format(assets=base, work=work) for a in expected)], name
        downloads = run_dir / "downloads"
        downloads.mkdir()
        version, image = follow_flatcar_install(args[4:], downloads)
        assert (version, image) == (release, mirror[release][IMAGE]), name


async def test_unknown_channel_or_bad_version_is_a_render_error(assets, serve, tmp_path):
    machines = []
    for index, metadata in enumerate(({"flatcar_channel": "../../etc"}, {"flatcar_version": "../4081.2.0"},
                                      {"flatcar_image_key": "../.manifest.json"}), 1):
        values = {"hostname": "n", "install_disk": "/dev/vda", **metadata}
        machines.append(f"apiVersion: bootserver/v1\nkind: Machine\nmetadata: {{name: n{index}}}\n"
                        f"spec: {{mac: '52:54:00:00:20:{index:02x}', profile: flatcar-install, "
                        f"metadata: {json.dumps(values)}}}\n")
    catalog = write_catalog(tmp_path / "catalog", {"flatcar.yaml": PROFILES, "machines.yaml": "---\n".join(machines)})
    shutil.copytree(REPO / "profiles" / "templates", catalog / "templates")
    bootserver = serve("--catalog", str(catalog), "--assets", str(assets), "--state", "memory://")
    expected = ("has no attribute '../../etc'", "flatcar_version must be current or X.Y.Z",
                "flatcar_image_key must be a key file name")
    async with aiohttp.ClientSession() as session:
        for index, message in enumerate(expected, 1):
            async with session.get(f"{bootserver.url}/ignition?mac=52:54:00:00:20:{index:02x}") as response:
                text = await response.text()
                assert response.status == 500 and "flatcar-install.bu" in text and message in text, text
