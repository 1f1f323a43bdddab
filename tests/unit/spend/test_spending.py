"""The spend consumer's pure decisions: takes in W7 order, the pause's exact cause (W8),
overspend (S2) and final-cost adjustments (S6)."""

from adledger_spend_consumer.domain.spending import (
    AccountProfile,
    ChargeTakes,
    OwnerFunds,
    Spend,
    accounts_to_resume,
    decide_batch,
)

MANUAL = AccountProfile("manual", "bc-1", "USD", draws_on_business_center=False)
ABA_1 = AccountProfile("aba-1", "bc-2", "USD", draws_on_business_center=True)
ABA_2 = AccountProfile("aba-2", "bc-2", "USD", draws_on_business_center=True)
ABA_3 = AccountProfile("aba-3", "bc-2", "USD", draws_on_business_center=True)
ACCOUNTS = {profile.ad_account_id: profile for profile in (MANUAL, ABA_1, ABA_2, ABA_3)}
MEMBERS = {"bc-2": ["aba-1", "aba-2", "aba-3"]}


def spend(event_id: str, account: str, amount_micros: int, charge_id: str | None = None) -> Spend:
    return Spend(event_id, account, "campaign-1", amount_micros, charge_id)


def decide(spends: list[Spend], funds: dict, *, paused: set[str] | None = None, charges: dict | None = None):  # type: ignore[no-untyped-def,type-arg]
    return decide_batch(
        spends, accounts=ACCOUNTS, funds=funds, charges=charges or {}, paused_account_ids=paused or set(), aba_members=MEMBERS
    )


def test_w7_w8_manual_account_takes_vouchers_then_cash_and_pauses_at_the_event_that_reaches_zero() -> None:
    funds = {("ad_account", "manual"): OwnerFunds(vouchers_micros=30, cash_micros=70)}
    decision = decide([spend("e1", "manual", 40), spend("e2", "manual", 60), spend("e3", "manual", 5)], funds)

    assert decision.movements == {("ad_account", "manual", "vouchers"): 30, ("ad_account", "manual", "cash"): 70,
                                  ("ad_account", "manual", "overspend"): 5}
    assert [(pause.ad_account_id, pause.cause_event_id, pause.overspend_micros) for pause in decision.pauses] == [("manual", "e2", 5)]
    assert decision.touched_owners == [("ad_account", "manual")]


def test_w8_funds_that_stay_above_zero_pause_nothing() -> None:
    decision = decide([spend("e1", "manual", 40)], {("ad_account", "manual"): OwnerFunds(cash_micros=41)})
    assert decision.pauses == [] and decision.movements == {("ad_account", "manual", "cash"): 40}


def test_w8_an_account_with_no_funds_pauses_at_its_first_spend() -> None:
    decision = decide([spend("e1", "manual", 1), spend("e2", "manual", 1)], {})
    assert [(pause.cause_event_id, pause.overspend_micros) for pause in decision.pauses] == [("e1", 2)]


def test_w7_w8_aba_accounts_share_the_business_center_and_its_zero_pauses_every_aba_account() -> None:
    funds = {
        ("ad_account", "aba-1"): OwnerFunds(vouchers_micros=10),
        ("business_center", "bc-2"): OwnerFunds(vouchers_micros=5, cash_micros=20, credit_line_micros=15),
        # aba-3 still has vouchers of its own (W6): it can draw on them, so it keeps serving.
        ("ad_account", "aba-3"): OwnerFunds(vouchers_micros=7),
    }
    decision = decide([spend("e1", "aba-1", 30), spend("e2", "aba-2", 20), spend("e3", "aba-1", 10)], funds)

    assert decision.movements == {
        ("ad_account", "aba-1", "vouchers"): 10,
        ("business_center", "bc-2", "vouchers"): 5,
        ("business_center", "bc-2", "cash"): 20,
        ("business_center", "bc-2", "credit_line"): 15,
        ("business_center", "bc-2", "overspend"): 10,
    }
    # e2 (aba-2) takes the last of the credit line: both accounts with empty buckets pause, with e2 as cause.
    assert sorted((pause.ad_account_id, pause.cause_event_id) for pause in decision.pauses) == [("aba-1", "e2"), ("aba-2", "e2")]
    # aba-1's later spend is overspend, added to its pause (S2).
    assert {pause.ad_account_id: pause.overspend_micros for pause in decision.pauses} == {"aba-1": 10, "aba-2": 0}


def test_w8_s2_an_account_already_paused_is_not_paused_again_and_its_overspend_adds_to_the_open_pause() -> None:
    decision = decide([spend("e1", "manual", 3), spend("e2", "manual", 4)], {}, paused={"manual"})
    assert decision.pauses == []
    assert decision.overspend_of_open_pauses_micros == {"manual": 7}
    assert decision.overspend_micros_by_currency == {"USD": 7}


def test_s2_overspend_nets_against_cash_first() -> None:
    # Cash 10 posted but an overspend of 4 outstanding: only 6 can still be spent.
    funds = {("ad_account", "manual"): OwnerFunds(cash_micros=6, overspend_debt_micros=4)}
    decision = decide([spend("e1", "manual", 8)], funds)
    assert decision.movements == {("ad_account", "manual", "cash"): 6, ("ad_account", "manual", "overspend"): 2}


def test_s6_a_higher_final_cost_takes_only_the_difference() -> None:
    funds = {("ad_account", "manual"): OwnerFunds(cash_micros=100)}
    earlier = {"c1": ChargeTakes("manual", amount_micros=10, account_cash_micros=10)}
    decision = decide([spend("e2", "manual", 25, "c1")], funds, charges=earlier)
    assert decision.movements == {("ad_account", "manual", "cash"): 15}
    assert decision.charges["c1"].amount_micros == 25 and decision.charges["c1"].account_cash_micros == 25


def test_s6_a_charge_in_one_batch_twice_and_an_equal_final_cost_take_once() -> None:
    funds = {("ad_account", "manual"): OwnerFunds(cash_micros=100)}
    decision = decide([spend("e1", "manual", 10, "c1"), spend("e2", "manual", 12, "c1"), spend("e3", "manual", 12, "c1")], funds)
    assert decision.movements == {("ad_account", "manual", "cash"): 12}


def test_s6_a_lower_final_cost_gives_back_the_difference_from_the_last_bucket_first() -> None:
    funds = {("ad_account", "aba-1"): OwnerFunds(), ("business_center", "bc-2"): OwnerFunds(overspend_debt_micros=3)}
    earlier = {"c1": ChargeTakes("aba-1", amount_micros=20, account_vouchers_micros=5, center_cash_micros=12, overspend_micros=3)}
    decision = decide([spend("e2", "aba-1", 4, "c1")], funds, charges=earlier, paused={"aba-1"})
    assert decision.movements == {
        ("business_center", "bc-2", "overspend"): -3,
        ("business_center", "bc-2", "cash"): -12,
        ("ad_account", "aba-1", "vouchers"): -1,
    }
    assert decision.charges["c1"] == ChargeTakes("aba-1", amount_micros=4, account_vouchers_micros=4)


def test_s6_a_refund_of_overspend_already_paid_goes_back_to_cash() -> None:
    funds = {("ad_account", "manual"): OwnerFunds(cash_micros=50)}
    earlier = {"c1": ChargeTakes("manual", amount_micros=8, account_cash_micros=5, overspend_micros=3)}
    decision = decide([spend("e2", "manual", 6, "c1")], funds, charges=earlier)
    assert decision.movements == {("ad_account", "manual", "cash"): -2}


def test_s5_a_charge_id_of_another_account_is_rejected_and_takes_nothing() -> None:
    funds = {("ad_account", "manual"): OwnerFunds(cash_micros=50)}
    earlier = {"c1": ChargeTakes("aba-1", amount_micros=8, account_cash_micros=8)}
    decision = decide([spend("e1", "manual", 6, "c1")], funds, charges=earlier)
    assert [rejected.index for rejected in decision.rejected] == [0] and decision.movements == {}


def test_w8_resume_when_the_funds_an_account_draws_on_are_above_zero() -> None:
    funds = {
        ("ad_account", "manual"): OwnerFunds(cash_micros=-2, overspend_debt_micros=2),
        ("ad_account", "aba-1"): OwnerFunds(),
        ("business_center", "bc-2"): OwnerFunds(cash_micros=1),
    }
    assert accounts_to_resume(["manual", "aba-1"], accounts=ACCOUNTS, funds=funds) == ["aba-1"]
