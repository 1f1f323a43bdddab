"""An early pause announced by an attempt that CRASHED before its commit (issue 14, lever 4; S2, W8).

The spend consumer runs as a process and SIGKILLs itself right after its pause reached
delivery.control.v1 and before the batch's transaction committed. A top-up lands before the
restart, so the batch applied again decides no pause. What the process wrote down before sending
(`announced_pauses`) survives the crash: after the restart the topics end as the database says,
serving, with exactly one pause decision by event id, then its withdrawal.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from adledger_contracts.external import SpendReported
from adledger_ledger.domain import TransferRequest, raise_first_error
from adledger_ledger.owners import owner_account_id, system_account_id
from adledger_ledger.postgres import PostgresLedger
from adledger_spend_consumer.core import REASON_PAUSE_WITHDRAWN, pause_event_id

from ..conftest import Stack
from ..kafka_io import read_all
from .harness import CURRENCY, SpendWorld, make_plan, until

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def world(stack: Stack, tmp_path: Path) -> AsyncIterator[SpendWorld]:
    created = SpendWorld(stack.kafka_bootstrap_servers, stack.database_url, tmp_path)
    try:
        yield created
    finally:
        await created.tear_down()


async def test_s2_w8_an_early_pause_of_a_crashed_attempt_the_retry_does_not_repeat_ends_withdrawn(
    world: SpendWorld,
) -> None:
    plan = make_plan(world.tag, rich=0, limited=1, centers=0)
    (account,) = plan.manual_limited
    plan.funds[account] = 2_000_000
    await world.set_up(plan)
    crossing = SpendReported(
        event_id=f"spend-crossing-{world.tag}", ad_account_id=account, campaign_id="campaign-1",
        amount_micros=3_000_000, currency=CURRENCY, occurred_at=datetime(2026, 11, 21, 12, tzinfo=UTC),
    )
    await world.send(plan, [crossing])

    crashed = world.start(crash_point="early_pause_sent")

    async def exited() -> bool:
        return not crashed.alive()

    await until(exited, "the consumer to SIGKILL itself after its early pause", 60)
    assert crashed.popen.returncode == -9, crashed.tail()
    assert await world.applied_offsets() <= 0, "the crashed batch must not have committed"
    announced = await world.fetch(f"select key, cause, event_id from {world.schema}.announced_pauses")
    expected_id = pause_event_id(account, "insufficient_funds", crossing.event_id)
    assert [(row["key"], row["cause"], row["event_id"]) for row in announced] == [
        (account, "insufficient_funds", expected_id)
    ]

    # A top-up lands before the restart: the batch applied again decides no pause.
    conn = await asyncpg.connect(world.database_url)
    try:
        async with conn.transaction():
            raise_first_error(await PostgresLedger(world.ledger_schema).create_transfers(conn, [TransferRequest(
                id=f"test-top-up:{account}", debit_account_id=system_account_id("world_payments", CURRENCY),
                credit_account_id=owner_account_id("ad_account", account, "cash"), amount_micros=10_000_000,
                currency=CURRENCY, code="payment_received",
            )], datetime.now(UTC)))
    finally:
        await conn.close()

    process = world.start()
    await world.wait_done(process)

    # The database: the spend taken, the account serving, nothing left announced.
    assert await world.fetch(f"select * from {world.schema}.pauses") == []
    assert await world.fetch(f"select * from {world.schema}.announced_pauses") == []
    states = await world.fetch(f"select serving from {world.schema}.delivery_states where key = $1", account)
    assert all(row["serving"] for row in states)

    # The topics, as a subscriber reads them (the first record of each event id): one pause
    # decision, then its withdrawal; the last state is serving, as in the database.
    control = [record for record in await world.control_records() if record.key == account.encode()]
    first_of_id: dict[str, dict[str, object]] = {}
    for record in control:
        first_of_id.setdefault(record.headers["event-id"], json.loads(record.value or b"{}"))
    decisions = list(first_of_id.items())
    assert [(event_id, value["action"]) for event_id, value in decisions if value["action"] == "pause"] == [
        (expected_id, "pause")
    ]
    assert (decisions[-1][1]["action"], decisions[-1][1]["reason"]) == ("resume", REASON_PAUSE_WITHDRAWN)
    state_records = [
        record for record in await read_all(world.bootstrap, world.state_topic, expect=1, settle_s=1.0)
        if record.key == account.encode()
    ]
    assert state_records, "the key's state was not re-published from the database"
    assert json.loads(state_records[-1].value or b"{}")["serving"] is True
    assert process.log_events("announced_pauses_found"), "the restart did not find the crashed attempt's pause"
    assert process.terminate() == 0, process.tail()
