"""Run the TFTP component alone: `python -m bootserver.tftp --listen 127.0.0.1:6969 --root DIR`.

Used by the network-namespace tests and the benchmark to run the server inside a namespace; the
real server runs it inside `bootserver serve`. Transfers are logged.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from dataclasses import replace
from pathlib import Path

from bootserver.config import Settings
from bootserver.tftp.server import DEFAULT_RETRIES, TFTPServer


class _NoMachines:
    """Just enough runtime for a standalone server: no DHCP knows any MAC, so transfers are only
    logged, never recorded as machine events."""

    def mac_for_ip(self, ip: str) -> None:
        return None


async def _serve(args: argparse.Namespace) -> None:
    settings = replace(Settings(), tftp=args.listen, ipxe_dir=Path(args.root[0]),
                       tftp_root=tuple(Path(r) for r in args.root[1:]), tftp_blksize_max=args.blksize_max)
    server = TFTPServer(_NoMachines(), settings, retransmit_timeout=args.timeout, retries=args.retries,
                        per_client=args.sessions_per_client)
    await server.start()
    print(f"listening {server.address[0]}:{server.address[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bootserver.tftp", description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (default 127.0.0.1:0)")
    parser.add_argument("--root", action="append", required=True, help="folder to serve (repeatable)")
    parser.add_argument("--blksize-max", type=int, default=0, help="0: fit the interface MTU")
    parser.add_argument("--timeout", type=float, default=1.0, help="retransmission timeout, seconds")
    parser.add_argument("--retries", type=int, default=DEFAULT_RETRIES)
    parser.add_argument("--sessions-per-client", type=int, default=Settings().tftp_sessions_per_client,
                        help="transfers one client address may run at once (default %(default)s); a load "
                             "client that plays many machines from one address needs more")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
