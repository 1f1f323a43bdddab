"""W13 day-close snapshots and W12 prepayment threshold signal, on the real stack with a ManualClock (T1)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from adledger_ledger.domain import TransferRequest
from adledger_ledger.owners import owner_account_id, system_account_id
from adledger_ledger.postgres import PostgresLedger
from adledger_libs.outbox import unit_of_work
from adledger_wallet.adapters.postgres import PostgresWalletStore
from adledger_wallet.day_closes import DayCloses

from ..conftest import unique
from ..kafka_io import read_all
from .test_wallet_journey import PLATFORM, USD, RunningWallet, wallet  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


async def _open(wallet: RunningWallet) -> tuple[str, str, str, str]:  # noqa: F811
    alice, alice_token = await wallet.user("alice")
    bc, account = unique("bc"), unique("acc")
    opened = await wallet.open_business_center(bc, alice)
    assert opened.status_code == 201, opened.text
    made = await wallet.command("POST", f"/v1/business-centers/{bc}/ad-accounts", alice_token, {"id": account, "name": "manual", "type": "reservation", "billing_option": "prepaid"})
    assert made.status_code == 201, made.text
    return alice, alice_token, bc, account


async def _allocate(wallet: RunningWallet, token: str, bc: str, account: str, amount_micros: int) -> None:  # noqa: F811
    moved = await wallet.command("POST", f"/v1/business-centers/{bc}/allocations", token, {"ad_account_id": account, "bucket": "cash", "direction": "to_ad_account", "amount_micros": amount_micros, "currency": "USD"})
    assert moved.status_code == 200, moved.text


def _rows(answer: list[dict[str, object]]) -> list[tuple[object, object, object]]:
    return [(row["day"], row["real_micros"], row["virtual_micros"]) for row in answer]


async def test_w13_t1_day_close_snapshots_per_owner_catch_up_after_downtime_and_never_change(wallet: RunningWallet) -> None:  # noqa: F811
    _, token, bc, account = await _open(wallet)
    runtime = wallet.runtime
    ledger = PostgresLedger(runtime.settings.ledger_schema)  # type: ignore[attr-defined]
    closes = DayCloses(lambda: runtime.pool, ledger, PostgresWalletStore.of, wallet.clock)

    # Day 1 (2026-11-21): 10 USD paid in, 4 allocated, a 1 USD hold on the ad account's cash.
    await wallet.pay(unique("inv"), bc, 10 * USD)
    await wallet.balance_until(bc, token, "real_micros", 10 * USD)
    await _allocate(wallet, token, bc, account, 4 * USD)
    hold_id = unique("hold")
    async with unit_of_work(runtime.pool) as uow:
        await ledger.create_transfers(uow.conn, [TransferRequest(id=hold_id, debit_account_id=owner_account_id("ad_account", account, "cash"), credit_account_id=system_account_id("platform_revenue", "USD"), amount_micros=USD, currency="USD", code="spend_hold", pending=True)], wallet.clock.now())
    assert await closes.run_due_closes() == [], "no close is due before midnight UTC"

    # Day 2: the hold is posted and 2 USD more allocated.
    wallet.clock.set(datetime(2026, 11, 22, 12, tzinfo=UTC))
    async with unit_of_work(runtime.pool) as uow:
        await ledger.create_transfers(uow.conn, [TransferRequest(id=unique("post"), pending_id=hold_id, currency="USD", code="spend", post_pending=True)], wallet.clock.now())
    await _allocate(wallet, token, bc, account, 2 * USD)

    # The service is "down" over two midnights; it comes back on day 4 and catches up in order.
    wallet.clock.set(datetime(2026, 11, 24, 8, tzinfo=UTC))
    assert [day.isoformat() for day in await closes.run_due_closes()] == ["2026-11-21", "2026-11-22", "2026-11-23"]
    bc_history = (await wallet.get(f"/v1/balances/{bc}/history?from=2026-11-01&to=2026-11-30", token)).json()
    assert _rows(bc_history) == [("2026-11-21", 6 * USD, 6 * USD), ("2026-11-22", 4 * USD, 4 * USD), ("2026-11-23", 4 * USD, 4 * USD)]
    account_history = (await wallet.get(f"/v1/balances/{account}/history", token)).json()
    # Day 1 closes with the hold open (real 4, virtual 3); day 2 after it was posted for 1 USD.
    assert _rows(account_history) == [("2026-11-21", 4 * USD, 3 * USD), ("2026-11-22", 5 * USD, 5 * USD), ("2026-11-23", 5 * USD, 5 * USD)]
    assert {row["owner_kind"] for row in account_history} == {"ad_account"} and {row["currency"] for row in bc_history} == {"USD"}
    live = (await wallet.get(f"/v1/balances/{account}", token)).json()
    assert (live["real_micros"], live["virtual_micros"]) == (5 * USD, 5 * USD), "the last close equals the live balance"

    # A rerun (or a second instance) adds nothing.
    assert await closes.run_due_closes() == []
    count = await runtime.pool.fetchval("select count(*) from balance_snapshots where owner_id = any($1::text[])", [bc, account])
    assert count == 6 and await runtime.pool.fetchval("select count(*) from day_closes") == 3

    # A change after the close shows on the next day, never in a closed one.
    await _allocate(wallet, token, bc, account, USD)
    assert _rows((await wallet.get(f"/v1/balances/{bc}/history?from=2026-11-23&to=2026-11-23", token)).json()) == [("2026-11-23", 4 * USD, 4 * USD)]
    wallet.clock.set(datetime(2026, 11, 25, 0, 0, tzinfo=UTC))
    assert [day.isoformat() for day in await closes.run_due_closes()] == ["2026-11-24"]
    assert _rows((await wallet.get(f"/v1/balances/{bc}/history?from=2026-11-23", token)).json()) == [("2026-11-23", 4 * USD, 4 * USD), ("2026-11-24", 3 * USD, 3 * USD)]

    # Read like a balance: another Business Center's user is refused; a bad day is a 422.
    _, stranger_token = await wallet.user("eve")
    assert (await wallet.get(f"/v1/balances/{bc}/history", stranger_token)).status_code == 404, "not theirs: as if it did not exist"
    assert (await wallet.get(f"/v1/balances/{bc}/history?from=yesterday", token)).status_code == 422


async def _decided_version(wallet: RunningWallet, owner_id: str, timeout_s: float = 30.0) -> bool:  # noqa: F811
    """Wait until the threshold state was decided from the owner's latest balance; return `below`."""
    ledger_schema = wallet.runtime.settings.ledger_schema  # type: ignore[attr-defined]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        latest = await wallet.runtime.pool.fetchval(f"select version from {ledger_schema}.owner_versions where owner_id = $1", owner_id)
        state = await wallet.runtime.pool.fetchrow("select below, version from prepayment_threshold_states where owner_id = $1", owner_id)
        if state is not None and state["version"] == latest:
            return bool(state["below"])
        assert loop.time() < deadline, f"threshold state of {owner_id} not decided: {state}, latest version {latest}"
        await asyncio.sleep(0.1)


async def _crossings(wallet: RunningWallet, bc: str, expect: int) -> list[dict[str, object]]:  # noqa: F811
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        records = await read_all(wallet.bootstrap, wallet.events_topic, expect=1, timeout_s=30, settle_s=0.5)
        found = [json.loads(r.value or b"{}") for r in records if r.key == bc.encode() and r.headers["event-type"] == "PrepaymentThresholdCrossed"]
        if len(found) >= expect or loop.time() > deadline:
            return found
        await asyncio.sleep(0.2)


async def test_w12_prepayment_threshold_crossed_once_per_crossing(wallet: RunningWallet) -> None:  # noqa: F811
    _, token, bc, account = await _open(wallet)
    await wallet.pay(unique("inv"), bc, 10 * USD)  # threshold: 50% of the last payment, 5 USD
    await wallet.balance_until(bc, token, "real_micros", 10 * USD)
    assert await _decided_version(wallet, bc) is False

    await _allocate(wallet, token, bc, account, 6 * USD)  # BC virtual 4 USD < 5 USD
    assert await _decided_version(wallet, bc) is True
    [crossed] = await _crossings(wallet, bc, expect=1)
    assert (crossed["owner_id"], crossed["virtual_micros"], crossed["threshold_micros"], crossed["last_payment_micros"]) == (bc, 4 * USD, 5 * USD, 10 * USD)

    await _allocate(wallet, token, bc, account, USD)  # still below: no second event
    assert await _decided_version(wallet, bc) is True
    assert len(await _crossings(wallet, bc, expect=2)) == 1, "one event per crossing"
