"""`make run`: every adledger service in the foreground, with one readable, prefixed log.

Starts each service as its own process (`python -m adledger_<name>`), waits until each answers
/health, prints where everything is, and on Ctrl-C (or SIGTERM) stops them all. If one service
dies, the others are stopped too and the exit code is non-zero: a half-running stack misleads.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import urllib.request

SERVICES: dict[str, int] = {
    "wallet": 8081,
    "campaign": 8082,
    "invoicing": 8083,
    "order_escrow": 8084,
    "spend_consumer": 8085,
}
#: Processes with no HTTP port: the invoicing service's spend-rate and alerts job (faust-streaming).
WORKERS: dict[str, tuple[str, ...]] = {
    "alerts": ("-m", "adledger_invoicing.alerts", "worker", "-l", "warn"),
}
COLOURS = ("\033[36m", "\033[32m", "\033[33m", "\033[35m", "\033[34m", "\033[31m")
RESET = "\033[0m"
HEALTH_TIMEOUT_S = 90.0


def _prefix(name: str, index: int) -> str:
    label = f"{name:<15}|"
    return f"{COLOURS[index % len(COLOURS)]}{label}{RESET} " if sys.stdout.isatty() else f"{label} "


async def _pipe(stream: asyncio.StreamReader, prefix: str) -> None:
    while line := await stream.readline():
        sys.stdout.write(prefix + line.decode("utf-8", errors="replace"))
        sys.stdout.flush()


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


async def _wait_healthy(name: str, port: int, process: asyncio.subprocess.Process) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HEALTH_TIMEOUT_S
    while not await asyncio.to_thread(_healthy, port):
        if process.returncode is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} before it was healthy")
        if loop.time() > deadline:
            raise RuntimeError(f"{name} did not answer http://127.0.0.1:{port}/health within {HEALTH_TIMEOUT_S:.0f}s")
        await asyncio.sleep(0.5)


async def main() -> int:
    env = {**os.environ}
    env.setdefault("ADLEDGER_LOG_FORMAT", "console")
    env.setdefault("PYTHONUNBUFFERED", "1")
    processes: dict[str, asyncio.subprocess.Process] = {}
    pipes: list[asyncio.Task[None]] = []
    for index, (name, port) in enumerate(SERVICES.items()):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            f"adledger_{name}",
            env={**env, "ADLEDGER_HTTP_PORT": str(port)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        processes[name] = process
        assert process.stdout is not None
        pipes.append(asyncio.create_task(_pipe(process.stdout, _prefix(name, index))))
    for index, (name, arguments) in enumerate(WORKERS.items(), start=len(SERVICES)):
        process = await asyncio.create_subprocess_exec(
            sys.executable, *arguments, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        processes[name] = process
        assert process.stdout is not None
        pipes.append(asyncio.create_task(_pipe(process.stdout, _prefix(name, index))))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    exit_code = 0
    try:
        await asyncio.gather(*(_wait_healthy(name, SERVICES[name], processes[name]) for name in SERVICES))
        print("\nadledger is running. Health and metrics:")
        for name, port in SERVICES.items():
            print(f"  {name:<15} http://127.0.0.1:{port}/health   http://127.0.0.1:{port}/metrics")
        print(f"  {'alerts':<15} spend rates and runway alerts (faust-streaming worker, no HTTP port)")
        print("Kafka tools: deploy/local/kafka topics --list | consumer-groups --describe --all-groups")
        print("Press Ctrl-C to stop everything.\n", flush=True)
        if env.get("ADLEDGER_SIMULATOR", "1") != "0":
            # The ad-server simulator: spend in, pauses and resumes out (ADLEDGER_SIMULATOR=0 turns it off).
            simulator = await asyncio.create_subprocess_exec(
                sys.executable,
                os.path.join(os.path.dirname(os.path.abspath(__file__)), "simulator.py"),
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            processes["simulator"] = simulator
            assert simulator.stdout is not None
            pipes.append(asyncio.create_task(_pipe(simulator.stdout, _prefix("simulator", len(SERVICES) + len(WORKERS)))))
        waits = {asyncio.create_task(process.wait()): name for name, process in processes.items()}
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stopper, *waits], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopper:
                print(f"\n{waits[task]} exited with code {task.result()}; stopping the others.", flush=True)
                exit_code = 1
    except RuntimeError as error:
        print(f"\nerror: {error}; stopping everything.", file=sys.stderr, flush=True)
        exit_code = 1
    finally:
        for process in processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in processes.values())), timeout=30)
        except TimeoutError:
            for process in processes.values():
                if process.returncode is None:
                    process.kill()
        await asyncio.gather(*pipes, return_exceptions=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
