"""The spend consumer's use cases, each run inside the consumer batch's one transaction.

- `apply_wallet_events`: keep the ad accounts (currency, Business Center, ABA) from the wallet.
- `apply_spends`: take a batch of spend events from the shared ledger exactly once (S1, W7),
  record overspend (S2), adjust final costs (S6), pause what reached zero (W8), publish the new
  balances once per owner.
- `apply_balances`: resume paused accounts whose funds came back (W8, `funds_restored`).
- `apply_campaigns`, `apply_caps`: keep the newest campaign and cap snapshots from
  `campaign.events.v1` and pause or resume what they change (S3, C5: manual, status, budget).
- `renew_budget_periods` (a periodic job on the injected clock, T1): resume daily budgets and
  capped accounts whose period rolled over.
- Spend also counts against campaign budgets, prepaid bookings and caps (S3, C1) and is
  published summed per (ad account, campaign) on `spend.posted.v1`.

The TransactionalConsumer already made the batch exactly once (positions and event ids); this
module makes each batch cost a fixed number of statements and one `create_transfers` call.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from adledger_contracts.campaigns import AdAccountBudgetCapChanged, CampaignChanged
from adledger_contracts.external import BalanceChanged, DeliveryDecided, DeliveryStateChanged, SpendReported
from adledger_contracts.spending import SpendPosted
from adledger_contracts.wallet import AdAccountOpened, AutomaticBalanceAllocationEnabled, BusinessCenterOpened
from adledger_ledger.domain import Account, TransferRequest, raise_first_error
from adledger_ledger.owners import OwnerKind, owner_account_id, owner_balance, owner_buckets, system_account_id
from adledger_ledger.postgres import PostgresLedger
from adledger_ledger.publishing import BALANCES_TOPIC, publish_balances
from adledger_libs.clock import Clock
from adledger_libs.consumer import Inbound, prune_processed_events, reject
from adledger_libs.events import encode
from adledger_libs.logs import get_logger
from adledger_libs.outbox import OutboxRelay, UnitOfWork, unit_of_work
from aiokafka import AIOKafkaProducer, TopicPartition
from prometheus_client import Counter, Histogram

from adledger_spend_consumer.adapters import postgres
from adledger_spend_consumer.adapters.records import SpendRecord
from adledger_spend_consumer.domain import delivery
from adledger_spend_consumer.domain.budgets import budget_reached, campaign_changes, cap_changes, cap_reached
from adledger_spend_consumer.domain.delivery import CauseChange, Transition
from adledger_spend_consumer.domain.spending import (
    AccountProfile,
    Owner,
    OwnerFunds,
    PostedSpend,
    Spend,
    accounts_to_resume,
    decide_batch,
)

log = get_logger(__name__)

#: A spend as the consumer decoded it: the compiled record, or the contract's model (the fallback).
SpendMessage = SpendReported | SpendRecord

REASON_INSUFFICIENT_FUNDS = delivery.INSUFFICIENT_FUNDS
REASON_FUNDS_RESTORED = delivery.FUNDS_RESTORED
_BUDGET_CAUSES = (delivery.CAMPAIGN_BUDGET_REACHED, delivery.ACCOUNT_BUDGET_REACHED)

OVERSPEND_MICROS = Counter(
    "adledger_spend_overspend_micros_total",
    "Spend recorded after the funds reached zero (rule S2), in micros, per currency.",
    ["currency"],
)
DELIVERY_DECISIONS = Counter(
    "adledger_delivery_decisions_total", "Pauses and resumes published on delivery.control.v1.", ["action", "reason"]
)
MESSAGES_DEAD_LETTERED = Counter(
    "adledger_spend_dead_lettered_total", "Spend events sent to the dead-letter topic: unknown account, wrong currency, foreign charge."
)
PAUSE_LATENCY_SECONDS = Histogram(
    "adledger_pause_latency_seconds",
    "From the occurred_at of the spend event that caused a pause to the pause's decided_at, per reason (S2).",
    ["reason"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
EARLY_PAUSES = Counter(
    "adledger_spend_early_pauses_total",
    "Pauses sent on delivery.control.v1 the moment they were decided, before the commit (issue 14); "
    "outcome: sent, or withdrawn (a rolled-back attempt's pause the retry did not decide again).",
    ["outcome"],
)
#: The reason of the resume that withdraws a pause announced early by an attempt that rolled back
#: and was then decided differently (a top-up landed in between): the key serves in the database.
REASON_PAUSE_WITHDRAWN = "pause_withdrawn"
PAUSE_OVERSPEND_MICROS = Counter(
    "adledger_pause_overspend_micros_total",
    "Overspend accrued during pauses that ended (rule S2), in micros; with the resume count it gives the mean per pause.",
    ["currency"],
)


@dataclass(frozen=True)
class Topics:
    spend: str = "ads.spend.v1"
    delivery_control: str = "delivery.control.v1"
    delivery_state: str = "delivery.state.v1"
    balances: str = BALANCES_TOPIC
    spend_posted: str = "spend.posted.v1"


class SpendConsumer:
    def __init__(
        self, ledger: PostgresLedger, clock: Clock, group_id: str, topics: Topics | None = None,
        early_producer: Callable[[], AIOKafkaProducer | None] | None = None,
        pool: Callable[[], asyncpg.Pool] | None = None,
    ) -> None:
        """`early_producer` gives the producer that sends a spend's pause the moment it is decided,
        before the commit (issue 14, lever 4), and `pool` the connections that write each down in
        `announced_pauses` first; None keeps every decision on the outbox path."""
        self._ledger = ledger
        self._clock = clock
        self._group_id = group_id
        self._topics = topics or Topics()
        self._early_producer = early_producer if pool is not None else None
        self._pool = pool
        #: The spend partitions that may have rows in `announced_pauses` (written by this process,
        #: or found at assignment): their next batch settles them before it commits.
        self._announced_partitions: set[tuple[str, int]] = set()

    # ------------------------------------------------------------------------------------------
    # Local state from the wallet
    # ------------------------------------------------------------------------------------------

    async def apply_business_centers(self, uow: UnitOfWork, batch: list[Inbound[BusinessCenterOpened]]) -> None:
        await postgres.upsert_business_centers(
            uow.conn, [(inbound.message.business_center_id, inbound.message.currency) for inbound in batch]
        )

    async def apply_ad_accounts(self, uow: UnitOfWork, batch: list[Inbound[AdAccountOpened]]) -> None:
        profiles = [
            AccountProfile(
                ad_account_id=opened.ad_account_id,
                business_center_id=opened.business_center_id,
                currency=opened.currency,
                draws_on_business_center=opened.draws_on_business_center,
            )
            for opened in (inbound.message for inbound in batch)
        ]
        await postgres.upsert_ad_accounts(uow.conn, profiles)
        # A campaign or cap snapshot read before its account was known here waited for it.
        await self._reconcile_accounts(uow, sorted({profile.ad_account_id for profile in profiles}))

    async def apply_aba_enabled(self, uow: UnitOfWork, batch: list[Inbound[AutomaticBalanceAllocationEnabled]]) -> None:
        for inbound in batch:
            enabled = inbound.message
            await postgres.enable_business_center_draws(uow.conn, enabled.business_center_id, enabled.eligible_ad_account_ids)

    # ------------------------------------------------------------------------------------------
    # Campaigns and caps (S3, C5): snapshots, the newest version wins
    # ------------------------------------------------------------------------------------------

    async def apply_campaigns(self, uow: UnitOfWork, batch: list[Inbound[CampaignChanged]]) -> None:
        """Keep each campaign's newest snapshot and pause or resume what it changes: its status
        (manual, draft, awaiting payment, ended) and its budget or booking against its spend."""
        newest: dict[tuple[str, str], CampaignChanged] = {}
        for inbound in batch:
            snapshot = inbound.message
            pair = (snapshot.ad_account_id, snapshot.campaign_id)
            if pair not in newest or newest[pair].version < snapshot.version:
                newest[pair] = snapshot
        now = self._clock.now()
        conn = uow.conn
        current = await postgres.lock_states(conn, [delivery.state_key(*pair) for pair in newest])
        changed = await postgres.upsert_campaigns(conn, list(newest.values()), now.date())
        if not changed:
            return
        # Another environment's campaign (its account unknown here) is kept, not acted on; it is
        # decided when its account opens here (`apply_ad_accounts`).
        profiles = await postgres.account_profiles(conn, {account_id for account_id, _ in changed})
        changes: list[CauseChange] = []
        for (account_id, campaign_id), (campaign, status, pause_cause) in changed.items():
            profile = profiles.get(account_id)
            if profile is not None:
                changes += campaign_changes(
                    campaign, status=status, pause_cause=pause_cause,
                    causes=current.get(delivery.state_key(account_id, campaign_id), ()),
                    business_center_id=_shared_center(profile),
                )
        await self._decide(uow, current, changes, now)

    async def apply_caps(self, uow: UnitOfWork, batch: list[Inbound[AdAccountBudgetCapChanged]]) -> None:
        """Keep each ad account's newest cap; pause an account whose period's spend reaches it,
        resume one whose cap was raised above it or lifted (S3, W10)."""
        newest: dict[str, AdAccountBudgetCapChanged] = {}
        for inbound in batch:
            snapshot = inbound.message
            if snapshot.ad_account_id not in newest or newest[snapshot.ad_account_id].version < snapshot.version:
                newest[snapshot.ad_account_id] = snapshot
        now = self._clock.now()
        today = now.date()
        conn = uow.conn
        current = await postgres.lock_states(conn, list(newest))
        changed = await postgres.upsert_caps(conn, list(newest.values()))
        if not changed:
            return
        profiles = await postgres.account_profiles(conn, changed)
        _, caps = await postgres.budgets(conn, [], [account_id for account_id in changed if account_id in profiles], today)
        changes: list[CauseChange] = []
        for account_id, cap in caps.items():
            changes += cap_changes(cap, today, causes=current.get(account_id, ()), business_center_id=_shared_center(profiles[account_id]))
        await self._decide(uow, current, changes, now)

    async def _reconcile_accounts(self, uow: UnitOfWork, account_ids: Sequence[str]) -> None:
        """Decide the campaigns and caps of these ad accounts as they stand (nothing when in force)."""
        conn = uow.conn
        pairs, capped = await postgres.budget_keys_of_accounts(conn, account_ids)
        if not pairs and not capped:
            return
        now = self._clock.now()
        today = now.date()
        current = await postgres.lock_states(conn, [*capped, *(delivery.state_key(*pair) for pair in pairs)])
        campaigns, caps = await postgres.budgets(conn, pairs, capped, today)
        statuses = await postgres.campaign_statuses(conn, campaigns)
        profiles = await postgres.account_profiles(conn, account_ids)
        changes: list[CauseChange] = []
        for pair, campaign in sorted(campaigns.items()):
            status, pause_cause = statuses[pair]
            changes += campaign_changes(
                campaign, status=status, pause_cause=pause_cause, causes=current.get(delivery.state_key(*pair), ()),
                business_center_id=_shared_center(profiles[pair[0]]),
            )
        for account_id, cap in sorted(caps.items()):
            changes += cap_changes(cap, today, causes=current.get(account_id, ()), business_center_id=_shared_center(profiles[account_id]))
        await self._decide(uow, current, changes, now)

    async def renew_budget_periods(self, uow: UnitOfWork) -> int:
        """Resume what a new period freed (S3, W10, T1): a daily budget at the next UTC day, a
        daily, monthly or custom cap when its period rolled over or ended. Returns how many
        causes ended."""
        conn = uow.conn
        paused = await postgres.lock_budget_paused(conn)
        if not paused:
            return 0
        now = self._clock.now()
        today = now.date()
        pairs = [(account_id, campaign_id) for account_id, campaign_id, causes in paused.values()
                 if campaign_id is not None and delivery.CAMPAIGN_BUDGET_REACHED in causes]
        capped = [account_id for account_id, campaign_id, causes in paused.values()
                  if campaign_id is None and delivery.ACCOUNT_BUDGET_REACHED in causes]
        campaigns, caps = await postgres.budgets(conn, pairs, capped, today)
        profiles = await postgres.account_profiles(conn, {account_id for account_id, _, _ in paused.values()})
        changes: list[CauseChange] = []
        for pair in pairs:
            campaign = campaigns.get(pair)
            # Only a daily budget renews with the day; a lifetime budget or a booking resumes
            # when the campaign service raises it (`apply_campaigns`).
            if campaign is not None and campaign.budget_kind == "daily" and not campaign.prepaid and not budget_reached(campaign):
                changes.append(delivery.end(
                    pair[0], pair[1], delivery.CAMPAIGN_BUDGET_REACHED, delivery.BUDGET_PERIOD_RENEWED,
                    business_center_id=_shared_center(profiles[pair[0]]) if pair[0] in profiles else None,
                ))
        for account_id in capped:
            cap = caps.get(account_id)
            if cap is not None and not cap_reached(cap, today):
                changes.append(delivery.end(
                    account_id, None, delivery.ACCOUNT_BUDGET_REACHED, delivery.ACCOUNT_BUDGET_PERIOD_RENEWED,
                    business_center_id=_shared_center(profiles[account_id]) if account_id in profiles else None,
                ))
        current = {key: causes for key, (_, _, causes) in paused.items()}
        return len(await self._decide(uow, current, changes, now))

    # ------------------------------------------------------------------------------------------
    # Spend
    # ------------------------------------------------------------------------------------------

    async def apply_spends(self, uow: UnitOfWork, batch: list[Inbound[SpendMessage]]) -> None:
        rejections: list[str] = []
        partitions = {(inbound.topic, inbound.partition) for inbound in batch}
        if self._pool is not None:
            # Registered before the handler runs, so a pause it announces is settled too; also with
            # early pauses turned off, for rows an earlier run left (no statement when there are none).
            uow.before_commit(lambda: self._settle_announced(uow, partitions))
        await self._apply_spends(uow, batch, rejections)
        if rejections:
            # One line per batch, not one per record: a backlog of bad records must not flood the
            # log; each record keeps its reason in its `dlq-reason` header.
            log.warning("spends_dead_lettered", count=len(rejections), batch_records=len(batch), first_reason=rejections[0])
            MESSAGES_DEAD_LETTERED.inc(len(rejections))

    async def _apply_spends(self, uow: UnitOfWork, batch: list[Inbound[SpendMessage]], rejections: list[str]) -> None:
        now = self._clock.now()
        today = now.date()
        conn = uow.conn
        profiles = await postgres.account_profiles(conn, {inbound.message.ad_account_id for inbound in batch})
        checked: list[Inbound[SpendMessage]] = []
        for inbound in batch:
            spend = inbound.message
            profile = profiles.get(spend.ad_account_id)
            if profile is None:
                self._dead_letter(uow, inbound, rejections, f"unknown ad account {spend.ad_account_id}")
            elif profile.currency != spend.currency:
                self._dead_letter(
                    uow, inbound, rejections, f"currency mismatch: ad account {spend.ad_account_id} is in {profile.currency}, spend in {spend.currency}"
                )
            else:
                checked.append(inbound)
        if not checked:
            return

        # Everything the decision needs, read once: the ABA members of the Business Centers in
        # the batch (a Business Center at zero pauses them all), the causes in force for the
        # accounts and campaigns (rows locked), their budgets and caps (rows locked, one query),
        # earlier charges (S6), and the balances (accounts locked, then one read).
        centers = {profiles[inbound.message.ad_account_id].business_center_id for inbound in checked
                   if profiles[inbound.message.ad_account_id].draws_on_business_center}
        members = await postgres.aba_members(conn, centers) if centers else {}
        everyone = {**profiles, **members}
        spending_ids = {inbound.message.ad_account_id for inbound in checked}
        involved_ids = spending_ids | set(members)
        pairs = {(inbound.message.ad_account_id, inbound.message.campaign_id) for inbound in checked}
        states = await postgres.lock_states(conn, [*involved_ids, *(delivery.state_key(*pair) for pair in pairs)])
        paused = {account_id for account_id in involved_ids if REASON_INSUFFICIENT_FUNDS in states.get(account_id, ())}
        budget_paused = {key for key, causes in states.items() if any(cause in causes for cause in _BUDGET_CAUSES)}
        campaigns, caps = await postgres.budgets(conn, pairs, spending_ids, today)
        owners = _owners_of(everyone[account_id] for account_id in involved_ids)
        currencies = {everyone[account_id].currency for account_id in involved_ids}
        funds = await self._locked_funds(uow, owners, currencies)

        # An account the wallet announced but whose ledger accounts are not in this ledger belongs
        # to another environment sharing the broker: it is unknown here, like any unknown account.
        accepted: list[Inbound[SpendMessage]] = []
        for inbound in checked:
            if all(owner in funds for owner in _owners_of([everyone[inbound.message.ad_account_id]])):
                accepted.append(inbound)
            else:
                self._dead_letter(uow, inbound, rejections, f"unknown ad account {inbound.message.ad_account_id}: no ledger accounts")
        if not accepted:
            return
        members_by_center: dict[str, list[str]] = {}
        for member in sorted(members.values(), key=lambda item: item.ad_account_id):
            if ("ad_account", member.ad_account_id) in funds:
                members_by_center.setdefault(member.business_center_id, []).append(member.ad_account_id)
        charge_ids = {inbound.message.charge_id for inbound in accepted if inbound.message.charge_id is not None}
        earlier_charges = await postgres.charges(conn, charge_ids) if charge_ids else {}

        spends = [
            Spend(
                event_id=inbound.event_id,
                ad_account_id=inbound.message.ad_account_id,
                campaign_id=inbound.message.campaign_id,
                amount_micros=inbound.message.amount_micros,
                charge_id=inbound.message.charge_id,
                occurred_at=inbound.message.occurred_at,
            )
            for inbound in accepted
        ]
        decision = decide_batch(
            spends, accounts=everyone, funds=funds, charges=earlier_charges, paused_account_ids=paused,
            aba_members=members_by_center, campaigns=campaigns, caps=caps, today=today, budget_paused_keys=budget_paused,
        )
        for rejected in decision.rejected:
            self._dead_letter(uow, accepted[rejected.index], rejections, rejected.reason)
        changes = [
            delivery.start(
                pause.ad_account_id, None, REASON_INSUFFICIENT_FUNDS, business_center_id=pause.business_center_id,
                cause_event_id=pause.cause_event_id, overspend_micros=pause.overspend_micros,
            )
            for pause in decision.pauses
        ]
        changes += [
            delivery.start(
                pause.ad_account_id, pause.campaign_id, pause.reason,
                business_center_id=_shared_center(everyone[pause.ad_account_id]), cause_event_id=pause.cause_event_id,
            )
            for pause in decision.budget_pauses
        ]
        if changes and self._early_producer is not None:
            # The pauses leave now, before the batch's writes and its commit (see `_announce`).
            await self._announce(delivery.resolve(states, changes)[0], now, accepted)

        currency_of_owner = _currency_of_owners(everyone.values())
        requests = _transfer_requests(decision.movements, currency_of_owner, _batch_tag(accepted))
        # The one create_transfers call of this transaction (the ledger locks its accounts once).
        # A refusal means no money moved for that bucket: nothing of the batch may then count as
        # spent or be posted, so it is raised (a record fault: the consumer isolates the record
        # that caused it, for example an amount whose total the ledger cannot hold, and
        # dead-letters it while the rest of the batch is applied).
        raise_first_error(await self._ledger.create_transfers(conn, requests, now))
        await postgres.store_charges(conn, decision.charges)
        await postgres.store_campaign_spend(conn, decision.campaigns, today)
        await postgres.add_account_spend(conn, decision.account_spend_micros, today)
        await postgres.add_overspend_to_open_pauses(conn, decision.overspend_of_open_pauses_micros)
        trace_of_event = {inbound.event_id: inbound.trace_id for inbound in accepted}
        occurred_at_of_event = {inbound.event_id: inbound.message.occurred_at for inbound in accepted}
        for transition in await self._decide(uow, states, changes, now, trace_of_event):
            if transition.action == "pause" and transition.change.cause_event_id in occurred_at_of_event:
                latency_s = (now - occurred_at_of_event[transition.change.cause_event_id]).total_seconds()
                PAUSE_LATENCY_SECONDS.labels(transition.change.reason).observe(max(latency_s, 0.0))
        await publish_balances(uow, self._ledger, decision.touched_owners, now, topic=self._topics.balances)
        self._publish_posted(uow, decision.posted, everyone, now, trace_of_event)
        for currency, overspend_micros in decision.overspend_micros_by_currency.items():
            OVERSPEND_MICROS.labels(currency).inc(overspend_micros)

    def _publish_posted(
        self, uow: UnitOfWork, posted: Sequence[PostedSpend], profiles: Mapping[str, AccountProfile], now: datetime,
        trace_of_event: Mapping[str, str],
    ) -> None:
        """One SpendPosted per (ad account, campaign) of the batch, its id derived from its first
        spend event, so a replay of the batch publishes the same ids (consumers dedupe on them)."""
        topic = self._topics.spend_posted
        for item in posted:
            profile = profiles[item.ad_account_id]
            uow.publish(
                SpendPosted(
                    event_id=posted_event_id(item.ad_account_id, item.campaign_id, item.first_event_id),
                    ad_account_id=item.ad_account_id,
                    campaign_id=item.campaign_id,
                    business_center_id=profile.business_center_id,
                    funding_mode=item.funding_mode,  # type: ignore[arg-type]
                    amount_micros=item.amount_micros,
                    from_booking_micros=item.from_booking_micros,
                    currency=profile.currency,
                    spend_event_count=item.spend_event_count,
                    first_occurred_at=item.first_occurred_at or now,
                    last_occurred_at=item.last_occurred_at or now,
                    posted_at=now,
                ),
                topic=topic,
                key=item.ad_account_id,
                trace_id=trace_of_event.get(item.first_event_id),
            )

    # ------------------------------------------------------------------------------------------
    # Resume
    # ------------------------------------------------------------------------------------------

    async def apply_balances(self, uow: UnitOfWork, batch: list[Inbound[BalanceChanged]]) -> None:
        """Resume the paused accounts whose funds came back (W8).

        A balance record only says "look again": the decision is made from the ledger's current
        balances, read after the paused accounts' state rows are locked, so a stale or
        out-of-order record can never resume an account whose funds are zero now.
        """
        owner_ids = sorted({inbound.message.owner_id for inbound in batch})
        paused, current = await postgres.lock_paused_for_owners(uow.conn, owner_ids)
        if not paused:
            return
        owners = _owners_of(paused.values())
        funds = _funds_of(owners, await self._ledger.balances(uow.conn, _bucket_account_ids(owners)))
        resumed = accounts_to_resume(sorted(paused), accounts=paused, funds=funds)
        if not resumed:
            return
        changes = [
            delivery.end(account_id, None, REASON_INSUFFICIENT_FUNDS, REASON_FUNDS_RESTORED,
                         business_center_id=_shared_center(paused[account_id]))
            for account_id in resumed
        ]
        await self._decide(
            uow, current, changes, self._clock.now(),
            currency_of_account={account_id: profile.currency for account_id, profile in paused.items()},
        )

    # ------------------------------------------------------------------------------------------

    async def _decide(
        self, uow: UnitOfWork, current: Mapping[str, tuple[str, ...]], changes: Sequence[CauseChange], now: datetime,
        trace_of_event: Mapping[str, str] | None = None, currency_of_account: Mapping[str, str] | None = None,
    ) -> list[Transition]:
        """Apply cause changes to the keys' locked causes, write them, and publish each pause and
        resume on delivery.control.v1 and each key's latest state on delivery.state.v1 (S4)."""
        if not changes:
            return []
        transitions, after = delivery.resolve(current, changes)
        ended_overspend = await postgres.apply_transitions(uow.conn, transitions, after, now)
        for transition in transitions:
            change = transition.change
            overspend_micros = change.overspend_micros
            if not change.starts and change.cause == REASON_INSUFFICIENT_FUNDS:
                # S2: the resume (or the end of this cause) carries the overspend of the pause it ends.
                overspend_micros = ended_overspend.get((change.key, change.cause), 0)
                currency = (currency_of_account or {}).get(change.ad_account_id)
                if currency is not None:
                    PAUSE_OVERSPEND_MICROS.labels(currency).inc(overspend_micros)
            trace_id = (trace_of_event or {}).get(change.cause_event_id or "")
            self._publish_transition(uow, transition, now, overspend_micros, trace_id)
        return transitions

    def _publish_transition(
        self, uow: UnitOfWork, transition: Transition, now: datetime, overspend_micros: int | None, trace_id: str | None
    ) -> None:
        change = transition.change
        if transition.action is not None:
            uow.publish(
                _decision(transition, now, overspend_micros),
                # CONTRACT.md: delivery.control.v1 is keyed by the ad account, for a campaign too.
                topic=self._topics.delivery_control, key=change.ad_account_id, trace_id=trace_id,
            )
            DELIVERY_DECISIONS.labels(transition.action, change.reason).inc()
            log.info(
                "delivery_decided", ad_account_id=change.ad_account_id, campaign_id=change.campaign_id,
                action=transition.action, reason=change.reason, cause_event_id=change.cause_event_id,
            )
        uow.publish(
            DeliveryStateChanged(
                ad_account_id=change.ad_account_id, campaign_id=change.campaign_id, serving=transition.serving,
                reason=transition.state_reason, updated_at=now,
            ),
            # CONTRACT.md: delivery.state.v1 is keyed `ad_account_id`, or `ad_account_id/campaign_id`.
            topic=self._topics.delivery_state, key=change.key, trace_id=trace_id,
        )

    # ------------------------------------------------------------------------------------------
    # Pauses sent the moment they are decided (issue 14, lever 4)
    # ------------------------------------------------------------------------------------------

    async def _announce(
        self, transitions: Sequence[Transition], now: datetime, accepted: Sequence[Inbound[SpendMessage]]
    ) -> None:
        """Send each pause a spend caused on delivery.control.v1 now, before the commit, under the
        event id its outbox row carries (`pause_event_id`): the relay's copy after the commit is a
        duplicate subscribers drop. An early pause is always safe (it only stops serving sooner).

        Each is first written down in `announced_pauses`, in its own committed statement (one round
        trip, only for a batch that pauses), with the spend partition of its cause: whatever happens
        to this attempt (a rollback, a crash of the process), the next batch of that partition to
        commit settles it against the database (`_settle_announced`)."""
        producer = self._early_producer() if self._early_producer is not None else None
        if producer is None or self._pool is None:
            return
        inbound_of_event = {inbound.event_id: inbound for inbound in accepted}
        pauses: list[tuple[Transition, Inbound[SpendMessage]]] = []
        for transition in transitions:
            change = transition.change
            if transition.action == "pause" and change.cause_event_id in inbound_of_event:
                pauses.append((transition, inbound_of_event[change.cause_event_id]))
        if not pauses:
            return
        envelopes = [
            (encode(_decision(transition, now, transition.change.overspend_micros),
                    key=transition.change.ad_account_id, trace_id=cause.trace_id or "spend"), transition, cause)
            for transition, cause in pauses
        ]
        async with self._pool().acquire() as conn:
            await postgres.record_announced_pauses(conn, [
                (cause.topic, cause.partition, transition.change.key, transition.change.cause, envelope.event_id)
                for envelope, transition, cause in envelopes
            ], now)
        self._announced_partitions.update((cause.topic, cause.partition) for _, _, cause in envelopes)
        for envelope, _, _ in envelopes:
            sent = await producer.send(
                self._topics.delivery_control, envelope.value, key=envelope.key, headers=list(envelope.headers)
            )
            sent.add_done_callback(_log_early_failure)
            EARLY_PAUSES.labels("sent").inc()

    async def find_announced(self, uow: UnitOfWork, assigned: Sequence[TopicPartition]) -> None:
        """On assignment of spend partitions, before any record is read: the ones with pauses
        announced by an attempt that never committed (the process crashed, here or in another
        instance) are settled by their next batch. That batch is the crashed attempt's records read
        again (its position never moved): it decides the pause again under the same id, or it
        withdraws it, in the transaction that commits the outcome."""
        rows = await uow.conn.fetch(
            """select distinct a.topic, a.partition from announced_pauses a
               join unnest($1::text[], $2::int[]) as v(topic, partition) on a.topic = v.topic and a.partition = v.partition""",
            [tp.topic for tp in assigned], [tp.partition for tp in assigned],
        )
        found = {(row["topic"], row["partition"]) for row in rows}
        if found:
            log.warning("announced_pauses_found", partitions=sorted(f"{topic}:{partition}" for topic, partition in found))
        self._announced_partitions.update(found)

    async def _settle_announced(self, uow: UnitOfWork, partitions: set[tuple[str, int]]) -> None:
        """Before the batch commits: take the announced pauses of its partitions (rows of this
        attempt, of a rolled-back one, of one that crashed) and withdraw each that the database
        does not hold paused for its cause: a `resume` with reason `pause_withdrawn` and the key's
        state from the database. The deletes commit with the batch; a rollback keeps the rows."""
        flagged = sorted(partitions & self._announced_partitions)
        if not flagged:
            return
        taken = await postgres.take_announced_pauses(uow.conn, flagged)
        uow.after_commit(lambda: self._announced_partitions.difference_update(flagged))
        if not taken:
            return
        rows = await postgres.delivery_states(uow.conn, sorted({key for key, _ in taken}))
        now = self._clock.now()
        for key, cause in taken:
            row = rows.get(key)
            ad_account_id, _, campaign_id = key.partition("/")
            causes = row[2] if row is not None else ()
            if cause in causes:
                continue  # paused for that cause in the database too: the early pause stands
            serving = not causes
            reason = REASON_PAUSE_WITHDRAWN if serving else causes[-1]
            if serving:
                uow.publish(
                    DeliveryDecided(
                        ad_account_id=ad_account_id, campaign_id=campaign_id or None, action="resume",
                        reason=REASON_PAUSE_WITHDRAWN, business_center_id=None, decided_at=now,
                        cause_event_id=None, overspend_micros=0 if cause == REASON_INSUFFICIENT_FUNDS else None,
                    ),
                    topic=self._topics.delivery_control, key=ad_account_id,
                )
                EARLY_PAUSES.labels("withdrawn").inc()
            uow.publish(
                DeliveryStateChanged(
                    ad_account_id=ad_account_id, campaign_id=campaign_id or None, serving=serving, reason=reason,
                    updated_at=now,
                ),
                topic=self._topics.delivery_state, key=key,
            )
            log.warning("early_pause_withdrawn", key=key, cause=cause, serving=serving)

    async def _locked_funds(self, uow: UnitOfWork, owners: list[Owner], currencies: set[str]) -> dict[Owner, OwnerFunds]:
        """Lock every account the batch may move, sorted by id as the ledger does, and read them,
        in one statement.

        The lock comes with the read so that no hold or allocation of the wallet can slip in
        between the read and the transfers: what the decision plans, the ledger's guards then
        accept. The later `create_transfers` locks a subset of these rows, already held, in the
        same order. The rows are read as plain figures, not the ledger's validated `Account`
        objects: this runs for every owner of every batch.
        """
        account_ids = _bucket_account_ids(owners)
        revenue_ids = [system_account_id("platform_revenue", currency) for currency in sorted(currencies)]
        figures = await postgres.lock_ledger_accounts(uow.conn, self._ledger.schema, sorted(account_ids + revenue_ids))
        return _funds_of_figures(owners, figures)

    def _dead_letter(self, uow: UnitOfWork, inbound: Inbound[SpendMessage], rejections: list[str], reason: str) -> None:
        rejections.append(reason)
        reject(uow, inbound, reason)


class BudgetPeriods:
    """The periodic job that renews daily budgets and caps' periods, in its own transaction.

    It reads the injected clock (T1), so tests move the clock and call `run` directly.
    """

    def __init__(self, pool: Callable[[], asyncpg.Pool], relay: Callable[[], OutboxRelay], consumer: SpendConsumer) -> None:
        self._pool = pool
        self._relay = relay
        self._consumer = consumer

    async def run(self) -> int:
        for attempt in range(1, 6):
            try:
                async with unit_of_work(self._pool(), self._relay()) as uow:
                    return await self._consumer.renew_budget_periods(uow)
            except (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError):
                # The whole transaction was rolled back: running it again is safe.
                if attempt == 5:
                    raise
                await asyncio.sleep(0.01 * attempt)
        raise AssertionError("unreachable")


class ProcessedEventsPruning:
    """The periodic job that forgets applied spend event ids once they are older than the spend
    topic's retention (issue 14, lever 5): the dedupe table stays the size of the retention's
    traffic instead of growing for ever. It reads the injected clock (T1)."""

    def __init__(
        self, pool: Callable[[], asyncpg.Pool], clock: Clock, group_id: str, topics: Sequence[str], retention: timedelta
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._group_id = group_id
        self._topics = list(topics)
        self._retention = retention

    async def run(self) -> int:
        before = self._clock.now() - self._retention
        forgotten = 0
        while True:
            async with self._pool().acquire() as conn:
                pruned = await prune_processed_events(conn, self._group_id, self._topics, before)
            forgotten += pruned
            if pruned < 10_000:
                return forgotten


def posted_event_id(ad_account_id: str, campaign_id: str, first_event_id: str) -> str:
    """The id of a SpendPosted: the same group of spends (same first event) always gives the same id."""
    digest = hashlib.sha256(f"{ad_account_id}\n{campaign_id}\n{first_event_id}".encode()).hexdigest()[:32]
    return f"spend-posted-{digest}"


def _shared_center(profile: AccountProfile) -> str | None:
    """The Business Center whose funds the account shares (ABA), as decisions name it."""
    return profile.business_center_id if profile.draws_on_business_center else None


def _owners_of(profiles: Iterable[AccountProfile]) -> list[Owner]:
    owners: dict[Owner, None] = {}
    for profile in profiles:
        owners[("ad_account", profile.ad_account_id)] = None
        if profile.draws_on_business_center:
            owners[("business_center", profile.business_center_id)] = None
    return list(owners)


def _currency_of_owners(profiles: Iterable[AccountProfile]) -> dict[Owner, str]:
    currencies: dict[Owner, str] = {}
    for profile in profiles:
        currencies[("ad_account", profile.ad_account_id)] = profile.currency
        currencies[("business_center", profile.business_center_id)] = profile.currency
    return currencies


def _bucket_account_ids(owners: Sequence[Owner]) -> list[str]:
    return [owner_account_id(kind, owner_id, bucket) for kind, owner_id in owners for bucket in owner_buckets(kind)]


def _funds_of(owners: Sequence[Owner], accounts: Mapping[str, Account]) -> dict[Owner, OwnerFunds]:
    """Each owner's funds as the spend order sees them; an owner without ledger accounts has none."""
    funds: dict[Owner, OwnerFunds] = {}
    for kind, owner_id in owners:
        if not all(owner_account_id(kind, owner_id, bucket) in accounts for bucket in owner_buckets(kind)):
            continue
        item = owner_balance(kind, owner_id, accounts)
        funds[(kind, owner_id)] = OwnerFunds(
            vouchers_micros=item.vouchers_micros - item.vouchers_held_micros,
            cash_micros=item.cash_micros - item.cash_held_micros + item.overspend_micros,
            credit_line_micros=item.credit_line_micros - item.credit_line_held_micros,
            overspend_debt_micros=-item.overspend_micros,
        )
    return funds


def _funds_of_figures(owners: Sequence[Owner], figures: Mapping[str, tuple[int, int]]) -> dict[Owner, OwnerFunds]:
    """`_funds_of` from (posted balance, held) per ledger account, the same figures as `owner_balance`."""
    funds: dict[Owner, OwnerFunds] = {}
    for kind, owner_id in owners:
        cash = figures.get(owner_account_id(kind, owner_id, "cash"))
        vouchers = figures.get(owner_account_id(kind, owner_id, "vouchers"))
        overspend = figures.get(owner_account_id(kind, owner_id, "overspend"))
        credit_line: tuple[int, int] | None = (0, 0)
        if kind == "business_center":
            credit_line = figures.get(owner_account_id(kind, owner_id, "credit_line"))
        if cash is None or vouchers is None or overspend is None or credit_line is None:
            continue
        funds[(kind, owner_id)] = OwnerFunds(
            vouchers_micros=vouchers[0] - vouchers[1],
            cash_micros=cash[0] - cash[1] + overspend[0],
            credit_line_micros=credit_line[0] - credit_line[1],
            overspend_debt_micros=-overspend[0],
        )
    return funds


def _batch_tag(batch: Sequence[Inbound[Any]]) -> str:
    """A short, deterministic name of the batch: the same records always give the same transfer ids,
    and records are applied in one batch only, so two batches never share one."""
    ranges: dict[tuple[str, int], list[int]] = {}
    for inbound in batch:
        offsets = ranges.setdefault((inbound.topic, inbound.partition), [inbound.offset, inbound.offset])
        offsets[0] = min(offsets[0], inbound.offset)
        offsets[1] = max(offsets[1], inbound.offset)
    text = ",".join(f"{topic}:{partition}:{first}-{last}" for (topic, partition), (first, last) in sorted(ranges.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _transfer_requests(movements: Mapping[tuple[OwnerKind, str, str], int], currency_of_owner: Mapping[Owner, str], tag: str) -> list[TransferRequest]:
    """One transfer per owner bucket: a take goes to the platform's revenue, a refund (S6) comes back from it."""
    requests: list[TransferRequest] = []
    for (kind, owner_id, bucket), micros in sorted(movements.items()):
        currency = currency_of_owner[(kind, owner_id)]
        bucket_account = owner_account_id(kind, owner_id, bucket)
        revenue = system_account_id("platform_revenue", currency)
        taken = micros > 0
        requests.append(
            TransferRequest(
                id=f"spend:{tag}:{bucket_account}",
                debit_account_id=bucket_account if taken else revenue,
                credit_account_id=revenue if taken else bucket_account,
                amount_micros=abs(micros),
                currency=currency,
                code=("overspend" if bucket == "overspend" else "spend") if taken else "spend_refund",
            )
        )
    return requests


def pause_event_id(key: str, cause: str, cause_event_id: str) -> str:
    """The event id of the pause of `key` for `cause` that the spend `cause_event_id` tipped: an
    attempt applied again decides the same pause under the same id (subscribers dedupe on it)."""
    digest = hashlib.sha256(f"{key}\n{cause}\n{cause_event_id}".encode()).hexdigest()[:32]
    return f"pause-{digest}"


def _decision(transition: Transition, now: datetime, overspend_micros: int | None) -> DeliveryDecided:
    change = transition.change
    assert transition.action is not None
    cause_event_id = change.cause_event_id if change.starts else None
    extra: dict[str, Any] = {}
    if transition.action == "pause" and cause_event_id is not None:
        extra["event_id"] = pause_event_id(change.key, change.cause, cause_event_id)
    return DeliveryDecided(
        ad_account_id=change.ad_account_id, campaign_id=change.campaign_id, action=transition.action,
        reason=change.reason, business_center_id=change.business_center_id, decided_at=now,
        cause_event_id=cause_event_id, overspend_micros=overspend_micros, **extra,
    )


def _log_early_failure(sent: asyncio.Future[Any]) -> None:
    """An early pause that did not reach the broker is not lost: its outbox row follows the commit."""
    if not sent.cancelled() and sent.exception() is not None:
        log.warning("early_pause_not_sent", error=repr(sent.exception()))
