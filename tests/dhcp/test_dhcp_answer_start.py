"""The proxy runs each answer at once and hands only answers that must wait to a Task: whatever the
answer waits on, its outcome (a value, a failure, a cancel) reaches it as under a plain Task."""

from __future__ import annotations

import asyncio

import pytest

from bootserver.dhcp.proxy import ProxyDHCP


class Settings:
    dhcp = ()
    floating_address = None


async def started(coro) -> ProxyDHCP:
    proxy = ProxyDHCP(None, Settings())
    proxy._loop = asyncio.get_running_loop()  # what start() records, without opening sockets
    proxy._start(coro)
    return proxy


def test_an_answer_that_never_waits_needs_no_task():
    seen = []

    async def answer():
        seen.append("answered")

    async def main():
        proxy = await started(answer())
        assert seen == ["answered"] and not proxy._tasks

    asyncio.run(main())


@pytest.mark.parametrize("outcome", ["value", "error", "yield"])
def test_an_answer_that_waits_is_carried_on_with_what_it_waited_for(outcome):
    seen = []

    async def answer(future):
        try:
            if outcome == "yield":
                await asyncio.sleep(0)
                seen.append("resumed")
                await asyncio.sleep(0.01)
                seen.append("slept")
            else:
                seen.append(await future)
        except LookupError as exc:
            seen.append(f"caught {exc}")

    async def main():
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        proxy = await started(answer(future))
        assert seen == [] and len(proxy._tasks) == 1
        if outcome == "value":
            loop.call_later(0.01, future.set_result, "the record")
        elif outcome == "error":
            loop.call_later(0.01, future.set_exception, LookupError("no such machine"))
        await asyncio.gather(*proxy._tasks)
        assert not proxy._tasks

    asyncio.run(main())
    assert seen == {"value": ["the record"], "error": ["caught no such machine"], "yield": ["resumed", "slept"]}[outcome]


def test_stopping_cancels_an_answer_that_waits():
    seen = []

    async def answer(future):
        try:
            await future
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def main():
        future = asyncio.get_running_loop().create_future()
        proxy = await started(answer(future))
        await proxy.stop()
        assert future.cancelled() and not proxy._tasks

    asyncio.run(main())
    assert seen == ["cancelled"]
