"""A small process supervisor for `make run`: every child runs until told to stop; one that exits
is restarted with back-off and the restart is logged, so one service's crash never stops the rest.

Back-off doubles from `initial_backoff_s` up to `maximum_backoff_s`, and starts again from the
bottom once a child has stayed up for `stable_after_s` (a crash loop slows down, a rare crash is
restarted at once). This is what systemd's `Restart=on-failure` or a Kubernetes Deployment does in
production; locally it keeps `make run` honest about a crashing service without hiding it: each
exit prints its code and the next attempt.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Child:
    """One supervised process: its name, its command line, and its extra environment."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Restarts:
    """What the supervisor did with one child, for the log and for tests."""

    exits: list[int] = field(default_factory=list)
    starts: int = 0


Output = Callable[[str, bytes], None]


def _write_line(name: str, line: bytes) -> None:
    sys.stdout.write(f"{name:<15}| " + line.decode("utf-8", errors="replace"))
    sys.stdout.flush()


class Supervisor:
    def __init__(
        self,
        children: Sequence[Child],
        *,
        base_env: Mapping[str, str],
        output: Output = _write_line,
        initial_backoff_s: float = 1.0,
        maximum_backoff_s: float = 30.0,
        stable_after_s: float = 60.0,
        say: Callable[[str], None] = lambda text: print(text, flush=True),
    ) -> None:
        self._children = list(children)
        self._base_env = dict(base_env)
        self._output = output
        self._initial_backoff_s = initial_backoff_s
        self._maximum_backoff_s = maximum_backoff_s
        self._stable_after_s = stable_after_s
        self._say = say
        self._stop = asyncio.Event()
        self._running: dict[str, asyncio.subprocess.Process] = {}
        self.restarts: dict[str, Restarts] = {child.name: Restarts() for child in self._children}

    def stop(self) -> None:
        self._stop.set()

    def running(self, name: str) -> asyncio.subprocess.Process | None:
        process = self._running.get(name)
        return process if process is not None and process.returncode is None else None

    async def run(self, after_start: Callable[[], Awaitable[None]] | None = None) -> None:
        """Supervise every child until `stop()`, then stop them all (SIGTERM, then SIGKILL after 30 s)."""
        tasks = [asyncio.create_task(self._keep_running(child)) for child in self._children]
        extra = asyncio.create_task(after_start()) if after_start is not None else None
        try:
            await self._stop.wait()
        finally:
            for process in list(self._running.values()):
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._all_exited(), timeout=30)
            except TimeoutError:
                for process in self._running.values():
                    if process.returncode is None:
                        process.kill()
            for task in [*tasks, *([extra] if extra is not None else [])]:
                task.cancel()
            await asyncio.gather(*tasks, *([extra] if extra is not None else []), return_exceptions=True)

    async def add(self, child: Child) -> None:
        """Start supervising one more child (the simulator, once the services are healthy)."""
        self._children.append(child)
        self.restarts[child.name] = Restarts()
        asyncio.get_running_loop().create_task(self._keep_running(child))

    async def _all_exited(self) -> None:
        await asyncio.gather(*(process.wait() for process in self._running.values()))

    async def _keep_running(self, child: Child) -> None:
        backoff_s = self._initial_backoff_s
        record = self.restarts[child.name]
        while not self._stop.is_set():
            started = time.monotonic()
            process = await asyncio.create_subprocess_exec(
                *child.argv, env={**self._base_env, **child.env},
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )
            self._running[child.name] = process
            record.starts += 1
            assert process.stdout is not None
            pipe = asyncio.create_task(self._pipe(child.name, process.stdout))
            code = await process.wait()
            await asyncio.gather(pipe, return_exceptions=True)
            if self._stop.is_set():
                return
            record.exits.append(code)
            if time.monotonic() - started >= self._stable_after_s:
                backoff_s = self._initial_backoff_s
            self._say(f"supervisor: {child.name} exited with code {code}; restarting it in {backoff_s:g}s "
                      f"(start {record.starts + 1})")
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=backoff_s)
                return
            except TimeoutError:
                pass
            backoff_s = min(backoff_s * 2, self._maximum_backoff_s)

    async def _pipe(self, name: str, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self._output(name, line)
