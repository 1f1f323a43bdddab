"""The spend consumer's use cases, each run inside the consumer batch's one transaction.

- `apply_wallet_events`: keep the ad accounts (currency, Business Center, ABA) from the wallet.
- `apply_spends`: take a batch of spend events from the shared ledger exactly once (S1, W7),
  record overspend (S2), adjust final costs (S6), pause what reached zero (W8), publish the new
  balances once per owner.
- `apply_balances`: resume paused accounts whose funds came back (W8, `funds_restored`).

The TransactionalConsumer already made the batch exactly once (positions and event ids); this
module makes each batch cost a fixed number of statements and one `create_transfers` call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adledger_contracts.external import BalanceChanged, DeliveryDecided, DeliveryStateChanged, SpendReported
from adledger_contracts.wallet import AdAccountOpened, AutomaticBalanceAllocationEnabled, BusinessCenterOpened
from adledger_ledger.domain import Account, TransferRequest
from adledger_ledger.owners import OwnerKind, owner_account_id, owner_balance, owner_buckets, system_account_id
from adledger_ledger.postgres import PostgresLedger
from adledger_ledger.publishing import BALANCES_TOPIC, publish_balances
from adledger_libs.clock import Clock
from adledger_libs.consumer import Inbound
from adledger_libs.logs import get_logger
from adledger_libs.outbox import UnitOfWork
from prometheus_client import Counter

from adledger_spend_consumer.adapters import postgres
from adledger_spend_consumer.domain.spending import (
    AccountProfile,
    Owner,
    OwnerFunds,
    Spend,
    accounts_to_resume,
    decide_batch,
)

log = get_logger(__name__)

REASON_INSUFFICIENT_FUNDS = "insufficient_funds"
REASON_FUNDS_RESTORED = "funds_restored"

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


class SpendConsumer:
    def __init__(self, ledger: PostgresLedger, clock: Clock, group_id: str, topics: Topics | None = None) -> None:
        self._ledger = ledger
        self._clock = clock
        self._group_id = group_id
        self._topics = topics or Topics()

    # ------------------------------------------------------------------------------------------
    # Local state from the wallet
    # ------------------------------------------------------------------------------------------

    async def apply_business_centers(self, uow: UnitOfWork, batch: list[Inbound[BusinessCenterOpened]]) -> None:
        await postgres.upsert_business_centers(
            uow.conn, [(inbound.message.business_center_id, inbound.message.currency) for inbound in batch]
        )

    async def apply_ad_accounts(self, uow: UnitOfWork, batch: list[Inbound[AdAccountOpened]]) -> None:
        await postgres.upsert_ad_accounts(
            uow.conn,
            [
                AccountProfile(
                    ad_account_id=opened.ad_account_id,
                    business_center_id=opened.business_center_id,
                    currency=opened.currency,
                    draws_on_business_center=opened.draws_on_business_center,
                )
                for opened in (inbound.message for inbound in batch)
            ],
        )

    async def apply_aba_enabled(self, uow: UnitOfWork, batch: list[Inbound[AutomaticBalanceAllocationEnabled]]) -> None:
        for inbound in batch:
            enabled = inbound.message
            await postgres.enable_business_center_draws(uow.conn, enabled.business_center_id, enabled.eligible_ad_account_ids)

    # ------------------------------------------------------------------------------------------
    # Spend
    # ------------------------------------------------------------------------------------------

    async def apply_spends(self, uow: UnitOfWork, batch: list[Inbound[SpendReported]]) -> None:
        rejections: list[str] = []
        await self._apply_spends(uow, batch, rejections)
        if rejections:
            # One line per batch, not one per record: a backlog of bad records must not flood the
            # log; each record keeps its reason in its `dlq-reason` header.
            log.warning("spends_dead_lettered", count=len(rejections), batch_records=len(batch), first_reason=rejections[0])
            MESSAGES_DEAD_LETTERED.inc(len(rejections))

    async def _apply_spends(self, uow: UnitOfWork, batch: list[Inbound[SpendReported]], rejections: list[str]) -> None:
        now = self._clock.now()
        conn = uow.conn
        profiles = await postgres.account_profiles(conn, {inbound.message.ad_account_id for inbound in batch})
        checked: list[Inbound[SpendReported]] = []
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
        # the batch (a Business Center at zero pauses them all), earlier charges (S6), which
        # accounts are paused (rows locked), and the balances (accounts locked, then one read).
        centers = {profiles[inbound.message.ad_account_id].business_center_id for inbound in checked
                   if profiles[inbound.message.ad_account_id].draws_on_business_center}
        members = await postgres.aba_members(conn, centers) if centers else {}
        everyone = {**profiles, **members}
        involved_ids = {inbound.message.ad_account_id for inbound in checked} | set(members)
        paused = await postgres.lock_paused_accounts(conn, involved_ids)
        owners = _owners_of(everyone[account_id] for account_id in involved_ids)
        currencies = {everyone[account_id].currency for account_id in involved_ids}
        funds = await self._locked_funds(uow, owners, currencies)

        # An account the wallet announced but whose ledger accounts are not in this ledger belongs
        # to another environment sharing the broker: it is unknown here, like any unknown account.
        accepted: list[Inbound[SpendReported]] = []
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
            )
            for inbound in accepted
        ]
        decision = decide_batch(
            spends, accounts=everyone, funds=funds, charges=earlier_charges, paused_account_ids=paused,
            aba_members=members_by_center,
        )
        for rejected in decision.rejected:
            self._dead_letter(uow, accepted[rejected.index], rejections, rejected.reason)

        currency_of_owner = _currency_of_owners(everyone.values())
        requests = _transfer_requests(decision.movements, currency_of_owner, _batch_tag(accepted))
        # The one create_transfers call of this transaction (the ledger locks its accounts once).
        await self._ledger.create_transfers(conn, requests, now)
        await postgres.store_charges(conn, decision.charges)
        await postgres.record_pauses(conn, decision.pauses, REASON_INSUFFICIENT_FUNDS, now)
        await postgres.add_overspend_to_open_pauses(conn, decision.overspend_of_open_pauses_micros)
        trace_of_event = {inbound.event_id: inbound.trace_id for inbound in accepted}
        for pause in decision.pauses:
            self._publish_decision(
                uow, pause.ad_account_id, "pause", REASON_INSUFFICIENT_FUNDS, pause.business_center_id, now,
                cause_event_id=pause.cause_event_id, overspend_micros=pause.overspend_micros,
                trace_id=trace_of_event.get(pause.cause_event_id),
            )
        await publish_balances(uow, self._ledger, decision.touched_owners, now, topic=self._topics.balances)
        for currency, overspend_micros in decision.overspend_micros_by_currency.items():
            OVERSPEND_MICROS.labels(currency).inc(overspend_micros)

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
        paused = await postgres.lock_paused_for_owners(uow.conn, owner_ids)
        if not paused:
            return
        owners = _owners_of(paused.values())
        funds = _funds_of(owners, await self._ledger.balances(uow.conn, _bucket_account_ids(owners)))
        resumed = accounts_to_resume(sorted(paused), accounts=paused, funds=funds)
        if not resumed:
            return
        now = self._clock.now()
        overspend_by_account = await postgres.end_pauses(uow.conn, resumed, REASON_FUNDS_RESTORED, now)
        for account_id in resumed:
            profile = paused[account_id]
            overspend_micros = overspend_by_account.get(account_id, 0)
            PAUSE_OVERSPEND_MICROS.labels(profile.currency).inc(overspend_micros)
            self._publish_decision(
                uow, account_id, "resume", REASON_FUNDS_RESTORED,
                profile.business_center_id if profile.draws_on_business_center else None, now,
                cause_event_id=None, overspend_micros=overspend_micros, trace_id=None,
            )

    # ------------------------------------------------------------------------------------------

    async def _locked_funds(self, uow: UnitOfWork, owners: list[Owner], currencies: set[str]) -> dict[Owner, OwnerFunds]:
        """Lock every account the batch may move, sorted by id as the ledger does, then read them.

        The lock comes first so that no hold or allocation of the wallet can slip in between the
        read and the transfers: what the decision plans, the ledger's guards then accept. The
        later `create_transfers` locks a subset of these rows, already held, in the same order.
        """
        account_ids = _bucket_account_ids(owners)
        revenue_ids = [system_account_id("platform_revenue", currency) for currency in sorted(currencies)]
        await uow.conn.execute(
            f"select 1 from {self._ledger.schema}.accounts where id = any($1::text[]) order by id for update",
            sorted(account_ids + revenue_ids),
        )
        return _funds_of(owners, await self._ledger.balances(uow.conn, account_ids))

    def _publish_decision(
        self, uow: UnitOfWork, ad_account_id: str, action: str, reason: str, business_center_id: str | None,
        now: datetime, *, cause_event_id: str | None, overspend_micros: int, trace_id: str | None,
    ) -> None:
        uow.publish(
            DeliveryDecided(
                ad_account_id=ad_account_id, campaign_id=None, action=action,  # type: ignore[arg-type]
                reason=reason, business_center_id=business_center_id, decided_at=now,
                cause_event_id=cause_event_id, overspend_micros=overspend_micros,
            ),
            topic=self._topics.delivery_control, key=ad_account_id, trace_id=trace_id,
        )
        uow.publish(
            DeliveryStateChanged(
                ad_account_id=ad_account_id, campaign_id=None, serving=action == "resume", reason=reason, updated_at=now
            ),
            topic=self._topics.delivery_state, key=ad_account_id, trace_id=trace_id,
        )
        DELIVERY_DECISIONS.labels(action, reason).inc()
        log.info("delivery_decided", ad_account_id=ad_account_id, action=action, reason=reason, cause_event_id=cause_event_id)

    def _dead_letter(self, uow: UnitOfWork, inbound: Inbound[SpendReported], rejections: list[str], reason: str) -> None:
        rejections.append(reason)
        uow.dead_letter(
            topic=self._topics.spend + ".dlq",
            source_topic=inbound.topic,
            partition=inbound.partition,
            offset=inbound.offset,
            group_id=self._group_id,
            key=inbound.key.encode() if inbound.key is not None else None,
            value=inbound.message.model_dump_json().encode(),
            headers=inbound.headers,
            reason=reason,
        )


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
