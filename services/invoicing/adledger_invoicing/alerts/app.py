"""The spend-rate job: low-balance and runway alerts (rules I6, I8) as a faust-streaming app.

Not on the money path: it reads what the money path published and raises advisory alerts.

Flow:
1. Router agents read the inputs and re-key them by owner onto one internal topic,
   `<app id>-owner-activity` (so every table below is co-partitioned with it), with the
   record's EVENT time as the Kafka timestamp (`posted_at`, `updated_at`, ...):
   - `spend.posted.v1` SpendPosted -> one record for the ad account, one for its Business Center;
   - `balances.v1` BalanceChanged -> the owner's latest available balance;
   - `wallet.events.v1` FundsReceived -> the owner's last payment (base of the default threshold);
   - `invoicing.alert-thresholds.v1` LowBalanceThresholdSet -> a Business Center's threshold.
   A record that does not decode goes to `<topic>.dlq` with the reason in `dlq-reason`.
2. The owner agent keeps the tables and evaluates the owner after each record:
   - `daily-spend`: a windowed table, tumbling 1-day windows (aligned on UTC midnight), kept 8
     days, of spend per owner, relative to the stream (= event time, set by the router);
   - `seen-spend`: the spend event ids already counted (a re-published SpendPosted counts once);
   - `balances`, `thresholds`, `last-payments`: the latest value per owner;
   - `raised`: the alert ids already produced.
   "Now" is the event time of the record being processed: the average daily spend is read from
   the 7 whole days before its UTC day (`WindowSet.delta`), never from the wall clock (T1). A
   record of a day before the owner's latest balance (a replay, late spend) only updates the
   tables: it is not judged against a later balance.
3. An alert is `BalanceAlertRaised` plus an `EmailRequested` (template `low_balance` or
   `runway_low`, `email_id` = alert id) on `invoicing.events.v1`, which the e-mail adapter renders.

Delivery is AT LEAST ONCE (Faust's default; its exactly-once mode is not used, see
docs/decisions.md): after a crash the last records are processed again. That is harmless
because everything produced has a stable id: the alert id is `<kind>:<owner>:<UTC day>`, it is
the event id of the alert (`alert:<id>`) and of its e-mail request (`email-requested:<id>`) and
the e-mail's `email_id`, so consumers and the e-mail adapter drop the repeat. Spend counted
twice by a replay is dropped by `seen-spend` as long as its changelog write landed.

State: tables are in memory (`memory://`); at start a worker rebuilds them from their changelog
topics (`<app id>-<table>-changelog`) before processing, so a restart loses nothing but time.
Faust expires windows by the WALL clock (`table_cleanup_interval`): a day's window is dropped
once it ended more than 8 days before the worker's wall-clock now, so spend posted more than
8 days late counts for nothing.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import faust
from adledger_contracts.alerts import BalanceAlertRaised, LowBalanceThresholdSet
from adledger_contracts.external import BalanceChanged
from adledger_contracts.notifications import EmailRequested
from adledger_contracts.spending import SpendPosted
from adledger_contracts.topics import dead_letter_topic
from adledger_contracts.wallet import FundsReceived
from adledger_libs.events import HEADER_EVENT_TYPE, DecodeError, Message, decode, encode, headers_to_dict
from adledger_libs.logs import get_logger, new_trace_id
from adledger_libs.outbox import (
    HEADER_DLQ_GROUP,
    HEADER_DLQ_OFFSET,
    HEADER_DLQ_PARTITION,
    HEADER_DLQ_REASON,
    HEADER_DLQ_TOPIC,
)

from adledger_invoicing.alerts import rules
from adledger_invoicing.alerts.settings import AlertSettings

log = get_logger(__name__)

DAY = timedelta(days=1)


def _utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def owner_label(owner_id: str, owner_kind: str) -> str:
    return f"Business Center {owner_id}" if owner_kind == "business_center" else f"ad account {owner_id}"


def create_app(settings: AlertSettings | None = None) -> faust.App:
    settings = settings or AlertSettings()
    app = faust.App(
        settings.app_id,
        broker=settings.broker(),
        store=settings.store,
        datadir=str(settings.resolved_data_dir()),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_enabled=False,
        autodiscover=False,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        table_cleanup_interval=60.0,
    )
    kept = timedelta(days=settings.window_days + 1)

    activity = app.topic(
        f"{settings.app_id}-owner-activity",
        key_type=str,
        key_serializer="raw",
        value_serializer="json",
        partitions=settings.partitions,
        internal=True,
        # Its timestamps are event times, which may lie ahead of the broker's clock (a producer's
        # skewed clock, a test's moved clock): Kafka 4 refuses those by default (one hour ahead).
        config={"message.timestamp.after.max.ms": str(2**63 - 1)},
    )

    def raw(name: str) -> faust.TopicT:
        return app.topic(name, key_serializer="raw", value_serializer="raw")

    daily_spend = (
        app.Table("daily-spend", default=int, partitions=settings.partitions)
        .tumbling(DAY, expires=kept)
        .relative_to_stream()
    )
    seen_spend = (
        app.Table("seen-spend", default=int, partitions=settings.partitions).tumbling(DAY, expires=kept).relative_to_stream()
    )
    raised = app.Table("raised", default=int, partitions=settings.partitions).tumbling(DAY, expires=kept).relative_to_stream()
    balances = app.Table("balances", partitions=settings.partitions)
    thresholds = app.Table("thresholds", partitions=settings.partitions)
    last_payments = app.Table("last-payments", partitions=settings.partitions)

    async def dead_letter(event: faust.EventT[Any], reason: str) -> None:
        message = event.message
        headers = {k: v for k, v in headers_to_dict(message.headers).items() if not k.startswith("dlq-")}
        headers.update(
            {
                HEADER_DLQ_REASON: reason[:1000],
                HEADER_DLQ_TOPIC: message.topic,
                HEADER_DLQ_PARTITION: str(message.partition),
                HEADER_DLQ_OFFSET: str(message.offset),
                HEADER_DLQ_GROUP: settings.app_id,
            }
        )
        log.warning("alerts_record_dead_lettered", topic=message.topic, offset=message.offset, reason=reason)
        await app.producer.send_and_wait(
            dead_letter_topic(message.topic),
            message.key,
            message.value or b"",
            None,
            None,
            [(k, v.encode()) for k, v in headers.items()],
        )

    async def decoded(event: faust.EventT[Any], model: type[Message]) -> Any:
        """The typed event, or None when the record is of another type, a tombstone, or bad (dead-lettered)."""
        message = event.message
        event_type = headers_to_dict(message.headers).get(HEADER_EVENT_TYPE)
        if event_type is not None and event_type != model.MESSAGE_TYPE:
            return None
        if message.value is None:
            return None
        try:
            return decode(model, message.value)
        except DecodeError as error:
            await dead_letter(event, error.reason)
            return None

    async def forward(owner_id: str, at: datetime, record: dict[str, Any]) -> None:
        await activity.send(key=owner_id.encode(), value={**record, "owner_id": owner_id, "at": at.isoformat()}, timestamp=at.timestamp())

    @app.agent(raw(settings.spend_topic), name="route-spend")
    async def route_spend(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            spend: SpendPosted | None = await decoded(event, SpendPosted)
            if spend is None:
                continue
            base = {"kind": "spend", "event_id": spend.event_id, "amount_micros": spend.amount_micros, "currency": spend.currency}
            await forward(spend.ad_account_id, spend.posted_at, {**base, "owner_kind": "ad_account"})
            if spend.business_center_id:
                await forward(spend.business_center_id, spend.posted_at, {**base, "owner_kind": "business_center"})

    @app.agent(raw(settings.balances_topic), name="route-balances")
    async def route_balances(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            balance: BalanceChanged | None = await decoded(event, BalanceChanged)
            if balance is None:
                continue
            await forward(
                balance.owner_id,
                balance.updated_at,
                {
                    "kind": "balance",
                    "owner_kind": balance.owner_kind,
                    "available_micros": balance.available_micros,
                    "currency": balance.currency,
                    "version": balance.version,
                },
            )

    @app.agent(raw(settings.wallet_events_topic), name="route-payments")
    async def route_payments(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            funds: FundsReceived | None = await decoded(event, FundsReceived)
            if funds is None:
                continue
            await forward(funds.owner_id, funds.received_at, {"kind": "payment", "amount_micros": funds.amount_micros})

    @app.agent(raw(settings.thresholds_topic), name="route-thresholds")
    async def route_thresholds(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            setting: LowBalanceThresholdSet | None = await decoded(event, LowBalanceThresholdSet)
            if setting is None:
                continue
            await forward(setting.business_center_id, setting.set_at, {"kind": "threshold", "threshold_micros": setting.threshold_micros})

    async def raise_alert(alert: BalanceAlertRaised, email: EmailRequested) -> None:
        if raised[alert.alert_id].current():
            return
        trace_id = new_trace_id()
        # Sent and acknowledged before the alert is marked raised: a crash in between sends it
        # again with the same ids (at least once), never loses it.
        for message in (alert, email):
            envelope = encode(message, key=alert.owner_id, trace_id=trace_id)
            await app.producer.send_and_wait(
                settings.alerts_topic, envelope.key, envelope.value, None, None, list(envelope.headers)
            )
        raised[alert.alert_id] = 1
        log.info("balance_alert_raised", alert_id=alert.alert_id, kind=alert.kind, available_micros=alert.available_micros)

    async def evaluate(owner_id: str, at: datetime) -> None:
        balance = balances.get(owner_id)
        if balance is None:
            return
        day = _utc_day(at)
        if day < _utc_day(datetime.fromisoformat(balance["updated_at"])):
            # A record of an earlier day (a replay, a late spend) is not judged against today's balance.
            return
        owner_kind = balance["owner_kind"]
        available = int(balance["available_micros"])
        currency = balance["currency"]
        label = owner_label(owner_id, owner_kind)
        if owner_kind == "business_center" or settings.runway_ad_accounts:
            window = daily_spend[owner_id]
            spends = [int(window.delta(DAY * back)) for back in range(1, settings.window_days + 1)]
            average = rules.average_daily_spend(spends, settings.window_days)
            log.debug("owner_runway", owner_id=owner_id, available_micros=available, daily_spend_micros=spends, average_micros=average)
            if rules.runway_is_low(available, average, settings.runway_factor):
                days = rules.runway_days(available, average)
                alert_id = rules.alert_id("runway_low", owner_id, day)
                await raise_alert(
                    BalanceAlertRaised(
                        event_id=f"alert:{alert_id}", alert_id=alert_id, kind="runway_low", owner_id=owner_id,
                        owner_kind=owner_kind, currency=currency, available_micros=available,
                        average_daily_spend_micros=average, runway_days=days, utc_day=day, raised_at=at,
                    ),
                    EmailRequested(
                        event_id=f"email-requested:{alert_id}", email_id=alert_id, template="runway_low",
                        subject_id=owner_id, requested_at=at,
                        fields={
                            "owner_name": label,
                            "balance": rules.format_micros(available, currency),
                            "average_daily_spend": rules.format_micros(average, currency),
                            "runway_days": str(days),
                        },
                    ),
                )
        if owner_kind == "business_center":
            explicit = thresholds.get(owner_id)
            threshold = rules.low_balance_threshold(
                explicit["threshold_micros"] if explicit else None, last_payments.get(owner_id), settings.threshold_percent
            )
            log.debug("owner_threshold", owner_id=owner_id, available_micros=available, threshold_micros=threshold)
            if rules.below_threshold(available, threshold):
                assert threshold is not None
                alert_id = rules.alert_id("low_balance", owner_id, day)
                await raise_alert(
                    BalanceAlertRaised(
                        event_id=f"alert:{alert_id}", alert_id=alert_id, kind="low_balance", owner_id=owner_id,
                        owner_kind=owner_kind, currency=currency, available_micros=available,
                        threshold_micros=threshold, utc_day=day, raised_at=at,
                    ),
                    EmailRequested(
                        event_id=f"email-requested:{alert_id}", email_id=alert_id, template="low_balance",
                        subject_id=owner_id, requested_at=at,
                        fields={
                            "owner_name": label,
                            "balance": rules.format_micros(available, currency),
                            "threshold": rules.format_micros(threshold, currency),
                        },
                    ),
                )

    @app.agent(activity, name="evaluate-owners")
    async def evaluate_owners(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            record = event.value
            owner_id = record["owner_id"]
            kind = record["kind"]
            at = datetime.fromisoformat(record["at"])
            log.debug("owner_activity", owner_id=owner_id, kind=kind, at=record["at"], partition=event.message.partition, offset=event.message.offset)
            if kind == "spend":
                seen_key = f"{owner_id}|{record['event_id']}"
                if seen_spend[seen_key].current():
                    log.info("spend_already_counted", owner_id=owner_id, event_id=record["event_id"])
                    continue
                daily_spend[owner_id] += int(record["amount_micros"])
                seen_spend[seen_key] = 1
            elif kind == "balance":
                previous = balances.get(owner_id)
                if previous is not None and int(previous["version"]) >= int(record["version"]):
                    continue  # an older balance arriving late
                balances[owner_id] = {
                    "owner_kind": record["owner_kind"],
                    "available_micros": int(record["available_micros"]),
                    "currency": record["currency"],
                    "version": int(record["version"]),
                    "updated_at": record["at"],
                }
            elif kind == "payment":
                last_payments[owner_id] = int(record["amount_micros"])
            elif kind == "threshold":
                thresholds[owner_id] = {"threshold_micros": record["threshold_micros"]}
            else:
                log.warning("unknown_owner_activity", kind=kind)
                continue
            await evaluate(owner_id, at)

    return app
