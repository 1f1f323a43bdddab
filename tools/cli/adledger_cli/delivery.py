"""What an ad server sees at a cold start: `delivery.state.v1` read from its beginning to its end,
the latest record per key (rule S4; CONTRACT.md). A key is an ad account, or
`ad_account_id/campaign_id` for a campaign; an ad server serves a campaign when both keys serve."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from adledger_contracts.external import DeliveryStateChanged
from adledger_libs.events import DecodeError, decode

from adledger_libs.kafka import KafkaTarget
from adledger_cli.topics import LatestPerKey, Record


@dataclass(frozen=True)
class DeliveryState:
    key: str
    ad_account_id: str | None
    campaign_id: str | None
    serving: bool | None
    reason: str
    since: datetime | None


async def read_states(bootstrap_servers: KafkaTarget, topic: str, account: str | None = None) -> list[DeliveryState]:
    """The latest state per key (a tombstone removes it), only `account`'s keys when given."""
    async with LatestPerKey(bootstrap_servers, topic) as reader:
        await reader.catch_up()
        latest = reader.values
    states = []
    for key_bytes, record in latest.items():
        key = key_bytes.decode("utf-8", errors="replace")
        if account is not None and key != account and not key.startswith(f"{account}/"):
            continue
        states.append(_state(key, record))
    return sorted(states, key=lambda state: state.key)


def _state(key: str, record: Record) -> DeliveryState:
    try:
        changed = decode(DeliveryStateChanged, record.value)
    except DecodeError as error:
        # A record an ad server could not read either: shown, never hidden.
        reason = f"undecodable at {record.topic}:{record.partition}:{record.offset}: {error.reason[:200]}"
        return DeliveryState(key, None, None, None, reason, None)
    return DeliveryState(
        key=key,
        ad_account_id=changed.ad_account_id,
        campaign_id=changed.campaign_id,
        serving=changed.serving,
        reason=changed.reason,
        since=changed.updated_at,
    )
