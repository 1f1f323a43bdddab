"""Pauses sent the moment they are decided, before the commit (issue 14, lever 4; rules S2, W8).

A spend's pause leaves on delivery.control.v1 before its batch commits, under the event id its
outbox row carries. A batch that rolls back after its pause left and is applied again decides the
same pause under the same id: downstream there is exactly one pause decision, by event id. When
the retry decides otherwise (a top-up landed in between), the pause is withdrawn from the
database's state: a resume, and the key's latest state serving.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from adledger_ledger.domain import TransferRequest, raise_first_error
from adledger_ledger.owners import owner_account_id, system_account_id
from adledger_ledger.postgres import PostgresLedger
from adledger_libs.events import HEADER_EVENT_ID
from adledger_spend_consumer.adapters import postgres
from adledger_spend_consumer.core import REASON_PAUSE_WITHDRAWN, pause_event_id

from ..kafka_io import read_all
from .conftest import USD, Services, values

pytestmark = pytest.mark.integration


@pytest.fixture
def own_delivery_topics() -> bool:
    return True


def _fail_once_after_pausing(monkeypatch: pytest.MonkeyPatch, account_id: str) -> list[int]:
    """The first transaction that writes a pause of `account_id` is aborted as a deadlock victim,
    after the early pause left: the consumer rolls the batch back and applies it again."""
    original = postgres.apply_transitions
    failures: list[int] = []

    async def apply_transitions(conn: asyncpg.Connection, transitions: Sequence[Any], *args: Any) -> Any:
        if not failures and any(t.action == "pause" and t.change.ad_account_id == account_id for t in transitions):
            failures.append(1)
            raise asyncpg.exceptions.DeadlockDetectedError("deadlock detected (injected by the test)")
        return await original(conn, transitions, *args)

    monkeypatch.setattr(postgres, "apply_transitions", apply_transitions)
    return failures


async def test_s2_w8_a_batch_rolled_back_after_its_early_pause_gives_one_pause_decision_by_event_id(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    business_center = await services.business_center()
    account = await services.ad_account(business_center)
    await services.known_to_spend_consumer(account)
    await services.pay(account, 2 * USD)
    await services.balance_until(account, "available_micros", 2 * USD)
    failures = _fail_once_after_pausing(monkeypatch, account)

    crossing = services.spend_event(account, 3 * USD)
    await services.send_spends([crossing])

    (pause,) = await services.pauses_until(account, lambda rows: len(rows) == 1)
    assert failures == [1], "the batch was not rolled back after its pause"
    assert pause["cause_event_id"] == crossing.event_id
    # What a subscriber acts on (the first record of each event id): one pause decision.
    (decision,) = values(await services.records_for(services.control_topic, {account}, expect=1))
    assert (decision["action"], decision["cause_event_id"]) == ("pause", crossing.event_id)
    # On the wire: the rolled-back attempt's early pause, the retry's and the outbox's copy.
    records = [
        record for record in await read_all(services.bootstrap, services.control_topic, expect=3, settle_s=0.5)
        if record.key == account.encode()
    ]
    assert len(records) >= 2, "the pause did not leave before the rolled-back commit"
    expected_id = pause_event_id(account, "insufficient_funds", crossing.event_id)
    assert {record.headers[HEADER_EVENT_ID] for record in records} == {expected_id}
    assert {record.value for record in records} == {records[0].value}
    state = await services.state_of(account)
    assert state is not None and not state["serving"]


async def test_s2_w8_an_early_pause_the_retry_does_not_decide_again_is_withdrawn(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    business_center = await services.business_center()
    account = await services.ad_account(business_center)
    await services.known_to_spend_consumer(account)
    await services.pay(account, 2 * USD)
    await services.balance_until(account, "available_micros", 2 * USD)
    failures = _fail_once_after_pausing(monkeypatch, account)
    ledger_schema = services.spend.settings.ledger_schema
    original_lock = postgres.lock_ledger_accounts

    async def lock_ledger_accounts(conn: asyncpg.Connection, schema: str, account_ids: Sequence[str]) -> Any:
        if failures == [1]:
            # The first attempt rolled back; a top-up lands before the retry reads the funds.
            failures.append(2)
            top_up = await asyncpg.connect(services.database_url)
            try:
                async with top_up.transaction():
                    raise_first_error(await PostgresLedger(ledger_schema).create_transfers(top_up, [TransferRequest(
                        id=f"test-top-up:{account}", debit_account_id=system_account_id("world_payments", "USD"),
                        credit_account_id=owner_account_id("ad_account", account, "cash"), amount_micros=10 * USD,
                        currency="USD", code="payment_received",
                    )], datetime.now(UTC)))
            finally:
                await top_up.close()
        return await original_lock(conn, schema, account_ids)

    monkeypatch.setattr(postgres, "lock_ledger_accounts", lock_ledger_accounts)

    crossing = services.spend_event(account, 3 * USD)
    await services.send_spends([crossing])

    records = await services.records_for(services.control_topic, {account}, expect=2)
    assert failures == [1, 2]
    decisions = values(records)
    assert [(value["action"], value["reason"]) for value in decisions] == [
        ("pause", "insufficient_funds"), ("resume", REASON_PAUSE_WITHDRAWN)
    ]
    assert await services.fetch(f"select * from {services.spend_schema}.pauses where ad_account_id = $1", account) == []
    states = values(await services.records_for(services.state_topic, {account}, expect=1))
    assert states[-1]["serving"] is True
    assert await services.never_paused(account)
