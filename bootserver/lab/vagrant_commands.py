"""`bootserver lab vagrant ...`: the Vagrant lab in host mode (needs root, libvirt, vagrant-libvirt).

  bootserver lab vagrant run --firmware bios,bios,uefi --driver qemu   up, wait for installs and disk boots, down
  bootserver lab vagrant up --firmware uefi --driver qemu              up, leave it running
  bootserver lab vagrant status                                       what runs, each machine's state
  bootserver lab vagrant down                                         remove everything it made

Box-less machines from vagrant/Vagrantfile (BOOTSERVER_SERVER=host) boot through bootserver running on
this host, beside a libvirtd of the lab's own in a network namespace. Details: docs/lab.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bootserver.lab.libvirt_host import LibvirtError, check_tools
from bootserver.lab.services import ServiceError
from bootserver.lab.vagrant import DRIVERS, VagrantLab, VagrantLabError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="vagrant_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--workdir", type=Path, default=Path("/var/tmp/bootserver-lab/vagrant"),
                        help="where the lab keeps its libvirt, disks, consoles and logs "
                             "(default /var/tmp/bootserver-lab/vagrant)")
    boot = argparse.ArgumentParser(add_help=False)
    boot.add_argument("--firmware", default="bios", help="one per machine, comma-separated: bios,bios,uefi (default bios)")
    boot.add_argument("--driver", choices=DRIVERS, default="kvm",
                      help="libvirt domain type: kvm (default) or qemu (TCG, where KVM fails)")
    boot.add_argument("--boot-net", default="10.88.0", help="first three octets of the boot network (default 10.88.0)")
    boot.add_argument("--timeout", type=float, default=900, help="seconds for `vagrant up` and for the boots (default 900)")
    sub.add_parser("up", parents=[common, boot], help="start libvirt, bootserver and the machines; leave them running")
    p = sub.add_parser("run", parents=[common, boot], help="up, wait until every machine booted from its disk, down")
    p.add_argument("--keep", action="store_true", help="leave everything running afterwards")
    sub.add_parser("status", parents=[common], help="what the lab runs, and each machine's state")
    sub.add_parser("down", parents=[common], help="remove everything the lab made")


def run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("bootserver lab vagrant: run as root (network namespace, libvirtd)", file=sys.stderr)
        return 2
    if args.vagrant_command in ("down", "status"):
        try:
            lab = VagrantLab.load(args.workdir)
        except VagrantLabError as exc:
            print(f"bootserver lab vagrant: {exc}", file=sys.stderr)
            return 2
        if lab is None:
            print(f"vagrant lab: nothing recorded in {args.workdir}")
            return 0 if args.vagrant_command == "down" else 3
        if args.vagrant_command == "status":
            return _status(lab)
        removed = lab.down()
        print("vagrant lab: removed " + (", ".join(removed) or "nothing"))
        return 0
    problems = check_tools()
    if problems:
        print("bootserver lab vagrant: this host cannot run the lab:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    try:
        lab = VagrantLab(args.workdir, [f.strip() for f in args.firmware.split(",")], args.driver, args.boot_net,
                         log=lambda line: print(line, flush=True))
    except VagrantLabError as exc:
        print(f"bootserver lab vagrant: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)  # a `kill` tears down like Ctrl-C does
    started = time.monotonic()
    try:
        lab.up(timeout=args.timeout)
    except (VagrantLabError, LibvirtError, ServiceError, OSError, subprocess.SubprocessError) as exc:
        print(f"bootserver lab vagrant: {exc}\n(everything it started was removed again)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nvagrant lab: interrupted; everything it started was removed again", file=sys.stderr)
        return 130
    print(f"vagrant lab up in {time.monotonic() - started:.1f} s: bootserver {lab.base_url} in namespace "
          f"{lab.netns}, libvirt {lab.host.uri}\n  consoles: {lab.workdir / 'consoles'}")
    if args.vagrant_command == "up":
        print(f"  bootserver lab vagrant status --workdir {lab.workdir}\n"
              f"  bootserver lab vagrant down --workdir {lab.workdir}")
        return 0
    code, results = 1, {}
    try:
        results = lab.wait(timeout=args.timeout)
        code = 0
    except (TimeoutError, VagrantLabError, ServiceError) as exc:
        print(f"bootserver lab vagrant: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nvagrant lab: interrupted", file=sys.stderr)
        args.keep = False
    finally:
        if not args.keep:
            teardown = time.monotonic()
            print("vagrant lab: removed " + ", ".join(lab.down()))
            print(f"vagrant lab: teardown took {time.monotonic() - teardown:.1f} s")
    print(f"\n`vagrant up` took {lab.up_done - lab.up_started:.1f} s; seconds from its start:")
    print("machine  firmware  MAC                  installed  booted from disk")
    for name, machine in lab.machines.items():
        r = results.get(name, {})
        print(f"{name:<8} {machine.firmware:<9} {machine.mac}  {r.get('installed', '-'):>9}  {r.get('disk', '-'):>16}")
    return code


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def _status(lab: VagrantLab) -> int:
    print(f"vagrant lab in {lab.workdir}: namespace {lab.netns}, bootserver {lab.base_url}, libvirt {lab.host.uri}")
    if lab.host.socket.exists():
        print(lab.host.virsh("list", "--all", check=False).stdout.rstrip())
    for machine in lab.machines.values():
        record = lab.server.machine(machine.mac)
        print(f"  {machine.name:<6} {machine.firmware:<5} {machine.mac}  "
              f"{record['state'] if record else 'not seen by bootserver'}  console: {machine.console}")
    return 0
