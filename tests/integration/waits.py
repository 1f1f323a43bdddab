"""Small helpers every integration test uses: a free local port, and a bounded wait (never a
sleep for a deadline: a wait polls a condition and fails loudly when its limit passes)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout_s: float = 60.0, interval_s: float = 0.1) -> Any:
    """The first truthy result of `check()`, polled every `interval_s`; an AssertionError naming
    `what` once `timeout_s` passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        await asyncio.sleep(interval_s)
