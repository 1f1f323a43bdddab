"""Each service really starts: connects, migrates its schema, creates its topics,
answers /health and /metrics, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest

from .conftest import Stack, unique
from .waits import free_port as _free_port

pytestmark = pytest.mark.integration

SERVICES = ("identity", "wallet", "campaign", "invoicing", "order_escrow", "spend_consumer", "sends")


async def _healthy(port: int, process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with httpx.AsyncClient() as client:
        while True:
            if process.poll() is not None:
                raise AssertionError(f"service exited with {process.returncode}: {_tail(process)}")
            try:
                answer = await client.get(f"http://127.0.0.1:{port}/health", timeout=2.0)
                if answer.status_code == 200:
                    return dict(answer.json())
            except httpx.TransportError:
                pass
            if loop.time() > deadline:
                raise AssertionError(f"no healthy answer on port {port} within {timeout_s}s")
            await asyncio.sleep(0.2)


def _tail(process: subprocess.Popen[bytes]) -> str:
    assert process.stderr is not None
    process.stderr.flush()
    return Path(process.stderr.name).read_bytes().decode(errors="replace")[-3000:]


async def test_every_service_starts_migrates_answer_health_and_metrics_and_stop_cleanly(stack: Stack, tmp_path: Path) -> None:
    log_directory = tmp_path
    started: dict[str, tuple[subprocess.Popen[bytes], int, str]] = {}
    ledger_schema = unique("svc_ledger")
    try:
        for service in SERVICES:
            port, schema = _free_port(), unique(f"svc_{service}")
            env = {
                **os.environ,
                "ADLEDGER_HTTP_PORT": str(port),
                "ADLEDGER_DATABASE_SCHEMA": schema,
                "ADLEDGER_KAFKA_CONSUMER_GROUP": unique(f"group_{service}"),
                "ADLEDGER_LEDGER_SCHEMA": ledger_schema,
                "ADLEDGER_SIGNING_KEYS_DIR": str(tmp_path / "signing-keys"),
            }
            process = subprocess.Popen(
                # Logs go to a file, not a pipe nobody reads: a full pipe would block the service.
                [sys.executable, "-m", f"adledger_{service}"], env=env, stdout=subprocess.DEVNULL,
                stderr=(log_directory / f"{service}.log").open("wb"),
            )
            started[service] = (process, port, schema)
        for service, (process, port, _) in started.items():
            health = await _healthy(port, process)
            assert health == {"status": "ok", "service": service, "checks": {"database": "ok", "kafka": "ok"}}
            async with httpx.AsyncClient() as client:
                metrics = await client.get(f"http://127.0.0.1:{port}/metrics")
                assert metrics.status_code == 200
                assert "adledger_messages_handled_total" in metrics.text
                traced = await client.get(f"http://127.0.0.1:{port}/health", headers={"X-Trace-Id": "trace-42"})
                assert traced.headers["x-trace-id"] == "trace-42"
        conn = await asyncpg.connect(stack.database_url)
        try:
            for _, _, schema in started.values():
                applied = await conn.fetch(f"select component, name from {schema}.schema_migrations")
                assert ("adledger_libs", "0001_messaging.sql") in {(row["component"], row["name"]) for row in applied}
        finally:
            await conn.close()
        for process, _, _ in started.values():
            process.send_signal(signal.SIGTERM)
        for service, (process, _, _) in started.items():
            assert process.wait(timeout=30) == 0, f"{service} did not stop cleanly: {_tail(process)}"
    finally:
        for process, _, _ in started.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        await _drop_schemas(stack, [schema for _, _, schema in started.values()] + [ledger_schema])


async def test_the_migrate_command_applies_the_schema_once(stack: Stack) -> None:
    schema = unique("svc_migrate")
    env = {**os.environ, "ADLEDGER_DATABASE_SCHEMA": schema}
    try:
        counts = []
        conn = await asyncpg.connect(stack.database_url)
        try:
            for _ in range(2):
                done = subprocess.run(
                    [sys.executable, "-m", "adledger_wallet", "migrate"], env=env, capture_output=True, timeout=60
                )
                assert done.returncode == 0, done.stderr.decode()
                counts.append(await conn.fetchval(f"select count(*) from {schema}.schema_migrations"))
            assert counts[0] == counts[1] >= 3, "applied the first time, nothing more the second"
            assert await conn.fetchval(f"select to_regclass('{schema}.outbox') is not null")
            assert await conn.fetchval(f"select to_regclass('{schema}.business_centers') is not null")
        finally:
            await conn.close()
    finally:
        await _drop_schemas(stack, [schema])


async def _drop_schemas(stack: Stack, schemas: list[str]) -> None:
    conn = await asyncpg.connect(stack.database_url)
    try:
        for schema in schemas:
            await conn.execute(f"drop schema if exists {schema} cascade")
    finally:
        await conn.close()
