"""`SpendPublisher`: spend on `ads.spend.v1`, by the contract, exactly as the platform reads it.

Every record is keyed by its ad account (the platform takes an account's spend in partition
order), carries the contract's JSON (integers of micros, RFC 3339 times in UTC) and the headers
the platform routes and deduplicates on. The producer is idempotent with `acks=all`: the broker
keeps a retried batch once and in order, so the client's own retries never double or reorder
spend. A spend the client could not get acknowledged raises `SpendNotPublishedError` carrying the
event: publishing that same event again keeps its `event_id`, and the platform takes it once.

Records are batched by the producer: each partition's records wait up to `linger_ms` for others to
share a request, up to `max_batch_bytes` per partition batch. `publish()` waits for the broker's
acknowledgement of one event (concurrent calls share batches); `publish_many()` hands a whole list
to the producer before it waits, which batches best.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from adledger_client.records import SCHEMA_VERSION, SpendEvent
from adledger_client.topics import CONTRACT_TOPICS, Topics

HEADER_EVENT_TYPE = "event-type"
HEADER_SCHEMA_VERSION = "schema-version"
HEADER_EVENT_ID = "event-id"
HEADER_TRACE_ID = "trace-id"
HEADER_CONTENT_TYPE = "content-type"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Published:
    """Where the broker put an acknowledged spend event."""

    event_id: str
    partition: int
    offset: int


class SpendNotPublishedError(Exception):
    """The broker did not acknowledge the event. Publish `event` again: it keeps its id."""

    def __init__(self, event: SpendEvent, cause: BaseException) -> None:
        super().__init__(f"spend {event.event_id} of {event.ad_account_id} was not acknowledged: {cause!r}")
        self.event = event


class SpendPublisher:
    """Publishes an ad server's spend (rules S1, S6)."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topics: Topics = CONTRACT_TOPICS,
        client_id: str = "adledger-client-spend",
        linger_ms: int = 5,
        max_batch_bytes: int = 256 * 1024,
        request_timeout_ms: int = 30_000,
        clock: Callable[[], datetime] = utc_now,
        kafka_options: Mapping[str, Any] | None = None,
    ) -> None:
        """`clock` gives `occurred_at` when a spend names none (inject one in tests). `kafka_options`
        go to aiokafka's producer as they are (security_protocol, ssl_context, sasl_mechanism, …);
        idempotence and acks are the publisher's and cannot be changed there."""
        for name, value in (("linger_ms", linger_ms), ("max_batch_bytes", max_batch_bytes), ("request_timeout_ms", request_timeout_ms)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a whole number of at least 0, not {value!r}")
        options = dict(kafka_options or {})
        fixed = {"enable_idempotence", "acks", "key_serializer", "value_serializer", "transactional_id"} & options.keys()
        if fixed:
            raise ValueError(f"the publisher sets {sorted(fixed)} itself (idempotent, acks=all, bytes)")
        self._topic = topics.spend
        self._clock = clock
        self._producer: Any = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=linger_ms,
            max_batch_size=max_batch_bytes,
            request_timeout_ms=request_timeout_ms,
            **options,
        )
        self._started = False

    async def start(self) -> None:
        await self._producer.start()
        self._started = True

    async def stop(self) -> None:
        """Send what is batched, then stop."""
        if self._started:
            self._started = False
            await self._producer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.stop()

    def event(
        self,
        ad_account_id: str,
        campaign_id: str,
        amount_micros: int,
        currency: str,
        *,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
        charge_id: str | None = None,
    ) -> SpendEvent:
        """A spend event, checked against the contract, not sent yet (`occurred_at` defaults to now).

        Raises:
            pydantic.ValidationError: a field does not fit the contract (an amount that is not an
                integer from 1 to 2^63 - 1, an id of more than 128 characters, a time without offset).
        """
        fields: dict[str, Any] = {
            "ad_account_id": ad_account_id, "campaign_id": campaign_id, "amount_micros": amount_micros,
            "currency": currency, "occurred_at": occurred_at or self._clock(), "charge_id": charge_id,
        }
        if event_id is not None:
            fields["event_id"] = event_id
        return SpendEvent(**fields)

    async def spend(
        self,
        ad_account_id: str,
        campaign_id: str,
        amount_micros: int,
        currency: str,
        *,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
        charge_id: str | None = None,
    ) -> SpendEvent:
        """Build and publish a spend; returns it once acknowledged (keep it for a final cost).

        Raises:
            pydantic.ValidationError: as `event`.
            SpendNotPublishedError: not acknowledged; publish its `event` again.
        """
        event = self.event(
            ad_account_id, campaign_id, amount_micros, currency, occurred_at=occurred_at, event_id=event_id,
            charge_id=charge_id,
        )
        await self.publish(event)
        return event

    async def final_cost(
        self, earlier: SpendEvent, amount_micros: int, *, event_id: str | None = None, occurred_at: datetime | None = None
    ) -> SpendEvent:
        """Publish the final cost of an earlier charge (rule S6): the whole final amount, under
        the earlier event's `charge_id`; the platform takes only the difference (or gives it back).

        Raises:
            ValueError: the earlier event has no `charge_id`, or the amount does not fit the contract.
            SpendNotPublishedError: not acknowledged; publish its `event` again.
        """
        event = earlier.final_cost(amount_micros, event_id=event_id, occurred_at=occurred_at)
        await self.publish(event)
        return event

    async def publish(self, event: SpendEvent, *, trace_id: str | None = None) -> Published:
        """Publish one event and wait for its acknowledgement.

        Raises:
            SpendNotPublishedError: not acknowledged; publish the same event again.
        """
        return await (await self.send(event, trace_id=trace_id))

    async def publish_many(self, events: Iterable[SpendEvent]) -> list[Published]:
        """Publish events in their order (per ad account, the platform takes them in this order)
        and wait until every one is acknowledged.

        Raises:
            SpendNotPublishedError: for the first event not acknowledged; the others may have been.
                Publish them all again: those already taken are dropped by their ids.
        """
        pending: list[asyncio.Future[Published]] = []
        try:
            for event in events:
                pending.append(await self.send(event))
        finally:
            # Every acknowledgement is awaited, also when a later event could not be handed over,
            # so none of their outcomes is lost unread.
            outcomes = await asyncio.gather(*pending, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return [outcome for outcome in outcomes if isinstance(outcome, Published)]

    async def send(self, event: SpendEvent, *, trace_id: str | None = None) -> asyncio.Future[Published]:
        """Hand one event to the producer's batch (waiting only when its buffer is full) and return
        a future of its acknowledgement. The trace id (default: the event id) names the platform's
        logs and its delivery decisions caused by this spend.

        Raises:
            SpendNotPublishedError: the producer refused the event (not started, or stopped).
        """
        if not isinstance(event, SpendEvent):
            raise TypeError(f"a SpendEvent is published, not {type(event).__name__}")
        if not self._started:
            # aiokafka's producer would wait for ever for metadata it has no connection to fetch.
            raise SpendNotPublishedError(event, RuntimeError("the publisher is not started (or was stopped)"))
        headers = [
            (HEADER_EVENT_TYPE, event.MESSAGE_TYPE.encode()),
            (HEADER_SCHEMA_VERSION, str(SCHEMA_VERSION).encode()),
            (HEADER_EVENT_ID, event.event_id.encode()),
            (HEADER_TRACE_ID, (trace_id or event.event_id)[:128].encode()),
            (HEADER_CONTENT_TYPE, b"application/json"),
        ]
        try:
            acknowledged = await self._producer.send(
                self._topic, value=event.to_json(), key=event.ad_account_id.encode(), headers=headers
            )
        except KafkaError as error:
            raise SpendNotPublishedError(event, error) from error
        result: asyncio.Future[Published] = asyncio.get_running_loop().create_future()

        def done(future: asyncio.Future[Any]) -> None:
            if result.cancelled():
                return
            if future.cancelled():
                result.set_exception(SpendNotPublishedError(event, asyncio.CancelledError()))
            elif (error := future.exception()) is not None:
                result.set_exception(SpendNotPublishedError(event, error))
            else:
                metadata = future.result()
                result.set_result(Published(event.event_id, metadata.partition, metadata.offset))

        acknowledged.add_done_callback(done)
        return result

    async def flush(self) -> None:
        """Wait until every batched event was sent."""
        await self._producer.flush()
