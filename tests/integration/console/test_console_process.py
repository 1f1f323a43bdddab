"""The console as `make run` starts it (`python -m adledger_console`, deploy/local/run_all.py): it
serves its pages, /health and /metrics, follows `delivery.state.v1` on the real broker, stops on
SIGTERM; production refuses to start without its session secret."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from ..conftest import Stack
from ..waits import free_port, until

pytestmark = pytest.mark.integration


async def test_the_console_process_serves_its_pages_and_health_and_stops_on_sigterm(stack: Stack) -> None:
    port = free_port()
    env = {
        **os.environ,
        "ADLEDGER_PROFILE": "local",
        "ADLEDGER_HTTP_PORT": str(port),
        "ADLEDGER_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap_servers,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "adledger_console"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:

            async def caught_up() -> bool:
                assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
                try:
                    return (await client.get("/health")).json()["checks"]["delivery_states"] == "ok"
                except httpx.TransportError:
                    return False

            await until(caught_up, "the console healthy, having read delivery.state.v1", timeout_s=60)
            assert (await client.get("/")).headers["location"] == "/sign-in"
            page = await client.get("/sign-in")
            assert page.status_code == 200 and 'name="user_id"' in page.text
            assert (await client.get("/static/htmx.min.js")).status_code == 200, "htmx served from the package"
            assert (await client.get("/metrics")).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught, as a process should.
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
        errors = process.stderr.read().decode() if process.stderr else ""
        assert "Traceback" not in errors, errors


def test_production_refuses_to_start_the_console_without_a_session_secret() -> None:
    env = {**os.environ, "ADLEDGER_PROFILE": "production", "ADLEDGER_HTTP_PORT": str(free_port())}
    env.pop("ADLEDGER_CONSOLE_SESSION_SECRET", None)
    finished = subprocess.run([sys.executable, "-m", "adledger_console"], env=env, capture_output=True, timeout=60)
    assert finished.returncode != 0
    assert b"ADLEDGER_CONSOLE_SESSION_SECRET" in finished.stderr
