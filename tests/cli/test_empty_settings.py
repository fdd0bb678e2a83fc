"""An empty setting means unset where unset is allowed, and is refused with a clear error elsewhere."""

from __future__ import annotations

import urllib.request

import pytest

from bootserver.boot import methods
from bootserver.boot.request import Stage
from bootserver.config import SettingsError, load_settings


def test_empty_arm64_loader_means_arm64_is_not_answered():
    settings = load_settings(environ={"BOOTSERVER_ARM64_LOADER": ""})
    assert settings.arm64_loader is None and settings.sources["arm64_loader"] == "env BOOTSERVER_ARM64_LOADER"
    answer = methods.choose(11, Stage.PXE, "PXEClient:Arch:00011", "boot", "matched", settings, "http://10.0.0.1:8080")
    assert isinstance(answer, methods.Silence) and "arm64_loader is not set" in answer.reason


def test_empty_value_in_the_settings_file_means_unset_too(tmp_path):
    path = tmp_path / "bootserver.yaml"
    path.write_text('arm64_loader: ""\nadmin_token: "  "\nunknown_profile: ""\n')
    settings = load_settings(path, environ={})
    assert (settings.arm64_loader, settings.admin_token, settings.unknown_profile) == (None, None, None)


@pytest.mark.parametrize("name", ["STATE", "HTTP", "CATALOG", "UEFI_LOADER", "INSTALLED_DHCP"])
def test_empty_required_setting_is_a_clear_error(name):
    with pytest.raises(SettingsError) as refused:
        load_settings(environ={f"BOOTSERVER_{name}": ""})
    assert str(refused.value).startswith(f"{name.lower()}: the value is empty; leave it out to use the default")


def test_empty_admin_token_keeps_the_admin_api_open_to_loopback(serve, catalog_dir):
    server = serve("--catalog", str(catalog_dir), "--state", "memory://", env={"BOOTSERVER_ADMIN_TOKEN": ""})
    with urllib.request.urlopen(f"{server.url}/api/v1/machines", timeout=10) as response:
        assert response.status == 200 and response.read() == b'{"machines": []}'
