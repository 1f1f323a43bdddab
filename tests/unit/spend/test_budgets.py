"""The spend consumer's pure decisions about budgets (S3), caps (W10), prepaid bookings (C1),
campaign statuses (C5), the causes of pauses per key (S4) and posted spend."""

from datetime import UTC, date, datetime

from adledger_spend_consumer.core import posted_event_id
from adledger_spend_consumer.domain import delivery
from adledger_spend_consumer.domain.budgets import (
    AccountCap,
    CampaignBudget,
    campaign_changes,
    cap_changes,
    cap_period_starts_on,
    cap_reached,
    status_cause,
)
from adledger_spend_consumer.domain.spending import AccountProfile, ChargeTakes, OwnerFunds, Spend, decide_batch

TODAY = date(2026, 11, 21)
MANUAL = AccountProfile("manual", "bc-1", "USD", draws_on_business_center=False)
ABA_1 = AccountProfile("aba-1", "bc-2", "USD", draws_on_business_center=True)
ABA_2 = AccountProfile("aba-2", "bc-2", "USD", draws_on_business_center=True)
ACCOUNTS = {profile.ad_account_id: profile for profile in (MANUAL, ABA_1, ABA_2)}
MEMBERS = {"bc-2": ["aba-1", "aba-2"]}
RICH = {("ad_account", "manual"): OwnerFunds(cash_micros=1_000)}


def spend(event_id: str, amount_micros: int, *, campaign: str = "c1", account: str = "manual", charge_id: str | None = None,
          at: int = 0) -> Spend:
    return Spend(event_id, account, campaign, amount_micros, charge_id, datetime(2026, 11, 21, 9, at, tzinfo=UTC))


def drawdown(budget_micros: int, *, kind: str = "lifetime", spent: int = 0, day_spent: int = 0, campaign: str = "c1") -> CampaignBudget:
    return CampaignBudget("manual", campaign, "drawdown", kind, budget_micros, 0, spent, day_spent)


def prepaid(booked_micros: int, *, spent: int = 0, from_booking: int = 0) -> CampaignBudget:
    return CampaignBudget("manual", "c1", "prepaid", "lifetime", booked_micros, booked_micros, spent, 0, from_booking)


def decide(spends: list[Spend], *, funds: dict | None = None, campaigns: dict | None = None, caps: dict | None = None,  # type: ignore[type-arg]
           charges: dict | None = None, paused_keys: frozenset[str] = frozenset(), paused: set[str] | None = None):  # type: ignore[no-untyped-def,type-arg]
    return decide_batch(
        spends, accounts=ACCOUNTS, funds=RICH if funds is None else funds, charges=charges or {}, paused_account_ids=paused or set(),
        aba_members=MEMBERS, campaigns=campaigns or {}, caps=caps or {}, today=TODAY, budget_paused_keys=paused_keys,
    )


# ------------------------------------------------------------------------------------------------
# Campaign budgets (S3)
# ------------------------------------------------------------------------------------------------


def test_s3_campaign_budget_pauses_the_campaign_at_the_event_that_reaches_it_inside_a_batch() -> None:
    decision = decide([spend("e1", 40), spend("e2", 60), spend("e3", 5)], campaigns={("manual", "c1"): drawdown(100)})
    assert [(p.ad_account_id, p.campaign_id, p.reason, p.cause_event_id) for p in decision.budget_pauses] == [
        ("manual", "c1", "campaign_budget_reached", "e2")
    ]
    # S2: what was served after is still taken; the account's funds are untouched by the budget.
    assert decision.movements == {("ad_account", "manual", "cash"): 105}
    assert decision.pauses == []
    assert decision.campaigns[("manual", "c1")].spent_micros == 105


def test_s3_campaign_budget_counts_spend_from_earlier_batches_and_does_not_pause_twice() -> None:
    campaigns = {("manual", "c1"): drawdown(100, spent=90)}
    assert [p.cause_event_id for p in decide([spend("e1", 5), spend("e2", 5)], campaigns=campaigns).budget_pauses] == ["e2"]
    already = decide([spend("e1", 50)], campaigns=campaigns, paused_keys=frozenset({"manual/c1"}))
    assert already.budget_pauses == []


def test_s3_daily_budget_counts_only_the_days_spend() -> None:
    # A lifetime spend far above the budget does not matter for a daily budget; the day's does.
    campaigns = {("manual", "c1"): drawdown(100, kind="daily", spent=5_000, day_spent=70)}
    decision = decide([spend("e1", 20), spend("e2", 10)], campaigns=campaigns)
    assert [p.cause_event_id for p in decision.budget_pauses] == ["e2"]
    assert decision.campaigns[("manual", "c1")].day_spent_micros == 100


def test_s3_a_campaign_the_consumer_does_not_know_has_no_budget() -> None:
    decision = decide([spend("e1", 500, campaign="unknown")], campaigns={("manual", "c1"): drawdown(100)})
    assert decision.budget_pauses == [] and decision.campaigns == {}


def test_s3_w8_aba_business_center_at_zero_pauses_its_accounts_whatever_their_campaign_budget() -> None:
    funds = {("ad_account", "aba-1"): OwnerFunds(), ("ad_account", "aba-2"): OwnerFunds(), ("business_center", "bc-2"): OwnerFunds(cash_micros=30)}
    campaigns = {("aba-1", "c1"): CampaignBudget("aba-1", "c1", "drawdown", "lifetime", 1_000_000, 0)}
    decision = decide([spend("e1", 30, account="aba-1")], funds=funds, campaigns=campaigns)
    assert sorted((p.ad_account_id, p.cause_event_id) for p in decision.pauses) == [("aba-1", "e1"), ("aba-2", "e1")]
    assert decision.budget_pauses == []


# ------------------------------------------------------------------------------------------------
# Ad-account caps (S3, W10)
# ------------------------------------------------------------------------------------------------


def test_s3_w10_account_cap_pauses_the_account_at_the_event_that_reaches_it() -> None:
    caps = {"manual": AccountCap("manual", "monthly", 100, period_spent_micros=60)}
    decision = decide([spend("e1", 30), spend("e2", 10, campaign="c2"), spend("e3", 10)], caps=caps)
    assert [(p.ad_account_id, p.campaign_id, p.reason, p.cause_event_id) for p in decision.budget_pauses] == [
        ("manual", None, "account_budget_reached", "e2")
    ]
    assert decision.account_spend_micros == {"manual": 50}


def test_s3_w10_custom_cap_applies_only_on_its_days_and_unlimited_never() -> None:
    custom = AccountCap("manual", "custom", 10, starts_on=date(2026, 11, 22), ends_on=date(2026, 11, 30), period_spent_micros=0)
    assert decide([spend("e1", 50)], caps={"manual": custom}).budget_pauses == []
    assert not custom.applies_on(TODAY) and custom.applies_on(date(2026, 11, 22)) and custom.applies_on(date(2026, 11, 30))
    assert not custom.applies_on(date(2026, 12, 1))
    unlimited = AccountCap("manual", "unlimited", None, period_spent_micros=10**12)
    assert not cap_reached(unlimited, TODAY)


def test_w10_cap_periods_start_on_the_day_the_first_of_the_month_or_the_custom_start() -> None:
    assert cap_period_starts_on("daily", None, TODAY) == TODAY
    assert cap_period_starts_on("monthly", None, TODAY) == date(2026, 11, 1)
    assert cap_period_starts_on("custom", date(2026, 11, 15), TODAY) == date(2026, 11, 15)


def test_s3_w10_raising_or_lifting_a_cap_resumes_and_lowering_it_below_the_spend_pauses() -> None:
    reached = AccountCap("manual", "daily", 100, period_spent_micros=100)
    raised = AccountCap("manual", "daily", 150, period_spent_micros=100)
    lifted = AccountCap("manual", "unlimited", None, period_spent_micros=100)
    paused = ("account_budget_reached",)
    assert [(c.cause, c.starts) for c in cap_changes(reached, TODAY, causes=(), business_center_id=None)] == [("account_budget_reached", True)]
    assert cap_changes(reached, TODAY, causes=paused, business_center_id=None) == []
    for cap in (raised, lifted):
        [change] = cap_changes(cap, TODAY, causes=paused, business_center_id=None)
        assert (change.cause, change.starts, change.reason) == ("account_budget_reached", False, "account_budget_raised")


# ------------------------------------------------------------------------------------------------
# Prepaid campaigns (C1, S3, S6)
# ------------------------------------------------------------------------------------------------


def test_c1_s3_prepaid_spend_is_counted_against_the_booking_moves_no_money_and_pauses_at_booked() -> None:
    decision = decide([spend("e1", 60), spend("e2", 40)], campaigns={("manual", "c1"): prepaid(100)})
    assert decision.movements == {}, "the booking is held by the wallet: nothing is taken in W7 order"
    assert [(p.campaign_id, p.reason, p.cause_event_id) for p in decision.budget_pauses] == [("c1", "campaign_budget_reached", "e2")]
    assert decision.campaigns[("manual", "c1")].from_booking_micros == 100
    [posted] = decision.posted
    assert (posted.funding_mode, posted.amount_micros, posted.from_booking_micros) == ("prepaid", 100, 100)


def test_c1_s2_w7_prepaid_spend_beyond_the_booking_is_taken_in_w7_order() -> None:
    funds = {("ad_account", "manual"): OwnerFunds(vouchers_micros=5, cash_micros=100)}
    decision = decide([spend("e1", 90), spend("e2", 30)], funds=funds, campaigns={("manual", "c1"): prepaid(100)})
    # 100 from the booking, the 20 beyond it from vouchers then cash (W7).
    assert decision.movements == {("ad_account", "manual", "vouchers"): 5, ("ad_account", "manual", "cash"): 15}
    assert [p.cause_event_id for p in decision.budget_pauses] == ["e2"]
    [posted] = decision.posted
    assert (posted.amount_micros, posted.from_booking_micros) == (120, 100)


def test_c1_s6_prepaid_final_costs_take_only_the_difference_and_give_back_w7_first() -> None:
    funds = {("ad_account", "manual"): OwnerFunds(cash_micros=100)}
    campaigns = {("manual", "c1"): prepaid(100, spent=80, from_booking=80)}
    earlier = {"k1": ChargeTakes("manual", amount_micros=80, booking_micros=80)}
    higher = decide([spend("e2", 110, charge_id="k1")], funds=funds, campaigns=campaigns, charges=earlier)
    # Only the difference (30): 20 still on the booking, 10 beyond it in W7 order.
    assert higher.movements == {("ad_account", "manual", "cash"): 10}
    assert higher.charges["k1"] == ChargeTakes("manual", amount_micros=110, account_cash_micros=10, booking_micros=100)
    [posted] = higher.posted
    assert (posted.amount_micros, posted.from_booking_micros) == (30, 20)

    # A lower final cost gives back the W7 part first (the reverse of the order taken), then the booking's.
    campaigns_after = {("manual", "c1"): prepaid(100, spent=110, from_booking=100)}
    lower = decide([spend("e3", 95, charge_id="k1")], funds=funds, campaigns=campaigns_after, charges=higher.charges)
    assert lower.movements == {("ad_account", "manual", "cash"): -10}
    assert lower.charges["k1"] == ChargeTakes("manual", amount_micros=95, booking_micros=95)
    assert lower.campaigns[("manual", "c1")].from_booking_micros == 95
    assert lower.campaigns[("manual", "c1")].spent_micros == 95
    [posted] = lower.posted
    assert (posted.amount_micros, posted.from_booking_micros) == (-15, -5)


# ------------------------------------------------------------------------------------------------
# Posted spend
# ------------------------------------------------------------------------------------------------


def test_posted_spend_is_summed_per_account_and_campaign_with_the_first_event_and_times() -> None:
    decision = decide([spend("e1", 10, at=5), spend("e2", 20, campaign="c2", at=1), spend("e3", 30, at=2), spend("e4", 5, charge_id="k", at=9)])
    summed = {(p.campaign_id): (p.amount_micros, p.spend_event_count, p.first_event_id, p.first_occurred_at.minute, p.last_occurred_at.minute)
              for p in decision.posted}  # type: ignore[union-attr]
    assert summed == {"c1": (45, 3, "e1", 2, 9), "c2": (20, 1, "e2", 1, 1)}
    assert all(p.funding_mode == "drawdown" and p.from_booking_micros == 0 for p in decision.posted)


def test_posted_spend_ids_are_derived_from_the_group_so_a_replay_gives_the_same_id() -> None:
    assert posted_event_id("a", "c", "e1") == posted_event_id("a", "c", "e1")
    assert len({posted_event_id("a", "c", "e1"), posted_event_id("a", "c", "e2"), posted_event_id("a", "d", "e1")}) == 3
    assert len(posted_event_id("a" * 128, "c" * 128, "e" * 128)) <= 128


# ------------------------------------------------------------------------------------------------
# Campaign status and budget changes (C5, S3)
# ------------------------------------------------------------------------------------------------


def test_c5_statuses_put_causes_on_the_campaign() -> None:
    assert status_cause("active", None) is None
    assert status_cause("paused", "user") == "manual" and status_cause("paused", None) == "manual"
    # The campaign service echoing this consumer's own pauses is not a new cause.
    assert status_cause("paused", "budget") is None and status_cause("paused", "funds") is None
    assert (status_cause("draft", None), status_cause("awaiting_payment", None), status_cause("ended", None)) == (
        "campaign_draft", "campaign_awaiting_payment", "campaign_ended",
    )


def _changes(campaign: CampaignBudget, status: str, causes: tuple[str, ...] = (), pause_cause: str | None = None) -> list[tuple[str, bool, str]]:
    return [(c.cause, c.starts, c.reason) for c in campaign_changes(campaign, status=status, pause_cause=pause_cause, causes=causes, business_center_id=None)]


def test_manual_pause_and_resume_of_a_campaign() -> None:
    campaign = drawdown(100, spent=10)
    assert _changes(campaign, "paused", pause_cause="user") == [("manual", True, "manual")]
    assert _changes(campaign, "paused", ("manual",), pause_cause="user") == [], "no duplicate pause for one cause"
    assert _changes(campaign, "active", ("manual",)) == [("manual", False, "manual")]
    assert _changes(campaign, "active", ("campaign_draft",)) == [("campaign_draft", False, "campaign_activated")]


def test_s3_raising_the_budget_above_the_spend_resumes_and_lowering_it_to_the_spend_pauses() -> None:
    assert _changes(drawdown(100, spent=100), "active") == [("campaign_budget_reached", True, "campaign_budget_reached")]
    assert _changes(drawdown(100, spent=100), "active", ("campaign_budget_reached",)) == []
    assert _changes(drawdown(101, spent=100), "active", ("campaign_budget_reached",)) == [
        ("campaign_budget_reached", False, "budget_raised")
    ]


def test_a_new_cause_starts_before_an_old_one_ends_so_the_campaign_never_serves_in_between() -> None:
    assert _changes(drawdown(100, spent=100), "active", ("manual",)) == [
        ("campaign_budget_reached", True, "campaign_budget_reached"), ("manual", False, "manual"),
    ]


# ------------------------------------------------------------------------------------------------
# Causes per key (S4)
# ------------------------------------------------------------------------------------------------


def test_s4_keys_are_the_account_or_account_slash_campaign() -> None:
    assert delivery.state_key("acc", None) == "acc" and delivery.state_key("acc", "c1") == "acc/c1"


def test_s4_a_key_resumes_only_when_its_last_cause_ends_and_a_cause_in_force_is_not_published_again() -> None:
    changes = [
        delivery.start("acc", None, "insufficient_funds", cause_event_id="e1"),
        delivery.start("acc", None, "insufficient_funds", cause_event_id="e2"),
        delivery.start("acc", None, "account_budget_reached", cause_event_id="e3"),
        delivery.end("acc", None, "insufficient_funds", "funds_restored"),
        delivery.end("acc", None, "insufficient_funds", "funds_restored"),
        delivery.end("acc", None, "account_budget_reached", "account_budget_raised"),
    ]
    transitions, after = delivery.resolve({}, changes)
    assert [(t.change.cause, t.action, t.serving, t.state_reason) for t in transitions] == [
        ("insufficient_funds", "pause", False, "insufficient_funds"),
        ("account_budget_reached", "pause", False, "account_budget_reached"),
        ("insufficient_funds", None, False, "account_budget_reached"),
        ("account_budget_reached", "resume", True, "account_budget_raised"),
    ]
    assert after == {"acc": ()}


def test_s4_causes_already_in_force_come_from_the_stored_state() -> None:
    transitions, after = delivery.resolve({"acc/c1": ("manual",)}, [delivery.start("acc", "c1", "manual"), delivery.end("acc", "c1", "manual", "manual")])
    assert [(t.change.key, t.action) for t in transitions] == [("acc/c1", "resume")]
    assert after == {"acc/c1": ()}


def test_c1_a_prepaid_campaign_with_nothing_booked_yet_is_paused_by_its_status_not_its_budget() -> None:
    nothing_booked = CampaignBudget("manual", "c1", "prepaid", "lifetime", 100, 0)
    assert _changes(nothing_booked, "awaiting_payment") == [("campaign_awaiting_payment", True, "campaign_awaiting_payment")]
    # Spend with nothing booked is beyond the booking at once.
    decision = decide([spend("e1", 10)], campaigns={("manual", "c1"): nothing_booked})
    assert [p.cause_event_id for p in decision.budget_pauses] == ["e1"]
    assert decision.movements == {("ad_account", "manual", "cash"): 10}
