"""The boot-storm load: N simulated machines, at most C at once, each doing what real firmware does.

One machine, as edk2 + iPXE + Flatcar's installer would:
 1. DHCPDISCOVER (PXE, x86-64 UEFI) broadcast to port 67, wait for the proxy's offer;
 2. DHCPREQUEST to the offering server's port 4011 (from its own address, port 4011), wait for the
    ACK that names the boot file (with the boot item of the offer's menu, when it has one: dnsmasq);
 3. TFTP that file (blksize 1468, tsize), checked against its sha256;
 4. DHCPDISCOVER again as iPXE (user class "iPXE"): the offer's file is the boot script URL;
 5. GET that script, follow its `chain` (iPXE's ${…} filled in), GET the machine's script;
 6. GET the kernel and every initrd it names, lengths checked;
 7. GET the Ignition URL from the kernel arguments, parsed as JSON;
 8. POST {"event": "installed"} to the events URL from the kernel arguments, with an Idempotency-Key
    (retried with the same key with --event-tries; a failed boot starts over with --reboots).

Each machine uses its own IPv4 address (given on the client interface), so the server can tell the
machines apart by address as it does in real life. Everything is bounded: per-step timeouts with
firmware-like retries, and a deadline for the whole storm.

    python -m bench.storm_client --interface IF --first-ip 10.66.1.1 --machines 1000 --concurrency 200 …
prints one JSON line: {"wall": s, "done": n, "errors": {reason: count}, "durations": [s…], "steps": {…}}
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import ipaddress
import json
import os
import re
import resource
import socket
import time
from collections import Counter, defaultdict

from bench.storm_protocols import (RETRIES, SO_BINDTODEVICE, SO_RCVBUFFORCE, TFTP_TIMEOUT, TFTP_TRIES, VENDOR_IPXE,
                                   Port68, StepError, boot_file, boot_item, dhcp_packet, fill, http, request_4011, server_of, tftp_get)


# --- one machine ---------------------------------------------------------------------------------

async def boot(i: int, args, port68: Port68, steps: dict[str, list[float]], acked: list) -> None:
    mac = bytes.fromhex("525401") + (args.first_mac + i).to_bytes(3, "big")
    mac_text = ":".join(f"{b:02x}" for b in mac)
    ip = str(ipaddress.IPv4Address(args.first_ip) + i)
    uuid = hashlib.md5(mac).digest()
    started = time.monotonic()

    def lap(name: str, since: float) -> float:
        now = time.monotonic()
        steps[name].append(now - since)
        return now

    t = started
    xid = int.from_bytes(os.urandom(4), "big")
    offer, source = await port68.exchange(dhcp_packet(1, xid, mac, uuid=uuid), xid, args.dhcp_timeout, 4)
    server = server_of(offer, source)
    xid = int.from_bytes(os.urandom(4), "big")
    ack = await request_4011(ip, server, dhcp_packet(3, xid, mac, ciaddr=ip, extra=boot_item(offer), uuid=uuid),
                             xid, args.dhcp_timeout, 4)
    filename = boot_file(ack)
    if not filename:
        raise StepError("dhcp: ack names no boot file")
    t = lap("dhcp (67 + 4011)", t)
    size, digest = await tftp_get(ip, server_of(ack, server), filename, TFTP_TIMEOUT, TFTP_TRIES)
    if digest != args.loader_sha256:
        raise StepError("tftp: wrong content")
    t = lap("tftp loader", t)
    xid = int.from_bytes(os.urandom(4), "big")
    offer, _ = await port68.exchange(dhcp_packet(1, xid, mac, uuid=uuid, vendor=VENDOR_IPXE,
                                                 extra=[(77, b"iPXE"), (175, b"\x13\x01\x01")]),
                                     xid, args.dhcp_timeout, 4)
    script_url = boot_file(offer)
    if not script_url.startswith("http"):
        raise StepError("dhcp: iPXE offer without a script URL")
    t = lap("dhcp as iPXE", t)
    status, chain = await http("GET", script_url, ip)
    found = re.search(r"chain (?:--autofree )?(\S+)", chain.decode()) if status == 200 else None
    if not found:
        raise StepError(f"http boot.ipxe: {status}")
    values = {"net0/mac": mac_text, "uuid": str(uuid.hex()), "buildarch": "x86_64", "platform": "efi"}
    status, script = await http("GET", fill(found.group(1), values), ip)
    text = script.decode()
    kernel_line = next((line for line in text.splitlines() if line.startswith("kernel ")), None)
    if status != 200 or kernel_line is None:
        raise StepError(f"http /ipxe: {status}, kernel line: {kernel_line is not None}")
    t = lap("http scripts", t)
    words = kernel_line.split()
    for url, expected in [(words[1], args.kernel_size)] + [
            (line.split()[1], args.initrd_size) for line in text.splitlines() if line.startswith("initrd ")]:
        status, count = await http("GET", url, ip, keep=False, timeout=args.transfer_timeout)
        if status != 200 or count != expected:
            raise StepError(f"http asset: {status}, {count} bytes")
    t = lap("http kernel + initrd", t)
    params = dict(w.split("=", 1) for w in words[2:] if "=" in w)
    status, ignition = await http("GET", params["ignition.config.url"], ip)
    if status != 200:
        raise StepError(f"http /ignition: {status}")
    json.loads(ignition)
    t = lap("http ignition", t)
    await report_installed(params["bootserver.events"], ip, mac_text, args, acked)
    lap("http installed event", t)
    steps["machine"].append(time.monotonic() - started)


async def report_installed(url: str, ip: str, mac_text: str, args, acked: list) -> None:
    """POST installed as an installer does: retried with the same Idempotency-Key until answered 2xx."""
    key = os.urandom(12).hex()
    body = json.dumps({"event": "installed", "detail": "storm"}).encode()
    status = None
    for attempt in range(args.event_tries):
        if attempt:
            RETRIES["installed event"] += 1
            await asyncio.sleep(min(attempt, 3))
        try:
            status, _ = await http("POST", url, ip, body=body, timeout=15, headers={"Idempotency-Key": key})
        except (OSError, asyncio.TimeoutError, StepError):
            continue
        if 200 <= status < 300:
            acked.append((mac_text, key))
            return
    raise StepError(f"http installed event: {status}")


async def storm(args) -> dict:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, args.interface.encode())
    try:  # every process gets every broadcast reply: a burst of 1,000 must not overflow the buffer
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)  # root: past net.core.rmem_max
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("0.0.0.0", 68))
    transport, port68 = await loop.create_datagram_endpoint(Port68, sock=sock)
    steps: dict[str, list[float]] = defaultdict(list)
    errors: Counter = Counter()
    gate = asyncio.Semaphore(args.concurrency)
    acked: list[tuple[str, str]] = []  # (mac, idempotency key) of every installed event answered 2xx

    reboot_causes: Counter = Counter()  # the failed step behind each reboot

    async def one(i: int) -> None:
        async with gate:
            failure = ""
            for attempt in range(1 + args.reboots):  # a failed boot: the firmware reboots and starts over
                if attempt:
                    RETRIES["reboot"] += 1
                    reboot_causes[failure] += 1
                    await asyncio.sleep(args.reboot_pause)  # the firmware's own restart (POST, NIC init)
                try:
                    await boot(i, args, port68, steps, acked)
                    return
                except StepError as exc:
                    failure = str(exc)
                except (OSError, asyncio.TimeoutError, ValueError, KeyError) as exc:
                    failure = f"{type(exc).__name__}: {exc}"[:120]
            errors[failure] += 1

    started = time.monotonic()
    tasks = [asyncio.create_task(one(i)) for i in range(args.machines)]
    finished, pending = await asyncio.wait(tasks, timeout=args.deadline)
    for task in pending:
        task.cancel()
    if pending:
        errors[f"unfinished at the {args.deadline:.0f} s deadline"] += len(pending)
        await asyncio.wait(pending, timeout=5)
    wall = time.monotonic() - started
    port68.counts["dropped"] = udp_drops(sock)
    transport.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall": wall, "done": len(steps["machine"]), "errors": dict(errors), "acked": acked,
            "client_cpu": usage.ru_utime + usage.ru_stime, "retries": dict(RETRIES),
            "reboot_causes": dict(reboot_causes), "port68": dict(port68.counts),
            "durations": steps.pop("machine", []), "steps": {k: sorted(v) for k, v in steps.items()}}


def udp_drops(sock: socket.socket) -> int:
    """The kernel's count of datagrams dropped on this socket (receive buffer full): /proc/net/udp's
    last column, found by the socket's inode."""
    inode = str(os.fstat(sock.fileno()).st_ino)
    with open("/proc/net/udp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[9] == inode:
                return int(fields[-1])
    return -1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--interface", required=True)
    parser.add_argument("--first-ip", required=True)
    parser.add_argument("--machines", type=int, default=1000)
    parser.add_argument("--first-mac", type=int, default=0, help="index of the first MAC (52:54:01:00:00:00 + i)")
    parser.add_argument("--reboots", type=int, default=0, help="boots started again after a failed step")
    parser.add_argument("--reboot-pause", type=float, default=0.0,
                        help="seconds a reboot takes before the next boot starts (real firmware: several)")
    parser.add_argument("--event-tries", type=int, default=1, help="tries of the installed POST (same key)")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--loader-sha256", required=True)
    parser.add_argument("--kernel-size", type=int, required=True)
    parser.add_argument("--initrd-size", type=int, required=True)
    parser.add_argument("--dhcp-timeout", type=float, default=4.0)
    parser.add_argument("--transfer-timeout", type=float, default=90.0)
    parser.add_argument("--deadline", type=float, default=150.0)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # a machine holds up to three sockets at once
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(json.dumps(asyncio.run(storm(args))))


if __name__ == "__main__":
    main()
