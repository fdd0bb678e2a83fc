"""A lab that boots QEMU machines through bootserver, inside network namespaces (needs root).

  bootserver lab run --firmware uefi        build, boot, stream consoles and timelines, tear down
  bootserver lab up --firmware bios -n 2    build and boot, leave it running in the background
  bootserver lab status                     what runs, and each machine's state
  bootserver lab down                       remove everything the lab made (found by name)
  bootserver lab catalog --dir D --machine NAME=MAC ...   the test OS + lab catalog for any bootserver
  bootserver lab vagrant run|up|status|down ...            the Vagrant lab, bootserver on this host

The lab: namespaces <name>-sw (bridge, taps, QEMU), <name>-dhcp (dnsmasq: addresses and IPv6
router advertisements only) and <name>-srv (bootserver: proxyDHCP, TFTP, HTTP on 10.77.0.3).
Each machine network-boots the test OS (Debian's kernel, systemd and real Ignition), which applies
its Ignition config to its disk, reports "installed" (or "failed" with Ignition's error) and reboots; the next boot
comes from its disk. Details and the Flatcar variant (--os flatcar): docs/lab.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

from bootserver.catalog.mac import MacError, normalize_mac
from bootserver.config import Settings
from bootserver.lab import catalog as lab_catalog
from bootserver.lab import testos, vagrant_commands
from bootserver.lab.disk import DISK_MB
from bootserver.lab.lab import DISK_BOOT_RE, FAILED_RE, INSTALLED_RE, Lab, MachineSpec, check_host
from bootserver.lab.netns import NetnsError, Topology, list_netns, netns_pids
from bootserver.lab.qemu import FIRMWARES, QemuError, tail
from bootserver.lab.server import BootserverService
from bootserver.lab.stall import StallWatch

ANSI = re.compile(r"\x1b\[[0-9;?=]*[a-zA-Z]|\x1b[c()][0-9A-Z]?")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", default="bslab", help="lab name: prefix of its namespaces (default bslab)")
    common.add_argument("--workdir", type=Path, help="where the lab keeps disks, logs and state "
                                                      "(default /var/tmp/bootserver-lab/NAME)")
    boot = argparse.ArgumentParser(add_help=False)
    boot.add_argument("--firmware", action="append", choices=FIRMWARES,
                      help="firmware of the machines (repeatable; default bios)")
    boot.add_argument("-n", "--count", type=int, default=1, help="machines per firmware (default 1)")
    boot.add_argument("--unknown", type=int, default=0, metavar="N",
                      help="also boot N machines whose MAC is not in the catalog")
    boot.add_argument("--unknown-machines", choices=("ignore", "discover"), default="ignore",
                      help="what bootserver does with unknown MACs (default ignore)")
    boot.add_argument("--os", choices=("testos", "flatcar"), default="testos",
                      help="testos (built here from Debian packages) or flatcar (needs Flatcar "
                           "assets: bootserver assets fetch flatcar)")
    boot.add_argument("--assets", metavar="DIR", default=argparse.SUPPRESS,
                      help="assets folder for the lab's bootserver (default WORKDIR/assets; needed by --os flatcar)")
    boot.add_argument("--installed-dhcp", choices=("auto", "answer", "silent"), default="auto",
                      help="bootserver's installed_dhcp (silent: installed UEFI machines fall through slowly)")
    boot.add_argument("--keep-state", action="store_true",
                      help="keep the earlier run's state store and disks (default: both start fresh)")
    boot.add_argument("--no-ipv6-ra", action="store_true",
                      help="no IPv6 router advertisements (iPXE then waits ~15 s per boot)")
    sub.add_parser("up", parents=[common, boot], help="build the lab and power the machines on; leave it running")
    p = sub.add_parser("run", parents=[common, boot],
                       help="build, boot, stream consoles and timelines until every machine booted from disk")
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait for all machines (default 600)")
    p.add_argument("--keep", action="store_true", help="leave the lab running afterwards (lab down removes it)")
    p.add_argument("--quiet-console", action="store_true", help="print only the timelines, not the consoles")
    sub.add_parser("status", parents=[common], help="what the lab runs and each machine's state")
    p = sub.add_parser("catalog", help="write the test OS, the lab catalog and settings into a folder "
                                        "(for bootserver outside the lab, e.g. the Vagrant server)")
    p.add_argument("--dir", type=Path, required=True, help="folder for catalog/, assets/, state/ and bootserver.yaml")
    p.add_argument("--machine", nargs="+", required=True, metavar="NAME=MAC", help="machines to put in the catalog")
    p.add_argument("--interface", default="eth0", help="boot network interface for proxyDHCP (default eth0)")
    p.add_argument("--advertise-url", required=True, help="base URL the machines reach bootserver at")
    sub.add_parser("down", parents=[common], help="remove everything the lab made")
    vagrant_commands.add_arguments(sub.add_parser(
        "vagrant", help="the Vagrant lab in host mode: box-less libvirt machines boot through bootserver here"))


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.lab_command == "vagrant":
        return vagrant_commands.run(args)
    if os.geteuid() != 0 and args.lab_command != "catalog":
        print("bootserver lab: run as root (network namespaces, tap devices)", file=sys.stderr)
        return 2
    workdir = getattr(args, "workdir", None) or Path("/var/tmp/bootserver-lab") / getattr(args, "name", "bslab")
    if args.lab_command == "catalog":
        return _write_catalog(args)
    try:
        Topology(args.name)
    except NetnsError as exc:
        print(f"bootserver lab: {exc}", file=sys.stderr)
        return 2
    if args.lab_command == "down":
        removed = Topology(args.name).destroy()
        print(f"lab {args.name}: removed {', '.join(removed)}" if removed else f"lab {args.name}: nothing to remove")
        return 0
    if args.lab_command == "status":
        return _status(args.name, workdir)
    problems = check_host()
    if problems:
        print("bootserver lab: this host cannot run the lab:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    try:
        lab, server = _make_lab(args, workdir)
    except (ValueError, QemuError) as exc:
        print(f"bootserver lab: {exc}", file=sys.stderr)
        return 2
    if args.lab_command == "up":
        try:
            lab.up()
            for name in lab.machines:
                lab.power_on(name)
        except Exception as exc:
            lab.down()
            print(f"bootserver lab: {exc}", file=sys.stderr)
            return 1
        print(f"lab {args.name} is up: bootserver {lab.base_url} (in namespace {lab.topology.server}), "
              f"files in {workdir}\n  bootserver lab status --name {args.name}\n  bootserver lab down --name {args.name}")
        return 0
    return _run(args, lab, server)


def _make_lab(args: argparse.Namespace, workdir: Path) -> tuple[Lab, BootserverService]:
    firmwares = list(dict.fromkeys(args.firmware or ["bios"]))
    if "uefi" in firmwares and "uefi-snponly" in firmwares:
        raise ValueError("uefi and uefi-snponly need different uefi_loader settings: run them in two labs "
                         "(different --name)")
    if not 1 <= args.count <= 16 or not 0 <= args.unknown <= 16:
        raise ValueError("--count is 1 to 16 and --unknown 0 to 16")
    specs = [MachineSpec.make(i, fw) for fw in firmwares for i in range(1, args.count + 1)]
    specs += [MachineSpec.make(0xF0 + i, firmwares[0], in_catalog=False) for i in range(args.unknown)]
    server = BootserverService(unknown_machines=args.unknown_machines, os_name=args.os,
                               installed_dhcp=args.installed_dhcp,
                               uefi_loader="snponly.efi" if "uefi-snponly" in firmwares else "ipxe.efi")
    memory = 3072 if args.os == "flatcar" else 512
    assets = Path(args.assets).resolve() if getattr(args, "assets", None) else None
    if args.os == "flatcar" and assets is None:
        raise ValueError("--os flatcar needs --assets DIR holding Flatcar (bootserver assets fetch flatcar)")
    lab = Lab(args.name, workdir, specs, server, ipv6_ra=not args.no_ipv6_ra, memory_mb=memory,
              disk_mb=12 * 1024 if args.os == "flatcar" else DISK_MB, assets=assets, keep_state=args.keep_state)
    return lab, server


def _run(args: argparse.Namespace, lab: Lab, server: BootserverService) -> int:
    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    results: dict[str, dict] = {}
    try:
        lab.up()
        print(f"lab {lab.topology.prefix}: bootserver at {lab.base_url}; logs in {lab.workdir}", flush=True)
        for name in lab.machines:
            lab.power_on(name)
            results[name] = {}
        _follow(args, lab, server, results)
    except KeyboardInterrupt:
        print("\nlab: interrupted, removing everything", file=sys.stderr)
        args.keep = False
    except Exception as exc:
        print(f"bootserver lab: {exc}", file=sys.stderr)
        args.keep = False
        results.setdefault("_error", {"error": str(exc)})
    finally:
        if not args.keep:
            lab.down()
    if results:
        _summary(lab, results)
    if args.keep:
        print(f"lab kept running: bootserver lab down --name {lab.topology.prefix}")
    ok = all(r.get("done") for n, r in results.items() if not n.startswith("_") and lab.specs[n].in_catalog)
    return 0 if ok and "_error" not in results and stop["signal"] is None else 1


def _follow(args, lab: Lab, server: BootserverService, results: dict[str, dict]) -> None:
    """Stream consoles and timelines until every catalogued machine booted from its disk."""
    offsets = {name: 0 for name in lab.machines}
    watches = {name: StallWatch() for name in lab.machines}
    seen_events: dict[str, int] = {name: 0 for name in lab.machines}
    deadline = time.monotonic() + args.timeout
    next_timeline = 0.0
    while time.monotonic() < deadline:
        server.check_running()
        for name, machine in lab.machines.items():
            text = machine.serial_text()
            chunk = text[offsets[name]:]
            cut = chunk.rfind("\n") + 1
            if cut and not args.quiet_console:
                for line in ANSI.sub("", chunk[:cut]).replace("\r", "").splitlines():
                    if line.strip():
                        print(f"[{name}] {line}", flush=True)
            offsets[name] += cut
            _progress(lab, server, name, text, results[name])
            stuck = None if results[name].get("done") else watches[name].check(text[machine.serial_start:])
            if stuck:
                raise StalledError(f"{name} stopped making progress: {stuck}; its console's last lines:\n"
                                   f"{tail(text)}")
        if time.monotonic() >= next_timeline:
            for name, machine in lab.machines.items():
                events = server.timeline(machine.mac)
                for event in events[seen_events[name]:]:
                    print(f"[{name}] timeline {event['time']} {event['kind']} {json.dumps(event['detail'])}",
                          flush=True)
                seen_events[name] = len(events)
            next_timeline = time.monotonic() + 2
        if all(results[n].get("done") or not lab.specs[n].in_catalog for n in lab.machines):
            if not all(lab.specs[n].in_catalog for n in lab.machines):
                time.sleep(2)  # let the unknown machines' discovery show up in the timeline
            return
        time.sleep(0.3)
    raise TimeoutError(f"not every machine booted from its disk within {args.timeout:.0f} s")


class StalledError(RuntimeError):
    pass


def _progress(lab: Lab, server: BootserverService, name: str, text: str, result: dict) -> None:
    machine = lab.machines[name]
    elapsed = round(time.monotonic() - (machine.started_at or time.monotonic()), 1)
    if server.os_name == "flatcar":  # Flatcar's installer reports to bootserver; then it boots from disk
        if "installed" not in result and (server.machine(machine.mac) or {}).get("state") == "installed":
            result["installed"] = elapsed
            result["console_at"] = len(text)
        if "installed" in result and "done" not in result and "login:" in text[result["console_at"]:]:
            result["done"] = elapsed
        return
    if "installed" not in result and re.search(INSTALLED_RE, text):
        result["installed"] = elapsed
    if "failed" not in result and (m := re.search(FAILED_RE, text)):
        result["failed"] = m["reason"]
    if "installed" in result and "done" not in result:
        after = text.find("TESTOS-POSTED")
        if after >= 0 and "rebooted" not in result:
            result["rebooted"] = elapsed  # the second boot (the installed machine's own) starts here
        if after >= 0 and re.compile(DISK_BOOT_RE).search(text, after):
            result["done"] = elapsed


def _summary(lab: Lab, results: dict[str, dict]) -> None:
    print("\nmachine            firmware        MAC                 power-on->installed  ->disk boot  "
          "(second boot)  state")
    for name, result in results.items():
        if name.startswith("_"):
            continue
        spec = lab.specs[name]
        record = lab.server.machine(spec.mac) if lab.workdir.exists() else None
        state = record["state"] if record else ("not seen" if spec.in_catalog else "ignored (unknown MAC)")
        installed = f"{result['installed']:.1f} s" if "installed" in result else "-"
        done = f"{result['done']:.1f} s" if "done" in result else "-"
        second = f"{result['done'] - result['rebooted']:.1f} s" if "done" in result and "rebooted" in result else "-"
        print(f"{name:<18} {spec.firmware:<15} {spec.mac}   {installed:>19}  {done:>10}  {second:>13}  {state}")


def _status(name: str, workdir: Path) -> int:
    topology = Topology(name)
    present = [ns for ns in topology.namespaces if ns in list_netns()]
    if not present:
        print(f"lab {name}: not running")
        return 3
    print(f"lab {name}: namespaces {', '.join(present)}")
    for ns in present:
        for pid in netns_pids(ns):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:110]
            except OSError:
                continue
            print(f"  {ns:<16} pid {pid:<8} {cmd}")
    state_file = workdir / "lab.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        server = BootserverService()
        server.settings_file = workdir / "bootserver.yaml"
        for m in state["machines"]:
            record = server.machine(m["mac"])
            print(f"  machine {m['name']:<16} {m['firmware']:<13} {m['mac']}  "
                  f"{record['state'] if record else 'not seen by bootserver'}  console: {m['serial']}")
            text = Path(m["serial"]).read_bytes().decode("latin-1") if Path(m["serial"]).exists() else ""
            last = tail(text, 1)
            if last:
                print(f"      last console line: {last[:100]}")
    return 0


def _write_catalog(args: argparse.Namespace) -> int:
    machines = []
    for item in args.machine:
        name, sep, mac = item.partition("=")
        try:
            mac = normalize_mac(mac)
        except MacError as exc:
            print(f"bootserver lab catalog: {item!r}: {exc}", file=sys.stderr)
            return 2
        if not sep or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", name):
            print(f"bootserver lab catalog: expected NAME=MAC with a host-name-like NAME, got {item!r}",
                  file=sys.stderr)
            return 2
        machines.append((name, mac, name))
    root = args.dir.resolve()
    try:
        kernel, initrd = testos.install_into(root / "assets")
    except testos.TestOSError as exc:
        print(f"bootserver lab catalog: {exc}", file=sys.stderr)
        return 1
    defaults = lab_catalog.write_ignition_assets(root / "assets")
    catalog = lab_catalog.write_catalog(root / "catalog", lab_catalog.test_os_profile(kernel, initrd, defaults),
                                        machines)
    (root / "state").mkdir(exist_ok=True)
    settings = lab_catalog.write_settings(root / "bootserver.yaml", catalog, root / "assets",
                                          root / "state" / "bootserver.db", args.advertise_url,
                                          interface=args.interface)
    print(f"wrote {catalog} ({len(machines)} machines), {root / 'assets'}, {settings}\n"
          f"  bootserver serve --config {settings}")
    return 0
