import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from adledger_contracts import BalanceChanged, DeliveryDecided, SpendReported
from adledger_libs.events import DecodeError, decode, encode, headers_to_dict
from adledger_libs.money import CurrencyMismatchError, require_same_currency, units_to_micros

SPEND = {
    "event_id": "e-1",
    "ad_account_id": "acc-1",
    "campaign_id": "cmp-1",
    "amount_micros": 1_500_000,
    "currency": "USD",
    "occurred_at": "2026-11-21T10:00:00Z",
}


def test_envelope_carries_the_contract_headers() -> None:
    event = DeliveryDecided(
        ad_account_id="acc-1",
        campaign_id=None,
        action="pause",
        reason="insufficient_funds",
        business_center_id="bc-1",
        decided_at=datetime(2026, 11, 21, tzinfo=UTC),
        cause_event_id="e-1",
    )
    envelope = encode(event, key="acc-1", trace_id="trace-7")
    headers = headers_to_dict(envelope.headers)
    assert headers["event-type"] == "DeliveryDecided"
    assert headers["schema-version"] == "1"
    assert headers["trace-id"] == "trace-7"
    assert headers["event-id"] == event.event_id == envelope.event_id
    assert envelope.key == b"acc-1"
    body = json.loads(envelope.value)
    assert body["campaign_id"] is None and body["action"] == "pause" and body["cause_event_id"] == "e-1"
    assert decode(DeliveryDecided, envelope.value) == event


def test_events_are_frozen_and_ignore_unknown_fields() -> None:
    event = decode(SpendReported, json.dumps({**SPEND, "placement": "feed"}).encode())
    assert event.amount_micros == 1_500_000
    with pytest.raises(ValidationError):
        event.amount_micros = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"amount_micros": 1.5}, "amount_micros"),
        ({"amount_micros": 2.0}, "amount_micros"),
        ({"amount_micros": "100"}, "amount_micros"),
        ({"amount_micros": True}, "amount_micros"),
        ({"amount_micros": 0}, "amount_micros"),
        ({"amount_micros": -5}, "amount_micros"),
        ({"currency": "usd"}, "currency"),
        ({"occurred_at": "2026-11-21T10:00:00"}, "occurred_at"),
        ({"event_id": ""}, "event_id"),
        ({"event_id": "x" * 129}, "event_id"),
    ],
)
def test_m1_spend_with_a_float_or_bad_field_is_rejected_with_the_field_named(
    change: dict[str, object], complaint: str
) -> None:
    with pytest.raises(DecodeError) as raised:
        decode(SpendReported, json.dumps({**SPEND, **change}).encode())
    assert complaint in raised.value.reason


def test_decode_names_non_json_and_tombstones() -> None:
    with pytest.raises(DecodeError, match="invalid SpendReported"):
        decode(SpendReported, b"{not json")
    with pytest.raises(DecodeError, match="tombstone"):
        decode(SpendReported, None)


def test_times_are_normalised_to_utc() -> None:
    event = decode(SpendReported, json.dumps({**SPEND, "occurred_at": "2026-11-21T12:00:00+02:00"}).encode())
    assert event.occurred_at == datetime(2026, 11, 21, 10, tzinfo=UTC)


def test_m1_money_helpers_refuse_floats() -> None:
    assert units_to_micros(3) == 3_000_000
    with pytest.raises(TypeError):
        units_to_micros(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        BalanceChanged.model_validate(
            {
                "owner_id": "bc-1",
                "owner_kind": "business_center",
                "currency": "USD",
                "real_micros": 10.0,
                "virtual_micros": 0,
                "available_micros": 0,
                "buckets": {"cash": 0, "credit_line": 0, "vouchers": 0},
                "version": 1,
                "updated_at": "2026-11-21T00:00:00Z",
            }
        )


def test_m2_mixing_currencies_is_a_clear_error() -> None:
    require_same_currency("EUR", "EUR")
    with pytest.raises(CurrencyMismatchError, match="expected EUR, got USD"):
        require_same_currency("EUR", "USD")


def test_s5_a_campaign_change_with_negative_booked_money_is_refused_at_the_edge() -> None:
    """Found by the hostile-records fuzz: `CampaignChanged.booked_micros` (money held for a campaign)
    was any Micros, so -1 decoded and stopped the spend consumer on its `booked_micros >= 0` check.
    Money held is never negative: the contract says so and the record is dead-lettered at decode."""
    import json as _json

    from adledger_contracts.campaigns import CampaignChanged
    from adledger_libs.events import DecodeError, decode

    document = {
        "campaign_id": "c1", "ad_account_id": "a1", "business_center_id": "b1", "name": "n", "funding_mode": "prepaid",
        "budget_kind": "lifetime", "budget_micros": 5, "booked_micros": 0, "currency": "USD", "status": "active",
        "previous_status": None, "version": 1, "changed_at": "2026-12-01T00:00:00Z",
    }
    decode(CampaignChanged, _json.dumps(document).encode())
    with pytest.raises(DecodeError, match="booked_micros"):
        decode(CampaignChanged, _json.dumps({**document, "booked_micros": -1}).encode())
