"""The mirror, served over HTTP, answers every request `flatcar-install -b BASEURL` makes.

flatcar-install (flatcar/init, bin/flatcar-install) with `-b BASE -V current` does, with wget:
  GET  BASE/current/version.txt            -> FLATCAR_VERSION=X
  HEAD BASE/X/flatcar_production_image.bin.bz2          (wget --spider)
  HEAD BASE/X/flatcar_production_image.bin.bz2.sig
  GET  BASE/X/flatcar_production_image.bin.bz2.sig
  GET  BASE/X/flatcar_production_image.bin.bz2, then gpg --verify against the image key
The same requests are made here with wget, against the default-channel base
(`/assets/flatcar/<arch>`) and a per-channel base (`/assets/flatcar/<arch>/<channel>`).
"""

import asyncio
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from aiohttp import web

from .fakeflatcar import IMAGE, PXE, publish


def _static_app(assets: Path) -> web.Application:
    app = web.Application()
    app.router.add_static("/assets/", assets)  # follow_symlinks=False: links must stay inside the folder
    return app


@pytest.fixture(params=["bootserver", "static"])
async def served(request, assets, tmp_path):
    """The assets folder over HTTP on 127.0.0.1: `bootserver serve` itself, and a plain static server."""
    assets.mkdir(parents=True, exist_ok=True)
    if request.param == "bootserver":
        (tmp_path / "profiles").mkdir()
        server = request.getfixturevalue("serve")("--catalog", "profiles", "--assets", str(assets),
                                                  "--state", "memory://")
        yield f"{server.url}/assets"
        return
    runner = web.AppRunner(_static_app(assets))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/assets"
    finally:
        await runner.cleanup()


async def run(*argv: str) -> tuple[int, bytes]:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode, out


WGET = ("wget", "--no-proxy", "--tries", "1", "--timeout=20")


async def flatcar_install_download(base: str, key_file: Path, workdir: Path) -> str:
    """flatcar-install's prep_url + download_from_url, request for request; returns the version."""
    rc, out = await run(*WGET, "-qO-", f"{base}/current/version.txt")
    assert rc == 0, out
    version = next(line.split("=", 1)[1] for line in out.decode().splitlines() if line.startswith("FLATCAR_VERSION="))
    image_url = f"{base}/{version}/{IMAGE}"
    for url in (image_url, f"{image_url}.sig"):
        rc, out = await run(*WGET, "--spider", "--quiet", url)
        assert rc == 0, (url, out)
    rc, out = await run(*WGET, "--no-verbose", "-O", str(workdir / f"{IMAGE}.sig"), f"{image_url}.sig")
    assert rc == 0, out
    rc, out = await run(*WGET, "--no-verbose", "-O", str(workdir / IMAGE), image_url)
    assert rc == 0, out
    home = Path(tempfile.mkdtemp(prefix="bsas-fi-", dir="/tmp"))
    try:
        rc, out = await run("gpg", "--batch", "--quiet", "--homedir", str(home), "--import", str(key_file))
        assert rc == 0, out
        rc, out = await run("gpg", "--batch", "--homedir", str(home), "--verify",
                            str(workdir / f"{IMAGE}.sig"), str(workdir / IMAGE))
        assert rc == 0, out
    finally:
        await run("gpgconf", "--homedir", str(home), "--kill", "all")
        shutil.rmtree(home, ignore_errors=True)
    return version


async def test_flatcar_install_finds_everything_it_fetches(cli, server, signing_key, assets, served, tmp_path):
    stable = publish(server, signing_key, "4081.2.0")
    beta = publish(server, signing_key, "4152.1.0", board="beta-amd64-usr")
    key = ["--keyring", str(signing_key.armored)]
    fetches = [cli("fetch", "flatcar", "--base-url", f"{server.url}/amd64-usr", *key),
               cli("fetch", "flatcar", "--channel", "beta", "--base-url", f"{server.url}/beta-amd64-usr", *key)]
    assert fetches == [0, 0]
    for base, genuine, version in ((f"{served}/flatcar/amd64", stable, "4081.2.0"),
                                   (f"{served}/flatcar/amd64/stable", stable, "4081.2.0"),
                                   (f"{served}/flatcar/amd64/beta", beta, "4152.1.0")):
        workdir = tmp_path / base.rsplit("/", 1)[1]
        workdir.mkdir()
        assert await flatcar_install_download(base, signing_key.armored, workdir) == version
        assert (workdir / IMAGE).read_bytes() == genuine[IMAGE]


async def test_profiles_can_name_current_pxe_files(cli, server, signing_key, assets, served, tmp_path):
    genuine = publish(server, signing_key, "4081.2.0")
    assert cli("fetch", "flatcar", "--base-url", f"{server.url}/amd64-usr",
               "--keyring", str(signing_key.armored)) == 0
    for name in PXE:
        url = f"{served}/flatcar/amd64/current/{name}"
        rc, out = await run("curl", "--noproxy", "*", "-sf", "-r", "0-99", url)  # iPXE and firmware use ranges
        assert rc == 0 and out == genuine[name][:100], url
        rc, out = await run("curl", "--noproxy", "*", "-sf", url)
        assert rc == 0 and out == genuine[name], url
