"""The e-mail adapter on the real stack (rules I8, O4): an EmailRequested on an orders topic is
rendered once into the file sink and answered with one EmailSent; a re-sent event, or another
request with the same email_id, sends nothing more; a request missing a field is dead-lettered
with the reason and the stream goes on. Topics, schema and consumer group are unique to the run."""

from __future__ import annotations

import asyncio
import email
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.policy import default as default_policy
from importlib.resources import files
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from adledger_contracts.notifications import EmailRequested
from adledger_contracts.topics import dead_letter_topic
from adledger_invoicing.email import EmailSender, EmailSettings, FileSink, register_email_adapter
from adledger_invoicing.email.message import OutgoingEmail, file_name_for
from adledger_libs.clock import ManualClock
from adledger_libs.events import encode
from adledger_libs.runtime import ServiceRuntime
from adledger_libs.settings import ServiceSettings

from ..conftest import Stack, TopicFactory, unique
from ..kafka_io import produce, read_all
from ..waits import free_port as _free_port

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)


@dataclass
class Adapter:
    stack: Stack
    settings: ServiceSettings
    email_settings: EmailSettings
    sink: FileSink
    orders_topic: str
    events_topic: str
    schema: str
    runtime: ServiceRuntime | None = None
    serving: asyncio.Future[None] | None = None
    stopping: asyncio.Event | None = None
    produced: int = 0

    async def start(self, sender: EmailSender | None = None) -> None:
        """Start the adapter on a test runtime of the invoicing service (its migrations, its consumer)."""
        runtime = ServiceRuntime(self.settings, migrations=files("adledger_invoicing") / "migrations", clock=ManualClock(T0))
        registered = register_email_adapter(runtime, settings=self.email_settings, orders_topic=self.orders_topic, sender=sender or self.sink)
        assert registered.sender is (sender or self.sink)
        await runtime.start()
        self.runtime, self.stopping = runtime, asyncio.Event()
        self.serving = asyncio.ensure_future(runtime.serve(self.stopping))

    async def stop(self) -> BaseException | None:
        """Stop it; returns the error that stopped it already, if one did."""
        assert self.runtime is not None and self.serving is not None and self.stopping is not None
        self.stopping.set()
        [outcome] = await asyncio.gather(self.serving, return_exceptions=True)
        await self.runtime.close()
        self.runtime = None
        return outcome if isinstance(outcome, BaseException) else None

    async def send(self, request: EmailRequested, *, key: str) -> None:
        envelope = encode(request, key=key, trace_id="trace-email-test")
        await produce(self.stack.kafka_bootstrap_servers, self.orders_topic, [(envelope.key, envelope.value, list(envelope.headers))])
        self.produced += 1

    async def files_until(self, count: int, timeout_s: float = 30.0) -> list[Path]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            found = self.sink.sent()
            if len(found) >= count:
                return found
            assert loop.time() < deadline, f"{len(found)} e-mail file(s) in {self.sink.directory}, expected {count}"
            await asyncio.sleep(0.1)

    async def rows(self) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.stack.database_url)
        try:
            return list(await conn.fetch(f"select * from {self.schema}.emails_sent order by email_id"))
        finally:
            await conn.close()

    async def drained(self, timeout_s: float = 30.0) -> None:
        """Wait until the consumer stored its position past every record sent to the orders topic
        (the topic is the test's own and starts at offset 0, so the positions add up to a count)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        conn = await asyncpg.connect(self.stack.database_url)
        try:
            while True:
                done = await conn.fetchval(
                    f"select coalesce(sum(next_offset), 0) from {self.schema}.consumer_positions where topic = $1",
                    self.orders_topic,
                )
                if done >= self.produced:
                    return
                assert loop.time() < deadline, f"the adapter applied {done} of {self.produced} records"
                await asyncio.sleep(0.1)
        finally:
            await conn.close()


@pytest_asyncio.fixture
async def adapter(stack: Stack, schema: str, new_topic: TopicFactory, tmp_path: Path) -> AsyncIterator[Adapter]:
    orders_topic = await new_topic("orders.events.test")
    events_topic = await new_topic("invoicing.events.test")
    await new_topic.create(dead_letter_topic(orders_topic), partitions=1)
    await new_topic.create(dead_letter_topic(events_topic), partitions=1)
    settings = ServiceSettings(
        service_name="invoicing",
        database_url=stack.database_url,
        database_schema=schema,
        kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
        kafka_consumer_group=unique("invoicing-email"),
        kafka_create_topics=False,
        http_port=_free_port(),
        outbox_poll_interval_ms=100,
    )
    email_settings = EmailSettings(sink="file", sink_dir=tmp_path / "sink", invoicing_events_topic=events_topic)
    running = Adapter(stack, settings, email_settings, FileSink(email_settings.resolved_sink_dir()), orders_topic, events_topic, schema)
    try:
        yield running
    finally:
        if running.runtime is not None:
            await running.stop()


def _completed(order_id: str, number: int) -> EmailRequested:
    return EmailRequested(
        email_id=f"order:{order_id}:completed",
        template="order_completed",
        recipient_user_id="buyer-1",
        subject_id=order_id,
        fields={"user_name": "Grace Hopper", "channel_name": "Compilers Weekly", "order_number": str(number)},
        requested_at=T0,
    )


async def test_o4_i8_order_completed_is_rendered_once_to_the_file_sink_with_one_email_sent(adapter: Adapter) -> None:
    await adapter.start()
    order_id = unique("order")
    request = _completed(order_id, 7031)
    await adapter.send(request, key=order_id)

    [path] = await adapter.files_until(1)
    assert path.name == file_name_for(request.email_id)
    parsed = email.message_from_bytes(path.read_bytes(), policy=default_policy)
    assert isinstance(parsed, email.message.EmailMessage)
    body = parsed.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Grace Hopper" in text and "Compilers Weekly" in text and "#7031" in text
    assert "7031" in parsed["Subject"] and parsed["X-Adledger-Recipient"] == "user:buyer-1"

    sent = await read_all(adapter.stack.kafka_bootstrap_servers, adapter.events_topic, expect=1)
    assert [record.headers["event-type"] for record in sent] == ["EmailSent"]
    payload = json.loads(sent[0].value or b"{}")
    assert payload["email_id"] == request.email_id and payload["template"] == "order_completed"
    assert payload["request_event_id"] == request.event_id and payload["sink"] == f"file:{path}"
    assert payload["sent_at"].startswith("2026-11-21T09:30:00")  # the service's clock (T1)
    assert sent[0].key == order_id.encode()

    # The same event again (a re-send), and another event with the same email_id: nothing more.
    first_bytes = path.read_bytes()
    await adapter.send(request, key=order_id)
    await adapter.send(request.model_copy(update={"event_id": "another-event-id"}), key=order_id)
    await adapter.drained()
    assert adapter.sink.sent() == [path]
    assert path.read_bytes() == first_bytes
    again = await read_all(adapter.stack.kafka_bootstrap_servers, adapter.events_topic, expect=1, settle_s=1.0)
    assert len(again) == 1
    rows = await adapter.rows()
    assert [(row["email_id"], row["sink"]) for row in rows] == [(request.email_id, f"file:{path}")]


async def test_i8_a_request_missing_a_field_is_dead_lettered_with_the_reason_and_the_stream_goes_on(adapter: Adapter) -> None:
    await adapter.start()
    bad_order, good_order = unique("order"), unique("order")
    bad = EmailRequested(
        email_id=f"order:{bad_order}:completed",
        template="order_completed",
        recipient_user_id="buyer-1",
        subject_id=bad_order,
        fields={"user_name": "Grace Hopper", "order_number": "1"},
        requested_at=T0,
    )
    await adapter.send(bad, key=bad_order)
    # An unknown template never decodes: the consumer dead-letters it too.
    envelope = encode(_completed(unique("order"), 2), key="x", trace_id="t")
    unknown = json.loads(envelope.value)
    unknown["template"] = "birthday"
    await produce(
        adapter.stack.kafka_bootstrap_servers, adapter.orders_topic, [(b"x", json.dumps(unknown).encode(), list(envelope.headers))]
    )
    good = _completed(good_order, 2)
    await adapter.send(good, key=good_order)

    [path] = await adapter.files_until(1)
    assert path.name == file_name_for(good.email_id)
    dead = await read_all(adapter.stack.kafka_bootstrap_servers, dead_letter_topic(adapter.orders_topic), expect=2)
    reasons = sorted(record.headers["dlq-reason"] for record in dead)
    assert reasons[1] == "template order_completed lacks field(s): channel_name"
    assert reasons[0].startswith("invalid EmailRequested: template:"), reasons[0]
    assert all(record.headers["dlq-topic"] == adapter.orders_topic for record in dead)
    assert [row["email_id"] for row in await adapter.rows()] == [good.email_id]
    sent = await read_all(adapter.stack.kafka_bootstrap_servers, adapter.events_topic, expect=1)
    assert [json.loads(r.value or b"{}")["email_id"] for r in sent] == [good.email_id]


class _CrashAfterSending:
    """Sends (writes the file), then crashes before the batch's transaction can commit."""

    def __init__(self, sink: FileSink) -> None:
        self.sink = sink
        self.calls = 0

    def send(self, email: OutgoingEmail) -> str:
        self.calls += 1
        self.sink.send(email)
        raise RuntimeError("crash after the send, before the commit")


async def test_i8_a_crash_after_the_file_write_and_before_the_commit_rewrites_the_same_email_not_a_second(adapter: Adapter) -> None:
    order_id = unique("order")
    request = _completed(order_id, 88)
    crashing = _CrashAfterSending(adapter.sink)
    await adapter.start(sender=crashing)
    await adapter.send(request, key=order_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not (adapter.serving is not None and adapter.serving.done()):
        assert loop.time() < deadline, "the crashing sender was never called"
        await asyncio.sleep(0.1)
    assert isinstance(await adapter.stop(), RuntimeError)
    [written] = adapter.sink.sent()
    first_bytes = written.read_bytes()
    assert await adapter.rows() == []  # rolled back: no record, no EmailSent

    # The service comes back; the request is delivered again and sent again, to the same file.
    await adapter.start()
    await adapter.drained()
    assert adapter.sink.sent() == [written] and written.read_bytes() == first_bytes
    assert [row["email_id"] for row in await adapter.rows()] == [request.email_id]
    sent = await read_all(adapter.stack.kafka_bootstrap_servers, adapter.events_topic, expect=1, settle_s=1.0)
    assert len(sent) == 1 and crashing.calls == 1


async def test_i8_alert_emails_asked_for_on_the_invoicing_topic_are_rendered_in_the_same_place(adapter: Adapter) -> None:
    await adapter.start()
    request = EmailRequested(
        email_id="runway_low:bc-9:2026-11-21",
        template="runway_low",
        subject_id="bc-9",
        fields={"owner_name": "Business Center bc-9", "balance": "250.00 USD", "average_daily_spend": "100.00 USD", "runway_days": "2"},
        requested_at=T0,
    )
    envelope = encode(request, key="bc-9", trace_id="t")
    await produce(adapter.stack.kafka_bootstrap_servers, adapter.events_topic, [(envelope.key, envelope.value, list(envelope.headers))])
    [path] = await adapter.files_until(1)
    parsed = email.message_from_bytes(path.read_bytes(), policy=default_policy)
    assert isinstance(parsed, email.message.EmailMessage)
    assert parsed["X-Adledger-Recipient"] == "contacts:bc-9"
    body = parsed.get_body(("plain",))
    assert body is not None and "about 2 days" in body.get_content() and "100.00 USD" in body.get_content()
    records = await read_all(adapter.stack.kafka_bootstrap_servers, adapter.events_topic, expect=2)
    assert sorted(r.headers["event-type"] for r in records) == ["EmailRequested", "EmailSent"]
