"""Small pieces: the shipped Flatcar key, DIGESTS parsing, the progress display."""

import io
import subprocess

import pytest

from bootserver.assets import AssetError
from bootserver.assets.flatcar import parse_version_txt
from bootserver.assets.progress import Progress
from bootserver.assets.verify import keyring, parse_digests

FLATCAR_FINGERPRINT = "F88CFEDEFF29A5B4D9523864E25D9AED0593B34A"


def test_shipped_flatcar_key_is_the_image_signing_key():
    with keyring() as ring:
        out = subprocess.run(["gpg", "--batch", "--with-colons", "--show-keys", str(ring)],
                             capture_output=True, text=True, check=True).stdout
    fingerprints = [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")]
    assert fingerprints[0] == FLATCAR_FINGERPRINT


def test_unreadable_keyring_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.asc"
    bad.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot base64 at all!\n-----END PGP PUBLIC KEY BLOCK-----\n")
    with pytest.raises(AssetError, match="cannot read the OpenPGP key"), keyring(bad):
        pass
    with pytest.raises(AssetError, match="cannot read keyring"), keyring(tmp_path / "missing.gpg"):
        pass


def test_digests_sections():
    text = ("# MD5 HASH\naa  f.bin\n# SHA1 HASH\nbb  f.bin\n# SHA512 HASH\nCC  f.bin\ndd  g.bin\n"
            "# BLAKE2B HASH\nee  f.bin\n")
    assert parse_digests(text) == {"f.bin": {"md5": "aa", "sha1": "bb", "sha512": "cc", "blake2b": "ee"},
                                   "g.bin": {"sha512": "dd"}}


def test_version_txt():
    assert parse_version_txt('FLATCAR_BUILD=1\nFLATCAR_VERSION=4081.2.0\n', "x") == "4081.2.0"
    with pytest.raises(AssetError, match="no FLATCAR_VERSION"):
        parse_version_txt("<html>not found</html>", "x")


def test_progress_bar_on_a_terminal_and_lines_elsewhere():
    tty = io.StringIO()
    bar = Progress(tty, tty=True)
    bar.start("image.bin.bz2", 2048)
    bar.advance(1024)
    bar.advance(1024)
    bar.finish()
    drawn = tty.getvalue()
    assert "\r" in drawn and "[" + "#" * 30 + "]" in drawn and "100.0%" in drawn
    plain = io.StringIO()
    lines = Progress(plain, tty=False)
    lines.start("image.bin.bz2", 2048, already=1024)
    lines.advance(1024)
    lines.finish()
    assert plain.getvalue().splitlines() == ["downloading image.bin.bz2 (2.0 KiB), resuming at 1.0 KiB",
                                             "downloaded image.bin.bz2 (2.0 KiB)"]
