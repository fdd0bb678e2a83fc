"""The big boot storm: 10,000 simulated machines, 1,000 at once, the same steps as `storm` (DHCP,
TFTP ipxe.efi, iPXE, scripts, kernel + initramfs, Ignition, the installed event) with a small kernel
and initramfs, so the figure is about many machines at once rather than bytes moved. One storm per
server (it runs for minutes on this machine). The load runs in 4 client processes of 2,500 machines
and 250 at once each: one Python process spent 27-40 s of CPU and could not keep 1,000 machines going."""

from __future__ import annotations

from bench.common import scenario_main
from bench.scenarios import storm

TEN_THOUSAND = storm.Shape("boot storm 10k", 10_000, 1_000, 256 << 10, 1 << 20, 240, 1, clients=4)


def run(reps: int = 1) -> list[dict]:
    return storm.run(reps, TEN_THOUSAND)


if __name__ == "__main__":
    scenario_main(run)
