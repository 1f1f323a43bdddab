"""`DeliveryGate`: what an ad server may serve, known locally, kept current from Kafka.

Start it once per process. It reads compacted `delivery.state.v1` from the beginning and returns
from `start()` only once it has read what was there when it started (the cold start), then follows
`delivery.state.v1` and `delivery.control.v1` live. `may_serve()` is two dict lookups, no I/O, so it
belongs on the serving path. How the two topics are combined is in `adledger_client.delivery`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from pydantic import ValidationError

from adledger_client._reader import RawRecord, Stream, TopicReader
from adledger_client.delivery import DeliveryChange, DeliveryKey, DeliveryView, Said, Source
from adledger_client.records import DECISION_EVENT_TYPE, STATE_EVENT_TYPE, DeliveryDecision, DeliveryState
from adledger_client.topics import CONTRACT_TOPICS, Topics

log = logging.getLogger("adledger_client")

HEADER_EVENT_TYPE = "event-type"
HEADER_EVENT_ID = "event-id"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: Called on every change of what may serve; it runs on the gate's reading task, so keep it short.
OnChange = Callable[[DeliveryChange], None]


class DeliveryGate:
    """Whether an ad account's campaign may serve now (rules W8, S3, S4).

    Until the cold start is done, and after the gate stopped following (stopped, or stopped by an
    unexpected error), `may_serve` answers False: a gate that does not know serves nothing.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topics: Topics = CONTRACT_TOPICS,
        on_change: OnChange | None = None,
        ready_timeout_s: float = 60.0,
        client_id: str = "adledger-client-gate",
        kafka_options: Mapping[str, Any] | None = None,
    ) -> None:
        """`kafka_options` go to aiokafka's consumer as they are (security_protocol, ssl_context,
        sasl_mechanism, …); the reading options (no group, no commits, read_committed) are the gate's."""
        self._topics = topics
        self._on_change = on_change
        self._ready_timeout_s = ready_timeout_s
        self._view = DeliveryView()
        self._sources: dict[str, Source] = {topics.delivery_control: "control", topics.delivery_state: "state"}
        self._reader = TopicReader(
            bootstrap_servers,
            [Stream(topics.delivery_state, from_beginning=True), Stream(topics.delivery_control, from_beginning=False)],
            self._handle,
            client_id=client_id,
            kafka_options=kafka_options,
        )
        #: Whether answers come from the view: the cold start is done and the gate still follows.
        self._trusted = False
        self.skipped_records = 0

    async def start(self) -> None:
        """Read the cold start; returns once the gate knows what may serve.

        Raises:
            NotReadyError: the topics are missing or the cold start did not finish within
                `ready_timeout_s` (the gate is stopped then).
        """
        await self._reader.start(self._ready_timeout_s)
        self._trusted = True

    async def stop(self) -> None:
        self._trusted = False
        await self._reader.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def ready(self) -> bool:
        """Whether the gate knows what may serve: cold start done, still following."""
        return self._trusted and self._reader.following

    @property
    def failure(self) -> BaseException | None:
        """The unexpected error that stopped the gate from following, if one did."""
        return self._reader.failure

    def may_serve(self, ad_account_id: str, campaign_id: str) -> bool:
        """Whether the campaign may serve: its ad account's key and its own key both serve."""
        return self._trusted and self._reader.failure is None and self._view.may_serve(ad_account_id, campaign_id)

    def paused(self) -> dict[DeliveryKey, DeliveryChange]:
        """The keys that may not serve now (an account's key has `campaign_id` None), each with
        the change that paused it."""
        return self._view.paused()

    def _handle(self, records: Sequence[RawRecord], ready: bool) -> None:
        for record in records:
            change = self._apply(record, cold_start=not ready)
            if change is not None and self._on_change is not None:
                try:
                    self._on_change(change)
                except Exception:  # the ad server's callback must not stop the gate
                    log.exception("adledger_client: the gate's on_change callback failed for %s", change.key)

    def _apply(self, record: RawRecord, *, cold_start: bool) -> DeliveryChange | None:
        """Type one record at the edge and apply it; a record that does not fit is skipped, counted
        and logged, never trusted and never fatal."""
        source = self._sources.get(record.topic)
        if source is None:
            return None
        expected_type = DECISION_EVENT_TYPE if source == "control" else STATE_EVENT_TYPE
        event_type = _header(record, HEADER_EVENT_TYPE)
        if event_type is not None and event_type != expected_type:
            return None  # another kind of record on the topic, which the contract may add
        if record.value is None:
            if source == "state" and record.key is not None:
                return self._view.forget(record.key, partition=record.partition, offset=record.offset, cold_start=cold_start)
            self._skip(record, "a tombstone without a key, or on delivery.control.v1")
            return None
        header_event_id = _header(record, HEADER_EVENT_ID)
        if self._view.seen(header_event_id):
            return None  # a re-send: dropped before it is even decoded
        try:
            if source == "control":
                decision = DeliveryDecision.model_validate_json(record.value)
                key = DeliveryKey(decision.ad_account_id, decision.campaign_id)
                expected_record_key = decision.ad_account_id
                said = Said(
                    decision.serving, decision.reason, decision.decided_at, record.partition, record.offset,
                    decision.cause_event_id, _published_at(record),
                )
                event_id = header_event_id or decision.event_id
            else:
                state = DeliveryState.model_validate_json(record.value)
                key = DeliveryKey(state.ad_account_id, state.campaign_id)
                expected_record_key = state.ad_account_id if state.campaign_id is None else f"{key[0]}/{key[1]}"
                said = Said(
                    state.serving, state.reason, state.updated_at, record.partition, record.offset, None,
                    _published_at(record),
                )
                event_id = header_event_id or state.event_id
        except (ValidationError, ValueError) as error:
            self._skip(record, f"not a {expected_type}: {error}")
            return None
        # The order of a key's records is their order on one partition, which the record's key picks:
        # a record keyed otherwise than the contract says may sit on another partition, out of order.
        if record.key != expected_record_key.encode():
            self._skip(record, f"its key is not {expected_record_key!r}")
            return None
        return self._view.apply(source, key, said, event_id=event_id, cold_start=cold_start, record_key=record.key)

    def _skip(self, record: RawRecord, reason: str) -> None:
        self.skipped_records += 1
        log.warning(
            "adledger_client: skipped %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason[:500]
        )


def _header(record: RawRecord, name: str) -> str | None:
    value = record.headers.get(name)
    if value is None:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        return None


def _published_at(record: RawRecord) -> datetime | None:
    if record.timestamp_ms is None or record.timestamp_ms < 0:
        return None
    return _EPOCH + timedelta(milliseconds=record.timestamp_ms)
