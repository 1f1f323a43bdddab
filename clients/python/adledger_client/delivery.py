"""What may serve: the gate's view of `delivery.state.v1` and `delivery.control.v1`, with no I/O.

The two topics say the same thing in two ways. Each decision of the platform publishes the key's
new state on `delivery.state.v1` (key `ad_account_id` or `ad_account_id/campaign_id`) and, when it
pauses or resumes, a decision on `delivery.control.v1` (key `ad_account_id`), in one transaction,
so once both topics are read to the same point they agree. While one of them is ahead of the
other they may not, and their records cannot be put in one order: offsets of two topics are not
comparable, and `decided_at` comes from the clocks of several platform instances (a pause decided
by one and a resume by another may carry times in the wrong order).

So the view keeps, per key and per topic, the newest record by offset (a key always lives on one
partition of each topic, where the platform publishes its decisions in order), and a key serves
only while every topic that spoke about it says it serves. A pause is followed as soon as either
topic brings it; a resume once both have it (the second comes a moment after the first, from the
same relay). No time is compared, so no tie-breaker is needed. Records whose `event_id` was seen
already (the platform's relay re-sends a record after a crash) are ignored, so a re-sent older
decision never overrides a newer one.

A key no record spoke about serves (nothing was ever decided about it). An ad server serves a
campaign when both its account key and its campaign key serve.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

Source = Literal["control", "state"]

#: How many event ids are remembered to drop re-sent records; a re-send comes soon after its original.
REMEMBERED_EVENT_IDS = 100_000


class DeliveryKey(NamedTuple):
    """An ad account (`campaign_id` None) or one of its campaigns."""

    ad_account_id: str
    campaign_id: str | None


@dataclass(frozen=True)
class Said:
    """What one record of one topic said about a key."""

    serving: bool
    reason: str
    decided_at: datetime
    partition: int
    offset: int
    cause_event_id: str | None = None
    published_at: datetime | None = None


@dataclass(frozen=True)
class DeliveryChange:
    """A key that stopped or started serving, as the gate saw it."""

    ad_account_id: str
    #: The campaign, or None for the whole ad account (then every campaign of it).
    campaign_id: str | None
    serving: bool
    #: The reason of the record that made the change (`insufficient_funds`, `funds_restored`, …).
    reason: str
    #: When the platform decided it (the record's `decided_at` or `updated_at`).
    decided_at: datetime
    #: The spend event that tipped a pause, when the decision names one.
    cause_event_id: str | None
    #: The topic whose record made the change: `control` (delivery.control.v1) or `state`.
    source: Source
    #: When that record was published (its Kafka timestamp), to measure how far behind the gate is.
    published_at: datetime | None
    #: True while the gate reads its cold start (the change was decided before the gate started).
    cold_start: bool

    @property
    def key(self) -> DeliveryKey:
        return DeliveryKey(self.ad_account_id, self.campaign_id)


class DeliveryView:
    """Per key, the newest record of each topic, and the keys that may not serve."""

    def __init__(self, remembered_event_ids: int = REMEMBERED_EVENT_IDS) -> None:
        self._said: dict[Source, dict[DeliveryKey, Said]] = {"control": {}, "state": {}}
        #: The keys that may not serve now, each with the change that paused it.
        self._paused: dict[DeliveryKey, DeliveryChange] = {}
        #: The key of each record key seen on delivery.state.v1, to apply its tombstone.
        self._state_keys: dict[bytes, DeliveryKey] = {}
        self._event_ids: OrderedDict[str, None] = OrderedDict()
        self._remembered_event_ids = remembered_event_ids

    def may_serve(self, ad_account_id: str, campaign_id: str) -> bool:
        """Whether both the account's key and the campaign's key serve: two dict lookups."""
        paused = self._paused
        return (ad_account_id, None) not in paused and (ad_account_id, campaign_id) not in paused

    def paused(self) -> dict[DeliveryKey, DeliveryChange]:
        """A copy of the keys that may not serve, with the change that paused each."""
        return dict(self._paused)

    def seen(self, event_id: str | None) -> bool:
        """Whether a record with this id was applied already (then it is a re-send, dropped)."""
        return event_id is not None and event_id in self._event_ids

    def apply(
        self, source: Source, key: DeliveryKey, said: Said, *, event_id: str | None, cold_start: bool,
        record_key: bytes | None = None,
    ) -> DeliveryChange | None:
        """Apply one record; returns the change of what may serve, if it made one.

        A record already seen (same event id) or older than the newest one of its topic for the key
        (a lower offset on the same partition, read again) changes nothing.
        """
        if self.seen(event_id):
            return None
        known = self._said[source].get(key)
        if known is not None and known.partition == said.partition and said.offset <= known.offset:
            return None
        self._remember(event_id)
        self._said[source][key] = said
        if source == "state" and record_key is not None:
            self._state_keys[record_key] = key
        return self._settle(key, source, said, cold_start)

    def forget(self, record_key: bytes, *, partition: int, offset: int, cold_start: bool) -> DeliveryChange | None:
        """A tombstone on delivery.state.v1: the platform dropped the key, so nothing is known of it
        any more (it serves). Its decisions on delivery.control.v1 are dropped with it."""
        key = self._state_keys.get(record_key)
        if key is None:
            return None
        known = self._said["state"].get(key)
        if known is not None and known.partition == partition and offset <= known.offset:
            return None
        del self._state_keys[record_key]
        self._said["state"].pop(key, None)
        self._said["control"].pop(key, None)
        pause = self._paused.pop(key, None)
        if pause is None:
            return None
        return DeliveryChange(
            key.ad_account_id, key.campaign_id, True, "forgotten", pause.decided_at, None, "state", None, cold_start
        )

    def _settle(self, key: DeliveryKey, source: Source, said: Said, cold_start: bool) -> DeliveryChange | None:
        serving = all(known.serving for known in (self._said["control"].get(key), self._said["state"].get(key)) if known)
        was_serving = key not in self._paused
        if serving == was_serving:
            return None
        change = DeliveryChange(
            key.ad_account_id, key.campaign_id, serving, said.reason, said.decided_at, said.cause_event_id, source,
            said.published_at, cold_start,
        )
        if serving:
            del self._paused[key]
        else:
            self._paused[key] = change
        return change

    def _remember(self, event_id: str | None) -> None:
        if event_id is None:
            return
        self._event_ids[event_id] = None
        if len(self._event_ids) > self._remembered_event_ids:
            self._event_ids.popitem(last=False)
