"""`make run`: every adledger service in the foreground, with one readable, prefixed log.

Starts each service as its own process (`python -m adledger_<name>`) under a supervisor
(`supervise.py`): a service that exits is restarted with back-off and the restart is logged, so one
crash never stops the others. Once every service answers /health it prints where everything is and
starts the ad-server simulator. Ctrl-C (or SIGTERM) stops them all.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from supervise import Child, Supervisor  # noqa: E402 - the supervisor sits beside this script

SERVICES: dict[str, int] = {
    "identity": 8086,
    "wallet": 8081,
    "campaign": 8082,
    "invoicing": 8083,
    "order_escrow": 8084,
    "spend_consumer": 8085,
    "sends": 8087,
    #: The finance console: pages for people, on the services' public APIs (no database of its own).
    "console": 8088,
}
#: Processes with no HTTP port: the invoicing service's spend-rate and alerts job (faust-streaming).
WORKERS: dict[str, tuple[str, ...]] = {
    "alerts": ("-m", "adledger_invoicing.alerts", "worker", "-l", "warn"),
}
COLOURS = ("\033[36m", "\033[32m", "\033[33m", "\033[35m", "\033[34m", "\033[31m", "\033[37m")
RESET = "\033[0m"
HEALTH_TIMEOUT_S = 90.0
NAMES = [*SERVICES, *WORKERS, "simulator"]


def _output(name: str, line: bytes) -> None:
    label = f"{name:<15}|"
    if sys.stdout.isatty():
        label = f"{COLOURS[NAMES.index(name) % len(COLOURS)]}{label}{RESET}"
    sys.stdout.write(f"{label} " + line.decode("utf-8", errors="replace"))
    sys.stdout.flush()


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


#: Services with no Kafka principal of the secure broker yet (its ACLs come from the catalogue's
#: producers, consumers and viewers): left out on it, like the alerts worker. The console has one now
#: (a viewer of delivery.state.v1).
NO_PRINCIPAL: frozenset[str] = frozenset()


def served(environ: Mapping[str, str]) -> dict[str, int]:
    """The services `make run` starts on this broker."""
    return {name: port for name, port in SERVICES.items() if not (secure(environ) and name in NO_PRINCIPAL)}


async def _all_healthy(services: Mapping[str, int]) -> list[str]:
    """Wait until every service answers /health; the names of those that did not in time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HEALTH_TIMEOUT_S
    waiting = dict(services)
    while waiting and loop.time() < deadline:
        for name, port in list(waiting.items()):
            if await asyncio.to_thread(_healthy, port):
                del waiting[name]
        await asyncio.sleep(0.5)
    return list(waiting)


def secure(environ: Mapping[str, str]) -> bool:
    """`ADLEDGER_KAFKA_SECURITY=sasl make run`: against the secure broker of `deploy/local/stack --secure`."""
    return environ.get("ADLEDGER_KAFKA_SECURITY", "").lower() == "sasl"


def kafka_settings(principal: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The secure broker's settings for one Kafka principal (as `deploy/local/stack --secure env` prints
    them): its own address, SASL/SCRAM, the principal's password file, no topic creation."""
    home = environ.get("ADLEDGER_HOME") or str(Path.home() / ".cache" / "adledger-secure")
    return {
        "ADLEDGER_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{environ.get('ADLEDGER_KAFKA_PORT', '29092')}",
        "ADLEDGER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "ADLEDGER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "ADLEDGER_KAFKA_SASL_USERNAME": principal,
        "ADLEDGER_KAFKA_SASL_PASSWORD_FILE": f"{home}/kafka-secrets/{principal}.password",
        "ADLEDGER_KAFKA_CREATE_TOPICS": "false",
    }


def children(environ: Mapping[str, str]) -> list[Child]:
    """Every service (each its own Kafka principal on the secure broker), and the workers that can run."""
    on_secure = secure(environ)
    made = [
        Child(name, (sys.executable, "-m", f"adledger_{name}"),
              {"ADLEDGER_HTTP_PORT": str(port), **(kafka_settings(name, environ) if on_secure else {})})
        for name, port in served(environ).items()
    ]
    if on_secure:
        # The alerts worker (faust-streaming) has no SASL settings yet: it is left out on the secure broker.
        return made
    return made + [Child(name, (sys.executable, *arguments)) for name, arguments in WORKERS.items()]


async def main() -> int:
    env = {**os.environ}
    env.setdefault("ADLEDGER_LOG_FORMAT", "console")
    # make run is the local profile: local defaults (the platform token, the webhook secret) and the
    # local payment provider exist only here; a service started without it is production.
    env.setdefault("ADLEDGER_PROFILE", "local")
    env.setdefault("PYTHONUNBUFFERED", "1")
    # Issue 17: a sandbox, whose time an operator or an integrator's test moves (`adledger clock advance 48h`);
    # ADLEDGER_CLOCK=system make run runs on the wall clock instead.
    env.setdefault("ADLEDGER_CLOCK", "sandbox")
    if secure(env):
        print("Kafka: the secure broker (SASL/SCRAM, ACLs from the catalogue); the alerts worker is "
              "left out.",
              flush=True)
    supervisor = Supervisor(children(env), base_env=env, output=_output)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, supervisor.stop)

    async def announce_and_simulate() -> None:
        late = await _all_healthy(served(env))
        if late:
            print(f"\nwarning: not healthy after {HEALTH_TIMEOUT_S:.0f}s: {', '.join(late)} (still supervised; see the "
                  "log above and $ADLEDGER_HOME/logs)", file=sys.stderr, flush=True)
        print("\nadledger is running. Health and metrics:")
        for name, port in served(env).items():
            print(f"  {name:<15} http://127.0.0.1:{port}/health   http://127.0.0.1:{port}/metrics")
        print(f"  {'alerts':<15} spend rates and runway alerts (faust-streaming worker, no HTTP port)")
        print("Kafka tools: deploy/local/kafka topics --list | consumer-groups --describe --all-groups")
        if env["ADLEDGER_CLOCK"] == "sandbox":
            adledger = os.path.join(os.path.dirname(sys.executable), "adledger")
            print(f"Sandbox clock: every service reads one sandbox time, which stands still until you move it: "
                  f"{adledger} clock advance 48h   (see it: {adledger} clock show; wall clock: ADLEDGER_CLOCK=system make run)")
        if "console" in served(env):
            print(f"Finance console: http://127.0.0.1:{SERVICES['console']}/ (sign in with a user of the identity service)")
        print("A service that exits is restarted with back-off. Press Ctrl-C to stop everything.\n", flush=True)
        if env.get("ADLEDGER_SIMULATOR", "1") != "0":
            # The ad-server simulator: spend in, pauses and resumes out (ADLEDGER_SIMULATOR=0 turns it off).
            simulator = os.path.join(os.path.dirname(os.path.abspath(__file__)), "simulator.py")
            await supervisor.add(Child("simulator", (sys.executable, simulator),
                                       kafka_settings("adserver", env) if secure(env) else {}))

    await supervisor.run(after_start=announce_and_simulate)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
