"""The sends use cases (U1-U6, I6, W9, T1).

Money: a user balance is a ledger account of its own owner kind (`user_balance`, `ub/<owner>/balance`,
never below zero). Its initial budget, refreshes and rollovers move money from the platform
(`system/platform_revenue`) into it, and the same transaction asks the invoicing service (a signed
`ChargeFundingSource` through the outbox) to charge the team's funding source, or the account's
default one, for it (U1, U6, I6). A send charged to the user balance moves it back to the platform
(U2); a send charged to a funding source is a `ChargeFundingSource` (U3, U4); a final cost above
the charge is an adjustment charge to the user's team source (U5). Every movement is a
double-entry transfer with an id derived from its cause (M3, M5).

Who may do what: the platform operator attaches the invoicing service's funding sources to an
account (Business Center); its Admins manage defaults, teams, user balances, send campaigns and
approvals (`manage_sends`); any member sends (`send`); an API key must allow the `sends` scope,
and a send made with one is an integration's (U4). A caller with no role in the account is told
that what it names does not exist.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from adledger_auth.callers import Caller
from adledger_auth.roles import Action
from adledger_contracts.sends import ChargeFundingSource, SendChanged, UserBalanceFunded
from adledger_ledger.domain import Account, TransferRequest, balance, raise_first_error
from adledger_ledger.owners import system_account_id, system_accounts
from adledger_ledger.ports import Ledger
from adledger_libs.clock import Clock
from adledger_libs.logs import get_logger
from adledger_libs.refusals import Refusal

from adledger_sends.domain import sends as domain
from adledger_sends.domain.sends import Send, SendCampaign
from adledger_sends.ports.store import SendsWork, Transactions, UnknownError

log = get_logger(__name__)

SENDS_SCOPE = "sends"
SERVICE = "sends"


def funding_source_account_id(funding_source_id: str) -> str:
    """The invoicing service's ledger account of a funding source (read here, never written)."""
    return f"fs/{funding_source_id}/balance"


@dataclass(frozen=True)
class Topics:
    events: str = "sends.events.v1"
    invoicing_commands: str = "invoicing.commands.v1"


@dataclass(frozen=True)
class UserBalanceView:
    business_center_id: str
    user_id: str
    team_id: str | None
    funding_source_id: str | None
    currency: str
    budget_micros: int
    mode: str
    schedule: str
    balance_micros: int
    next_period_start: datetime
    fundings: list[dict[str, Any]]


class Sends:
    def __init__(self, clock: Clock, ledger: Ledger[Any], topics: Topics | None = None) -> None:
        self.clock = clock
        self.ledger = ledger
        self.topics = topics or Topics()

    # Who may do what --------------------------------------------------------------------------------

    async def _require(self, work: SendsWork, caller: Caller, business_center_id: str, action: Action,
                       what: str) -> None:
        caller.require_scope(SENDS_SCOPE)
        if not caller.platform_operator and not caller.is_member_of(business_center_id):
            raise UnknownError(f"{what} does not exist")
        caller.require(business_center_id, action,
                       finance_roles_set_up=await work.store.finance_roles_set_up(business_center_id))

    async def _source(self, work: SendsWork, caller: Caller, source_id: str, business_center_id: str) -> Any:
        source = await work.store.funding_source(source_id)
        if source is None or source["business_center_id"] != business_center_id:
            raise UnknownError(f"funding source {source_id} does not exist")
        return source

    # Funding sources, defaults, teams (U1) ------------------------------------------------------------

    async def attach_funding_source(self, work: SendsWork, caller: Caller, source_id: str, business_center_id: str,
                                    kind: str, currency: str) -> dict[str, Any]:
        """The platform operator names the account an invoicing funding source serves (I6)."""
        caller.require_scope(SENDS_SCOPE)
        caller.require_platform("attach funding sources to accounts")
        account_id = funding_source_account_id(source_id)
        found = (await self.ledger.balances(work.ledger_session, [account_id])).get(account_id)
        if found is None:
            raise UnknownError(f"funding source {source_id} is not registered with the invoicing service")
        if found.currency != currency:
            raise domain.CurrencyMismatchError(f"funding source {source_id} is in {found.currency}, not {currency}")
        if not await work.store.add_funding_source(source_id, business_center_id, kind, currency, self.clock.now()):
            existing = await work.store.funding_source(source_id)
            if (existing["business_center_id"], existing["kind"], existing["currency"]) != (
                business_center_id, kind, currency
            ):
                raise domain.InvalidSendsValueError(f"funding source {source_id} is attached already, differently")
        return {"id": source_id, "business_center_id": business_center_id, "kind": kind, "currency": currency}

    async def set_default_source(self, work: SendsWork, caller: Caller, business_center_id: str,
                                 source_id: str) -> None:
        await self._require(work, caller, business_center_id, Action.MANAGE_SENDS, f"account {business_center_id}")
        await self._source(work, caller, source_id, business_center_id)
        await work.store.set_default(business_center_id, source_id)

    async def create_team(self, work: SendsWork, caller: Caller, team_id: str, business_center_id: str, name: str,
                          source_id: str) -> dict[str, Any]:
        await self._require(work, caller, business_center_id, Action.MANAGE_SENDS, f"account {business_center_id}")
        await self._source(work, caller, source_id, business_center_id)
        if not await work.store.add_team(team_id, business_center_id, name, source_id, self.clock.now()):
            raise domain.InvalidSendsValueError(f"team {team_id} exists already")
        return {"id": team_id, "business_center_id": business_center_id, "name": name,
                "funding_source_id": source_id}

    async def list_teams(self, work: SendsWork, caller: Caller, business_center_id: str,
                         limit: int) -> list[dict[str, Any]]:
        """An account's teams with their funding sources (any role of the account, W9)."""
        await self._require(work, caller, business_center_id, Action.READ, f"account {business_center_id}")
        return [{"id": row["id"], "business_center_id": row["business_center_id"], "name": row["name"],
                 "funding_source_id": row["funding_source_id"]}
                for row in await work.store.teams(business_center_id, limit)]

    async def _paying_source(self, work: SendsWork, business_center_id: str, team_id: str | None) -> Any:
        """U1, U5: the user's team's funding source, or the account's default one without a team."""
        source_id = None
        if team_id is not None:
            team = await work.store.team(team_id)
            source_id = team["funding_source_id"] if team is not None else None
        if source_id is None:
            source_id = await work.store.default_source(business_center_id)
        if source_id is None:
            raise domain.NoFundingSourceError(
                f"the user has no team and account {business_center_id} has no default funding source"
            )
        return await work.store.funding_source(source_id)

    # User balances (U1, U6) ---------------------------------------------------------------------------

    async def set_user_balance(self, work: SendsWork, caller: Caller, business_center_id: str, user_id: str, *,
                               team_id: str | None, budget_micros: int, mode: domain.Mode,
                               schedule: domain.Schedule, initial_budget_micros: int | None) -> UserBalanceView:
        """A user's budget, schedule and team. A new user balance gets its initial budget at once,
        charged to the team's (or default) source (U6); the schedule then refreshes or rolls it over."""
        await self._require(work, caller, business_center_id, Action.MANAGE_SENDS, f"account {business_center_id}")
        if user_id not in await work.store.member_roles(business_center_id):
            raise UnknownError(f"user {user_id} has no role in account {business_center_id}")
        if team_id is not None:
            team = await work.store.team(team_id)
            if team is None or team["business_center_id"] != business_center_id:
                raise UnknownError(f"team {team_id} does not exist")
        source = await self._paying_source(work, business_center_id, team_id)
        now = self.clock.now()
        existing = await work.store.user_balance(business_center_id, user_id, for_update=True)
        if existing is not None and existing["currency"] != source["currency"]:
            raise domain.CurrencyMismatchError(f"the user balance is in {existing['currency']}")
        next_start = domain.next_period_start(schedule, domain.period_start(schedule, now))
        await work.store.save_user_balance(
            business_center_id, user_id, team_id=team_id, currency=source["currency"], budget_micros=budget_micros,
            mode=mode, schedule=schedule,
            next_period_start=next_start if existing is None else existing["next_period_start"], now=now,
        )
        if existing is None:
            owner = domain.user_balance_owner_id(business_center_id, user_id)
            await self.ledger.register_owner(work.ledger_session, owner, "user_balance")
            await self.ledger.create_accounts(work.ledger_session, [
                *system_accounts(source["currency"]),
                Account(id=domain.user_balance_account_id(business_center_id, user_id), currency=source["currency"],
                        code="user_balance", owner_id=owner, debits_must_not_exceed_credits=True),
            ])
            initial = budget_micros if initial_budget_micros is None else initial_budget_micros
            await self._fund(work, business_center_id, user_id, "initial_budget", "initial", initial, 0)
        return await self._view(work, business_center_id, user_id)

    async def _user_balance_micros(self, work: SendsWork, business_center_id: str, user_id: str) -> int:
        account_id = domain.user_balance_account_id(business_center_id, user_id)
        found = (await self.ledger.balances(work.ledger_session, [account_id])).get(account_id)
        return 0 if found is None else balance(found)

    async def _fund(self, work: SendsWork, business_center_id: str, user_id: str, reason: str, period: str,
                    amount: int, remaining: int) -> None:
        """Add `amount` to the user balance and charge the paying source for it (U6, I6), once per period."""
        row = await work.store.user_balance(business_center_id, user_id)
        source = await self._paying_source(work, business_center_id, row["team_id"])
        now = self.clock.now()
        charge = domain.charge_id("balance", business_center_id, user_id, period) if amount > 0 else None
        if not await work.store.add_funding(business_center_id, user_id, period, reason, amount, source["id"],
                                            charge, now):
            return  # this period was funded already
        if charge is not None:
            currency = source["currency"]
            raise_first_error(await self.ledger.create_transfers(work.ledger_session, [TransferRequest(
                id=f"user_balance_funded:{charge}", debit_account_id=system_account_id("platform_revenue", currency),
                credit_account_id=domain.user_balance_account_id(business_center_id, user_id), amount_micros=amount,
                currency=currency, code="user_balance_funded",
            )], now))
            what = {"initial_budget": "initial budget", "refresh": "refresh", "rollover": "rollover"}[reason]
            self._ask_charge(work, source, charge, amount, f"User balance {what} of {user_id} ({period})",
                             add_funds=False, send_id=None)
            await work.store.add_charge(charge, source["id"], "charge", amount, None, now)
        work.publish(UserBalanceFunded(
            business_center_id=business_center_id, user_id=user_id, reason=reason, period=period,  # type: ignore[arg-type]
            amount_micros=amount, balance_after_micros=remaining + amount, currency=source["currency"],
            funding_source_id=source["id"], charge_id=charge, funded_at=now,
            event_id=f"user-balance:{domain.user_balance_owner_id(business_center_id, user_id)}:{period}",
        ), topic=self.topics.events, key=business_center_id)

    async def run_schedules(self, transactions: Transactions) -> int:
        """T1: every user balance whose period started gets its refresh or rollover, once per period
        (a service down over several periods catches up on each). Returns how many periods were run."""
        done = 0
        async with transactions() as work:
            due = await work.store.due_balances(self.clock.now())
        for business_center_id, user_id in due:
            try:
                done += await self._run_periods(transactions, business_center_id, user_id)
            except Refusal as refusal:
                # A refused funding (no paying source any more, a balance the ledger cannot hold) changes
                # nothing and is tried again at the next run; it never stops the job for the others.
                log.warning("user_balance_funding_refused", business_center_id=business_center_id, user_id=user_id,
                            reason=str(refusal))
        return done

    async def _run_periods(self, transactions: Transactions, business_center_id: str, user_id: str) -> int:
        done = 0
        while True:
            async with transactions() as work:
                row = await work.store.user_balance(business_center_id, user_id, for_update=True)
                if row is None or row["next_period_start"] > self.clock.now():
                    return done
                start = row["next_period_start"]
                remaining = await self._user_balance_micros(work, business_center_id, user_id)
                amount = domain.period_amount(row["mode"], row["budget_micros"], remaining)
                await self._fund(work, business_center_id, user_id, row["mode"], start.date().isoformat(), amount,
                                 remaining)
                await work.store.set_next_period(business_center_id, user_id,
                                                 domain.next_period_start(row["schedule"], start))
                done += 1

    async def read_user_balance(self, work: SendsWork, caller: Caller, business_center_id: str,
                                user_id: str) -> UserBalanceView:
        caller.require_scope(SENDS_SCOPE)
        if caller.user_id != user_id:
            await self._require(work, caller, business_center_id, Action.MANAGE_SENDS, f"user balance of {user_id}")
        elif not caller.is_member_of(business_center_id) and not caller.platform_operator:
            raise UnknownError(f"user balance of {user_id} does not exist")
        return await self._view(work, business_center_id, user_id)

    async def list_user_balances(self, work: SendsWork, caller: Caller, business_center_id: str,
                                 limit: int) -> list[UserBalanceView]:
        """Every user balance of an account (its Admins, as for reading another user's balance)."""
        await self._require(work, caller, business_center_id, Action.MANAGE_SENDS, f"account {business_center_id}")
        return [await self._view(work, business_center_id, user_id)
                for user_id in await work.store.user_balance_ids(business_center_id, limit)]

    async def _view(self, work: SendsWork, business_center_id: str, user_id: str) -> UserBalanceView:
        row = await work.store.user_balance(business_center_id, user_id)
        if row is None:
            raise UnknownError(f"user balance of {user_id} does not exist")
        source = await self._paying_source(work, business_center_id, row["team_id"])
        fundings = [
            {"period": f["period"], "reason": f["reason"], "amount_micros": f["amount_micros"],
             "funding_source_id": f["funding_source_id"], "charge_id": f["charge_id"], "funded_at": f["funded_at"]}
            for f in await work.store.fundings(business_center_id, user_id)
        ]
        return UserBalanceView(
            business_center_id, user_id, row["team_id"], source["id"], row["currency"], row["budget_micros"],
            row["mode"], row["schedule"], await self._user_balance_micros(work, business_center_id, user_id),
            row["next_period_start"], fundings,
        )

    # Send campaigns ------------------------------------------------------------------------------------

    async def create_campaign(self, work: SendsWork, caller: Caller, campaign: SendCampaign) -> SendCampaign:
        await self._require(work, caller, campaign.business_center_id, Action.MANAGE_SENDS,
                            f"account {campaign.business_center_id}")
        domain.check_campaign(campaign)
        if campaign.funding_source_id is not None:
            await self._source(work, caller, campaign.funding_source_id, campaign.business_center_id)
        if not await work.store.add_campaign(campaign, self.clock.now()):
            raise domain.InvalidSendsValueError(f"send campaign {campaign.id} exists already")
        return campaign

    # Sends (U2-U5) --------------------------------------------------------------------------------------

    async def create_send(self, work: SendsWork, caller: Caller, *, campaign_id: str, item_kind: str,
                          description: str, price_micros: int, add_funds: bool) -> Send:
        caller.require_scope(SENDS_SCOPE)
        campaign = await work.store.campaign(campaign_id)
        if campaign is None:
            raise UnknownError(f"send campaign {campaign_id} does not exist")
        await self._require(work, caller, campaign.business_center_id, Action.SEND, f"send campaign {campaign_id}")
        via = "integration" if caller.via == "api_key" else "user"
        if via == "integration" and campaign.charge_to != "funding_source":
            raise domain.IntegrationNeedsFundingSourceError(
                f"send campaign {campaign_id} charges the sender's balance; an integration's sends use a funding source"
            )
        if campaign.charge_to == "user_balance":
            row = await work.store.user_balance(campaign.business_center_id, caller.user_id)
            if row is None:
                raise domain.InsufficientUserBalanceError(f"user {caller.user_id} has no user balance")
            currency = row["currency"]
        else:
            currency = (await work.store.funding_source(campaign.funding_source_id))["currency"]
        now = self.clock.now()
        send = Send(
            id=f"send-{uuid.uuid4().hex[:20]}", business_center_id=campaign.business_center_id,
            campaign_id=campaign.id, sender_user_id=caller.user_id, via=via, item_kind=item_kind,  # type: ignore[arg-type]
            description=description, charged_to=campaign.charge_to, funding_source_id=campaign.funding_source_id,
            # U4: an integration cannot click "add funds": each of its sends gets its invoice or card payment.
            add_funds=add_funds or via == "integration", price_micros=price_micros, charged_micros=0,
            final_cost_micros=None, currency=currency,
            state=domain.first_state(via=via, require_approval=campaign.require_approval), version=1, created_at=now,
            updated_at=now,
        )
        if send.state == "charged":
            send = replace(send, charged_micros=price_micros)
            await self._charge(work, campaign, send)
        await work.store.save_send(send)
        self._changed(work, send, None)
        return send

    async def _available(self, work: SendsWork, source_id: str) -> int:
        """What a source can still cover: its ledger balance less the charges asked but not yet applied."""
        await work.store.lock_source(source_id)
        account_id = funding_source_account_id(source_id)
        found = (await self.ledger.balances(work.ledger_session, [account_id])).get(account_id)
        pending = await work.store.unconfirmed_charges(source_id)
        if pending:
            applied = await self.ledger.lookup_transfers(
                work.ledger_session, [f"funding_source_charge:{charge}" for charge in pending]
            )
            done = [charge for charge in pending if f"funding_source_charge:{charge}" in applied]
            if done:
                await work.store.confirm_charges(done)
            pending = {charge: amount for charge, amount in pending.items() if charge not in done}
        return (0 if found is None else balance(found)) - sum(pending.values())

    async def _charge(self, work: SendsWork, campaign: SendCampaign, send: Send) -> None:
        """The first charge of a send: its user balance (U2) or its campaign's funding source (U3, U4)."""
        now = self.clock.now()
        if campaign.charge_to == "user_balance":
            remaining = await self._user_balance_micros(work, send.business_center_id, send.sender_user_id)
            if remaining < send.price_micros:
                raise domain.InsufficientUserBalanceError(
                    f"the user balance holds {remaining} micros; the send costs {send.price_micros}"
                )
            raise_first_error(await self.ledger.create_transfers(work.ledger_session, [TransferRequest(
                id=f"user_balance_send:{send.id}",
                debit_account_id=domain.user_balance_account_id(send.business_center_id, send.sender_user_id),
                credit_account_id=system_account_id("platform_revenue", send.currency), amount_micros=send.price_micros,
                currency=send.currency, code="user_balance_send",
            )], now))
            return
        source = await work.store.funding_source(campaign.funding_source_id)
        add = domain.check_source_covers(
            available_micros=await self._available(work, source["id"]), price_micros=send.price_micros,
            add_funds=send.add_funds, add_funds_allowed=campaign.add_funds_allowed,
        )
        charge = domain.charge_id("send", send.id)
        self._ask_charge(work, source, charge, send.price_micros, f"Send {send.id}: {send.description}"[:300],
                         add_funds=add, send_id=send.id)
        await work.store.add_charge(charge, source["id"], "charge", send.price_micros, send.id, now)

    def _ask_charge(self, work: SendsWork, source: Any, charge: str, amount: int, description: str, *,
                    add_funds: bool, send_id: str | None, direction: str = "charge") -> None:
        work.publish(ChargeFundingSource(
            charge_id=charge, funding_source_id=source["id"], direction=direction,  # type: ignore[arg-type]
            amount_micros=amount, currency=source["currency"], add_funds=add_funds, description=description,
            requested_by=SERVICE, idempotency_key=f"{direction}:{charge}",
        ), topic=self.topics.invoicing_commands, key=source["id"])

    def _changed(self, work: SendsWork, send: Send, previous: str | None) -> None:
        work.publish(SendChanged(
            send_id=send.id, business_center_id=send.business_center_id, campaign_id=send.campaign_id,
            sender_user_id=send.sender_user_id, via=send.via, item_kind=send.item_kind, charged_to=send.charged_to,
            funding_source_id=send.funding_source_id, price_micros=send.price_micros,
            charged_micros=send.charged_micros, currency=send.currency, state=send.state,
            previous_state=previous, version=send.version, changed_at=send.updated_at,  # type: ignore[arg-type]
            event_id=f"send:{send.id}:v{send.version}",
        ), topic=self.topics.events, key=send.business_center_id)

    async def _load_send(self, work: SendsWork, caller: Caller, send_id: str, action: Action) -> Send:
        caller.require_scope(SENDS_SCOPE)
        send = await work.store.send(send_id, for_update=action != Action.READ)
        if send is None:
            raise UnknownError(f"send {send_id} does not exist")
        if action == Action.READ and send.sender_user_id == caller.user_id:
            return send
        await self._require(work, caller, send.business_center_id,
                            Action.MANAGE_SENDS if action != Action.READ else Action.READ, f"send {send_id}")
        return send

    async def read_send(self, work: SendsWork, caller: Caller, send_id: str) -> Send:
        return await self._load_send(work, caller, send_id, Action.READ)

    async def list_sends(self, work: SendsWork, caller: Caller, business_center_id: str, state: str | None,
                         limit: int) -> list[Send]:
        """An account's sends, newest first, optionally in one state (any role of the account, W9)."""
        await self._require(work, caller, business_center_id, Action.READ, f"account {business_center_id}")
        return await work.store.sends_of(business_center_id, state, limit)

    async def decide(self, work: SendsWork, caller: Caller, send_id: str, *, approve: bool) -> Send:
        """U4: an Admin approves a waiting send (charged now) or rejects it (never charged)."""
        send = await self._load_send(work, caller, send_id, Action.MANAGE_SENDS)
        after = domain.decide(send, approve=approve, now=self.clock.now())
        if approve:
            campaign = await work.store.campaign(send.campaign_id)
            await self._charge(work, campaign, after)
        await work.store.save_send(after)
        self._changed(work, after, send.state)
        return after

    async def record_final_cost(self, work: SendsWork, caller: Caller, send_id: str, final_cost_micros: int) -> Send:
        """U5: the warehouse's or marketplace's final cost (the platform operator reports it). More
        than was charged: an adjustment charge to the sender's team source (default without a team),
        following I6; less: the difference back to where the send was charged."""
        caller.require_scope(SENDS_SCOPE)
        caller.require_platform("report final costs of sends")
        send = await work.store.send(send_id, for_update=True)
        if send is None:
            raise UnknownError(f"send {send_id} does not exist")
        now = self.clock.now()
        after, difference = domain.final_cost(send, final_cost_micros, now)
        if difference > 0:
            row = await work.store.user_balance(send.business_center_id, send.sender_user_id)
            source = await self._paying_source(work, send.business_center_id, row["team_id"] if row else None)
            if source["currency"] != send.currency:
                raise domain.CurrencyMismatchError(f"the paying source is in {source['currency']}")
            charge = domain.charge_id("adjustment", send.id)
            self._ask_charge(work, source, charge, difference, f"Adjustment charge of send {send.id}", add_funds=False,
                             send_id=send.id)
            await work.store.add_charge(charge, source["id"], "charge", difference, send.id, now)
        elif difference < 0 and send.charged_to == "user_balance":
            raise_first_error(await self.ledger.create_transfers(work.ledger_session, [TransferRequest(
                id=f"user_balance_refund:{send.id}", debit_account_id=system_account_id("platform_revenue", send.currency),
                credit_account_id=domain.user_balance_account_id(send.business_center_id, send.sender_user_id),
                amount_micros=-difference, currency=send.currency, code="user_balance_refund",
            )], now))
        elif difference < 0:
            source = await work.store.funding_source(send.funding_source_id)
            charge = domain.charge_id("refund", send.id)
            self._ask_charge(work, source, charge, -difference, f"Lower final cost of send {send.id}",
                             add_funds=False, send_id=send.id, direction="refund")
            await work.store.add_charge(charge, source["id"], "refund", -difference, send.id, now)
        await work.store.save_send(after)
        self._changed(work, after, send.state)
        return after


class Schedules:
    """The clock job: user-balance refreshes and rollovers (T1)."""

    def __init__(self, transactions: Transactions, sends: Sends) -> None:
        self._transactions = transactions
        self._sends = sends

    async def run(self) -> int:
        return await self._sends.run_schedules(self._transactions)
