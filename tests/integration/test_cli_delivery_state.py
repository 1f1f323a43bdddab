"""`adledger delivery state` reads a delivery-state topic as an ad server starting cold does (S4):
from the beginning to its end, the latest record per key, a tombstone removing its key; an
account's filter keeps the account's own key and its campaigns' keys, not a longer account id."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from adledger_contracts.external import DeliveryStateChanged
from adledger_contracts.topics import topic
from adledger_libs.events import encode
from adledger_libs.kafka import ensure_topics

from .cli_process import adledger
from .conftest import Stack, unique
from .kafka_io import produce

pytestmark = pytest.mark.integration

START = datetime(2026, 12, 3, 9, tzinfo=UTC)


def _state(
    account: str, campaign: str | None, serving: bool, reason: str, minutes: int
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    event = DeliveryStateChanged(
        ad_account_id=account,
        campaign_id=campaign,
        serving=serving,
        reason=reason,
        updated_at=START + timedelta(minutes=minutes),
    )
    key = account if campaign is None else f"{account}/{campaign}"
    envelope = encode(event, key=key, trace_id="delivery-state-test")
    assert envelope.key is not None
    return envelope.key, envelope.value, list(envelope.headers)


async def test_s4_delivery_state_is_the_latest_record_per_key_of_an_account_and_its_campaigns(stack: Stack) -> None:
    name = unique("delivery.state.v1")
    await ensure_topics(stack.kafka_bootstrap_servers, [replace(topic("delivery.state.v1"), name=name, partitions=3)])
    account = unique("acc")
    longer = f"{account}9"  # another account, whose id starts with this one's
    await produce(
        stack.kafka_bootstrap_servers,
        name,
        [
            _state(account, None, False, "insufficient_funds", 0),
            _state(account, "c1", False, "campaign_budget_reached", 1),
            _state(account, "c2", False, "manual", 2),
            _state(longer, None, False, "insufficient_funds", 3),
            _state(account, None, True, "funds_restored", 4),
        ],
    )
    # A tombstone removes c2's state: an ad server starting cold no longer sees it.
    await produce(stack.kafka_bootstrap_servers, name, [(f"{account}/c2".encode(), None, [])])  # type: ignore[list-item]

    result = await adledger("delivery", "state", "--topic", name, "--account", account, "--json")
    assert result.returncode == 0, result
    assert result.json() == [
        {
            "key": account,
            "ad_account_id": account,
            "campaign_id": None,
            "serving": True,
            "reason": "funds_restored",
            "since": (START + timedelta(minutes=4)).isoformat(),
        },
        {
            "key": f"{account}/c1",
            "ad_account_id": account,
            "campaign_id": "c1",
            "serving": False,
            "reason": "campaign_budget_reached",
            "since": (START + timedelta(minutes=1)).isoformat(),
        },
    ]
    everything = await adledger("delivery", "state", "--topic", name)
    assert everything.returncode == 0, everything
    lines = everything.stdout.splitlines()
    assert lines[0].split() == ["KEY", "SERVING", "REASON", "SINCE"]
    assert sorted(line.split()[0] for line in lines[1:]) == sorted([account, f"{account}/c1", longer])
