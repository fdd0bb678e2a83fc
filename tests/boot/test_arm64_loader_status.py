"""What `bootserver serve` says at start about arm64, from the settings and the loader file."""

from pathlib import Path

from bootserver.boot.loaders import GRUB_ARM64, arm64_loader_status, signed_loader
from bootserver.config import Settings


def test_unset_means_not_answered():
    answered, line = arm64_loader_status(Settings())
    assert not answered and "arm64_loader is not set" in line


def test_grub_found_names_the_file(tmp_path):
    grub = tmp_path / "grubnetaa64.efi.signed"
    grub.write_bytes(b"MZ")
    settings = Settings(arm64_loader=GRUB_ARM64, grub_arm64_efi=grub)
    assert arm64_loader_status(settings) == (True, f"arm64: serving grubaa64.efi = {grub} (GRUB, per-machine grub.cfg)")
    assert signed_loader(GRUB_ARM64, settings) == grub


def test_grub_missing_says_why(tmp_path):
    missing = tmp_path / "nope.efi"
    answered, line = arm64_loader_status(Settings(arm64_loader=GRUB_ARM64, grub_arm64_efi=missing))
    assert not answered and str(missing) in line and "scripts/bootstrap.sh install" in line


def test_the_default_path_is_where_bootstrap_unpacks_debians_package():
    expected = Path("/opt/bootserver-arm64/usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed")
    assert Settings().grub_arm64_efi == expected
