"""Benchmark of `adledger ledger audit` on a large ledger (issue 16: "fast on a million transfers").

It starts no infrastructure: it uses the running Kafka and PostgreSQL (`make stack-up`). In a
schema of its own it generates a synthetic ledger set-based (`adledger_ledger.synthetic`: a
million transfers among ten thousand owners by default, in two currencies, with holds posted,
voided, open and expired), publishes every owner's balance record on a topic of its own, and
then runs the installed `adledger ledger audit` console script against them, as an operator
would, several times. It also times the ledger's own checks (`adledger_ledger.audit`, the SQL)
in-process. Every run must pass: a benchmark of an audit that found a break reports nothing.

Run: `make bench-audit` (or `.venv/bin/python bench/ledger_audit.py --transfers 1000000`). It
prints one table, ends with one line `ledger_audit_s=… ledger_checks_s=… transfers=… owners=…`,
and writes the same to bench/results/ledger-audit-latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from adledger_contracts.topics import topic
from adledger_ledger import audit, synthetic
from adledger_ledger.postgres import LEDGER_MIGRATIONS
from adledger_libs.db import LIBRARY_MIGRATIONS, migrate
from adledger_libs.events import encode
from adledger_libs.kafka import ensure_topics, make_producer
from adledger_libs.logs import configure_logging
from aiokafka.admin import AIOKafkaAdminClient

RESULTS = Path(__file__).resolve().parent / "results"
BOOTSTRAP = os.environ.get("ADLEDGER_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
DATABASE_URL = os.environ.get("ADLEDGER_DATABASE_URL", "postgresql://adledger:adledger@127.0.0.1:15432/adledger")
ADLEDGER = Path(sys.executable).parent / "adledger"


async def publish_balances(conn: asyncpg.Connection, schema: str, balances_topic: str, now: datetime) -> int:
    """Every owner's record at its version, as the services' publishing would have sent it."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        _, figures = await audit.owner_figures(conn, schema, now)
    producer = make_producer(BOOTSTRAP, "bench-ledger-audit", linger_ms=20)
    await producer.start()
    try:
        futures = []
        for owner in figures:
            envelope = encode(owner.expected, key=owner.owner_id, trace_id="bench-ledger-audit")
            futures.append(
                await producer.send(
                    balances_topic, value=envelope.value, key=envelope.key, headers=list(envelope.headers)
                )
            )
        await asyncio.wait_for(asyncio.gather(*futures), 120)
    finally:
        await producer.stop()
    return len(figures)


def run_cli(arguments: list[str]) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    completed = subprocess.run([str(ADLEDGER), *arguments], check=False, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(
            f"adledger {' '.join(arguments)} exited {completed.returncode}:\n{completed.stdout}\n{completed.stderr}"
        )
    report: dict[str, object] = json.loads(completed.stdout)
    return elapsed, report


async def main(arguments: argparse.Namespace) -> None:
    configure_logging(level="WARNING", fmt="console")
    tag = uuid.uuid4().hex[:8]
    ledger_schema, service_schema = f"bench_audit_ledger_{tag}", f"bench_audit_service_{tag}"
    balances_topic = f"bench.{tag}.balances.v1"
    await ensure_topics(BOOTSTRAP, [replace(topic("balances.v1"), name=balances_topic)])
    conn = await asyncpg.connect(DATABASE_URL)
    try:
        await migrate(conn, ledger_schema, [("adledger_ledger", LEDGER_MIGRATIONS)])
        await migrate(conn, service_schema, [("adledger_libs", LIBRARY_MIGRATIONS)])
        now = datetime.now(UTC)
        started = time.perf_counter()
        await synthetic.generate(conn, ledger_schema, transfers=arguments.transfers, owners=arguments.owners, now=now)
        generate_s = time.perf_counter() - started
        started = time.perf_counter()
        published = await publish_balances(conn, ledger_schema, balances_topic, now)
        publish_s = time.perf_counter() - started

        checks_s: list[float] = []
        for _ in range(arguments.runs):
            started = time.perf_counter()
            found = await audit.audit_ledger(conn, ledger_schema, now=datetime.now(UTC))
            checks_s.append(time.perf_counter() - started)
            if found.findings():
                raise SystemExit(f"the ledger's checks found breaks in a healthy ledger: {found.findings()[:5]}")
        cli_arguments = [
            "ledger",
            "audit",
            "--ledger-schema",
            ledger_schema,
            "--balances-topic",
            balances_topic,
            "--outbox-schema",
            service_schema,
            "--json",
        ]
        cli_s: list[float] = []
        report: dict[str, object] = {}
        for _ in range(arguments.runs):
            elapsed, report = run_cli(cli_arguments)
            cli_s.append(elapsed)
            if report.get("passed") is not True or report.get("transfers") != arguments.transfers:
                raise SystemExit(f"the audit did not pass on a healthy ledger: {json.dumps(report)[:3000]}")
        database = await conn.fetchval("select version()")
    finally:
        if not arguments.keep:
            for schema in (ledger_schema, service_schema):
                await conn.execute(f"drop schema if exists {schema} cascade")
        await conn.close()
        if not arguments.keep:
            admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
            await admin.start()
            try:
                await admin.delete_topics([balances_topic])
            finally:
                await admin.close()

    result = {
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "database": database,
        "transfers": arguments.transfers,
        "owners": arguments.owners,
        "accounts": 3 * arguments.owners + 10,
        "balance_records": published,
        "generate_s": round(generate_s, 2),
        "publish_balances_s": round(publish_s, 2),
        "ledger_checks_s": [round(value, 2) for value in checks_s],
        "ledger_audit_cli_s": [round(value, 2) for value in cli_s],
        "checks": [check["name"] for check in checks] if isinstance(checks := report.get("checks"), list) else [],
    }
    rows = [
        ("generate (set-based, once)", f"{generate_s:.1f} s"),
        ("publish the balance records (once)", f"{publish_s:.1f} s ({published} records)"),
        (
            "the ledger's checks (SQL), median",
            f"{statistics.median(checks_s):.2f} s of {', '.join(f'{v:.2f}' for v in checks_s)}",
        ),
        (
            "adledger ledger audit (process), median",
            f"{statistics.median(cli_s):.2f} s of {', '.join(f'{v:.2f}' for v in cli_s)}",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"ledger audit on {arguments.transfers} transfers, {arguments.owners} owners ({result['machine']})")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print(
        f"ledger_audit_s={statistics.median(cli_s):.2f} ledger_checks_s={statistics.median(checks_s):.2f} "
        f"transfers={arguments.transfers} owners={arguments.owners}"
    )
    arguments.results.mkdir(parents=True, exist_ok=True)
    (arguments.results / "ledger-audit-latest.json").write_text(json.dumps(result, indent=2) + "\n")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transfers", type=int, default=1_000_000, help="transfers in the generated ledger")
    parser.add_argument("--owners", type=int, default=10_000, help="ad accounts (three ledger accounts each)")
    parser.add_argument("--runs", type=int, default=3, help="how many times each audit is timed")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where ledger-audit-latest.json is written")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's schemas and topic")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_arguments()))
