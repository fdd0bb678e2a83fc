"""Server settings: defaults < file (bootserver.yaml) < environment (BOOTSERVER_*) < flags.

Every setting has a default that works with no file at all. `Settings.sources` remembers where
each effective value came from, for `bootserver config show`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class SettingsError(ValueError):
    pass


#: where scripts/bootstrap.sh unpacks Debian's arm64 packages (an amd64 host cannot install them)
ARM64_ROOT = Path("/opt/bootserver-arm64")


@dataclass(frozen=True)
class Settings:
    catalog: Path = Path("profiles")
    assets: Path = Path("assets")
    state: str = "sqlite:///state/bootserver.db"  # sqlite:///PATH, postgresql://…, or memory://
    http: str = "0.0.0.0:8080"
    https: str | None = None  # HOST:PORT of an HTTPS listener for people (admin API, board); needs tls_cert/key
    tls_cert: Path | None = None  # PEM certificate (chain) for https
    tls_key: Path | None = None  # PEM private key for https
    advertise_url: str | None = None  # base URL machines use to reach HTTP; derived when unset
    floating_address: str | None = None  # keepalived's address: next-server and URL host of every replica
    tftp: str = "auto"  # HOST:PORT, off, or auto (on 0.0.0.0:69 when DHCP interfaces are set)
    tftp_root: tuple[Path, ...] = ()  # extra TFTP folders, searched after ipxe_dir
    ipxe_dir: Path = Path("/usr/lib/ipxe")
    grub_efi: Path = Path("/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed")  # served as grubx64.efi
    shim_efi: Path = Path("/usr/lib/shim/shimx64.efi.signed")  # served as shimx64.efi (Secure Boot)
    grub_arm64_efi: Path = ARM64_ROOT / "usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed"  # as grubaa64.efi
    grub_arm64_modules: Path = ARM64_ROOT / "usr/lib/grub/arm64-efi"  # grub-mkimage builds the HTTP Boot GRUB
    tftp_blksize_max: int = 0  # 0: what fits the interface MTU
    dhcp: tuple[str, ...] = ()  # interfaces for proxyDHCP; empty = off
    uefi_loader: str = "ipxe.efi"  # or snponly.efi
    arm64_loader: str | None = None  # grubaa64.efi (Debian's arm64 GRUB) or a file; unset = not answered
    arm64_http_boot: bool = True  # with grubaa64.efi: answer arm64 HTTP Boot (arch 19) with grubhttpaa64.efi
    installed_dhcp: str = "auto"  # auto/answer (local-disk answer: sanboot, or GRUB on UEFI) | silent; docs/dhcp.md
    unknown_machines: str = "ignore"  # ignore | discover
    unknown_profile: str | None = None  # with discover: profile served to unknown MACs (none = record only)
    admin_token: str | None = None  # bearer token for the admin API; unset = loopback only
    event_retention: int = 1000  # events kept per machine
    log_format: str = "human"  # human | json
    log_level: str = "info"
    access_log: bool = True
    http_idle_timeout: int = 15  # seconds an HTTP connection may sit without a request (or unfinished headers)
    tftp_sessions_per_client: int = 8  # transfers one client address may run at once
    new_machines_per_second: int = 20  # new records for MACs the catalog does not name (burst: 10 s worth)
    strict_machine_address: bool = False  # /ignition only to the address the machine booted from (docs/security.md)
    http_requests_per_client: int = 20  # per second on /ipxe, /ignition, /metadata (burst: 2 s worth); 0 = off
    http_workers: int = 1  # processes serving HTTP on one port (SO_REUSEPORT), or auto: one per core; docs/performance.md
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def effective_advertise_url(self, host_ip: str | None = None, port: int | None = None) -> str:
        """The base URL machines use: the setting, else http://<HTTP host, or host_ip>:<port>."""
        if self.advertise_url:
            return self.advertise_url.rstrip("/")
        host, configured_port = split_hostport(self.http)
        port = port or configured_port
        if self.floating_address:  # replicas behind keepalived: whoever holds the address answers
            host = self.floating_address
        elif host in ("0.0.0.0", "", "::"):  # listening everywhere: the address the client reached
            host = host_ip or "127.0.0.1"
        return f"http://{host}:{port}"


CHOICES = {
    "uefi_loader": ("ipxe.efi", "snponly.efi"),
    "installed_dhcp": ("auto", "answer", "silent"),
    "unknown_machines": ("ignore", "discover"),
    "log_format": ("human", "json"),
    "log_level": ("debug", "info", "warning", "error"),
}

FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name != "sources"}


def split_hostport(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise SettingsError(f"expected HOST:PORT, got {value!r}")
    if not 0 <= int(port) <= 65535:
        raise SettingsError(f"port {int(port)} in {value!r} is not a port (0-65535)")
    return host.strip("[]"), int(port)


def _check_hostport(name: str, value: str, source: str) -> None:
    try:
        split_hostport(value)
    except SettingsError as exc:
        where = "--" + name.replace("_", "-") if source.startswith("flag") else f"{name} ({source})"
        raise SettingsError(f"{where}: {exc}") from None


STATE_SCHEMES = ("sqlite:///", "postgresql://", "postgres://", "memory:")


def _check_state(url: str, source: str) -> None:
    """A state URL bootserver can open (whether it opens is found out when it is used)."""
    if not url.startswith(STATE_SCHEMES):
        where = "--state" if source.startswith("flag") else f"state ({source})"
        raise SettingsError(f"{where}: {url!r} is not a state URL: use sqlite:///PATH, postgresql://USER@HOST/DB "
                            "or memory://")


MAX_HTTP_WORKERS = 32


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), for `http_workers: auto`."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _check_http_workers(workers: int, state: str, source: str) -> None:
    """Several HTTP processes agree only through a store they all open: not memory://."""
    where = "--http-workers" if source.startswith("flag") else f"http_workers ({source})"
    if not 1 <= workers <= MAX_HTTP_WORKERS:
        raise SettingsError(f"{where}: expected 1 to {MAX_HTTP_WORKERS} processes, got {workers}")
    if workers > 1 and state.startswith("memory:"):
        raise SettingsError(f"{where}: {workers} processes need a state store they share (sqlite:///PATH or "
                            "postgresql://…); memory:// lives in one process")


def _coerce(name: str, value: Any) -> Any:
    f = FIELDS[name]
    kind = str(f.type)
    if isinstance(value, str) and not value.strip() and not kind.startswith("tuple"):
        if "None" in kind:
            return None  # an empty value means unset (BOOTSERVER_ARM64_LOADER="" is no loader, not "")
        raise SettingsError(f"{name}: the value is empty; leave it out to use the default ({f.default})")
    if value is None:
        if "None" in kind:
            return None
        raise SettingsError(f"{name}: a value is required")
    if kind.startswith("tuple"):
        if isinstance(value, str):
            value = [] if value in ("", "off", "none") else [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise SettingsError(f"{name}: expected a list, got {value!r}")
        return tuple(Path(v) if "Path" in kind else str(v) for v in value)
    if kind.startswith("Path"):  # Path, or Path | None
        return Path(str(value))
    if name == "http_workers" and isinstance(value, str) and value.strip().lower() == "auto":
        return min(usable_cores(), MAX_HTTP_WORKERS)  # as nginx's worker_processes auto: one per core
    if kind == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            also = " or auto" if name == "http_workers" else ""
            raise SettingsError(f"{name}: expected a whole number{also}, got {value!r}") from None
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name}: expected true or false, got {value!r}")
    value = str(value)
    if name in CHOICES and value not in CHOICES[name]:
        raise SettingsError(f"{name}: {value!r} is not one of {', '.join(CHOICES[name])}")
    return value


def load_settings(config_file: str | Path | None = None, flags: dict[str, Any] | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
    """Merge the layers. `flags` holds only the options given on the command line (None = not given)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {name: "default" for name in FIELDS}
    path = config_file or environ.get("BOOTSERVER_CONFIG")
    if path is None and Path("bootserver.yaml").is_file():
        path = "bootserver.yaml"
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise SettingsError(f"cannot read settings file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise SettingsError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise SettingsError(f"{path}: expected a mapping of settings")
        for key, value in data.items():
            name = str(key).replace("-", "_")
            if name not in FIELDS:
                raise SettingsError(f"{path}: unknown setting {key!r}")
            values[name] = _coerce(name, value)
            sources[name] = f"file {path}"
    for name in FIELDS:
        env = "BOOTSERVER_" + name.upper()
        if env in environ:
            values[name] = _coerce(name, environ[env])
            sources[name] = f"env {env}"
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = _coerce(name, value)
            sources[name] = "flag --" + name.replace("_", "-")
    if values.get("tftp") not in (None, "auto", "off"):
        _check_hostport("tftp", values["tftp"], sources["tftp"])
    _check_hostport("http", values.get("http", Settings.http), sources["http"])
    _check_state(values.get("state", Settings.state), sources["state"])
    _check_http_workers(values.get("http_workers", Settings.http_workers), values.get("state", Settings.state),
                        sources["http_workers"])
    if values.get("https"):
        _check_hostport("https", values["https"], sources["https"])
        if not values.get("tls_cert") or not values.get("tls_key"):
            raise SettingsError("https: needs tls_cert and tls_key (PEM files)")
    if values.get("floating_address") is not None:
        try:
            values["floating_address"] = str(ipaddress.IPv4Address(values["floating_address"]))
        except ValueError:
            raise SettingsError(f"floating_address: expected an IPv4 address, got "
                                f"{values['floating_address']!r}") from None
    return Settings(**values, sources=sources)


def show(settings: Settings) -> str:
    rows = []
    for name in FIELDS:
        value = getattr(settings, name)
        if isinstance(value, tuple):
            value = ",".join(str(v) for v in value) or "(none)"
        rows.append((name, "(unset)" if value is None else str(value), settings.sources.get(name, "default")))
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    return "\n".join(f"{n:<{width}}  {v:<{vwidth}}  {s}" for n, v, s in rows)
