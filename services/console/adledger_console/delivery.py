"""The latest serving state of every ad account and campaign, read from the compacted
`delivery.state.v1` (S4), the public topic ad servers read too. Held in memory, read from the
beginning at start (the topic keeps one record per key), no consumer group and no offsets: the
console writes nothing. A record that is not a valid `DeliveryStateChanged` is skipped."""

from __future__ import annotations

import asyncio
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from adledger_contracts.external import DeliveryStateChanged
from adledger_libs.kafka import KafkaTarget, client_options
from adledger_libs.logs import get_logger

log = get_logger(__name__)


class DeliveryStates:
    def __init__(self, kafka: KafkaTarget, topic: str) -> None:
        self._kafka, self._topic = kafka, topic
        self._states: dict[tuple[str, str | None], DeliveryStateChanged] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self.caught_up = asyncio.Event()

    def of(self, ad_account_id: str, campaign_id: str | None = None) -> DeliveryStateChanged | None:
        return self._states.get((ad_account_id, campaign_id))

    def paused_campaigns(self, ad_account_id: str) -> list[DeliveryStateChanged]:
        return sorted(
            (
                state
                for (account, campaign), state in self._states.items()
                if account == ad_account_id and campaign is not None and not state.serving
            ),
            key=lambda state: state.campaign_id or "",
        )

    def take(self, value: bytes | None) -> None:
        if value is None:
            return
        try:
            state = DeliveryStateChanged.model_validate_json(value)
        except ValidationError:
            log.warning("delivery_state_skipped", topic=self._topic)
            return
        key = (state.ad_account_id, state.campaign_id)
        known = self._states.get(key)
        if known is None or _at(state) >= _at(known):
            self._states[key] = state

    async def run(self) -> None:
        """Read until cancelled; a lost broker is retried with back-off (the page shows the last state)."""
        delay = 0.5
        while True:
            try:
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the reader must outlive a broker outage
                log.warning("delivery_states_reader_failed", error=repr(error), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _read(self) -> None:
        # No group: every partition is this reader's, from the beginning (the topic is compacted).
        consumer = AIOKafkaConsumer(
            self._topic,
            **client_options(self._kafka),
            enable_auto_commit=False,
            group_id=None,
            client_id="adledger-console",
            auto_offset_reset="earliest",
        )
        self._consumer = consumer
        await consumer.start()
        try:
            ends: dict[TopicPartition, int] | None = None
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=1000)
                for records in batches.values():
                    for record in records:
                        self.take(record.value)
                if self.caught_up.is_set():
                    continue
                assigned = sorted(consumer.assignment())
                if not assigned:
                    continue
                if ends is None:
                    ends = await consumer.end_offsets(assigned)
                positions = [await consumer.position(tp) for tp in assigned]
                if all(position >= ends.get(tp, 0) for tp, position in zip(assigned, positions, strict=True)):
                    self.caught_up.set()
        finally:
            await consumer.stop()


def _at(state: DeliveryStateChanged) -> datetime:
    return state.updated_at
