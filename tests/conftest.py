"""A watchdog for every test: a test (with its fixtures) that runs longer than its limit is a
failure that says where it was stuck, never a silent hang that eats the CI run's time.

When a test passes `ADLEDGER_TEST_LIMIT_S` (300 s unless set; the slowest
test takes about 50 s on a 2-core machine; a test marked `limit_s(N)` has N), the watchdog prints every
thread's stack and every asyncio task's coroutine stack, then cancels the test's own task, so
the test fails with CancelledError, its fixtures tear down and the suite goes on. If the test is
still running `ADLEDGER_TEST_GRACE_S` (60 s) later, the watchdog prints the stacks again and
ends the process with exit code 3: the run fails loudly instead of running into CI's limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import gc
import os
import sys
import threading
from collections.abc import Iterator

import pytest

# The tests run the local profile (local defaults and conveniences allowed), as `make run` does;
# tests of the production profile say so in their settings.
os.environ.setdefault("ADLEDGER_PROFILE", "local")

LIMIT_S = float(os.environ.get("ADLEDGER_TEST_LIMIT_S", "300"))
GRACE_S = float(os.environ.get("ADLEDGER_TEST_GRACE_S", "60"))


def _running_loops() -> list[asyncio.AbstractEventLoop]:
    return [thing for thing in gc.get_objects() if isinstance(thing, asyncio.AbstractEventLoop) and thing.is_running()]


def _await_chain(awaitable: object) -> list[str]:
    """Where a suspended coroutine is, through everything it awaits (a task's own stack shows
    only its outermost frame)."""
    lines: list[str] = []
    while awaitable is not None and len(lines) < 60:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None) or getattr(awaitable, "ag_frame", None)
        if frame is None:
            lines.append(repr(awaitable)[:200])
            break
        lines.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None) or getattr(awaitable, "ag_await", None)
    return lines


def _dump(nodeid: str, what: str) -> list[tuple[asyncio.AbstractEventLoop, asyncio.Task[object]]]:
    out = sys.stderr
    print(f"\n== watchdog: {nodeid} {what}; the stacks of its threads and asyncio tasks:", file=out, flush=True)
    faulthandler.dump_traceback(file=out, all_threads=True)
    tasks: list[tuple[asyncio.AbstractEventLoop, asyncio.Task[object]]] = []
    for loop in _running_loops():
        try:
            found = list(asyncio.all_tasks(loop))
        except RuntimeError:  # the set changed while read from this thread; a diagnostic only
            continue
        for task in found:
            tasks.append((loop, task))
            print(f"-- task {task.get_name()}, awaiting (outermost first):", file=out)
            for line in _await_chain(task.get_coro()):
                print(f"   {line}", file=out)
    out.flush()
    return tasks


def _is_the_test(task: asyncio.Task[object], test_name: str) -> bool:
    """The task pytest-asyncio runs: the test's coroutine, or its fixture set-up or tear-down."""
    coro = task.get_coro()
    code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
    return getattr(coro, "__name__", "") == test_name or (code is not None and "pytest_asyncio" in code.co_filename)


def _uncaptured(item: pytest.Item) -> contextlib.AbstractContextManager[None]:
    """pytest's own output capture set aside, so the dump reaches the run's log even when the
    process is ended right after (the main thread is stuck, so nothing else writes meanwhile)."""
    capture = item.config.pluginmanager.getplugin("capturemanager")
    return capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext()


def _overran(item: pytest.Item, finished: threading.Event, limit_s: float) -> None:
    test_name = getattr(item, "originalname", item.name)
    with _uncaptured(item):
        tasks = _dump(item.nodeid, f"still running after {limit_s:.0f}s")
    targets = [(loop, task) for loop, task in tasks if _is_the_test(task, test_name)]
    for loop, task in targets:
        print(f"== watchdog: cancelling {task.get_name()}", file=sys.stderr, flush=True)
        loop.call_soon_threadsafe(task.cancel)
    if finished.wait(GRACE_S):
        return
    with _uncaptured(item):
        _dump(item.nodeid, f"did not end {GRACE_S:.0f}s after it was cancelled; ending the run")
    os._exit(3)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    finished = threading.Event()
    marker = item.get_closest_marker("limit_s")
    limit_s = float(marker.args[0]) if marker is not None else LIMIT_S
    timer = threading.Timer(limit_s, _overran, args=(item, finished, limit_s))
    timer.daemon = True
    timer.start()
    try:
        return (yield)
    finally:
        finished.set()
        timer.cancel()
