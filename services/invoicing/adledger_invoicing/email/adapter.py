"""The e-mail adapter (rules I8, O4): the only place that renders e-mails.

It subscribes to `EmailRequested` on `orders.events.v1` and `invoicing.events.v1` through the
service's TransactionalConsumer, so each request is handled exactly once: the consumer drops a
re-sent event (same event id), and `emails_sent` drops a second request with the same
`email_id` (another event id). For each new request, in the batch's one transaction: record the
e-mail, send it (the file sink), and publish `EmailSent` through the outbox. A request that
cannot be rendered (missing or blank field) goes to the topic's dead-letter topic with the
reason; an unknown template never decodes and is dead-lettered by the consumer itself.

The send is the one effect outside the transaction; it is idempotent by email_id (see sinks.py),
so a crash between the send and the commit repeats the same file write, not the e-mail.
"""

from __future__ import annotations

from adledger_contracts.alerts import EmailSent
from adledger_contracts.notifications import EmailRequested
from adledger_libs.clock import Clock
from adledger_libs.consumer import Inbound, Subscription, reject
from adledger_libs.logs import get_logger
from adledger_libs.outbox import UnitOfWork
from adledger_libs.runtime import ServiceRuntime

from adledger_invoicing.email.message import compose
from adledger_invoicing.email.settings import EmailSettings
from adledger_invoicing.email.sinks import EmailSender, FileSink, LogSink
from adledger_invoicing.email.templates import TemplateError

log = get_logger(__name__)


class EmailAdapter:
    def __init__(self, sender: EmailSender, clock: Clock, *, events_topic: str) -> None:
        self.sender = sender
        self._clock = clock
        self._events_topic = events_topic

    def subscriptions(self, *topics: str) -> list[Subscription]:
        return [Subscription(topic=topic, model=EmailRequested, handler=self.handle) for topic in topics]

    async def handle(self, uow: UnitOfWork, batch: list[Inbound[EmailRequested]]) -> None:
        for inbound in batch:
            await self._handle_one(uow, inbound)

    async def _handle_one(self, uow: UnitOfWork, inbound: Inbound[EmailRequested]) -> None:
        request = inbound.message
        try:
            email = compose(request)
        except TemplateError as error:
            log.warning("email_rejected", email_id=request.email_id, template=request.template, reason=error.reason)
            reject(uow, inbound, error.reason)
            return
        now = self._clock.now()
        first = await uow.conn.fetchval(
            """insert into emails_sent (email_id, template, recipient, subject_id, request_event_id, sink, sent_at)
               values ($1, $2, $3, $4, $5, '', $6)
               on conflict (email_id) do nothing
               returning email_id""",
            request.email_id,
            request.template,
            email.recipient,
            request.subject_id,
            inbound.event_id,
            now,
        )
        if first is None:
            log.info("email_already_sent", email_id=request.email_id, event_id=inbound.event_id)
            return
        where = self.sender.send(email)
        await uow.conn.execute("update emails_sent set sink = $2 where email_id = $1", request.email_id, where)
        uow.publish(
            EmailSent(
                event_id=f"email-sent:{request.email_id}",
                email_id=request.email_id,
                template=request.template,
                recipient=email.recipient,
                subject_id=request.subject_id,
                subject_line=email.subject,
                sink=where,
                request_event_id=inbound.event_id,
                sent_at=now,
            ),
            topic=self._events_topic,
            key=request.subject_id,
            trace_id=inbound.trace_id,
        )


def make_sender(settings: EmailSettings) -> EmailSender:
    if settings.sink == "log":
        return LogSink()
    return FileSink(settings.resolved_sink_dir())


def register_email_adapter(
    runtime: ServiceRuntime,
    clock: Clock | None = None,
    *,
    settings: EmailSettings | None = None,
    events_topic: str | None = None,
    orders_topic: str = "orders.events.v1",
    sender: EmailSender | None = None,
) -> EmailAdapter:
    """Wire the adapter's subscriptions on the invoicing service's runtime (one call in inject.py).

    `settings` default to the ADLEDGER_EMAIL_* environment; `events_topic`, when given, is the
    service's own events topic (read for EmailRequested, written with EmailSent); `orders_topic` is
    where the escrowed orders ask for their e-mails (O4).
    """
    settings = settings or EmailSettings()
    if events_topic is not None:
        settings = settings.model_copy(update={"invoicing_events_topic": events_topic})
    adapter = EmailAdapter(
        sender or make_sender(settings),
        clock or runtime.clock,
        events_topic=settings.invoicing_events_topic,
    )
    runtime.subscribe(*adapter.subscriptions(orders_topic, settings.invoicing_events_topic))
    return adapter
