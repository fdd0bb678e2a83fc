"""The proxy on a veth pair between two namespaces, answering the firmware's own packets."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket

import pytest

from bootserver.catalog.loader import load_catalog
from bootserver.config import Settings
from bootserver.dhcp import packet as P
from bootserver.dhcp.proxy import ProxyDHCP, ProxyStartError
from bootserver.dhcp.ratelimit import MacRateLimiter
from bootserver.metrics import REGISTRY
from bootserver.runtime import Runtime
from bootserver.state.memory import MemoryStore
from tests.dhcp.dhcp_support import (SERVER_IP, Client, fixture_datagrams, inside, make_runtime, set_installed, sh,
                                     veth_link)

pytestmark = [pytest.mark.netns, pytest.mark.asyncio(loop_scope="session")]

ADDRESS_OPTIONS = {1, 3, 6, 15, 28, 50, 51, 58, 59}
SCRIPT_URL = f"http://{SERVER_IP}:8080/boot.ipxe"
CAPTURES = sorted({name for name, _ in fixture_datagrams()})


@pytest.fixture(scope="module")
def link():
    with veth_link() as created:
        yield created


@contextlib.asynccontextmanager
async def running(link, runtime, **kwargs):
    proxy = ProxyDHCP(runtime, runtime.settings, interfaces=(link.server_if,), **kwargs)
    with inside(link.server_ns):
        await proxy.start()  # opens its sockets before its first await, so they land in server_ns
    try:
        yield proxy
    finally:
        await proxy.stop()


def settings(link, **overrides) -> Settings:
    return Settings(dhcp=(link.server_if,), **overrides)


def capture_packets(capture):
    """(request datagram, the captured proxy reply or None) for each client packet of a capture."""
    datagrams = [d for name, d in fixture_datagrams() if name == capture]
    out = []
    for i, d in enumerate(datagrams):
        request = P.decode(d.payload)
        if request.op != P.BOOTREQUEST:
            continue
        reply = None
        for later in datagrams[i + 1:]:
            answer = P.decode(later.payload)
            if answer.op == P.BOOTREQUEST:
                break
            if later.src == SERVER_IP and answer.xid == request.xid:
                reply = answer
        out.append((d, request, reply))
    return out


def expected_file(request: P.Packet, loader: str) -> bytes:
    if b"iPXE" in request.user_classes or P.OPT_IPXE in request.options:
        return SCRIPT_URL.encode()
    return b"undionly.kpxe" if request.client_arches == (0,) else loader.encode()


async def ask(link, payload: bytes, dport: int = 67, source: str = "0.0.0.0", timeout: float = 1.0):
    """Send like the firmware does; return (reply datagram or None, the client's port)."""
    sport = 4011 if dport == 4011 else 68
    client = Client(link, (source, sport))
    try:
        client.send(payload, (SERVER_IP, 4011) if dport == 4011 else ("255.255.255.255", 67))
        return await client.recv(timeout), sport
    finally:
        client.close()


def assert_proxy_reply(got, request: P.Packet, kind: int, boot_file: bytes, dst: str, dport: int, sport: int):
    assert got is not None, "no reply"
    data, src, reply_dst = got
    reply = P.decode(data)
    assert src == (SERVER_IP, dport)
    assert reply_dst == dst
    assert reply.op == P.BOOTREPLY and reply.message_type == kind
    assert reply.xid == request.xid and reply.chaddr == request.chaddr
    assert reply.yiaddr == "0.0.0.0"
    assert reply.siaddr == SERVER_IP and reply.sname == SERVER_IP.encode() and reply.server_id == SERVER_IP
    assert reply.options[P.OPT_VENDOR_CLASS] == b"PXEClient"
    assert reply.options.get(P.OPT_CLIENT_UUID) == request.options.get(P.OPT_CLIENT_UUID)
    if request.client_arches == (0,):
        assert reply.pxe_options == {P.PXE_DISCOVERY_CONTROL: b"\x08"}
    else:
        assert P.OPT_VENDOR not in reply.options
    assert reply.file == boot_file
    assert not ADDRESS_OPTIONS & set(reply.options)
    return reply


@pytest.mark.parametrize("capture", CAPTURES)
async def test_replays_capture_field_by_field(reactor, link, capture):
    loader = "snponly.efi" if "snponly" in capture else "ipxe.efi"
    packets = capture_packets(capture)
    mac = packets[0][1].mac
    runtime = make_runtime(settings(link, uefi_loader=loader), known={mac})
    answered = 0
    async with running(link, runtime):
        for d, request, captured in packets:
            got, sport = await ask(link, d.payload, d.dport, d.src, timeout=1.0 if captured else 0.25)
            if captured is None:  # dnsmasq's proxy stayed silent here (udhcpc, REQUESTs for 10.77.0.2)
                assert got is None, f"answered {P.MESSAGE_TYPES[request.message_type]} that needs no answer"
                continue
            dst = d.src if d.dport == 4011 else "255.255.255.255"
            reply = assert_proxy_reply(got, request, captured.message_type, expected_file(request, loader),
                                       dst, d.dport, sport)
            assert reply.options[P.OPT_VENDOR_CLASS] == captured.options[P.OPT_VENDOR_CLASS]
            if captured.file and not captured.file.endswith(b".kpxe"):
                assert reply.file == captured.file  # what the firmware then booted in the capture
            answered += 1
    events = [e for e in await runtime.store.events(mac) if e.kind.startswith("dhcp.")]
    assert len(events) == answered >= 1
    assert {e.detail["interface"] for e in events} == {link.server_if}
    assert all(e.detail["arch"] == runtime_arch(packets) for e in events)
    if "uefi-virtio" == capture or "snponly" in capture:
        ack = [e for e in events if e.kind == "dhcp.ack"]
        assert len(ack) == 1 and ack[0].detail["file"] == loader and ack[0].detail["port"] == 4011


def runtime_arch(packets) -> str:
    return "x86_64-bios" if packets[0][1].client_arches == (0,) else "x86_64-efi"


def first_discover(capture: str, ipxe: bool) -> P.Packet:
    for _d, request, _captured in capture_packets(capture):
        if request.message_type == P.DISCOVER and (P.OPT_IPXE in request.options) == ipxe:
            return request
    raise AssertionError(capture)


async def test_relayed_request_goes_back_to_relay_port_67(reactor, link):
    request = first_discover("uefi-virtio", ipxe=False)
    relayed = dataclasses.replace(request, giaddr="10.77.0.141", hops=1)
    runtime = make_runtime(settings(link), known={request.mac})
    async with running(link, runtime):
        relay = Client(link, ("10.77.0.141", 67))
        try:
            relay.send(P.encode(relayed), (SERVER_IP, 67))
            got = await relay.recv(1.0)
        finally:
            relay.close()
    reply = assert_proxy_reply(got, relayed, P.OFFER, b"ipxe.efi", "10.77.0.141", 67, 67)
    assert reply.giaddr == "10.77.0.141"


async def test_client_with_address_gets_unicast(reactor, link):
    request = dataclasses.replace(first_discover("uefi-virtio", ipxe=True), ciaddr="10.77.0.146")
    runtime = make_runtime(settings(link), known={request.mac})
    async with running(link, runtime):
        got, sport = await ask(link, P.encode(request))
    assert_proxy_reply(got, request, P.OFFER, SCRIPT_URL.encode(), "10.77.0.146", 67, sport)


async def test_request_on_67_for_the_proxy_is_acked_unless_it_asks_for_a_lease(reactor, link):
    request = first_discover("bios-virtio", ipxe=True)
    request.options[P.OPT_MESSAGE_TYPE] = bytes((P.REQUEST,))
    request.options[P.OPT_SERVER_ID] = bytes(map(int, SERVER_IP.split(".")))
    lease = dataclasses.replace(request, options={**request.options, P.OPT_REQUESTED_IP: bytes((10, 77, 0, 141))})
    runtime = make_runtime(settings(link), known={request.mac})
    async with running(link, runtime):
        got, sport = await ask(link, P.encode(request))
        assert_proxy_reply(got, request, P.ACK, SCRIPT_URL.encode(), "255.255.255.255", 67, sport)
        # the same REQUEST asking for an address is for a DHCP server that shares our address
        got, _ = await ask(link, P.encode(lease), timeout=0.3)
        assert got is None


@pytest.mark.parametrize("mode, bios_answered, uefi_answered", [
    ("auto", True, True), ("answer", True, True), ("silent", False, False)])
async def test_installed_machines(reactor, link, mode, bios_answered, uefi_answered):
    bios = first_discover("bios-virtio-chain", ipxe=True)
    uefi = first_discover("uefi-virtio", ipxe=False)
    runtime = make_runtime(settings(link, installed_dhcp=mode), known={bios.mac, uefi.mac})
    await set_installed(runtime, bios.mac)
    await set_installed(runtime, uefi.mac)
    async with running(link, runtime):
        got_bios, _ = await ask(link, P.encode(bios), timeout=1.0 if bios_answered else 0.3)
        got_uefi, _ = await ask(link, P.encode(uefi), timeout=1.0 if uefi_answered else 0.3)
    assert (got_bios is not None) == bios_answered
    assert (got_uefi is not None) == uefi_answered
    if got_bios:  # iPXE then fetches boot.ipxe, and the HTTP side serves the local-disk script
        assert P.decode(got_bios[0]).file == SCRIPT_URL.encode()
    if got_uefi:
        assert P.decode(got_uefi[0]).file == b"ipxe.efi"


async def test_unknown_machines_follow_the_setting(reactor, link):
    request = first_discover("uefi-virtio", ipxe=False)
    ignoring = make_runtime(settings(link))
    discovering = make_runtime(settings(link, unknown_machines="discover"))
    serving = make_runtime(settings(link, unknown_machines="discover", unknown_profile="install"))
    for runtime in (ignoring, discovering):
        async with running(link, runtime):
            got, _ = await ask(link, P.encode(request), timeout=0.3)
        assert got is None
    assert await ignoring.store.get(request.mac) is None
    assert (await discovering.store.get(request.mac)).state == "discovered"
    async with running(link, serving):
        got, sport = await ask(link, P.encode(request))
    assert_proxy_reply(got, request, P.OFFER, b"ipxe.efi", "255.255.255.255", 67, sport)
    kinds = [e.kind for e in await serving.store.events(request.mac)]
    assert kinds[-1] == "dhcp.offer" and kinds.count("dhcp.offer") == 1


def with_arch(request: P.Packet, code: int, vendor: str) -> P.Packet:
    options = dict(request.options)
    options[P.OPT_CLIENT_ARCH] = code.to_bytes(2, "big")
    options[P.OPT_VENDOR_CLASS] = vendor.encode()
    return dataclasses.replace(request, options=options)


async def test_arm64_needs_its_loader(reactor, link, caplog):
    request = with_arch(first_discover("uefi-virtio", ipxe=False), 11, "PXEClient:Arch:00011:UNDI:003000")
    async with running(link, make_runtime(settings(link), known={request.mac})):
        with caplog.at_level("INFO", logger="bootserver.dhcp"):
            got, _ = await ask(link, P.encode(request), timeout=0.3)
    assert got is None
    assert "arm64_loader is not set" in caplog.text
    runtime = make_runtime(settings(link, arm64_loader="ipxe-arm64.efi"), known={request.mac})
    async with running(link, runtime):
        got, sport = await ask(link, P.encode(request))
    assert_proxy_reply(got, request, P.OFFER, b"ipxe-arm64.efi", "255.255.255.255", 67, sport)
    assert (await runtime.store.events(request.mac))[-1].detail["arch"] == "arm64-efi"


async def test_uefi_http_boot_gets_a_url(reactor, link):
    request = with_arch(first_discover("uefi-virtio", ipxe=False), 16, "HTTPClient:Arch:00016:UNDI:003000")
    runtime = make_runtime(settings(link), known={request.mac})
    async with running(link, runtime):
        got, _ = await ask(link, P.encode(request))
    reply = P.decode(got[0])
    assert reply.options[P.OPT_VENDOR_CLASS] == b"HTTPClient"
    assert reply.file == f"http://{SERVER_IP}:8080/loaders/ipxe.efi".encode()
    assert reply.yiaddr == "0.0.0.0" and reply.siaddr == SERVER_IP
    assert (await runtime.store.events(request.mac))[-1].detail["stage"] == "httpboot"


async def test_arm64_uefi_http_boot_gets_an_http_client_answer_with_a_url(reactor, link):
    """UEFI spec 24.7 (HTTP Boot): a proxy offer to an HTTPClient echoes `HTTPClient` in option 60
    and gives the boot file as a URI; arch 19 gets bootserver's HTTP Boot GRUB, arch 11 Debian's."""
    request = with_arch(first_discover("uefi-virtio", ipxe=False), 19, "HTTPClient:Arch:00019:UNDI:003000")
    runtime = make_runtime(settings(link, arm64_loader="grubaa64.efi"), known={request.mac})
    async with running(link, runtime):
        got, _ = await ask(link, P.encode(request))
    reply = P.decode(got[0])
    assert reply.op == 2 and reply.options[P.OPT_MESSAGE_TYPE] == bytes([P.OFFER])
    assert reply.options[P.OPT_VENDOR_CLASS] == b"HTTPClient"
    url = reply.file or reply.options[P.OPT_BOOTFILE]
    assert url == f"http://{SERVER_IP}:8080/loaders/grubhttpaa64.efi".encode()
    assert reply.yiaddr == "0.0.0.0" and reply.xid == request.xid and reply.chaddr == request.chaddr
    event = (await runtime.store.events(request.mac))[-1].detail
    assert (event["stage"], event["arch"], event["method"]) == ("httpboot", "arm64-efi", "http-uefi-arm64")


async def test_long_boot_url_moves_to_option_67(reactor, link):
    request = first_discover("uefi-virtio", ipxe=True)
    base = "http://boot.example.internal:8080/" + "x" * 120
    runtime = make_runtime(settings(link, advertise_url=base), known={request.mac})
    async with running(link, runtime):
        got, _ = await ask(link, P.encode(request))
    reply = P.decode(got[0])
    assert reply.file == b"" and reply.options[P.OPT_BOOTFILE] == (base + "/boot.ipxe").encode()


async def test_rate_limit_per_mac(reactor, link):
    request = first_discover("uefi-virtio", ipxe=False)
    runtime = make_runtime(settings(link), known={request.mac})
    before = REGISTRY.get_sample_value("bootserver_dhcp_unanswered_total", {"reason": "rate_limited"}) or 0
    async with running(link, runtime, limiter=MacRateLimiter(rate=0.01, burst=5)):
        client = Client(link, ("0.0.0.0", 68))
        try:
            for _ in range(20):
                client.send(P.encode(request), ("255.255.255.255", 67))
            replies = await client.drain(0.3)
        finally:
            client.close()
    assert len(replies) == 5
    after = REGISTRY.get_sample_value("bootserver_dhcp_unanswered_total", {"reason": "rate_limited"})
    assert after - before == 15
    assert len([e for e in await runtime.store.events(request.mac) if e.kind == "dhcp.offer"]) == 5


class SlowStore(MemoryStore):
    """A store that really waits on every read, like a database round trip."""

    async def get(self, mac):
        await asyncio.sleep(0.02)
        return await super().get(mac)


async def test_answers_that_wait_on_the_store(reactor, link):
    request = first_discover("uefi-virtio", ipxe=False)
    runtime = make_runtime(settings(link), known={request.mac})
    runtime.store = SlowStore()
    errors = REGISTRY.get_sample_value("bootserver_dhcp_unanswered_total", {"reason": "error"}) or 0
    async with running(link, runtime) as proxy:
        got, sport = await ask(link, P.encode(request))
        assert_proxy_reply(got, request, P.OFFER, b"ipxe.efi", "255.255.255.255", 67, sport)
        # a second one still waiting when the proxy stops is cancelled cleanly
        client = Client(link, ("0.0.0.0", 68))
        try:
            client.send(P.encode(dataclasses.replace(request, xid=request.xid + 1)), ("255.255.255.255", 67))
            for _ in range(100):
                if proxy._tasks:
                    break
                await asyncio.sleep(0.001)
            assert len(proxy._tasks) == 1
        finally:
            client.close()
    assert not proxy._tasks
    assert (REGISTRY.get_sample_value("bootserver_dhcp_unanswered_total", {"reason": "error"}) or 0) == errors
    assert [e.kind for e in await runtime.store.events(request.mac)] == ["dhcp.offer"]


async def test_port_held_without_reuseaddr_is_a_clear_error(reactor, link):
    with inside(link.server_ns):
        holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # like dnsmasq without --bind-interfaces
        holder.bind(("0.0.0.0", 67))
    try:
        proxy = ProxyDHCP(make_runtime(settings(link)), settings(link), interfaces=(link.server_if,))
        with inside(link.server_ns), pytest.raises(ProxyStartError, match="--bind-interfaces"):
            await proxy.start()
        assert not proxy.listeners
    finally:
        holder.close()


RELAYED_CATALOG = """\
apiVersion: bootserver/v1
kind: Profile
metadata: {name: rack}
spec: {boot: {kernel: "http://10.77.0.3:8080/assets/vmlinuz"}}
---
apiVersion: bootserver/v1
kind: Group
metadata: {name: remote-rack}
spec: {selector: {subnet: 10.99.5.0/24}, profile: rack}
"""


async def test_relayed_machine_is_matched_by_giaddr_subnet_not_the_relay_address(reactor, tmp_path):
    """RFC 2131 4.3.1: giaddr places a relayed client in its subnet; the UDP source is the relay."""
    request = first_discover("uefi-virtio", ipxe=False)
    relayed = dataclasses.replace(request, giaddr="10.99.5.1", hops=1)  # the relay's address on the rack subnet
    (tmp_path / "catalog.yaml").write_text(RELAYED_CATALOG)
    with veth_link() as link:
        sh("ip", "-n", link.client_ns, "addr", "add", "10.99.5.1/32", "dev", link.client_if)
        sh("ip", "-n", link.server_ns, "route", "add", "10.99.5.0/24", "dev", link.server_if)
        runtime = Runtime(settings(link), load_catalog(tmp_path), MemoryStore())
        async with running(link, runtime):
            relay_out = Client(link, ("10.77.0.141", 67))  # the relay sends from its server-side address
            relay_in = Client(link, ("10.99.5.1", 67))  # and hears the answer on giaddr, port 67
            try:
                relay_out.send(P.encode(relayed), (SERVER_IP, 67))
                got = await relay_in.recv(1.0)
            finally:
                relay_out.close()
                relay_in.close()
    reply = assert_proxy_reply(got, relayed, P.OFFER, b"ipxe.efi", "10.99.5.1", 67, 67)
    assert reply.giaddr == "10.99.5.1"
    assert runtime.mac_for_ip("10.77.0.141") is None  # the relay's address names no machine (TFTP, /assets)
    record = await runtime.machine(request.mac)
    assert record.profile == "rack" and record.client_ip is None


async def test_answer_follows_what_decides_it_each_time(reactor, link):
    """Nothing stale is served: the boot script URL follows the HTTP port the runtime learns."""
    request = first_discover("uefi-virtio", ipxe=True)
    runtime = make_runtime(settings(link), known={request.mac})
    files = []
    async with running(link, runtime):
        for port in (8080, 8181):
            runtime.http_listening(port)
            got, _ = await ask(link, P.encode(request))
            assert got is not None, "no reply"
            files.append(P.decode(got[0]).file)
    assert files == [f"http://{SERVER_IP}:8080/boot.ipxe".encode(), f"http://{SERVER_IP}:8181/boot.ipxe".encode()]
