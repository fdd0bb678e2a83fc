"""The bootserver side of the proxyDHCP benchmark (bench.scenarios.dhcp starts it in the server namespace):
Runtime + ProxyDHCP on the asyncio reactor, as `bootserver serve` runs them. SIGUSR1 prints its stats.

    python -m bench.scenarios.dhcp_server IFACE [--ignore-unknown]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
import tempfile
from pathlib import Path


def serve(interface: str, ignore_unknown: bool) -> None:
    """Child process: bootserver's Runtime + ProxyDHCP on the asyncio reactor, as `serve` runs them."""
    from bootserver.app import install_reactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    install_reactor(loop)
    from twisted.internet import reactor

    from bootserver.catalog.loader import load_catalog
    from bootserver.config import Settings
    from bootserver.dhcp import ProxyDHCP
    from bootserver.runtime import Runtime
    from bootserver.state.memory import MemoryStore

    catalog = ("apiVersion: bootserver/v1\nkind: Profile\nmetadata: {name: bench}\n"
               "spec: {boot: {kernel: 'http://10.77.0.3:8080/vmlinuz'}}\n")
    if not ignore_unknown:
        catalog += ("---\napiVersion: bootserver/v1\nkind: Group\nmetadata: {name: all}\n"
                    "spec: {selector: {mac_prefix: '02:00'}, profile: bench}\n")
    with tempfile.TemporaryDirectory() as root:
        Path(root, "catalog.yaml").write_text(catalog)
        # every request is a new MAC of a Group: the limit on new records (20/s by default) is lifted explicitly
        settings = Settings(dhcp=(interface,), state="memory://", new_machines_per_second=10_000_000)
        runtime = Runtime(settings, load_catalog(root), MemoryStore(10))

    async def main() -> None:
        reactor.startRunning(installSignalHandlers=False)
        proxy = ProxyDHCP(runtime, runtime.settings)
        await proxy.start()
        gc.freeze()  # as `bootserver serve` does once started: what start built stays out of full collections
        stopping = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stopping.set)
        loop.add_signal_handler(signal.SIGUSR1, lambda: print(json.dumps(stats(proxy)), flush=True))
        print("ready", flush=True)
        await stopping.wait()
        await proxy.stop()

    loop.run_until_complete(main())


def stats(proxy) -> dict:
    from bootserver.metrics import REGISTRY

    def total(name: str) -> float:
        return sum(s.value for m in REGISTRY.collect() if m.name == name for s in m.samples
                   if s.name == name + "_total")

    rss = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    return {"rss_mb": rss / 1024, "tracked_macs": len(proxy.limiter),
            "handled": total("bootserver_dhcp_unanswered") + total("bootserver_dhcp_replies")
            + total("bootserver_dhcp_malformed")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("interface")
    parser.add_argument("--ignore-unknown", action="store_true", help="no Group: every MAC is unknown")
    args = parser.parse_args()
    serve(args.interface, args.ignore_unknown)


if __name__ == "__main__":
    main()
