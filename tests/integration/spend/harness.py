"""The spend consumer as a real process, for crash, restart and rebalance tests (rule S1).

A `SpendWorld` is one isolated run on a given stack: its own schemas (service and ledger), its own
topics laid out like the catalogue's (spend, wallet events, balances, delivery control and state,
with their dead-letter topics) and its own consumer group. Accounts and their funds are written
directly, the way the wallet would have left them (ledger accounts funded by paid invoices, and the
consumer's `ad_accounts` table filled from `wallet.events.v1`), so only spend flows through Kafka.

`SpendWorld.start()` runs `python -m adledger_spend_consumer serve` (or, for a crash at an exact
point, `crash_points.py`) as a subprocess with ADLEDGER_* settings, its log in a file. `expected()`
computes, from the spend the test produced, the exact figures the ledger must show afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from adledger_contracts.external import SpendReported
from adledger_contracts.topics import topic
from adledger_ledger.domain import TransferRequest, raise_first_error
from adledger_ledger.owners import owner_account_id, owner_accounts, system_account_id, system_accounts
from adledger_ledger.postgres import PostgresLedger
from adledger_libs.kafka import ensure_topics
from adledger_spend_consumer.adapters import postgres
from adledger_spend_consumer.domain.spending import AccountProfile
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from ..kafka_io import Record, new_world_tag, read_all
from ..waits import free_port, until

CURRENCY = "USD"
PLENTY_MICROS = 10**13
CRASH_POINTS = Path(__file__).resolve().parent / "crash_points.py"


@dataclass
class Plan:
    """Accounts, their funds, and the spend an ad server sends (re-sends included)."""

    manual_rich: list[str]
    manual_limited: list[str]
    aba: dict[str, list[str]]  # Business Center -> its ABA ad accounts
    funds: dict[str, int]  # owner -> cash paid in
    sent: list[SpendReported] = field(default_factory=list)

    @property
    def profiles(self) -> list[AccountProfile]:
        found = [AccountProfile(account, f"bc-of-{account}", CURRENCY, False) for account in self.manual_rich + self.manual_limited]
        for center, accounts in self.aba.items():
            found += [AccountProfile(account, center, CURRENCY, True) for account in accounts]
        return found

    @property
    def accounts(self) -> list[str]:
        return [profile.ad_account_id for profile in self.profiles]

    def distinct(self) -> list[SpendReported]:
        """The events that must be taken: each event id once, in the order first sent."""
        seen: dict[str, SpendReported] = {}
        for event in self.sent:
            seen.setdefault(event.event_id, event)
        return list(seen.values())


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    log: Path
    port: int

    def alive(self) -> bool:
        return self.popen.poll() is None

    def sigkill(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=30)

    def terminate(self, timeout_s: float = 30.0) -> int:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout=timeout_s)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_bytes().decode(errors="replace")[-chars:] if self.log.exists() else "(no log)"

    def log_events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("event") == name:
                found.append(entry)
        return found


class SpendWorld:
    def __init__(self, bootstrap: str, database_url: str, log_directory: Path, *, spend_partitions: int = 6, max_batch_records: int = 25) -> None:
        tag = new_world_tag()  # its consumer group is deleted when the test ends (kafka_io)
        self.tag = tag
        self.bootstrap = bootstrap
        self.database_url = database_url
        self.log_directory = log_directory
        self.schema = f"t_res_spend_{tag}"
        self.ledger_schema = f"t_res_ledger_{tag}"
        self.group = f"t-res-spend-{tag}"
        self.spend_topic = f"t.res.{tag}.ads.spend.v1"
        self.wallet_topic = f"t.res.{tag}.wallet.events.v1"
        self.balances_topic = f"t.res.{tag}.balances.v1"
        self.control_topic = f"t.res.{tag}.delivery.control.v1"
        self.state_topic = f"t.res.{tag}.delivery.state.v1"
        self.campaign_topic = f"t.res.{tag}.campaign.events.v1"
        self.posted_topic = f"t.res.{tag}.spend.posted.v1"
        self.spend_partitions = spend_partitions
        self.max_batch_records = max_batch_records
        self.processes: list[Process] = []
        self._started = 0

    # ------------------------------------------------------------------------------------------
    # Set-up and tear-down
    # ------------------------------------------------------------------------------------------

    async def create_topics(self) -> None:
        specs = []
        for name, original, partitions in (
            (self.spend_topic, "ads.spend.v1", self.spend_partitions),
            (self.wallet_topic, "wallet.events.v1", None),
            (self.balances_topic, "balances.v1", None),
            (self.control_topic, "delivery.control.v1", None),
            (self.state_topic, "delivery.state.v1", None),
            (self.campaign_topic, "campaign.events.v1", None),
            (self.posted_topic, "spend.posted.v1", None),
        ):
            spec = replace(topic(original), name=name)
            specs.append(replace(spec, partitions=partitions) if partitions else spec)
            try:  # the topics the service consumes have a dead-letter topic
                specs.append(replace(topic(original + ".dlq"), name=name + ".dlq"))
            except KeyError:
                pass
        await ensure_topics(self.bootstrap, specs)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "ADLEDGER_DATABASE_URL": self.database_url,
            "ADLEDGER_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "ADLEDGER_DATABASE_SCHEMA": self.schema,
            "ADLEDGER_LEDGER_SCHEMA": self.ledger_schema,
            "ADLEDGER_KAFKA_CONSUMER_GROUP": self.group,
            "ADLEDGER_SPEND_TOPIC": self.spend_topic,
            "ADLEDGER_WALLET_EVENTS_TOPIC": self.wallet_topic,
            "ADLEDGER_BALANCES_TOPIC": self.balances_topic,
            "ADLEDGER_DELIVERY_CONTROL_TOPIC": self.control_topic,
            "ADLEDGER_DELIVERY_STATE_TOPIC": self.state_topic,
            "ADLEDGER_CAMPAIGN_EVENTS_TOPIC": self.campaign_topic,
            "ADLEDGER_SPEND_POSTED_TOPIC": self.posted_topic,
            # Small batches: many transactions, so a kill lands between, and inside, many of them.
            "ADLEDGER_CONSUMER_MAX_BATCH_RECORDS": str(self.max_batch_records),
            "ADLEDGER_OUTBOX_POLL_INTERVAL_MS": "100",
            "ADLEDGER_LOG_FORMAT": "json",
            "ADLEDGER_LOG_LEVEL": "INFO",
            **extra,
        }

    async def set_up(self, plan: Plan) -> None:
        """Topics, the service's schema (its own `migrate` command), and the accounts with their funds."""
        await self.create_topics()
        migrated = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "adledger_spend_consumer", "migrate"], env=self.env(), capture_output=True, timeout=120
        )
        assert migrated.returncode == 0, migrated.stderr.decode(errors="replace")[-3000:]
        conn = await asyncpg.connect(self.database_url)
        try:
            ledger = PostgresLedger(self.ledger_schema)
            profiles = plan.profiles
            centers = sorted({profile.business_center_id for profile in profiles})
            opened = system_accounts(CURRENCY)
            for center in centers:
                opened += owner_accounts("business_center", center, CURRENCY)
            for profile in profiles:
                opened += owner_accounts("ad_account", profile.ad_account_id, CURRENCY)
            async with conn.transaction():
                await ledger.create_accounts(conn, opened)
            funding = [
                TransferRequest(
                    id=f"funding:{owner}",
                    debit_account_id=system_account_id("world_payments", CURRENCY),
                    credit_account_id=owner_account_id("business_center" if owner in centers else "ad_account", owner, "cash"),
                    amount_micros=amount,
                    currency=CURRENCY,
                    code="payment_received",
                )
                for owner, amount in plan.funds.items()
            ]
            async with conn.transaction():
                raise_first_error(await ledger.create_transfers(conn, funding, datetime.now(UTC)))
            await conn.execute(f"set search_path to {self.schema}")
            async with conn.transaction():
                await postgres.upsert_business_centers(conn, [(center, CURRENCY) for center in centers])
                await postgres.upsert_ad_accounts(conn, profiles)
        finally:
            await conn.close()

    async def tear_down(self) -> None:
        for process in self.processes:
            if process.alive():
                process.sigkill()
        if os.environ.get("ADLEDGER_TEST_KEEP_SCHEMAS"):
            return
        await self._delete_topics()
        try:
            conn = await asyncpg.connect(self.database_url, timeout=10)
        except (OSError, asyncpg.PostgresError):
            return
        try:
            for schema in (self.schema, self.ledger_schema):
                await conn.execute(f"drop schema if exists {schema} cascade")
        finally:
            await conn.close()

    async def _delete_topics(self) -> None:
        """The run's topics go too, so repeated runs do not pile topics up on the shared broker."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10_000)
        try:
            await admin.start()
            prefix = f"t.res.{self.tag}."
            await admin.delete_topics([name for name in await admin.list_topics() if name.startswith(prefix)])
        except KafkaError:
            pass  # a broker that is gone (a private stack torn down) has nothing left to delete
        finally:
            await admin.close()

    # ------------------------------------------------------------------------------------------
    # The service
    # ------------------------------------------------------------------------------------------

    def start(self, *, crash_point: str = "", crash_after: int = 1, rewind: bool = False, name: str = "spend") -> Process:
        """One instance of the spend consumer. With `crash_point` it SIGKILLs itself at that exact
        point (see crash_points.py); with `rewind` it reads every partition from offset 0 again."""
        self._started += 1
        port = free_port()
        log = self.log_directory / f"{name}-{self._started}.log"
        extra = {"ADLEDGER_HTTP_PORT": str(port)}
        if crash_point or rewind:
            command = [sys.executable, str(CRASH_POINTS), "serve"]
            extra |= {"ADLEDGER_TEST_CRASH_POINT": crash_point, "ADLEDGER_TEST_CRASH_AFTER": str(crash_after), "ADLEDGER_TEST_REWIND": "1" if rewind else ""}
        else:
            command = [sys.executable, "-m", "adledger_spend_consumer", "serve"]
        with log.open("wb") as stderr:
            # Logs go to a file, never to a pipe nobody reads (a full pipe would block the service).
            popen = subprocess.Popen(command, env=self.env(**extra), stdout=stderr, stderr=subprocess.STDOUT)
        process = Process(popen, log, port)
        self.processes.append(process)
        return process

    # ------------------------------------------------------------------------------------------
    # Spend, as an ad server sends it
    # ------------------------------------------------------------------------------------------

    async def send(self, plan: Plan, events: list[SpendReported], *, producer: AIOKafkaProducer | None = None) -> None:
        """Contract JSON keyed by ad account, no headers; recorded in the plan once acknowledged."""
        own = producer is None
        if producer is None:
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=True, acks="all")
            await producer.start()
        try:
            futures = [
                await producer.send(self.spend_topic, value=event.model_dump_json().encode(), key=event.ad_account_id.encode())
                for event in events
            ]
            await asyncio.gather(*futures)
        finally:
            if own:
                await producer.stop()
        plan.sent.extend(events)

    # ------------------------------------------------------------------------------------------
    # What the database and the topics show
    # ------------------------------------------------------------------------------------------

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.database_url, timeout=10)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    async def applied_offsets(self) -> int:
        """Records of the spend topic the group has applied (the sum of its stored positions)."""
        try:
            rows = await self.fetch(
                f"select coalesce(sum(next_offset), 0) as n from {self.schema}.consumer_positions where group_id = $1 and topic = $2",
                self.group,
                self.spend_topic,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return -1
        return int(rows[0]["n"])

    async def wait_applied(self, at_least: int, process: Process | None = None, timeout_s: float = 60.0) -> int:
        async def check() -> int | None:
            if process is not None and not process.alive():
                raise AssertionError(f"the spend consumer exited with {process.popen.returncode}: {process.tail()}")
            applied = await self.applied_offsets()
            return applied if applied >= at_least else None

        return int(await until(check, f"{at_least} spend records applied", timeout_s, 0.02))

    async def wait_done(self, process: Process | None = None, timeout_s: float = 120.0) -> None:
        """Until every record on the spend topic is applied and the outbox is empty."""
        total = await self.spend_end_offsets()
        await self.wait_applied(total, process, timeout_s)

        async def outbox_empty() -> bool:
            if process is not None and not process.alive():
                raise AssertionError(f"the spend consumer exited with {process.popen.returncode}: {process.tail()}")
            rows = await self.fetch(f"select count(*) as n from {self.schema}.outbox")
            return int(rows[0]["n"]) == 0

        await until(outbox_empty, "the outbox to be published", timeout_s)

    async def spend_end_offsets(self) -> int:
        """How many records the spend topic holds (the sum of its partitions' end offsets)."""
        probe = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await probe.start()
        try:
            partitions = probe.partitions_for_topic(self.spend_topic)
            while not partitions:  # a fresh client knows no topic until its metadata names it
                await probe._client.force_metadata_update()
                partitions = probe.partitions_for_topic(self.spend_topic)
            ends = await probe.end_offsets([TopicPartition(self.spend_topic, number) for number in partitions])
            assert len(ends) == self.spend_partitions
            return sum(ends.values())
        finally:
            await probe.stop()

    async def owner_nets(self) -> dict[str, int]:
        rows = await self.fetch(
            f"""select owner_id, sum(credits_posted_micros - debits_posted_micros) as net
                from {self.ledger_schema}.accounts where owner_id is not null group by owner_id"""
        )
        return {row["owner_id"]: int(row["net"]) for row in rows}

    async def revenue(self) -> int:
        rows = await self.fetch(
            f"select credits_posted_micros - debits_posted_micros as net from {self.ledger_schema}.accounts where id = $1",
            system_account_id("platform_revenue", CURRENCY),
        )
        return int(rows[0]["net"])

    async def control_records(self) -> list[Record]:
        return await read_all(self.bootstrap, self.control_topic, expect=0, settle_s=1.0)

    # ------------------------------------------------------------------------------------------
    # The proof
    # ------------------------------------------------------------------------------------------

    async def assert_exactly_once(self, plan: Plan) -> dict[str, Any]:
        """Every balance to the micro, every event id applied once, one pause per cause."""
        events = plan.distinct()
        spent: dict[str, int] = defaultdict(int)
        for event in events:
            spent[event.ad_account_id] += event.amount_micros
        nets = await self.owner_nets()
        for account in plan.manual_rich + plan.manual_limited:
            assert nets.get(account, 0) == plan.funds[account] - spent[account], (account, nets.get(account), plan.funds[account], spent[account])
        for center, accounts in plan.aba.items():
            expected = plan.funds[center] - sum(spent[account] for account in accounts)
            assert nets.get(center, 0) == expected, (center, nets.get(center), expected)
            for account in accounts:
                assert nets.get(account, 0) == 0, (account, nets.get(account))
        assert await self.revenue() == sum(spent.values()), "the platform's revenue is the sum of the distinct spend events"

        processed = await self.fetch(
            f"select event_id from {self.schema}.processed_events where group_id = $1 and topic = $2", self.group, self.spend_topic
        )
        assert Counter(row["event_id"] for row in processed) == Counter(event.event_id for event in events), "each event id applied once"

        # Pauses: the table, and the decisions published on delivery control.
        pauses = await self.fetch(f"select * from {self.schema}.pauses order by id")
        by_account: dict[str, list[asyncpg.Record]] = defaultdict(list)
        for row in pauses:
            by_account[row["ad_account_id"]].append(row)
        crossings = self._crossings(plan, events)
        for account in plan.manual_rich:
            assert account not in by_account, f"{account} had plenty and paused: {by_account[account]}"
        for account in plan.manual_limited:
            assert len(by_account[account]) == 1, (account, by_account[account])
            pause = by_account[account][0]
            assert pause["cause_event_id"] == crossings[account], (account, pause["cause_event_id"], crossings[account])
            assert pause["overspend_micros"] == spent[account] - plan.funds[account]
        for center, accounts in plan.aba.items():
            causes = set()
            for account in accounts:
                assert len(by_account[account]) == 1, (account, by_account[account])
                causes.add(by_account[account][0]["cause_event_id"])
            assert len(causes) == 1, f"the ABA accounts of {center} paused for different causes: {causes}"

        records = await self.control_records()
        distinct: dict[str, dict[str, Any]] = {}
        for record in records:
            distinct.setdefault(record.headers["event-id"], json.loads(record.value or b"{}"))
        decisions = Counter((item["ad_account_id"], item["action"], item["cause_event_id"]) for item in distinct.values())
        assert all(count == 1 for count in decisions.values()), f"one decision published twice under two ids: {decisions}"
        paused_accounts = Counter(item["ad_account_id"] for item in distinct.values() if item["action"] == "pause")
        assert paused_accounts == Counter(plan.manual_limited + [a for accounts in plan.aba.values() for a in accounts]), paused_accounts
        for item in distinct.values():
            if item["ad_account_id"] in crossings:
                assert item["cause_event_id"] == crossings[item["ad_account_id"]]
        return {
            "events": len(events),
            "sent": len(plan.sent),
            "control_records": len(records),
            "control_decisions": len(distinct),
        }

    @staticmethod
    def _crossings(plan: Plan, events: list[SpendReported]) -> dict[str, str]:
        """For each limited manual account, the event at which its funds reached zero. One account's
        events share a key, hence a partition, so their order is the order they were sent."""
        running: dict[str, int] = defaultdict(int)
        crossing: dict[str, str] = {}
        for event in events:
            account = event.ad_account_id
            if account not in plan.manual_limited or account in crossing:
                continue
            running[account] += event.amount_micros
            if running[account] >= plan.funds[account]:
                crossing[account] = event.event_id
        return crossing


def make_plan(tag: str, *, rich: int = 3, limited: int = 3, centers: int = 1, per_center: int = 2) -> Plan:
    return Plan(
        manual_rich=[f"rich{index}-{tag}" for index in range(rich)],
        manual_limited=[f"lim{index}-{tag}" for index in range(limited)],
        aba={f"bc{index}-{tag}": [f"aba{index}.{member}-{tag}" for member in range(per_center)] for index in range(centers)},
        funds={},
    )


def make_spend(rng: random.Random, plan: Plan, count: int, *, resend_fraction: float = 0.03) -> list[SpendReported]:
    """`count` spend events over the plan's accounts; a few re-send an earlier event of the same
    account with the same event id (an ad server sending again)."""
    accounts = plan.accounts
    made: list[SpendReported] = []
    history = plan.sent + made
    for _ in range(count):
        if history and rng.random() < resend_fraction:
            made.append(rng.choice(history))
            continue
        event = SpendReported(
            event_id=f"spend-{uuid.UUID(int=rng.getrandbits(128)).hex}",
            ad_account_id=rng.choice(accounts),
            campaign_id="campaign-1",
            amount_micros=rng.randint(1_000, 50_000),
            currency=CURRENCY,
            occurred_at=datetime(2026, 11, 21, 12, tzinfo=UTC),
        )
        made.append(event)
        history.append(event)
    return made


def fund(plan: Plan, total_events: int, *, limited_fraction: float = 0.5) -> None:
    """Rich accounts get plenty; limited ones and the ABA Business Centers about `limited_fraction`
    of what they will be sent on average, so they reach zero midway and pause exactly once."""
    average_amount = 25_500
    per_account = total_events * average_amount // max(len(plan.accounts), 1)
    for account in plan.manual_rich:
        plan.funds[account] = PLENTY_MICROS
    for account in plan.manual_limited:
        plan.funds[account] = int(per_account * limited_fraction)
    for center, accounts in plan.aba.items():
        plan.funds[center] = int(per_account * len(accounts) * limited_fraction)
