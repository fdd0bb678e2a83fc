import argparse
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from bootserver.assets import commands
from bootserver.config import Settings

from .fakeflatcar import SigningKey, running_server


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """A safety net: these tests never resolve or reach anything but 127.0.0.1 (no release server)."""
    real = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", b"127.0.0.1"):
            raise AssertionError(f"test tried to reach {host!r}; only loopback is allowed")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@pytest.fixture(scope="session")
def signing_key():
    # gpg-agent's socket path must stay short, so not under pytest's deep tmp_path
    home = Path(tempfile.mkdtemp(prefix="bsas-gpg-", dir="/tmp"))
    home.chmod(0o700)
    key = SigningKey(home)
    try:
        yield key
    finally:
        key.close()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def server(monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)  # loopback only, never through a proxy
    with running_server() as fake:
        yield fake


@pytest.fixture
def assets(tmp_path):
    return tmp_path / "assets"


@pytest.fixture
def cli(assets):
    """Run `bootserver assets ...` through the command module; returns the exit code."""

    def run(*argv: str) -> int:
        parser = argparse.ArgumentParser(prog="bootserver assets")
        commands.add_arguments(parser)
        return commands.run(parser.parse_args(list(argv)), Settings(assets=assets))

    return run
