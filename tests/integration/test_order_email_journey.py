"""Rule O4 across two real services (issue #7): order_escrow asks for the completion e-mail with an
EmailRequested on `orders.events.v1`, and the invoicing service's e-mail adapter (wired by its own
inject.py, file sink in the test's tmp_path) renders it once and publishes one EmailSent.

The world is `billing_world` (wallet, spend consumer, invoicing; tests/integration/invoicing/
conftest.py) with order_escrow started beside it by the escrow tests' own `escrow` fixture, which
is given the billing world's wallet (so one wallet answers the hold commands, and every service
runs on one ManualClock), and the billing world's identity (the buyer's name in the e-mail is the
one the platform's identity published). order_escrow uses the shared `orders.events.v1` (its
default), which the invoicing service reads; every consumer of the world starts at its end, and
this test reads only the records keyed by its own order.
"""

from __future__ import annotations

import email
import json
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from adledger_invoicing.email import FileSink
from aiokafka import AIOKafkaConsumer, TopicPartition

from .conftest import Stack
from .escrow.test_escrow_journeys import Escrow, escrow  # noqa: F401 - the fixture, given the wallet below
from .invoicing.conftest import Billing, billing_world
from .kafka_io import Record, end_offsets, produce
from .waits import until
from .wallet.test_wallet_journey import USD, RunningWallet

pytestmark = pytest.mark.integration
ORDERS_TOPIC = "orders.events.v1"
INVOICING_EVENTS_TOPIC = "invoicing.events.v1"


@pytest.fixture
def sink_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The invoicing service reads its e-mail settings from ADLEDGER_EMAIL_* when it is wired."""
    directory = tmp_path / "emails"
    monkeypatch.setenv("ADLEDGER_EMAIL_SINK", "file")
    monkeypatch.setenv("ADLEDGER_EMAIL_SINK_DIR", str(directory))
    monkeypatch.delenv("ADLEDGER_ORDERS_EVENTS_TOPIC", raising=False)
    monkeypatch.delenv("ADLEDGER_EMAIL_INVOICING_EVENTS_TOPIC", raising=False)
    return directory


@pytest_asyncio.fixture
async def billing(stack: Stack, sink_dir: Path) -> AsyncIterator[Billing]:
    async with billing_world(stack, emails_from_the_end=True) as running:
        yield running


@pytest_asyncio.fixture
async def wallet(stack: Stack, billing: Billing) -> RunningWallet:
    """The billing world's wallet, for the `escrow` fixture (which asks for a `wallet`): its runtime,
    clock and topics, and the world's identity (`billing.identity`, a TestIdentity), so order_escrow
    verifies the same people and answers the same wallet."""
    runtime = billing.wallet_runtime
    assert runtime is not None
    settings = runtime.settings
    return RunningWallet(
        runtime, billing.wallet, billing.clock, stack.kafka_bootstrap_servers, billing.identity,  # type: ignore[attr-defined]
        settings.commands_topic, settings.events_topic,  # type: ignore[attr-defined]
    )


async def _records_since(bootstrap: str, since: dict[TopicPartition, int], key: str) -> list[Record]:
    """The records keyed by `key` from the given offsets up to the partitions' current ends (read
    committed), so a shared topic is read from where the test began, not from its beginning."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    try:
        partitions = list(since)
        consumer.assign(partitions)
        for partition, offset in since.items():
            consumer.seek(partition, offset)
        ends = await consumer.end_offsets(partitions)
        found: list[Record] = []

        async def caught_up() -> bool:
            for partition, end in ends.items():
                if await consumer.position(partition) < end:
                    batch = await consumer.getmany(timeout_ms=100)
                    for records in batch.values():
                        found.extend(
                            Record(r.topic, r.partition, r.offset, r.key, r.value, {name: value.decode() for name, value in r.headers})
                            for r in records
                        )
                    return False
            return True

        await until(caught_up, f"reading {sorted({p.topic for p in partitions})} up to its end", timeout_s=30, interval_s=0)
        return [record for record in found if record.key == key.encode()]
    finally:
        await consumer.stop()


def _typed(records: list[Record], event_type: str) -> list[Record]:
    return [record for record in records if record.headers.get("event-type") == event_type]


async def test_o4_i8_completed_order_emails_the_buyer_through_the_invoicing_email_adapter(
    escrow: Escrow, billing: Billing, sink_dir: Path  # noqa: F811 - `escrow` is the imported fixture
) -> None:
    bootstrap = billing.stack.kafka_bootstrap_servers
    assert escrow.wallet.clock is billing.clock, "one ManualClock for the wallet, order_escrow and invoicing"
    since = await end_offsets(bootstrap, [ORDERS_TOPIC, INVOICING_EVENTS_TOPIC])
    orders_since = {tp: offset for tp, offset in since.items() if tp.topic == ORDERS_TOPIC}
    events_since = {tp: offset for tp, offset in since.items() if tp.topic == INVOICING_EVENTS_TOPIC}
    sink = FileSink(sink_dir)

    def mine(order_id: str) -> list[Path]:
        """This order's e-mails: the sink also gets those of orders that other runs complete meanwhile."""
        return [path for path in sink.sent() if order_id in path.name]

    # The buyer places an order (held by the wallet), the seller accepts it and completes it.
    order_id = await escrow.place(4 * USD)
    accepted = await escrow.command(f"/v1/orders/{order_id}/accept", escrow.seller_token)
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted", accepted.text
    assert mine(order_id) == [], "no e-mail before Complete"
    completed = await escrow.command(f"/v1/orders/{order_id}/complete", escrow.seller_token)
    assert completed.status_code == 200 and completed.json()["status"] == "complete", completed.text
    number = str((await escrow.order(order_id))["number"])

    # The invoicing service's adapter writes exactly one e-mail for this order to its file sink.
    async def written() -> list[Path]:
        return mine(order_id)

    [path] = await until(written, f"the completion e-mail of {order_id} in {sink_dir}")
    parsed = email.message_from_bytes(path.read_bytes(), policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    body = parsed.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Bea Buyer" in text, f"O4: the buyer's user name: {text!r}"
    assert "Gaming Weekly" in text, f"O4: the channel name: {text!r}"
    assert f"#{number}" in text and number in str(parsed["Subject"]), f"O4: the order number {number}: {text!r}"
    assert "release the funds" in text, "O4: the seller asks for the funds to be released"
    assert str(parsed["X-Adledger-Recipient"]).startswith("user:"), "sent to the buyer, a platform user"

    # ...and publishes one EmailSent for it, naming the file.
    async def sent_once() -> list[Record]:
        return _typed(await _records_since(bootstrap, events_since, order_id), "EmailSent")

    [sent] = await until(sent_once, f"an EmailSent for {order_id}")
    payload = json.loads(sent.value or b"{}")
    email_id = f"order:{order_id}:completed"
    assert (payload["email_id"], payload["template"], payload["sink"]) == (email_id, "order_completed", f"file:{path}")

    # The EmailRequested came from order_escrow on the orders topic; published again, it sends nothing more.
    [requested] = _typed(await _records_since(bootstrap, orders_since, order_id), "EmailRequested")
    request = json.loads(requested.value or b"{}")
    assert (request["email_id"], request["template"]) == (email_id, "order_completed")
    assert payload["request_event_id"] == request["event_id"], "the EmailSent answers order_escrow's request"
    first_bytes = path.read_bytes()
    headers = [(name, value.encode()) for name, value in requested.headers.items()]
    [(partition, offset)] = await produce(bootstrap, ORDERS_TOPIC, [(requested.key, requested.value or b"", headers)])

    group = billing.service.runtime.settings.consumer_group

    async def applied_and_relayed() -> bool:
        conn = await asyncpg.connect(billing.stack.database_url)
        try:
            position = await conn.fetchval(
                f"select next_offset from {billing.invoicing_schema}.consumer_positions where group_id = $1 and topic = $2 and partition = $3",
                group, ORDERS_TOPIC, partition,
            )
            pending = await conn.fetchval(f"select count(*) from {billing.invoicing_schema}.outbox where key = $1", order_id.encode())
            return position is not None and position > offset and pending == 0
        finally:
            await conn.close()

    await until(applied_and_relayed, "the adapter applied the re-published EmailRequested and relayed its outbox")
    assert mine(order_id) == [path] and path.read_bytes() == first_bytes, "no second e-mail file"
    assert len(await sent_once()) == 1, "no second EmailSent"
