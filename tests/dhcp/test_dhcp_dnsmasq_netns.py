"""The proxy beside an ordinary DHCP server (dnsmasq) on the same host, interface and address."""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from bootserver.config import Settings
from bootserver.dhcp import packet as P
from bootserver.dhcp.proxy import ProxyDHCP
from tests.dhcp.dhcp_support import SERVER_IP, Client, capture_discover, inside, make_runtime, veth_link
from tests.support.processes import stop

pytestmark = [pytest.mark.netns, pytest.mark.asyncio(loop_scope="session")]


@contextlib.contextmanager
def dnsmasq(link):
    """dnsmasq as the ordinary DHCP server, bound the way docs/dhcp.md asks (--bind-interfaces)."""
    if shutil.which("dnsmasq") is None:
        pytest.skip("dnsmasq is not installed (apt-get install dnsmasq-base)")
    work = Path(tempfile.mkdtemp(prefix="bsdh-dnsmasq-"))
    log = work / "dnsmasq.log"
    errors = open(work / "stderr", "wb")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", link.server_ns, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
         "--port=0", "--bind-interfaces", f"--interface={link.server_if}", "--except-interface=lo",
         "--dhcp-range=10.77.0.100,10.77.0.199,255.255.255.0,10m", "--no-ping", "--log-dhcp",
         f"--log-facility={log}", f"--dhcp-leasefile={work / 'leases'}", f"--pid-file={work / 'pid'}",
         "--user=root"], stdout=subprocess.DEVNULL, stderr=errors)
    try:
        deadline = time.monotonic() + 10
        while "started" not in (log.read_text() if log.exists() else ""):
            if proc.poll() is not None:
                raise RuntimeError(f"dnsmasq exited: {(work / 'stderr').read_text()}")
            assert time.monotonic() < deadline, "dnsmasq did not start"
            time.sleep(0.05)
        yield log
    finally:
        stop(proc, timeout=5)
        errors.close()
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize("proxy_first", [False, True], ids=["dnsmasq-first", "proxy-first"])
async def test_proxy_beside_dnsmasq(reactor, proxy_first):
    discover = capture_discover("uefi-virtio", ipxe=False)
    with veth_link() as link:
        runtime = make_runtime(Settings(dhcp=(link.server_if,)), {discover.mac})
        proxy = ProxyDHCP(runtime, runtime.settings, interfaces=(link.server_if,))
        stack = contextlib.ExitStack()
        try:
            if not proxy_first:
                log = stack.enter_context(dnsmasq(link))
            with inside(link.server_ns):
                await proxy.start()
            if proxy_first:
                log = stack.enter_context(dnsmasq(link))
            client = stack.enter_context(contextlib.closing(Client(link, ("0.0.0.0", 68))))
            client.send(P.encode(discover), ("255.255.255.255", 67))
            offers = [P.decode(data) for data, _src, _dst in await client.drain(0.5)]
            lease = next(o for o in offers if o.yiaddr != "0.0.0.0")
            proxy_offer = next(o for o in offers if o.yiaddr == "0.0.0.0")
            assert len(offers) == 2
            assert lease.server_id == SERVER_IP and lease.options.get(1) == bytes((255, 255, 255, 0))
            assert P.OPT_VENDOR_CLASS not in lease.options  # dnsmasq knows nothing of PXE here
            assert proxy_offer.file == b"ipxe.efi" and proxy_offer.options[P.OPT_VENDOR_CLASS] == b"PXEClient"

            # the firmware now takes its address: only dnsmasq answers that REQUEST
            request = dataclasses.replace(discover, options={
                **discover.options, P.OPT_MESSAGE_TYPE: bytes((P.REQUEST,)),
                P.OPT_SERVER_ID: lease.options[P.OPT_SERVER_ID], P.OPT_REQUESTED_IP: socket.inet_aton(lease.yiaddr)})
            client.send(P.encode(request), ("255.255.255.255", 67))
            acks = [P.decode(data) for data, _src, _dst in await client.drain(0.5)]
            assert [(a.message_type, a.yiaddr) for a in acks] == [(P.ACK, lease.yiaddr)]

            # and an ordinary client (busybox udhcpc) still gets its lease with the proxy running
            done = subprocess.run(["ip", "netns", "exec", link.client_ns, "busybox", "udhcpc", "-i",
                                   link.client_if, "-n", "-q", "-f", "-t", "3", "-T", "1", "-s", "/bin/true"],
                                  capture_output=True, text=True, timeout=20)
            assert done.returncode == 0, done.stderr
            assert "lease of 10.77.0.1" in done.stdout + done.stderr
            assert "DHCPACK" in log.read_text()
        finally:
            await proxy.stop()
            stack.close()
