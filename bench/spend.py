"""Benchmark of the spend path, side by side in one run (ratios; these machines are noisy).

It starts no infrastructure: it uses the running Kafka and PostgreSQL (`make stack-up`), and runs
the real spend consumer's code in-process on its own topics, schemas and consumer groups, so it
never disturbs a running `make run`. It measures:

1. raw      aiokafka consuming and parsing the spend topic, no database (the ceiling);
2. naive    the real spend consumer with one database transaction per event;
3. adledger the real spend consumer, batched, catching up on the same backlog;
4. pauses   at a fixed produce rate, the time from producing the event that exhausts an
            account's funds to its pause being readable on the delivery-control topic, and
            the overspend recorded per pause.

Budgets and caps are in force on a share of the backlog (issue 14): every campaign of a third of
the ad accounts has a lifetime campaign budget, and a fifth of the ad accounts a monthly cap,
both well above what the run spends (checked on every event, never reached: the exact-charge
check stays exact). The pause run is repeated at about 70 % of the rate the batched consumer
sustained. The consumer's CPU per event is the process's CPU time during the batched phase
(the consumer runs in this process) over its events, and PostgreSQL's the CPU of the backends
serving this process's connections over the same phase.

Run: `make bench` (or `.venv/bin/python bench/spend.py --events 200000`). It prints one table,
ends with one line `spend_events_per_s=… raw_events_per_s=… naive_events_per_s=… pause_p99_ms=…
overspend_micros_p99=… cpu_us_per_event=… pause_p99_ms_high=… overspend_micros_p99_margin=…`
(`n/a`: the pause margin of issue 14's lever 6 is not built), and writes the same to
bench/results/spend-latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from adledger_contracts.campaigns import AdAccountBudgetCapChanged, CampaignChanged
from adledger_contracts.external import SpendReported
from adledger_contracts.topics import TopicSpec
from adledger_ledger.domain import TransferRequest, raise_first_error
from adledger_ledger.owners import owner_account_id, owner_accounts, system_account_id, system_accounts
from adledger_ledger.postgres import LEDGER_MIGRATIONS, PostgresLedger
from adledger_libs.db import migrate
from adledger_libs.events import encode
from adledger_libs.kafka import ensure_topics
from adledger_libs.logs import configure_logging
from adledger_libs.runtime import ServiceRuntime
from adledger_spend_consumer.adapters import postgres
from adledger_spend_consumer.config import Settings
from adledger_spend_consumer.domain.spending import AccountProfile
from adledger_spend_consumer.inject import build
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

RESULTS = Path(__file__).resolve().parent / "results"
BOOTSTRAP = os.environ.get("ADLEDGER_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
DATABASE_URL = os.environ.get("ADLEDGER_DATABASE_URL", "postgresql://adledger:adledger@127.0.0.1:15432/adledger")
CURRENCY = "USD"
PLENTY_MICROS = 10**15
#: No phase waits longer than this for something to start happening: a stuck run fails, loudly.
PHASE_LIMIT_S = 120


@dataclass(frozen=True)
class Run:
    """One isolated run: its own topics, schemas and groups."""

    tag: str

    def topic(self, name: str) -> str:
        return f"bench.{self.tag}.{name}"


def percentile(values: list[int], fraction: float) -> int:
    """Nearest-rank percentile of integers (no interpolation, no floats in the result)."""
    if not values:
        return 0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, -(-len(ordered) * int(fraction * 1000) // 1000) - 1))
    return ordered[rank]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def create_topics(run: Run, partitions: int) -> None:
    specs = []
    topics = [("spend", partitions), ("pause-spend", partitions), ("wallet", 3), ("campaign", 6)]
    # Each phase's consumer gets its own output topics: the naive consumer must not first read
    # (one transaction each) the balance events the batched one published.
    for phase in PHASES:
        topics += [(f"{phase}-balances", 6), (f"{phase}-control", 6), (f"{phase}-state", 6), (f"{phase}-posted", 6)]
    for name, count in topics:
        for full in (run.topic(name), run.topic(name) + ".dlq"):
            specs.append(TopicSpec(full, "id", count, "delete", ("bench",), ("bench",), (), "benchmark topic"))
    await ensure_topics(BOOTSTRAP, specs)


async def delete_topics(run: Run) -> None:
    """The run's topics go too, so repeated runs (the CI smoke run) do not pile topics up on a broker."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        prefix = run.topic("")
        await admin.delete_topics([name for name in await admin.list_topics() if name.startswith(prefix)])
    finally:
        await admin.close()


async def set_up_ledger(ledger_schema: str, profiles: list[AccountProfile], funds_micros: dict[str, int]) -> None:
    """Ledger accounts for every owner, funded as the wallet would after paid invoices."""
    conn = await asyncpg.connect(DATABASE_URL)
    try:
        await migrate(conn, ledger_schema, [("adledger_ledger", LEDGER_MIGRATIONS)])
        ledger = PostgresLedger(ledger_schema)
        business_centers = sorted({profile.business_center_id for profile in profiles})
        opened = system_accounts(CURRENCY)
        for bc in business_centers:
            opened += owner_accounts("business_center", bc, CURRENCY)
        for profile in profiles:
            opened += owner_accounts("ad_account", profile.ad_account_id, CURRENCY)
        async with conn.transaction():
            await ledger.create_accounts(conn, opened)
        requests = []
        for owner, amount in funds_micros.items():
            kind = "business_center" if owner in business_centers else "ad_account"
            requests.append(
                TransferRequest(
                    id=f"bench-funding:{owner}", debit_account_id=system_account_id("world_payments", CURRENCY),
                    credit_account_id=owner_account_id(kind, owner, "cash"), amount_micros=amount,
                    currency=CURRENCY, code="payment_received",
                )
            )
        async with conn.transaction():
            raise_first_error(await ledger.create_transfers(conn, requests, datetime.now(UTC)))
    finally:
        await conn.close()


#: Every campaign of one ad account in this many has a lifetime budget; one in CAPPED_EVERY a monthly cap.
BUDGETED_EVERY = 3
CAPPED_EVERY = 5


def budgets_in_force(profiles: list[AccountProfile]) -> tuple[list[CampaignChanged], list[AdAccountBudgetCapChanged]]:
    """Campaign budgets and account caps on a share of the accounts, far above what a run spends."""
    now = datetime.now(UTC)
    campaigns = [
        CampaignChanged(
            campaign_id=f"{p.ad_account_id}-c1", ad_account_id=p.ad_account_id, business_center_id=p.business_center_id,
            name="bench", funding_mode="drawdown", budget_kind="lifetime", budget_micros=PLENTY_MICROS, booked_micros=0,
            currency=p.currency, status="active", previous_status=None, version=1, changed_at=now,
        )
        for index, p in enumerate(profiles) if index % BUDGETED_EVERY == 0
    ]
    caps = [
        AdAccountBudgetCapChanged(
            ad_account_id=p.ad_account_id, business_center_id=p.business_center_id, kind="monthly",
            amount_micros=PLENTY_MICROS, currency=p.currency, source="user", version=1, changed_at=now,
        )
        for index, p in enumerate(profiles) if index % CAPPED_EVERY == 1
    ]
    return campaigns, caps


async def start_consumer(settings: Settings, profiles: list[AccountProfile]) -> tuple[ServiceRuntime, asyncio.Event, asyncio.Future[None]]:
    """Start the real spend consumer, knowing the accounts, campaigns and caps already (as it would
    from the wallet's and the campaign service's events), so the measurement is of spend alone."""
    runtime = build(settings)
    await runtime.start()
    campaigns, caps = budgets_in_force(profiles)
    async with runtime.pool.acquire() as conn, conn.transaction():
        await postgres.upsert_business_centers(conn, sorted({(p.business_center_id, p.currency) for p in profiles}))
        await postgres.upsert_ad_accounts(conn, profiles)
        await postgres.upsert_campaigns(conn, campaigns, datetime.now(UTC).date())
        await postgres.upsert_caps(conn, caps)
    stop = asyncio.Event()
    return runtime, stop, asyncio.ensure_future(runtime.serve(stop))


async def stop_consumer(runtime: ServiceRuntime, stop: asyncio.Event, serving: asyncio.Future[None]) -> None:
    stop.set()
    await asyncio.gather(serving, return_exceptions=True)
    await runtime.close()


def spend_record(account: str, amount_micros: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    event = SpendReported(
        event_id=uuid.uuid4().hex, ad_account_id=account, campaign_id=f"{account}-c1",
        amount_micros=amount_micros, currency=CURRENCY, occurred_at=datetime.now(UTC),
    )
    envelope = encode(event, key=account, trace_id="bench")
    assert envelope.key is not None
    return envelope.key, envelope.value, list(envelope.headers)


async def fill(topic: str, accounts: list[str], events: int) -> tuple[float, int]:
    """Produce the backlog; returns the seconds it took and the total amount in micros."""
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=20, max_batch_size=512 * 1024, acks=1)
    await producer.start()
    started = time.perf_counter()
    total_micros = 0
    try:
        # Ad servers do not set our headers; the consumer must cope with plain JSON records.
        futures = []
        for index in range(events):
            amount_micros = random.randint(1_000, 50_000)
            total_micros += amount_micros
            key, value, _ = spend_record(accounts[index % len(accounts)], amount_micros)
            futures.append(await producer.send(topic, value, key=key))
        # Every record acknowledged (a failed batch raises here), within the phase's limit.
        try:
            await asyncio.wait_for(asyncio.gather(*futures), PHASE_LIMIT_S)
        except TimeoutError:
            raise RuntimeError(f"the backlog was not acknowledged by the broker within {PHASE_LIMIT_S} s") from None
    finally:
        await producer.stop()
    return time.perf_counter() - started, total_micros


async def charged_micros(ledger_schema: str) -> int:
    """What the ledger took as spend: the platform's revenue account."""
    conn = await asyncpg.connect(DATABASE_URL)
    try:
        value = await conn.fetchval(
            f"select credits_posted_micros - debits_posted_micros from {ledger_schema}.accounts where id = $1",
            system_account_id("platform_revenue", CURRENCY),
        )
        return int(value or 0)
    finally:
        await conn.close()


async def measure_raw(topic: str, events: int) -> float:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, group_id=f"bench-raw-{uuid.uuid4().hex[:8]}", auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        seen = 0
        started = None
        give_up_at = time.perf_counter() + PHASE_LIMIT_S
        while seen < events:
            if time.perf_counter() > give_up_at:
                raise RuntimeError(f"raw consumption read {seen} of {events} events within {PHASE_LIMIT_S} s")
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            if started is None and batch:
                started = time.perf_counter()
            for records in batch.values():
                for record in records:
                    SpendReported.model_validate_json(record.value)
                seen += len(records)
        return time.perf_counter() - (started or time.perf_counter())
    finally:
        await consumer.stop()


#: The benchmark's consumer phases, each with its own output topics.
PHASES = ("batched", "naive", "pause")


def consumer_settings(run: Run, schema: str, ledger_schema: str, group: str, max_batch_records: int, phase: str, spend_topic: str = "spend") -> Settings:
    return Settings(
        database_url=DATABASE_URL, kafka_bootstrap_servers=BOOTSTRAP, database_schema=schema, ledger_schema=ledger_schema,
        kafka_consumer_group=group, kafka_create_topics=False, http_port=free_port(), log_level="WARNING",
        consumer_max_batch_records=max_batch_records, outbox_poll_interval_ms=50,
        spend_topic=run.topic(spend_topic), wallet_events_topic=run.topic("wallet"), balances_topic=run.topic(f"{phase}-balances"),
        delivery_control_topic=run.topic(f"{phase}-control"), delivery_state_topic=run.topic(f"{phase}-state"),
        campaign_events_topic=run.topic("campaign"), spend_posted_topic=run.topic(f"{phase}-posted"),
    )


async def applied(schema: str, topic: str, conn: asyncpg.Connection | None = None) -> int:
    """Events the consumer applied so far; with `conn`, on that connection (a new connection per
    poll costs this process CPU that `cpu_us_per_event` would count as the consumer's)."""
    own = conn is None
    if conn is None:
        conn = await asyncpg.connect(DATABASE_URL)
    try:
        return int(await conn.fetchval(f"select coalesce(sum(next_offset), 0) from {schema}.consumer_positions where topic = $1", topic) or 0)
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        if own:
            await conn.close()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_database_ports() -> set[int]:
    """The local ports of this process's TCP connections to PostgreSQL (Linux /proc)."""
    database_port = int(DATABASE_URL.rsplit(":", 1)[1].split("/", 1)[0])
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, remote, inode = parts[1], parts[2], parts[9]
            if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == database_port:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


async def database_backends() -> list[int]:
    """The PostgreSQL backends serving this process's connections (the consumer's pool)."""
    conn = await asyncpg.connect(DATABASE_URL)
    try:
        rows = await conn.fetch(
            "select pid from pg_stat_activity where client_port = any($1::int[])", sorted(_own_database_ports())
        )
        return [row["pid"] for row in rows]
    finally:
        await conn.close()


#: CPU seconds of the last measured consumer phase: (this process, PostgreSQL's backends).
CPU_OF_PHASE: dict[str, tuple[float, float]] = {}


async def measure_consumer(run: Run, profiles: list[AccountProfile], funds: dict[str, int], events: int, max_batch_records: int, label: str) -> float:
    """Seconds the real spend consumer takes per `events` applied, from its first applied batch
    (the group's join is not the consumer's speed) to the last; and its CPU (`CPU_OF_PHASE`)."""
    schema, ledger_schema = f"bench_{label}_{run.tag}", f"bench_ledger_{label}_{run.tag}"
    await set_up_ledger(ledger_schema, profiles, funds)
    settings = consumer_settings(run, schema, ledger_schema, f"bench-{label}-{run.tag}", max_batch_records, label)
    runtime, stop, serving = await start_consumer(settings, profiles)
    try:
        give_up_at = time.perf_counter() + PHASE_LIMIT_S
        while (first := await applied(schema, run.topic("spend"))) == 0:
            if serving.done():
                serving.result()
            if time.perf_counter() > give_up_at:
                raise RuntimeError(f"the {label} consumer applied nothing within {PHASE_LIMIT_S} s")
            await asyncio.sleep(0.005)
        started = time.perf_counter()
        backends = await database_backends()
        poll = await asyncpg.connect(DATABASE_URL)
        cpu_started = (time.process_time(), sum(_cpu_s(pid) for pid in backends))
        try:
            while (done := await applied(schema, run.topic("spend"), poll)) < events:
                if serving.done():
                    serving.result()
                if time.perf_counter() > give_up_at + 600:
                    raise RuntimeError(f"the {label} consumer applied {done} of {events} events in time")
                await asyncio.sleep(0.01)
        finally:
            await poll.close()
        elapsed = time.perf_counter() - started
        share = events / max(done - first, 1)
        CPU_OF_PHASE[label] = (
            (time.process_time() - cpu_started[0]) * share,
            (sum(_cpu_s(pid) for pid in backends) - cpu_started[1]) * share,
        )
        return elapsed * share
    finally:
        await stop_consumer(runtime, stop, serving)


async def joined(group: str) -> bool:
    """Whether the group has a stable assignment (the broker's own view, via the admin API)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups([group])
        # Each response lists (error_code, group, state, protocol_type, protocol, members).
        return any(entry[2] == "Stable" and entry[5] for response in responses for entry in response.groups)
    finally:
        await admin.close()


async def measure_pauses(run: Run, profiles: list[AccountProfile], rate_per_s: int, amount_micros: int, spends_to_zero: int) -> tuple[list[int], list[int]]:
    """Account i can afford `spends_to_zero + i` spends, so the crossings spread over the run
    instead of all falling in its first second; spend flows at `rate_per_s` over the accounts
    still served; an account stops being served when its pause is read, as an ad server would.

    The measured stream starts after a warm-up: spend at the same rate on an account of its own,
    until the consumer applied its first records and a second more passed. Without it, the first
    pauses measure the cold start of a consumer (its first fetches), not how fast a running one
    pauses. A pause counts only when its crossing was produced after the warm-up."""
    schema, ledger_schema = f"bench_pause_{run.tag}", f"bench_ledger_pause_{run.tag}"
    accounts = [profile.ad_account_id for profile in profiles]
    warm = AccountProfile(f"pausewarm-{run.tag}", f"pausewarmbc-{run.tag}", CURRENCY, False)
    funds = {account: amount_micros * (spends_to_zero + index) for index, account in enumerate(accounts)}
    await set_up_ledger(ledger_schema, [*profiles, warm], {**funds, warm.ad_account_id: PLENTY_MICROS})
    affordable = {account: spends_to_zero + index for index, account in enumerate(accounts)}
    # Its own spend topic: the pause run must not first chew through the throughput backlog.
    settings = consumer_settings(run, schema, ledger_schema, f"bench-pause-{run.tag}", 2000, "pause", spend_topic="pause-spend")
    runtime, stop, serving = await start_consumer(settings, [*profiles, warm])
    crossing_sent_at: dict[str, float] = {}
    paused_at: dict[str, float] = {}
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=0, acks=1)
    control = AIOKafkaConsumer(run.topic("pause-control"), bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest")
    await producer.start()
    await control.start()
    try:
        # The group's join is not part of a pause's latency: wait until the consumer holds its partitions.
        consumer_task_ready = time.perf_counter()
        while not await joined(settings.consumer_group):
            if time.perf_counter() - consumer_task_ready > 60:
                raise RuntimeError("the spend consumer did not join its group within 60 s")
            await asyncio.sleep(0.05)

        async def watch() -> None:
            async for record in control:
                decision = json.loads(record.value)
                if decision["action"] == "pause" and decision["ad_account_id"] not in paused_at:
                    paused_at[decision["ad_account_id"]] = time.perf_counter()

        watcher = asyncio.ensure_future(watch())
        warm_at: list[float] = []

        async def warm_up() -> None:
            while not await applied(schema, run.topic("pause-spend")):
                await asyncio.sleep(0.05)
            warm_at.append(time.perf_counter() + 1.0)

        warming = asyncio.ensure_future(warm_up())
        sent = {account: 0 for account in accounts}
        interval = 1 / rate_per_s
        next_at = time.perf_counter()
        give_up_at = time.perf_counter() + PHASE_LIMIT_S
        while not warm_at or time.perf_counter() < warm_at[0]:
            if serving.done():
                serving.result()
            if time.perf_counter() > give_up_at:
                raise RuntimeError(f"the spend consumer applied nothing within {PHASE_LIMIT_S} s")
            key, value, _ = spend_record(warm.ad_account_id, amount_micros)
            await producer.send(run.topic("pause-spend"), value, key=key)
            next_at += interval
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        while len(paused_at) < len(accounts):
            if serving.done():
                serving.result()
            if time.perf_counter() > give_up_at:
                raise RuntimeError(f"only {len(paused_at)} of {len(accounts)} pauses seen within {PHASE_LIMIT_S} s")
            live = [account for account in accounts if account not in paused_at]
            account = live[random.randrange(len(live))]
            key, value, _ = spend_record(account, amount_micros)
            await producer.send(run.topic("pause-spend"), value, key=key)
            sent[account] += 1
            if sent[account] == affordable[account]:
                crossing_sent_at[account] = time.perf_counter()
            next_at += interval
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.perf_counter() - next_at > 30:
                raise RuntimeError("the pause benchmark fell 30 s behind its rate")
        watcher.cancel()
        warming.cancel()
        measured = [a for a in accounts if a in crossing_sent_at and crossing_sent_at[a] >= warm_at[0]]
        if len(measured) < len(accounts) // 2:
            raise RuntimeError(f"only {len(measured)} of {len(accounts)} pauses came after the warm-up: not a valid run")
        latencies_ms = [int((paused_at[a] - crossing_sent_at[a]) * 1000) for a in measured]
        conn = await asyncpg.connect(DATABASE_URL)
        try:
            rows = await conn.fetch(
                f"select owner_id, credits_posted_micros - debits_posted_micros as balance from {ledger_schema}.accounts where code = 'ad_account_overspend' and owner_id = any($1::text[])",
                accounts,
            )
        finally:
            await conn.close()
        measured_set = set(measured)
        overspend = [-int(row["balance"]) for row in rows if row["owner_id"] in measured_set]
        return latencies_ms, overspend
    finally:
        await control.stop()
        await producer.stop()
        await stop_consumer(runtime, stop, serving)


async def drop(schemas: list[str]) -> None:
    conn = await asyncpg.connect(DATABASE_URL)
    try:
        for schema in schemas:
            await conn.execute(f"drop schema if exists {schema} cascade")
    finally:
        await conn.close()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="spend events in the backlog")
    parser.add_argument("--naive-events", type=int, default=5_000, help="events for the one-transaction-per-event run")
    parser.add_argument("--accounts", type=int, default=2_000)
    parser.add_argument("--business-centers", type=int, default=200)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--pause-accounts", type=int, default=200)
    parser.add_argument("--pause-rate", type=int, default=5_000, help="spend events per second during the pause run")
    parser.add_argument(
        "--high-load", type=int, default=70,
        help="the second pause run's rate, in percent of the rate the batched consumer sustained (0: skip it)",
    )
    parser.add_argument("--batch", type=int, default=2000, help="records per consumer transaction")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where spend-latest.json is written")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's schemas and topics")
    arguments = parser.parse_args()
    configure_logging("WARNING", "console")
    run = Run(uuid.uuid4().hex[:8])
    await create_topics(run, arguments.partitions)

    # Half the Business Centers use ABA: their accounts share the BC's money (W7).
    profiles = [
        AccountProfile(f"acc{index}-{run.tag}", f"bc{index % arguments.business_centers}-{run.tag}", CURRENCY, index % arguments.business_centers % 2 == 0)
        for index in range(arguments.accounts)
    ]
    pause_profiles = [AccountProfile(f"pause{index}-{run.tag}", f"pausebc{index}-{run.tag}", CURRENCY, False) for index in range(arguments.pause_accounts)]
    funds = {p.business_center_id: PLENTY_MICROS for p in profiles if p.draws_on_business_center}
    funds.update({p.ad_account_id: PLENTY_MICROS for p in profiles if not p.draws_on_business_center})

    fill_s, total_micros = await fill(run.topic("spend"), [p.ad_account_id for p in profiles], arguments.events)
    raw_s = await measure_raw(run.topic("spend"), arguments.events)
    adledger_s = await measure_consumer(run, profiles, funds, arguments.events, arguments.batch, "batched")
    # An honest figure only: every event must have been charged, to the micro, exactly once.
    charged = await charged_micros(f"bench_ledger_batched_{run.tag}")
    if charged != total_micros:
        raise SystemExit(f"the spend consumer charged {charged} micros for a backlog of {total_micros}: not a valid run")
    # The naive run applies the first `naive-events` of the same backlog, one transaction each.
    naive_s = await measure_consumer(run, profiles, funds, arguments.naive_events, 1, "naive")
    latencies_ms, overspend = await measure_pauses(run, pause_profiles, arguments.pause_rate, 10_000, 20)
    spend_rate = int(arguments.events / adledger_s)
    high_rate = spend_rate * arguments.high_load // 100
    high_latencies_ms: list[int] = []
    if high_rate > 0:
        high_run = Run(run.tag + "h")
        await create_topics(high_run, arguments.partitions)
        high_profiles = [
            AccountProfile(f"pause{index}-{high_run.tag}", f"pausebc{index}-{high_run.tag}", CURRENCY, False)
            for index in range(arguments.pause_accounts)
        ]
        high_latencies_ms, _ = await measure_pauses(high_run, high_profiles, high_rate, 10_000, 20)
    process_cpu_s, database_cpu_s = CPU_OF_PHASE["batched"]

    result = {
        "spend_events_per_s": int(arguments.events / adledger_s),
        "raw_events_per_s": int(arguments.events / raw_s),
        "naive_events_per_s": int(arguments.naive_events / naive_s),
        "pause_p50_ms": percentile(latencies_ms, 0.50),
        "pause_p99_ms": percentile(latencies_ms, 0.99),
        "overspend_micros_p50": percentile(overspend, 0.50),
        "overspend_micros_p99": percentile(overspend, 0.99),
        "cpu_us_per_event": int(process_cpu_s * 1_000_000 / arguments.events),
        "postgres_cpu_us_per_event": int(database_cpu_s * 1_000_000 / arguments.events),
        "pause_high_rate_per_s": high_rate,
        "pause_p50_ms_high": percentile(high_latencies_ms, 0.50) if high_latencies_ms else "n/a",
        "pause_p99_ms_high": percentile(high_latencies_ms, 0.99) if high_latencies_ms else "n/a",
        # Lever 6 of issue 14 (a pause margin ahead of zero) is not built: no figure, not a fake one.
        "overspend_micros_p99_margin": "n/a",
        "budgeted_accounts_percent": 100 // BUDGETED_EVERY,
        "capped_accounts_percent": 100 // CAPPED_EVERY,
        "pauses": len(latencies_ms),
        "events": arguments.events,
        "naive_events": arguments.naive_events,
        "fill_events_per_s": int(arguments.events / fill_s),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    ratio_raw = result["spend_events_per_s"] * 100 // max(result["raw_events_per_s"], 1)
    ratio_naive = result["spend_events_per_s"] // max(result["naive_events_per_s"], 1)
    print(f"\n{'measure':<34}{'value':>14}")
    for label, value in (
        ("raw consume + parse (events/s)", result["raw_events_per_s"]),
        ("naive, 1 tx per event (events/s)", result["naive_events_per_s"]),
        ("adledger spend consumer (events/s)", result["spend_events_per_s"]),
        ("adledger / raw (%)", ratio_raw),
        ("adledger / naive (x)", ratio_naive),
        (f"pause latency p50 (ms, {len(latencies_ms)} pauses)", result["pause_p50_ms"]),
        ("pause latency p99 (ms)", result["pause_p99_ms"]),
        ("overspend per pause p50 (micros)", result["overspend_micros_p50"]),
        ("overspend per pause p99 (micros)", result["overspend_micros_p99"]),
        ("consumer CPU per event (us)", result["cpu_us_per_event"]),
        ("PostgreSQL CPU per event (us)", result["postgres_cpu_us_per_event"]),
        (f"pause p50 at {high_rate}/s (ms)", result["pause_p50_ms_high"]),
        (f"pause p99 at {high_rate}/s (ms)", result["pause_p99_ms_high"]),
        ("overspend p99, margin on (micros)", result["overspend_micros_p99_margin"]),
    ):
        print(f"{label:<34}{value:>14,}" if isinstance(value, int) else f"{label:<34}{value:>14}")
    line = " ".join(
        f"{name}={result[name]}"
        for name in (
            "spend_events_per_s", "raw_events_per_s", "naive_events_per_s", "pause_p99_ms", "overspend_micros_p99",
            "cpu_us_per_event", "pause_p99_ms_high", "overspend_micros_p99_margin",
        )
    )
    print(line)
    arguments.results.mkdir(parents=True, exist_ok=True)
    (arguments.results / "spend-latest.json").write_text(json.dumps(result, indent=2) + "\n")
    if not arguments.keep:
        parts = ("batched", "naive", "pause", "ledger_batched", "ledger_naive", "ledger_pause")
        await drop([f"bench_{part}_{tag}" for tag in (run.tag, run.tag + "h") for part in parts])
        await delete_topics(run)
        if high_rate > 0:
            await delete_topics(Run(run.tag + "h"))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
