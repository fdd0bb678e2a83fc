"""Composes the components on one asyncio loop (with Twisted's asyncio reactor) and runs them.

Start order: store, catalog, HTTP, TFTP, proxyDHCP, catalog watcher, loop-lag probe; stop in reverse.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import gc
import logging
import os
import signal
import socket
import ssl
from typing import Any

from aiohttp import web

from bootserver import arm64_http_grub, board
from bootserver.boot.loaders import arm64_loader_status
from bootserver.catalog.loader import CatalogError, load_catalog
from bootserver.config import Settings, split_hostport
from bootserver.http.connections import ConnectionCap
from bootserver.http.server import make_app
from bootserver.http_workers import HTTPWorkers, WorkerError
from bootserver.loop_lag import LoopLagProbe, share
from bootserver.reload import CatalogWatcher
from bootserver.render.ipxe import chain_script
from bootserver.resources import Budget, quiet_out_of_files, raise_open_file_limit
from bootserver.runtime import Runtime
from bootserver.state import StoreError, open_store, redact
from bootserver.tftp.grub import register_grub_files

log = logging.getLogger("bootserver")


def install_reactor(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Make Twisted use this asyncio loop. Must run before anything imports twisted's reactor."""
    import sys

    if "twisted.internet.reactor" in sys.modules:
        return
    from twisted.internet import asyncioreactor

    asyncioreactor.install(loop or asyncio.get_event_loop())


class HTTPComponent:
    def __init__(self, runtime: Runtime, settings: Settings, max_connections: int = 1024) -> None:
        self.runtime = runtime
        self.settings = settings
        self.max_connections = max_connections
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        host, port = split_hostport(self.settings.http)
        app = make_app(self.runtime, self.settings)
        board.add_routes(app, self.runtime, self.settings)  # the operator's board under /ui, same port
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=2.0, keepalive_timeout=self.settings.http_idle_timeout)
        await self._runner.setup()
        ConnectionCap(self._runner.server, self.max_connections)
        shared = self.settings.http_workers > 1  # several processes accept on this port: bootserver.http_workers
        site = web.TCPSite(self._runner, host or None, port, reuse_address=True, reuse_port=shared or None)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.runtime.http_listening(self.port)
        log.info("HTTP listening on %s:%d", host, self.port)
        if self.settings.https:  # the same app for people; the admin API refuses plain HTTP from afar then
            tls_host, tls_port = split_hostport(self.settings.https)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.settings.tls_cert, self.settings.tls_key)
            tls = web.TCPSite(self._runner, tls_host or None, tls_port, ssl_context=context, reuse_address=True,
                              reuse_port=shared or None)
            await tls.start()
            log.info("HTTPS listening on %s:%d", tls_host, self._runner.addresses[-1][1])

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()


class StartError(OSError):
    """A listener could not start; the message names the setting (flag) and its value."""


def _listen_problem(name: str, settings: Settings, exc: BaseException) -> StartError:
    """`--http 127.0.0.1:8080: address already in use` rather than a bare `[Errno 98]`."""
    value = {"http": settings.http, "tftp": "0.0.0.0:69" if settings.tftp == "auto" else settings.tftp,
             "dhcp": ",".join(settings.dhcp)}[name]
    source = settings.sources.get(name, "default")
    where = f"--{name} {value}" if source.startswith("flag") else f"{name} {value} ({source})"
    if isinstance(exc, socket.gaierror):
        reason = f"unknown host ({exc.strerror})"
    elif isinstance(exc, OSError) and exc.errno:
        reason = os.strerror(exc.errno).lower() + (" (ports below 1024 need root)" if exc.errno == errno.EACCES else "")
    else:
        reason = str(exc)
    return StartError(f"cannot listen on {where}: {reason}")


def check_interfaces(settings: Settings) -> None:
    """Every proxyDHCP interface exists and has an IPv4 address, checked before anything binds."""
    from bootserver.dhcp.proxy import interface_address

    known = [name for _index, name in socket.if_nameindex()]
    for name in settings.dhcp:
        if name not in known:
            raise StartError(f"--dhcp {name}: no such network interface (there are: {', '.join(known)})")
        try:
            interface_address(name)
        except OSError:
            raise StartError(f"--dhcp {name}: the interface has no IPv4 address (proxyDHCP answers on IPv4)") from None


def replica_role(s: Settings) -> str:
    """What this process is among its peers, said once at start (docs/scale-out.md)."""
    if s.floating_address:
        return (f"replica: every replica answers DHCP alike, naming the floating address {s.floating_address} "
                f"(held by keepalived) as next-server and in {s.effective_advertise_url()}; TFTP and HTTP served "
                "here too" + ("" if s.state.startswith(("postgresql:", "postgres:"))
                              else "; WARNING: state is not shared PostgreSQL, replicas will not agree"))
    if s.state.startswith(("postgresql:", "postgres:")):
        return "replica sharing PostgreSQL; answers name this host's own address (no floating_address set)"
    return "single server (state not shared; set state: postgresql://… and floating_address to run replicas)"


class Server:
    """All of bootserver in one object: `await start()`, `await stop()`, `await reload()`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runtime: Runtime | None = None
        self.components: list[tuple[str, Any]] = []
        self.watcher: CatalogWatcher | None = None
        self.probe = LoopLagProbe()

    async def start(self) -> None:
        s = self.settings
        check_interfaces(s)  # before anything binds: a typo in --dhcp leaves nothing half-started
        arm64_answered, arm64_line = arm64_loader_status(s)
        log.info("%s", arm64_line)
        if s.arm64_loader and not arm64_answered:  # stay silent rather than offer a file TFTP cannot serve
            s = self.settings = dataclasses.replace(s, arm64_loader=None)
        http_boot_answered, http_boot_line = arm64_http_grub.status(s)
        if s.arm64_loader:
            log.info("%s", http_boot_line)
        if s.arm64_http_boot and not http_boot_answered:  # nor offer an HTTP Boot GRUB that cannot be built
            s = self.settings = dataclasses.replace(s, arm64_http_boot=False)
        catalog = load_catalog(s.catalog, s.assets)  # raises CatalogError: refuse to start broken
        for warning in catalog.warnings:
            log.warning("%s", warning)
        store = open_store(s.state, s.event_retention)
        await store.open()  # migrates; refuses a newer schema; retries an unreachable PostgreSQL
        self.runtime = Runtime(s, catalog, store)
        quiet_out_of_files(asyncio.get_running_loop())
        budget = Budget.for_limit(raise_open_file_limit())
        log.info("role: %s", replica_role(s))
        log.info("catalog %s: %d profiles, %d machines, %d groups; state %s", s.catalog, len(catalog.profiles),
                 len(catalog.machines), len(catalog.groups), redact(s.state))
        log.info("open files: up to %d HTTP connections and %d TFTP transfers at once", budget.http_connections,
                 budget.tftp_sessions)
        wanted: list[tuple[str, Any]] = [("http", HTTPComponent(self.runtime, s, budget.http_connections))]
        if s.tftp == "off":
            log.info("TFTP off (tftp: off)")
        elif s.tftp == "auto" and not s.dhcp:
            log.info("TFTP not started: no boot interfaces are set (set dhcp: [IFACE] or tftp: HOST:PORT)")
        else:
            from bootserver.tftp import TFTPServer

            tftp = TFTPServer(self.runtime, s, max_sessions=budget.tftp_sessions,
                              per_client=s.tftp_sessions_per_client)
            tftp.register("boot.ipxe", self._tftp_boot_ipxe)
            register_grub_files(tftp, self.runtime, s)
            wanted.append(("tftp", tftp))
        if s.dhcp:
            from bootserver.dhcp import ProxyDHCP

            wanted.append(("dhcp", ProxyDHCP(self.runtime, s)))
        else:
            log.info("proxyDHCP not started: no interfaces are set (--dhcp IFACE[,IFACE...]); "
                     "only HTTP is served")
        for name, component in wanted:
            try:
                await component.start()
            except OSError as exc:
                await self.stop()
                raise _listen_problem(name, s, exc) from None
            except BaseException:
                await self.stop()
                raise
            self.components.append((name, component))
            self.runtime.component_running(name, True)
        self.watcher = CatalogWatcher(s.catalog, s.assets, catalog.generation, self.runtime.catalog_loaded,
                                      self.runtime.catalog_rejected, warned=catalog.warnings,
                                      on_running=lambda up: self.runtime.component_running("catalog-watcher", up))
        await self.watcher.start()
        await self.probe.start()

    def http_port(self) -> int:
        return dict(self.components)["http"].port

    async def _tftp_boot_ipxe(self, request) -> bytes:
        """The same chain script as GET /boot.ipxe, for iPXE builds told to fetch it over TFTP."""
        return chain_script(self.runtime.advertise_url(request.server_ip or None)).encode()

    async def reload(self, why: str = "SIGHUP") -> bool:
        return await self.watcher.reload(why) if self.watcher else False

    async def stop(self) -> None:
        await self.probe.stop()
        if self.watcher:
            await self.watcher.stop()
        for name, component in reversed(self.components):
            try:
                await asyncio.wait_for(component.stop(), 3)
            except Exception as exc:  # keep stopping the rest
                log.error("stopping %s failed: %s", name, exc)
            if self.runtime:
                self.runtime.component_running(name, False)
        self.components.clear()
        if self.runtime:
            await self.runtime.close()


async def _serve(settings: Settings) -> int:
    from twisted.internet import reactor

    reactor.startRunning(installSignalHandlers=False)
    server = Server(settings)
    try:
        await server.start()
    except CatalogError as exc:
        log.error("not starting: the catalog has errors")
        for problem in exc.problems:
            log.error("  %s", problem)
        return 1
    except (OSError, StoreError) as exc:
        log.error("not starting: %s", exc)
        return 1
    # What start built (the catalog, every module) lives as long as the process: keep it out of the
    # collector's full passes, which would walk all of it while holding the loop (100+ ms for a large catalog)
    gc.freeze()
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    gave_up: list[str] = []
    workers = None
    if settings.http_workers > 1:
        workers = HTTPWorkers(settings, server.http_port(), lambda why: (gave_up.append(why), stopping.set()))
        share(workers.lag, 0)  # /metrics in any process reports the worst loop block of them all
        try:
            await workers.start()
        except WorkerError as exc:
            log.error("not starting: %s", exc)
            await workers.stop()
            await server.stop()
            return 1
        server.runtime.component_running("http-workers", True)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: _reload_all(loop, server, workers))
    log.info("bootserver ready")
    await stopping.wait()
    if gave_up:
        log.critical("stopping: %s", gave_up[0])
    log.info("stopping")
    if workers is not None:
        await workers.stop()
    await server.stop()
    return 1 if gave_up else 0


def _reload_all(loop: asyncio.AbstractEventLoop, server: Server, workers: HTTPWorkers | None) -> None:
    """SIGHUP: reload here and in every HTTP worker (each also watches the catalog itself)."""
    loop.create_task(server.reload("SIGHUP"))
    if workers is not None:
        workers.signal_all(signal.SIGHUP)


def serve(settings: Settings) -> int:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    install_reactor(loop)
    try:
        return loop.run_until_complete(_serve(settings))
    finally:
        loop.close()
