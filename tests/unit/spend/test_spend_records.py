"""The compiled decoder of the ad servers' spend records (issue 14, lever 1) accepts only what the
pydantic contract model accepts, with the same values; everything else is left to the model, so
the dead-letter reasons do not change (rule S5)."""

from __future__ import annotations

import json

import pytest
from adledger_contracts.external import SpendReported
from adledger_libs.events import DecodeError, decode
from adledger_spend_consumer.adapters.records import SpendRecord, decode_spend

GOOD = {
    "event_id": "e-1", "ad_account_id": "acc-1", "campaign_id": "c-1", "amount_micros": 1_500,
    "currency": "USD", "occurred_at": "2026-12-03T12:00:00.123456Z",
}


def _with(**changes: object) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


CASES = [
    _with(),
    _with(charge_id="charge-7"),
    _with(charge_id=None),
    _with(occurred_at="2026-12-03T13:00:00+01:00"),
    _with(occurred_at="2026-12-03T12:00:00"),
    _with(occurred_at="1969-12-31T23:59:59Z"),
    _with(occurred_at="9000-01-01T00:00:00Z"),
    _with(occurred_at=1_764_763_200),
    _with(amount_micros=0),
    _with(amount_micros=-1),
    _with(amount_micros=2**63 - 1),
    _with(amount_micros=2**63),
    _with(amount_micros="1500"),
    _with(amount_micros=1500.0),
    _with(amount_micros=True),
    _with(currency="usd"),
    _with(currency="USD\n"),
    _with(event_id=""),
    _with(event_id="x" * 128),
    _with(event_id="x" * 129),
    _with(event_id="e\n"),
    _with(ad_account_id="a\x00b"),
    _with(campaign_id="c\u0085"),
    _with(campaign_id=17),
    _with(extra_field={"nested": [1, 2, 3]}),
    json.dumps({key: value for key, value in GOOD.items() if key != "event_id"}).encode(),
    b"[]",
    b"not json",
    b"\xff\xfe",
    b'{"event_id": "\\ud800"}',
    b"[" * 10_000 + b"]" * 10_000,
]


@pytest.mark.parametrize("value", CASES)
def test_s5_fast_spend_decoder_accepts_only_what_the_contract_model_accepts(value: bytes) -> None:
    fast = decode_spend(value)
    try:
        model = decode(SpendReported, value)
    except DecodeError:
        model = None
    if fast is None:
        return  # the pydantic model decides: the same message or the same reason as before
    assert model is not None, f"the fast path accepted what the model refuses: {value[:80]!r}"
    assert isinstance(fast, SpendRecord)
    for field in SpendReported.model_fields:
        assert getattr(fast, field) == getattr(model, field), field
    assert fast.occurred_at.utcoffset() is not None and fast.occurred_at.utcoffset().total_seconds() == 0


def test_s5_fast_spend_decoder_takes_a_plain_ad_server_record() -> None:
    fast = decode_spend(_with(occurred_at="2026-12-03T13:00:00+01:00"))
    assert fast is not None
    assert fast.occurred_at.isoformat() == "2026-12-03T12:00:00+00:00"
    assert fast.MESSAGE_TYPE == SpendReported.MESSAGE_TYPE
