"""The alerts job (rules I6, I8, T1) on the real broker: the Faust worker runs as its own process
(`python -m adledger_invoicing.alerts worker`) with a unique app id and unique topics; the test
feeds SpendPosted, FundsReceived and BalanceChanged events and reads the alerts and their
e-mail requests. Time is event time: the spend is posted on the 7 UTC days before the balance's
day, whatever the wall clock says during the run; every wait has a limit and fails loudly.

Faust expires windows by the wall clock (see alerts/app.py), so the event days are the days
just before today: a fixed calendar date far in the past would be expired by the worker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from adledger_contracts.alerts import LowBalanceThresholdSet
from adledger_contracts.external import BalanceBuckets, BalanceChanged
from adledger_contracts.spending import SpendPosted
from adledger_contracts.topics import dead_letter_topic
from adledger_contracts.wallet import FundsReceived
from adledger_libs.events import Message, encode
from aiokafka.admin import AIOKafkaAdminClient

from ..conftest import Stack, TopicFactory, unique
from ..kafka_io import produce, read_all

pytestmark = pytest.mark.integration
USD = 1_000_000
PARTITIONS = 2


@dataclass
class AlertsJob:
    stack: Stack
    app_id: str
    topics: dict[str, str]
    env: dict[str, str]
    workdir: Path
    process: asyncio.subprocess.Process | None = None
    starts: int = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / f"alerts-worker-{self.starts}.log"

    async def start(self) -> None:
        """Start a worker process (`python -m adledger_invoicing.alerts worker`), as `make run` would."""
        assert self.process is None or self.process.returncode is not None
        self.starts += 1
        with self.log_path.open("wb") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "adledger_invoicing.alerts", "worker", "-l", "info",
                env=self.env, stdout=log_file, stderr=asyncio.subprocess.STDOUT, cwd=self.workdir,
            )

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await asyncio.wait_for(process.wait(), 10)
            raise AssertionError(f"the alerts worker did not stop on SIGTERM:\n{self.log_path.read_text()[-3000:]}") from None

    async def send(self, topic: str, *messages: tuple[str, Message]) -> None:
        items = []
        for key, message in messages:
            envelope = encode(message, key=key, trace_id="trace-alerts-test")
            items.append((envelope.key, envelope.value, list(envelope.headers)))
        await produce(self.stack.kafka_bootstrap_servers, self.topics[topic], items)

    def _alive(self) -> None:
        assert self.process is not None
        if self.process.returncode is not None:
            raise AssertionError(f"the alerts worker exited with {self.process.returncode}:\n{self.log_path.read_text()[-4000:]}")

    async def processed_activity(self, count: int, timeout_s: float = 90.0) -> None:
        """Wait until the worker processed `count` owner records (its committed position is past them)."""
        activity = f"{self.app_id}-owner-activity"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        admin = AIOKafkaAdminClient(bootstrap_servers=self.stack.kafka_bootstrap_servers)
        await admin.start()
        try:
            while True:
                self._alive()
                offsets = await admin.list_consumer_group_offsets(self.app_id)
                # The group's committed offsets on the activity topic: how many records it processed.
                committed = sum(meta.offset for tp, meta in offsets.items() if tp.topic == activity and meta.offset > 0)
                if committed >= count:
                    return
                assert loop.time() < deadline, (
                    f"the worker processed {committed} of {count} owner records;\n{self.log_path.read_text()[-3000:]}"
                )
                await asyncio.sleep(0.25)
        finally:
            await admin.close()

    async def alerts(self, expect: int, timeout_s: float = 90.0) -> list[tuple[str, dict[str, object]]]:
        self._alive()
        try:
            records = await read_all(self.stack.kafka_bootstrap_servers, self.topics["alerts"], expect=expect, timeout_s=timeout_s, settle_s=1.0)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.log_path.read_text()[-8000:]}") from None
        return [(record.headers["event-type"], json.loads(record.value or b"{}")) for record in records]


@pytest_asyncio.fixture
async def job(stack: Stack, new_topic: TopicFactory, tmp_path: Path) -> AsyncIterator[AlertsJob]:
    topics = {
        "spend": await new_topic("spend.posted.test", partitions=3),
        "balances": await new_topic("balances.test", partitions=3),
        "wallet": await new_topic("wallet.events.test", partitions=3),
        "thresholds": await new_topic("alert-thresholds.test", partitions=3),
        "alerts": await new_topic("invoicing.events.test", partitions=3),
    }
    await new_topic.create(dead_letter_topic(topics["spend"]), partitions=1)
    app_id = unique("adledger-alerts-test").replace("_", "-")
    env = dict(
        os.environ,
        ADLEDGER_KAFKA_BOOTSTRAP_SERVERS=stack.kafka_bootstrap_servers,
        ADLEDGER_ALERTS_APP_ID=app_id,
        ADLEDGER_ALERTS_SPEND_TOPIC=topics["spend"],
        ADLEDGER_ALERTS_BALANCES_TOPIC=topics["balances"],
        ADLEDGER_ALERTS_WALLET_EVENTS_TOPIC=topics["wallet"],
        ADLEDGER_ALERTS_THRESHOLDS_TOPIC=topics["thresholds"],
        ADLEDGER_ALERTS_ALERTS_TOPIC=topics["alerts"],
        ADLEDGER_ALERTS_PARTITIONS=str(PARTITIONS),
        ADLEDGER_ALERTS_DATA_DIR=str(tmp_path / "faust"),
        # Our own lines at debug (each owner record, each evaluation), Faust's at info: a failure
        # shows what the worker saw.
        ADLEDGER_ALERTS_LOG_LEVEL="debug",
    )
    running = AlertsJob(stack, app_id, topics, env, tmp_path)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()
        await _delete_internal_topics(stack.kafka_bootstrap_servers, app_id)


async def _delete_internal_topics(bootstrap: str, app_id: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        mine = [name for name in await admin.list_topics() if name.startswith(app_id)]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


def _balance(owner_id: str, owner_kind: str, available: int, version: int, at: datetime) -> BalanceChanged:
    return BalanceChanged(
        owner_id=owner_id,
        owner_kind=owner_kind,  # type: ignore[arg-type]
        currency="USD",
        real_micros=available,
        virtual_micros=available,
        available_micros=available,
        buckets=BalanceBuckets(cash=available, credit_line=0, vouchers=0),
        version=version,
        updated_at=at,
    )


async def test_i6_i8_runway_and_low_balance_alerts_from_windowed_spend_at_least_once_with_stable_ids(job: AlertsJob) -> None:
    bc, account = unique("bc"), unique("aa")
    # "Now" is the balance's event time; the spend windows are the 7 whole UTC days before it.
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    today = now.replace(hour=0, minute=0, second=0)
    spends = [
        SpendPosted(
            event_id=f"posted-{back}-{account}",
            ad_account_id=account,
            campaign_id="cmp-1",
            business_center_id=bc,
            funding_mode="drawdown",
            amount_micros=100 * USD,
            currency="USD",
            spend_event_count=3,
            first_occurred_at=today - timedelta(days=back) + timedelta(hours=11),
            last_occurred_at=today - timedelta(days=back) + timedelta(hours=12),
            posted_at=today - timedelta(days=back) + timedelta(hours=12),
        )
        for back in range(1, 8)
    ]
    # The spend of today (not in the average), one re-published event (counted once), one bad record.
    today_spend = spends[0].model_copy(update={"event_id": f"posted-0-{account}", "amount_micros": 900 * USD, "posted_at": now})
    await job.send("spend", *((account, spend) for spend in [*spends, spends[3], today_spend]))
    await produce(job.stack.kafka_bootstrap_servers, job.topics["spend"], [(account.encode(), b"{not json", [("event-type", b"SpendPosted")])])
    await job.send("wallet", (bc, FundsReceived(owner_id=bc, invoice_id="inv-1", amount_micros=1_000 * USD, overspend_covered_micros=0, currency="USD", received_at=today - timedelta(days=8))))
    # 9 spend records, each for the ad account and its Business Center, and the payment.
    await job.processed_activity(2 * 9 + 1)

    # 250 USD left at 100 USD a day: at most 3 days of spend (runway 2 days), and below half the last payment.
    await job.send("balances", (bc, _balance(bc, "business_center", 250 * USD, 7, now)))
    got = await job.alerts(expect=4)
    by_type: dict[str, list[dict[str, object]]] = {}
    for event_type, payload in got:
        by_type.setdefault(event_type, []).append(payload)
    alerts = {str(alert["kind"]): alert for alert in by_type["BalanceAlertRaised"]}
    day = now.date().isoformat()
    runway = alerts["runway_low"]
    assert runway["alert_id"] == f"runway_low:{bc}:{day}" and runway["event_id"] == f"alert:runway_low:{bc}:{day}"
    assert runway["average_daily_spend_micros"] == 100 * USD  # 7 x 100 / 7, the duplicate and today left out
    assert runway["runway_days"] == 2 and runway["available_micros"] == 250 * USD
    assert runway["owner_kind"] == "business_center" and runway["utc_day"] == day
    low = alerts["low_balance"]
    assert low["threshold_micros"] == 500 * USD and low["alert_id"] == f"low_balance:{bc}:{day}"
    emails = {str(request["template"]): request for request in by_type["EmailRequested"]}
    assert emails["runway_low"]["email_id"] == runway["alert_id"]
    assert emails["runway_low"]["fields"] == {
        "owner_name": f"Business Center {bc}",
        "balance": "250.00 USD",
        "average_daily_spend": "100.00 USD",
        "runway_days": "2",
    }
    assert emails["low_balance"]["fields"] == {"owner_name": f"Business Center {bc}", "balance": "250.00 USD", "threshold": "500.00 USD"}

    # Another balance change the same UTC day: the alerts were raised already, nothing new.
    await job.send("balances", (bc, _balance(bc, "business_center", 200 * USD, 8, now + timedelta(seconds=30))))
    await job.processed_activity(2 * 9 + 1 + 2)
    assert len(await job.alerts(expect=4)) == 4

    # The bad record went to the dead-letter topic with its reason; the stream went on.
    dead = await read_all(job.stack.kafka_bootstrap_servers, dead_letter_topic(job.topics["spend"]), expect=1)
    assert dead[0].headers["dlq-reason"].startswith("invalid SpendPosted")
    assert dead[0].headers["dlq-topic"] == job.topics["spend"]


async def test_i6_the_windows_and_thresholds_survive_a_restart_of_the_worker_through_their_changelogs(job: AlertsJob) -> None:
    bc, account = unique("bc"), unique("aa")
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    today = now.replace(hour=0, minute=0, second=0)
    await job.send(
        "spend",
        *(
            (
                account,
                SpendPosted(
                    event_id=f"posted-{back}-{account}", ad_account_id=account, campaign_id="cmp-1", business_center_id=bc,
                    funding_mode="drawdown", amount_micros=70 * USD, currency="USD", spend_event_count=1,
                    first_occurred_at=today - timedelta(days=back), last_occurred_at=today - timedelta(days=back),
                    posted_at=today - timedelta(days=back) + timedelta(hours=1),
                ),
            )
            for back in range(1, 8)
        ),
    )
    await job.send("thresholds", (bc, LowBalanceThresholdSet(business_center_id=bc, threshold_micros=1_000 * USD, set_at=today - timedelta(days=2))))
    await job.processed_activity(2 * 7 + 1)

    # A new worker process: its in-memory tables come back from the changelog topics.
    await job.stop()
    await job.start()
    await job.send("balances", (bc, _balance(bc, "business_center", 300 * USD, 1, now)))
    await job.send("balances", (account, _balance(account, "ad_account", 200 * USD, 1, now)))
    got = await job.alerts(expect=4)
    alerts = {(str(p["owner_id"]), str(p["kind"])): p for t, p in got if t == "BalanceAlertRaised"}
    # The Business Center: 300 > 3 x 70, no runway alert; below its explicit threshold of 1000.
    assert set(alerts) == {(bc, "low_balance"), (account, "runway_low")}
    assert alerts[(bc, "low_balance")]["threshold_micros"] == 1_000 * USD
    runway = alerts[(account, "runway_low")]
    assert runway["average_daily_spend_micros"] == 70 * USD and runway["runway_days"] == 2
    assert runway["owner_kind"] == "ad_account"
    templates = sorted(str(p["template"]) for t, p in got if t == "EmailRequested")
    assert templates == ["low_balance", "runway_low"]
