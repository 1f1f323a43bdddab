"""The client's own records of the contract: bounded like the platform's, and in agreement with its
models (the client copies the contract; these tests are where the two copies meet)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from adledger_client import Balance, DeliveryDecision, DeliveryState, SpendEvent
from adledger_client.types import MAXIMUM_MICROS
from adledger_contracts.external import BalanceChanged, DeliveryDecided, DeliveryStateChanged, SpendReported
from pydantic import BaseModel, ValidationError

SPEND: dict[str, Any] = {
    "event_id": "e-1",
    "ad_account_id": "acc-1",
    "campaign_id": "cmp-1",
    "amount_micros": 1_500_000,
    "currency": "USD",
    "occurred_at": datetime(2026, 11, 21, 10, tzinfo=UTC),
}


@pytest.mark.parametrize(
    ("client_model", "platform_model"),
    [(SpendEvent, SpendReported), (DeliveryDecision, DeliveryDecided), (DeliveryState, DeliveryStateChanged), (Balance, BalanceChanged)],
)
def test_the_client_names_every_field_of_the_platforms_contract_models(
    client_model: type[BaseModel], platform_model: type[BaseModel]
) -> None:
    # The platform's models add fields the contract allows (overspend_micros); the client must know
    # every field of the contract, and may ignore the additions it does not need.
    contract_fields = set(platform_model.model_fields) - {"overspend_micros"}
    assert contract_fields <= set(client_model.model_fields), contract_fields - set(client_model.model_fields)


def test_a_spend_the_client_writes_is_the_platforms_spend_reported_field_for_field() -> None:
    event = SpendEvent(**SPEND, charge_id="charge-1")
    body = json.loads(event.to_json())
    assert body == {
        "event_id": "e-1", "ad_account_id": "acc-1", "campaign_id": "cmp-1", "amount_micros": 1_500_000,
        "currency": "USD", "occurred_at": "2026-11-21T10:00:00Z", "charge_id": "charge-1",
    }
    assert isinstance(body["amount_micros"], int)
    platform = SpendReported.model_validate_json(event.to_json())
    assert platform.model_dump() == {**SPEND, "charge_id": "charge-1"}


def test_a_spend_without_a_charge_leaves_charge_id_out_and_the_platform_reads_none() -> None:
    event = SpendEvent(**SPEND)
    assert "charge_id" not in json.loads(event.to_json())
    assert SpendReported.model_validate_json(event.to_json()).charge_id is None


@pytest.mark.parametrize(
    "change",
    [
        {"amount_micros": 1.5},
        {"amount_micros": 2.0},
        {"amount_micros": "100"},
        {"amount_micros": True},
        {"amount_micros": 0},
        {"amount_micros": -5},
        {"amount_micros": MAXIMUM_MICROS + 1},
        {"currency": "usd"},
        {"occurred_at": datetime(2026, 11, 21, 10)},  # no offset
        {"occurred_at": datetime(9000, 1, 1, tzinfo=UTC)},
        {"event_id": ""},
        {"event_id": "x" * 129},
        {"ad_account_id": "acc\x00"},
        {"campaign_id": "line\nbreak"},
        {"charge_id": ""},
        {"placement": "feed"},  # a misspelt or unknown field is refused on what the ad server writes
    ],
)
def test_m1_a_spend_that_does_not_fit_the_contract_is_refused_before_it_is_sent(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SpendEvent(**{**SPEND, **change})


def test_the_bounds_the_platform_accepts_are_accepted() -> None:
    event = SpendEvent(**{**SPEND, "amount_micros": MAXIMUM_MICROS, "event_id": "x" * 128})
    assert SpendReported.model_validate_json(event.to_json()).amount_micros == MAXIMUM_MICROS
    assert SpendEvent(**{**SPEND, "amount_micros": 1}).amount_micros == 1


def test_times_are_normalised_to_utc() -> None:
    paris = timezone(timedelta(hours=1))
    event = SpendEvent(**{**SPEND, "occurred_at": datetime(2026, 11, 21, 11, tzinfo=paris)})
    assert event.occurred_at == datetime(2026, 11, 21, 10, tzinfo=UTC) and event.occurred_at.tzinfo == UTC
    assert json.loads(event.to_json())["occurred_at"] == "2026-11-21T10:00:00Z"


def test_an_event_id_is_made_once_and_kept() -> None:
    event = SpendEvent(**{key: value for key, value in SPEND.items() if key != "event_id"})
    assert event.event_id and json.loads(event.to_json())["event_id"] == event.event_id == json.loads(event.to_json())["event_id"]
    with pytest.raises(ValidationError):
        event.event_id = "other"  # type: ignore[misc]


def test_s6_a_final_cost_is_a_new_event_of_the_same_charge_carrying_the_whole_final_amount() -> None:
    first = SpendEvent(**SPEND, charge_id="charge-1")
    final = first.final_cost(1_200_000)
    assert final.event_id != first.event_id
    assert (final.ad_account_id, final.campaign_id, final.currency, final.charge_id, final.occurred_at) == (
        first.ad_account_id, first.campaign_id, first.currency, "charge-1", first.occurred_at,
    )
    assert final.amount_micros == 1_200_000
    assert first.final_cost(1_200_000, event_id="final-1").event_id == "final-1"


@pytest.mark.parametrize("amount", [0, -1, 1.0, MAXIMUM_MICROS + 1])
def test_s6_a_final_cost_is_bounded_like_any_spend(amount: Any) -> None:
    with pytest.raises(ValidationError):
        SpendEvent(**SPEND, charge_id="charge-1").final_cost(amount)


def test_s6_a_spend_without_a_charge_id_cannot_get_a_final_cost() -> None:
    with pytest.raises(ValueError, match="charge_id"):
        SpendEvent(**SPEND).final_cost(1)


def test_records_the_platform_publishes_decode_in_the_client_with_their_unknown_fields_ignored() -> None:
    decided_at = datetime(2026, 11, 21, 10, tzinfo=UTC)
    decision = DeliveryDecided(
        ad_account_id="acc-1", campaign_id=None, action="pause", reason="insufficient_funds", business_center_id="bc-1",
        decided_at=decided_at, cause_event_id="e-1", overspend_micros=5,
    )
    read = DeliveryDecision.model_validate_json(decision.model_dump_json())
    assert (read.ad_account_id, read.campaign_id, read.serving, read.reason, read.cause_event_id, read.event_id) == (
        "acc-1", None, False, "insufficient_funds", "e-1", decision.event_id,
    )
    state = DeliveryStateChanged(ad_account_id="acc-1", campaign_id="cmp-1", serving=True, reason="funds_restored", updated_at=decided_at)
    assert DeliveryState.model_validate_json(state.model_dump_json()).serving is True
    balance = BalanceChanged(
        owner_id="bc-1", owner_kind="business_center", currency="USD", real_micros=-3, virtual_micros=-3, available_micros=7,
        buckets={"cash": -3, "credit_line": 10, "vouchers": 0}, version=4, updated_at=decided_at,  # type: ignore[arg-type]
    )
    read_balance = Balance.model_validate_json(balance.model_dump_json())
    assert (read_balance.version, read_balance.available_micros, read_balance.buckets.credit_line) == (4, 7, 10)


@pytest.mark.parametrize(
    ("model", "value"),
    [
        (DeliveryState, {"ad_account_id": "a", "campaign_id": None, "serving": "yes", "reason": "r", "updated_at": "2026-11-21T10:00:00Z"}),
        (DeliveryState, {"ad_account_id": "a", "campaign_id": None, "serving": 1, "reason": "r", "updated_at": "2026-11-21T10:00:00Z"}),
        (DeliveryDecision, {"ad_account_id": "a", "campaign_id": None, "action": "stop", "reason": "r", "decided_at": "2026-11-21T10:00:00Z"}),
        (DeliveryDecision, {"ad_account_id": "a", "campaign_id": None, "action": "pause", "reason": "r", "decided_at": "2026-11-21T10:00:00"}),
        (Balance, {"owner_id": "a", "owner_kind": "ad_account", "currency": "USD", "real_micros": 1.5, "virtual_micros": 0,
                   "available_micros": 0, "buckets": {"cash": 0, "credit_line": 0, "vouchers": 0}, "version": 1,
                   "updated_at": "2026-11-21T10:00:00Z"}),
        (Balance, {"owner_id": "a", "owner_kind": "ad_account", "currency": "USD", "real_micros": 0, "virtual_micros": 0,
                   "available_micros": 0, "buckets": {"cash": 0, "credit_line": 0, "vouchers": 0}, "version": 0,
                   "updated_at": "2026-11-21T10:00:00Z"}),
    ],
)
def test_records_read_from_kafka_that_do_not_fit_are_refused(model: type[BaseModel], value: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate_json(json.dumps(value))
