"""`ResizeHold` over `wallet.commands.v1` (rule C2, M4, M5): a hold shrinks in one linked ledger
chain, the difference is back in the balance at once; and the wallet keeps the campaign service's
budget caps (`AdAccountBudgetCapChanged`, W10) for Budget Sync (W5)."""

from __future__ import annotations

import asyncio

import pytest

from adledger_contracts.campaigns import AdAccountBudgetCapChanged
from adledger_contracts.wallet import PlaceHold, ResizeHold, ResolveHold
from adledger_libs.events import encode

from ..conftest import unique
from ..kafka_io import produce
from .test_wallet_commands import _answers, _send
from .test_wallet_journey import PLATFORM, USD, RunningWallet, wallet  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


async def _funded_business_center(wallet: RunningWallet, amount_micros: int) -> tuple[str, str, str]:  # noqa: F811
    admin, token = await wallet.user("admin")
    business_center = unique("bc")
    answer = await wallet.open_business_center(business_center, admin)
    assert answer.status_code == 201, answer.text
    await wallet.pay(unique("inv"), business_center, amount_micros)
    await wallet.balance_until(business_center, token, "real_micros", amount_micros)
    return admin, token, business_center


async def test_c2_m4_m5_resize_hold_releases_the_difference_at_once_in_one_chain(wallet: RunningWallet) -> None:  # noqa: F811
    _, token, bc = await _funded_business_center(wallet, 10 * USD)
    hold, smaller = unique("hold"), unique("hold")
    await _send(wallet, bc, PlaceHold(idempotency_key=hold, hold_id=hold, owner_id=bc, amount_micros=8 * USD, currency="USD", purpose="campaign_booking", requested_by="campaign"))
    await wallet.balance_until(bc, token, "virtual_micros", 2 * USD)

    resize = ResizeHold(idempotency_key=f"{hold}:resize", hold_id=hold, new_hold_id=smaller, amount_micros=3 * USD, requested_by="campaign")
    await _send(wallet, bc, resize, resize)
    answers = await _answers(wallet, bc, 5)
    assert [kind for kind, _ in answers] == ["HoldPlaced", "HoldResolved", "HoldPlaced", "HoldResolved", "HoldPlaced"]
    assert answers[1][1]["hold_id"] == hold and answers[1][1]["action"] == "void"
    assert answers[2][1]["hold_id"] == smaller and answers[2][1]["held_micros"] == 3 * USD
    assert answers[4][1] == {**answers[2][1], "event_id": answers[4][1]["event_id"]}, "M5: a repeat answers the same, applies once"
    balance = await wallet.balance_until(bc, token, "virtual_micros", 7 * USD)
    assert balance["real_micros"] == 10 * USD, "C2: the difference is back at once; the rest stays held"

    # The new hold is a real hold: posting it takes exactly its amount.
    await _send(wallet, bc, ResolveHold(idempotency_key=unique("k"), hold_id=smaller, action="post", requested_by="campaign"))
    balance = await wallet.balance_until(bc, token, "real_micros", 7 * USD)
    assert balance["virtual_micros"] == 7 * USD


async def test_c2_m4_resize_of_an_unknown_resolved_or_not_smaller_hold_is_refused_and_changes_nothing(wallet: RunningWallet) -> None:  # noqa: F811
    _, token, bc = await _funded_business_center(wallet, 10 * USD)
    hold, voided = unique("hold"), unique("hold")
    await _send(
        wallet, bc,
        PlaceHold(idempotency_key=hold, hold_id=hold, owner_id=bc, amount_micros=4 * USD, currency="USD", purpose="campaign_booking", requested_by="campaign"),
        PlaceHold(idempotency_key=voided, hold_id=voided, owner_id=bc, amount_micros=2 * USD, currency="USD", purpose="campaign_booking", requested_by="campaign"),
    )
    await wallet.balance_until(bc, token, "virtual_micros", 4 * USD)
    await _send(wallet, bc, ResolveHold(idempotency_key=unique("k"), hold_id=voided, action="void", requested_by="campaign"))
    await wallet.balance_until(bc, token, "virtual_micros", 6 * USD)

    await _send(
        wallet, bc,
        ResizeHold(idempotency_key=unique("k"), hold_id=hold, new_hold_id=unique("hold"), amount_micros=4 * USD, requested_by="campaign"),
        ResizeHold(idempotency_key=unique("k"), hold_id=voided, new_hold_id=unique("hold"), amount_micros=USD, requested_by="campaign"),
    )
    answers = await _answers(wallet, bc, 5)
    assert [kind for kind, _ in answers[3:]] == ["HoldRejected", "HoldRejected"]
    assert answers[3][1]["error"] == "resize_not_smaller"
    assert answers[4][1]["error"] == "pending_transfer_already_resolved", "a voided hold is never held again"
    unknown = unique("hold")
    await _send(wallet, unknown, ResizeHold(idempotency_key=unique("k"), hold_id=unknown, new_hold_id=unique("hold"), amount_micros=USD, requested_by="campaign"))
    [(kind, body)] = await _answers(wallet, unknown, 1)
    assert (kind, body["error"]) == ("HoldRejected", "unknown_hold")
    balance = (await wallet.get(f"/v1/balances/{bc}", token)).json()
    assert (balance["real_micros"], balance["virtual_micros"]) == (10 * USD, 6 * USD)


async def test_w5_w10_the_wallet_keeps_the_newest_cap_the_campaign_service_published(wallet: RunningWallet) -> None:  # noqa: F811
    admin, token, bc = await _funded_business_center(wallet, USD)
    account = unique("acc")
    answer = await wallet.command(
        "POST", f"/v1/business-centers/{bc}/ad-accounts", token,
        {"id": account, "name": "a", "type": "auction", "billing_option": "monthly_invoicing"},
    )
    assert answer.status_code == 201, answer.text

    def cap(version: int, amount: int | None, kind: str = "daily") -> AdAccountBudgetCapChanged:
        return AdAccountBudgetCapChanged(
            ad_account_id=account, business_center_id=bc, kind=kind, amount_micros=amount, currency="USD",
            source="user", changed_by_user_id=admin, version=version, changed_at=wallet.clock.now(),
        )

    # Version 2 arrives before version 1 (same key, same partition): the older snapshot must not win.
    items = []
    for event in (cap(2, 7 * USD), cap(1, 3 * USD)):
        envelope = encode(event, key=account, trace_id="trace-cap")
        items.append((envelope.key, envelope.value, list(envelope.headers)))
    [_, (partition, last_offset)] = await produce(wallet.bootstrap, "campaign.events.v1", items)
    pool = wallet.runtime.pool
    group = wallet.runtime.settings.consumer_group
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    # Wait until the wallet's stored position is past both records (the database is the truth).
    while not await pool.fetchval(
        "select exists(select 1 from consumer_positions where group_id = $1 and topic = 'campaign.events.v1'"
        " and partition = $2 and next_offset > $3)", group, partition, last_offset,
    ):
        assert loop.time() < deadline, "the wallet did not consume the caps"
        await asyncio.sleep(0.1)
    row = await pool.fetchrow("select budget_kind, budget_micros, budget_version from ad_accounts where id = $1", account)
    assert (row["budget_kind"], row["budget_micros"], row["budget_version"]) == ("daily", 7 * USD, 2)
