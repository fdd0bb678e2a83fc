"""Child process for the kill -9 test: 200 writers record events as fast as the store allows and
print "MAC I" for each event once `record()` has acknowledged it. Bounded: at most 200 x 500 events."""

import asyncio
import sys

from bootserver.state import Event, connect_store


async def main(url: str) -> None:
    store = await connect_store(url, retention=100_000)
    out = sys.stdout

    async def machine(n: int) -> None:
        mac = f"52:54:00:ee:{n // 256:02x}:{n % 256:02x}"
        for i in range(500):
            if await store.record(Event(mac, "http.asset", "10.0.0.1", {"i": i})) is not True:
                raise SystemExit(f"event {mac} {i} was not committed")
            out.write(f"{mac} {i}\n")
            out.flush()

    print("ready", flush=True)
    await asyncio.gather(*(machine(n) for n in range(200)))
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
