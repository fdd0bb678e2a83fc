"""Session fixture: Twisted's asyncio reactor on the session loop (helpers live in dhcp_support)."""

from __future__ import annotations

import asyncio
import sys

import pytest
import pytest_asyncio


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def reactor():
    """Twisted's asyncio reactor on the session loop (installed once per process)."""
    loop = asyncio.get_running_loop()
    if "twisted.internet.reactor" not in sys.modules:
        from twisted.internet import asyncioreactor

        asyncioreactor.install(loop)
    from twisted.internet import reactor as installed

    if getattr(installed, "_asyncioEventloop", None) is not loop:
        pytest.fail("the Twisted reactor in this process is bound to another event loop: tests that use "
                    "Twisted must share the session loop (pytest.mark.asyncio(loop_scope=\"session\"))")
    return installed
