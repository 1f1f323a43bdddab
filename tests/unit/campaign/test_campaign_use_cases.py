"""The campaign core's use cases against fakes of its ports (rules C1-C5, W5, W7, W9, W10, T1):
who may do what (the platform's one W9 table), tenants fenced (not yours = does not exist), and
what each use case writes and publishes. No database, no broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from adledger_auth.callers import Caller
from adledger_auth.roles import PermissionDeniedError, Role
from adledger_campaign.core import API_SCOPE, Campaigns, DueDeadlines, Topics
from adledger_campaign.domain.campaigns import Campaign, Status
from adledger_campaign.domain.caps import Cap, CapKind, TooManyCapChangesError
from adledger_campaign.ports.store import AdAccount, NoBudgetCapError, UnknownAdAccountError, UnknownCampaignError
from adledger_contracts.campaigns import AdAccountBudgetCapChanged, CampaignChanged
from adledger_contracts.invoicing import IssueInvoice
from adledger_contracts.wallet import (
    AutomaticBalanceAllocationEnabled,
    BudgetSynced,
    FundsReceived,
    HoldPlaced,
    PlaceHold,
    ResolveHold,
)
from adledger_libs.clock import ManualClock

from .fakes import FakeCampaignStore, FakeTransactions, FakeUnitOfWork, integration, person

USD = 1_000_000
NOW = datetime(2026, 11, 21, 9, tzinfo=UTC)
BC, OTHER_BC = "bc-acme", "bc-other"
MANUAL, ABA = "acc-manual", "acc-aba"

ADMIN = person("ada", {BC: {Role.ADMIN}})
OPERATOR = person("olga", {BC: {Role.OPERATOR}})
FINANCE = person("fay", {BC: {Role.FINANCE_MANAGER}})
ANALYST = person("ana", {BC: {Role.ANALYST}})
STRANGER = person("sam", {OTHER_BC: {Role.ADMIN}})
PLATFORM = person("platform", platform_operator=True)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def store() -> FakeCampaignStore:
    store = FakeCampaignStore()
    store.ad_accounts[MANUAL] = AdAccount(MANUAL, BC, "USD", draws_on_business_center=False)
    store.ad_accounts[ABA] = AdAccount(ABA, BC, "USD", draws_on_business_center=True)
    store.ad_accounts["acc-of-other"] = AdAccount("acc-of-other", OTHER_BC, "USD", draws_on_business_center=False)
    return store


@pytest.fixture
def campaigns(clock: ManualClock) -> Campaigns:
    topics = Topics(
        campaign_events="campaign.events", wallet_commands="wallet.commands", invoicing_commands="invoicing.commands"
    )
    return Campaigns(clock, topics, minimum_budget_micros=USD)


async def _create(campaigns: Campaigns, work: FakeUnitOfWork, caller: Caller = OPERATOR, *, account: str = MANUAL,
                  funding_mode: str = "prepaid", budget_micros: int = 100 * USD) -> Campaign:
    return await campaigns.create_campaign(
        work, caller, ad_account_id=account, name="Winter sale", funding_mode=funding_mode,  # type: ignore[arg-type]
        budget_kind="lifetime", budget_micros=budget_micros, starts_at=None,
        ends_at=campaigns.clock.now() + timedelta(days=3),
    )


# W9: campaigns are Admins' and Operators' (Action.MANAGE_CAMPAIGNS) --------------------------------


@pytest.mark.parametrize("caller", [ADMIN, OPERATOR, PLATFORM], ids=["admin", "operator", "platform_operator"])
async def test_w9_admins_operators_and_platform_operators_create_and_run_campaigns(
    campaigns: Campaigns, store: FakeCampaignStore, caller: Caller
) -> None:
    work = FakeUnitOfWork(store)
    campaign = await _create(campaigns, work, caller, funding_mode="drawdown")
    assert (campaign.status, store.created_by[campaign.id]) == (Status.DRAFT, caller.user_id)
    assert (await campaigns.activate(work, caller, campaign.id)).status is Status.ACTIVE
    assert (await campaigns.pause(work, caller, campaign.id)).status is Status.PAUSED
    assert (await campaigns.resume(work, caller, campaign.id)).status is Status.ACTIVE
    changes = work.messages(CampaignChanged)
    assert [change.changed_by_user_id for change in changes] == [caller.user_id] * 4


@pytest.mark.parametrize("caller", [FINANCE, ANALYST], ids=["finance_manager", "analyst"])
async def test_w9_finance_managers_and_analysts_may_not_run_campaigns_but_may_read_them(
    campaigns: Campaigns, store: FakeCampaignStore, caller: Caller
) -> None:
    work = FakeUnitOfWork(store)
    with pytest.raises(PermissionDeniedError):
        await _create(campaigns, work, caller)
    assert store.campaigns == {} and work.published == [], "a refused command changes nothing"
    campaign = await _create(campaigns, work)
    for command in (campaigns.activate, campaigns.pause, campaigns.resume):
        with pytest.raises(PermissionDeniedError):
            await command(FakeUnitOfWork(store), caller, campaign.id)
    with pytest.raises(PermissionDeniedError):
        await campaigns.change_budget(FakeUnitOfWork(store), caller, campaign.id, 50 * USD)
    read, _ = await campaigns.read_campaign(FakeUnitOfWork(store), caller, campaign.id)
    assert read == store.campaigns[campaign.id] and read.status is Status.DRAFT


# W9: tenants fenced: another Business Center's campaign is answered as one that does not exist -----


async def test_w9_a_user_of_another_business_center_gets_the_answer_of_a_campaign_that_does_not_exist(
    campaigns: Campaigns, store: FakeCampaignStore
) -> None:
    campaign = await _create(campaigns, FakeUnitOfWork(store))
    before = dict(store.campaigns)
    answers = []
    for campaign_id in (campaign.id, "no-such-campaign"):
        for use in (campaigns.read_campaign, campaigns.activate, campaigns.pause, campaigns.resume):
            with pytest.raises(UnknownCampaignError) as caught:
                await use(FakeUnitOfWork(store), STRANGER, campaign_id)
            answers.append(str(caught.value).replace(campaign_id, "<id>"))
        with pytest.raises(UnknownCampaignError) as caught:
            await campaigns.change_budget(FakeUnitOfWork(store), STRANGER, campaign_id, 50 * USD)
        answers.append(str(caught.value).replace(campaign_id, "<id>"))
    assert len(set(answers)) == 1, f"not yours and not there must read the same: {set(answers)}"
    assert store.campaigns == before


async def test_w9_another_business_centers_ad_account_is_answered_as_unknown_for_campaigns_and_caps(
    campaigns: Campaigns, store: FakeCampaignStore
) -> None:
    for account in ("acc-of-other", "no-such-account"):
        with pytest.raises(UnknownAdAccountError) as unknown:
            await _create(campaigns, FakeUnitOfWork(store), ADMIN, account=account)
        assert str(unknown.value) == str(UnknownAdAccountError(account))
        with pytest.raises(UnknownAdAccountError):
            await campaigns.set_cap(FakeUnitOfWork(store), ADMIN, account, Cap(CapKind.DAILY, USD))
        with pytest.raises(UnknownAdAccountError):
            await campaigns.read_cap(FakeUnitOfWork(store), ADMIN, account)
    assert store.campaigns == {} and store.caps == {} and store.cap_changes == []


async def test_an_api_key_needs_the_campaigns_scope(campaigns: Campaigns, store: FakeCampaignStore) -> None:
    roles = {BC: {Role.OPERATOR}}
    with pytest.raises(PermissionDeniedError, match="scope"):
        await _create(campaigns, FakeUnitOfWork(store), integration("ad-tool", roles, scopes={"sends"}))
    with pytest.raises(PermissionDeniedError, match="scope"):
        await campaigns.read_cap(FakeUnitOfWork(store), integration("ad-tool", roles, scopes={"sends"}), MANUAL)
    campaign = await _create(campaigns, FakeUnitOfWork(store), integration("ad-tool", roles, scopes={API_SCOPE}))
    assert store.created_by[campaign.id] == "ad-tool"


# W9, W10: caps are Admins' and Finance Managers' (Action.CHANGE_BUDGET) -----------------------------


@pytest.mark.parametrize("caller", [OPERATOR, ANALYST], ids=["operator", "analyst"])
async def test_w9_only_a_finance_manager_or_an_admin_changes_a_cap(
    campaigns: Campaigns, store: FakeCampaignStore, caller: Caller
) -> None:
    store.with_finance_roles.add(BC)
    with pytest.raises(PermissionDeniedError):
        await campaigns.set_cap(FakeUnitOfWork(store), caller, MANUAL, Cap(CapKind.DAILY, 5 * USD))
    assert store.caps == {} and store.cap_changes == [], "a refused change is not counted (W10)"
    for allowed in (FINANCE, ADMIN, PLATFORM):
        stored, _ = await campaigns.set_cap(FakeUnitOfWork(store), allowed, MANUAL, Cap(CapKind.DAILY, 5 * USD))
        assert stored.cap == Cap(CapKind.DAILY, 5 * USD)
    stored = await campaigns.read_cap(FakeUnitOfWork(store), caller, MANUAL)
    assert stored.cap == Cap(CapKind.DAILY, 5 * USD), "any role reads"


async def test_w9_without_finance_roles_only_admins_change_caps(campaigns: Campaigns, store: FakeCampaignStore) -> None:
    assert BC not in store.with_finance_roles
    with pytest.raises(PermissionDeniedError):
        await campaigns.set_cap(FakeUnitOfWork(store), FINANCE, MANUAL, Cap(CapKind.DAILY, 5 * USD))
    stored, changed = await campaigns.set_cap(FakeUnitOfWork(store), ADMIN, MANUAL, Cap(CapKind.DAILY, 5 * USD))
    assert changed and stored.changed_by_user_id == ADMIN.user_id


async def test_w10_ten_changes_a_utc_day_the_eleventh_refused_the_same_cap_is_no_change_and_midnight_resets(
    campaigns: Campaigns, store: FakeCampaignStore, clock: ManualClock
) -> None:
    for amount in range(1, 11):
        work = FakeUnitOfWork(store)
        stored, changed = await campaigns.set_cap(work, ADMIN, MANUAL, Cap(CapKind.DAILY, amount * USD))
        assert changed and stored.version == amount
        [event] = work.messages(AdAccountBudgetCapChanged)
        assert (event.version, event.source, event.changed_by_user_id) == (amount, "user", ADMIN.user_id)
    same = FakeUnitOfWork(store)
    stored, changed = await campaigns.set_cap(same, ADMIN, MANUAL, Cap(CapKind.DAILY, 10 * USD))
    assert (changed, stored.version, same.published) == (False, 10, [])
    with pytest.raises(TooManyCapChangesError):
        await campaigns.set_cap(FakeUnitOfWork(store), ADMIN, MANUAL, Cap(CapKind.MONTHLY, 50 * USD))
    assert len(store.cap_changes) == 10
    clock.set(datetime(2026, 11, 22, tzinfo=UTC))
    stored, changed = await campaigns.set_cap(FakeUnitOfWork(store), ADMIN, MANUAL, Cap(CapKind.MONTHLY, 50 * USD))
    assert changed and stored.version == 11


async def test_w10_an_account_with_no_cap_reads_as_not_found(campaigns: Campaigns, store: FakeCampaignStore) -> None:
    with pytest.raises(NoBudgetCapError):
        await campaigns.read_cap(FakeUnitOfWork(store), ANALYST, MANUAL)


async def test_w5_budget_sync_gives_the_cap_the_wallet_computed_not_counted(
    campaigns: Campaigns, store: FakeCampaignStore
) -> None:
    work = FakeUnitOfWork(store)
    await campaigns.aba_enabled(work, AutomaticBalanceAllocationEnabled(
        business_center_id=BC, eligible_ad_account_ids=[MANUAL], ineligible_ad_account_ids=[], cash_moves=[],
        budget_syncs=[BudgetSynced(ad_account_id=MANUAL, budget_kind="monthly", budget_micros=7 * USD, synced=True)],
        enabled_at=NOW,
    ))
    assert store.ad_accounts[MANUAL].draws_on_business_center, "W7: it now draws on the BC"
    assert (store.caps[MANUAL].cap, store.caps[MANUAL].source) == (Cap(CapKind.MONTHLY, 7 * USD), "budget_sync")
    [event] = work.messages(AdAccountBudgetCapChanged)
    assert (event.source, event.changed_by_user_id, event.version) == ("budget_sync", None, 1)
    assert store.cap_changes == []


# C1, W7: the booking through the wallet and invoicing, as the core publishes it ---------------------


async def test_c1_w7_an_aba_accounts_booking_is_held_on_the_business_center_and_a_shortfall_invoiced(
    campaigns: Campaigns, store: FakeCampaignStore
) -> None:
    campaign = await _create(campaigns, FakeUnitOfWork(store), account=ABA)
    work = FakeUnitOfWork(store)
    await campaigns.activate(work, OPERATOR, campaign.id)
    [place] = work.messages(PlaceHold)
    assert (place.owner_id, place.amount_micros, place.allow_partial) == (BC, 100 * USD, True)
    assert work.published[0].topic == "wallet.commands" and work.published[0].key == BC

    answered = FakeUnitOfWork(store)
    await campaigns.hold_placed(answered, HoldPlaced(
        hold_id=place.hold_id, owner_id=BC, requested_micros=100 * USD, held_micros=40 * USD, currency="USD",
        requested_by="campaign", placed_at=NOW,
    ))
    [invoice] = answered.messages(IssueInvoice)
    assert [item.topic for item in answered.published if item.message is invoice] == ["invoicing.commands"]
    assert (invoice.owner_id, invoice.amount_micros, invoice.reference_id) == (BC, 60 * USD, campaign.id)
    assert store.campaigns[campaign.id].status is Status.AWAITING_PAYMENT

    paid = FakeUnitOfWork(store)
    await campaigns.funds_received(paid, FundsReceived(
        owner_id=BC, invoice_id=invoice.invoice_id, amount_micros=60 * USD, overspend_covered_micros=0, currency="USD",
        received_at=NOW,
    ))
    [rest] = paid.messages(PlaceHold)
    assert (rest.owner_id, rest.amount_micros) == (BC, 60 * USD)


async def test_c3_t1_the_deadline_job_ends_and_settles_once_and_a_failed_deadline_changes_nothing(
    campaigns: Campaigns, store: FakeCampaignStore, clock: ManualClock
) -> None:
    campaign = await _create(campaigns, FakeUnitOfWork(store), budget_micros=10 * USD)
    work = FakeUnitOfWork(store)
    await campaigns.activate(work, OPERATOR, campaign.id)
    [place] = work.messages(PlaceHold)
    await campaigns.hold_placed(FakeUnitOfWork(store), HoldPlaced(
        hold_id=place.hold_id, owner_id=MANUAL, requested_micros=10 * USD, held_micros=10 * USD, currency="USD",
        requested_by="campaign", placed_at=NOW,
    ))
    transactions = FakeTransactions(store)
    deadlines = DueDeadlines(transactions, campaigns)
    assert await deadlines.run() == 0, "nothing due before the end"
    clock.set(NOW + timedelta(days=3))
    assert await deadlines.run() == 1 and store.campaigns[campaign.id].status is Status.ENDED
    clock.advance(timedelta(hours=48))
    assert await deadlines.run() == 1
    assert await deadlines.run() == 0, "exactly once"
    [resolve] = [message for work in transactions.committed for message in work.messages(ResolveHold)]
    assert (resolve.hold_id, resolve.action) == (place.hold_id, "void"), "nothing delivered: all of it credited back"

    # A deadline whose use case fails is rolled back: not marked done, nothing published.
    other = await _create(campaigns, FakeUnitOfWork(store), funding_mode="drawdown")
    clock.advance(timedelta(days=3))
    del store.campaigns[other.id]  # the campaign row is gone: the job must fail, not mark the deadline done
    with pytest.raises(UnknownCampaignError):
        await deadlines.run()
    assert store.deadlines[(other.id, "end")].done_at is None
