"""The wallet's use cases. Each runs inside one unit of work: the ledger transfers, the wallet's
own rows, the balance events and the domain event commit together or not at all.

The rules are in `domain` (pure) and in the shared ledger (`adledger_ledger.domain`); this
module loads what they need, calls them, and writes what they decided.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date
from typing import Any

from adledger_auth.callers import Caller
from adledger_auth.roles import Action, authorize
from adledger_contracts.campaigns import AdAccountBudgetCapChanged
from adledger_contracts.wallet import (
    AdAccountOpened,
    AutomaticBalanceAllocationEnabled,
    BudgetSynced,
    BusinessCenterOpened,
    CashMoved,
    FundsAllocated,
    FundsReceived,
    HoldPlaced,
    HoldRejected,
    HoldResolved,
    InvoicePaid,
    PayoutSettled,
    PlaceHold,
    RequestPayout,
    ResizeHold,
    ResolveHold,
)
from adledger_ledger.domain import TransferRequest, raise_first_error
from adledger_ledger.owners import (
    OwnerBalance,
    OwnerKind,
    owner_account_id,
    owner_accounts,
    system_account_id,
    system_accounts,
)
from adledger_ledger.ports import Ledger
from adledger_ledger.publishing import BALANCES_TOPIC, publish_balances, read_owner_balances
from adledger_libs.clock import Clock
from adledger_libs.money import require_same_currency
from adledger_libs.outbox import UnitOfWork
from adledger_libs.refusals import Refusal
from adledger_wallet.domain.aba import CashMoveDirection, check_switch_to_manual_allocation, draws_on_business_center, plan_enable_aba
from adledger_wallet.domain.allocation import AllocationBucket, AllocationDirection, plan_allocation
from adledger_wallet.domain.errors import InvalidBudgetError
from adledger_wallet.domain.model import AdAccount, AdAccountType, BillingOption, Budget, BudgetKind, BusinessCenter
from adledger_wallet.domain.payouts import Payout, payout_allowed, payouts_ready
from adledger_wallet.ports.store import Snapshot, UnknownBusinessCenterError, UnknownUserError, WalletStore

WALLET_EVENTS_TOPIC = "wallet.events.v1"


class Wallet:
    def __init__(
        self, ledger: Ledger[Any], clock: Clock, store: Callable[[UnitOfWork], WalletStore], *,
        events_topic: str = WALLET_EVENTS_TOPIC, balances_topic: str = BALANCES_TOPIC,
    ) -> None:
        self.ledger = ledger
        self.clock = clock
        self._store = store
        self.events_topic = events_topic
        self.balances_topic = balances_topic

    async def _visible(
        self, store: WalletStore, caller: Caller, business_center_id: str, *, for_update: bool = False
    ) -> BusinessCenter:
        """The Business Center, for a caller who may see it: a platform operator or any of its
        roles. Anyone else gets the answer of one that does not exist (W9: a user of another
        Business Center learns nothing of it, not even that it exists)."""
        if not caller.platform_operator and not caller.is_member_of(business_center_id):
            raise UnknownBusinessCenterError(business_center_id)
        return await store.load_business_center(business_center_id, for_update=for_update)

    # Business Centers and ad accounts (W1) ----------------------------------------------------

    async def open_business_center(
        self, uow: UnitOfWork, caller: Caller, business_center_id: str, name: str, currency: str,
        credit_limit_micros: int, admin_user_id: str,
    ) -> BusinessCenter:
        """The platform opens a Business Center; the identity service makes `admin_user_id` its
        first Admin when it reads the event (W9)."""
        caller.require_platform("open Business Centers")
        store = self._store(uow)
        now = self.clock.now()
        business_center = BusinessCenter(id=business_center_id, currency=currency, credit_limit_micros=credit_limit_micros)
        if not await store.user_exists(admin_user_id):
            raise UnknownUserError(admin_user_id)
        if not await store.insert_business_center(business_center, name, now):
            raise BusinessCenterExistsError(business_center_id)
        # One id, one owner, across every kind that owns ledger accounts (issue 12).
        await self.ledger.register_owner(uow.conn, business_center_id, "business_center")
        await self.ledger.create_accounts(
            uow.conn, system_accounts(currency) + owner_accounts("business_center", business_center_id, currency)
        )
        if credit_limit_micros > 0:
            await self._transfer(
                uow, f"credit-line-granted:{business_center_id}:0",
                system_account_id("platform_credit", currency),
                owner_account_id("business_center", business_center_id, "credit_line"),
                credit_limit_micros, currency, "credit_line_granted",
            )
        uow.publish(
            BusinessCenterOpened(
                business_center_id=business_center_id, currency=currency,
                credit_limit_micros=credit_limit_micros, opened_at=now, admin_user_id=admin_user_id,
            ),
            topic=self.events_topic, key=business_center_id,
        )
        await publish_balances(uow, self.ledger, [("business_center", business_center_id)], now, topic=self.balances_topic)
        return business_center

    async def open_ad_account(
        self, uow: UnitOfWork, caller: Caller, business_center_id: str, ad_account_id: str, name: str,
        type_: AdAccountType, billing_option: BillingOption, budget: Budget | None,
    ) -> AdAccount:
        store = self._store(uow)
        business_center = await self._visible(store, caller, business_center_id)
        if not caller.platform_operator:
            authorize(caller, business_center.id, Action.OPEN_AD_ACCOUNT, finance_roles_set_up=business_center.finance_roles_enabled)
        now = self.clock.now()
        ad_account = AdAccount(ad_account_id, business_center_id, type_, billing_option, business_center.currency, budget)
        if not await store.insert_ad_account(ad_account, name, now):
            raise AdAccountExistsError(ad_account_id)
        await self.ledger.register_owner(uow.conn, ad_account_id, "ad_account")
        await self.ledger.create_accounts(uow.conn, owner_accounts("ad_account", ad_account_id, business_center.currency))
        uow.publish(
            AdAccountOpened(
                ad_account_id=ad_account_id, business_center_id=business_center_id, type=type_.value,
                billing_option=billing_option.value, currency=business_center.currency,
                draws_on_business_center=draws_on_business_center(business_center, ad_account), opened_at=now,
            ),
            topic=self.events_topic, key=business_center_id,
        )
        await publish_balances(uow, self.ledger, [("ad_account", ad_account_id)], now, topic=self.balances_topic)
        return ad_account

    async def set_credit_limit(self, uow: UnitOfWork, caller: Caller, business_center_id: str, credit_limit_micros: int) -> None:
        """The platform sets a Business Center's credit line; lowering it below what is used is refused."""
        caller.require_platform("set credit lines")
        store = self._store(uow)
        business_center = await store.load_business_center(business_center_id, for_update=True)
        change = credit_limit_micros - business_center.credit_limit_micros
        if change == 0:
            return
        platform = system_account_id("platform_credit", business_center.currency)
        credit_line = owner_account_id("business_center", business_center_id, "credit_line")
        transfer_id = f"credit-line:{business_center_id}:{business_center.credit_limit_micros}->{credit_limit_micros}:{self.clock.now().isoformat()}"
        if change > 0:
            await self._transfer(uow, transfer_id, platform, credit_line, change, business_center.currency, "credit_line_granted")
        else:
            await self._transfer(uow, transfer_id, credit_line, platform, -change, business_center.currency, "credit_line_revoked")
        await store.set_credit_limit(business_center_id, credit_limit_micros)
        await publish_balances(uow, self.ledger, [("business_center", business_center_id)], self.clock.now(), topic=self.balances_topic)

    async def grant_vouchers(
        self, uow: UnitOfWork, caller: Caller, business_center_id: str, amount_micros: int, grant_id: str
    ) -> None:
        """The platform grants vouchers (ad credits) to a Business Center; they never move by themselves (W6)."""
        caller.require_platform("grant vouchers")
        business_center = await self._store(uow).load_business_center(business_center_id)
        await self._transfer(
            uow, f"vouchers-granted:{business_center_id}:{grant_id}",
            system_account_id("platform_vouchers", business_center.currency),
            owner_account_id("business_center", business_center_id, "vouchers"),
            amount_micros, business_center.currency, "vouchers_granted",
        )
        await publish_balances(uow, self.ledger, [("business_center", business_center_id)], self.clock.now(), topic=self.balances_topic)

    # ABA (W2-W5) -------------------------------------------------------------------------------

    async def enable_aba(self, uow: UnitOfWork, caller: Caller, business_center_id: str) -> AutomaticBalanceAllocationEnabled:
        store = self._store(uow)
        business_center = await self._visible(store, caller, business_center_id, for_update=True)
        authorize(caller, business_center.id, Action.ENABLE_ABA, finance_roles_set_up=business_center.finance_roles_enabled)
        ad_accounts = await store.load_ad_accounts(business_center_id)
        balances = {item.owner_id: item for item in await read_owner_balances(uow, self.ledger, [("ad_account", a.id) for a in ad_accounts])}
        # What an account "has available" nets an earlier overspend against its cash (S2).
        cash_available = {
            account_id: item.cash_micros - item.cash_held_micros + item.overspend_micros
            for account_id, item in balances.items()
        }
        plan = plan_enable_aba(business_center, ad_accounts, cash_available)
        now = self.clock.now()
        currency = business_center.currency
        requests: list[TransferRequest] = []
        for move in plan.cash_moves:
            item = balances[move.ad_account_id]
            requests += self._aba_cash_move(business_center_id, item, move.direction, move.amount_micros, currency)
        if requests:
            # One atomic operation (W4): every move applies, or none does.
            requests = [replace(request, linked=index < len(requests) - 1) for index, request in enumerate(requests)]
            raise_first_error(await self.ledger.create_transfers(uow.conn, requests, now))
        await store.mark_aba_enabled(business_center_id, now)
        await store.save_budgets([a for a, sync in zip(plan.ad_accounts_after, plan.budget_syncs, strict=True) if sync.synced])
        event = AutomaticBalanceAllocationEnabled(
            business_center_id=business_center_id,
            eligible_ad_account_ids=list(plan.eligible_ad_account_ids),
            ineligible_ad_account_ids=[item.ad_account_id for item in plan.ineligible_ad_accounts],
            cash_moves=[
                CashMoved(
                    ad_account_id=move.ad_account_id,
                    amount_micros=move.amount_micros if move.direction is CashMoveDirection.AD_ACCOUNT_TO_BUSINESS_CENTER else -move.amount_micros,
                )
                for move in plan.cash_moves
            ],
            budget_syncs=[
                BudgetSynced(
                    ad_account_id=sync.ad_account_id,
                    budget_kind=sync.budget_after.kind.value if sync.budget_after else None,
                    budget_micros=sync.budget_after.amount_micros if sync.budget_after else None,
                    synced=sync.synced,
                )
                for sync in plan.budget_syncs
            ],
            enabled_at=now,
        )
        uow.publish(event, topic=self.events_topic, key=business_center_id)
        owners: list[tuple[OwnerKind, str]] = [("business_center", business_center_id)]
        owners += [("ad_account", move.ad_account_id) for move in plan.cash_moves]
        await publish_balances(uow, self.ledger, owners, now, topic=self.balances_topic)
        return event

    def _aba_cash_move(
        self, business_center_id: str, item: OwnerBalance, direction: CashMoveDirection, amount_micros: int, currency: str
    ) -> list[TransferRequest]:
        """The transfers that leave an ad account at exactly zero (W4), its overspend settled first."""
        ad_cash = owner_account_id("ad_account", item.owner_id, "cash")
        ad_overspend = owner_account_id("ad_account", item.owner_id, "overspend")
        bc_cash = owner_account_id("business_center", business_center_id, "cash")
        prefix = f"aba:{business_center_id}:{item.owner_id}"
        requests: list[TransferRequest] = []
        own_cash = item.cash_micros - item.cash_held_micros
        settle = min(own_cash, -item.overspend_micros)
        if settle > 0:
            requests.append(TransferRequest(id=f"{prefix}:settle", debit_account_id=ad_cash, credit_account_id=ad_overspend, amount_micros=settle, currency=currency, code="overspend_covered"))
        if direction is CashMoveDirection.AD_ACCOUNT_TO_BUSINESS_CENTER:
            requests.append(TransferRequest(id=f"{prefix}:move", debit_account_id=ad_cash, credit_account_id=bc_cash, amount_micros=amount_micros, currency=currency, code="aba_cash_moved"))
        else:
            requests.append(TransferRequest(id=f"{prefix}:cover", debit_account_id=bc_cash, credit_account_id=ad_overspend, amount_micros=amount_micros, currency=currency, code="overspend_covered"))
        return requests

    # Manual allocation (W6, W9) ------------------------------------------------------------------

    async def allocate(
        self, uow: UnitOfWork, caller: Caller, business_center_id: str, ad_account_id: str,
        bucket: AllocationBucket, direction: AllocationDirection, amount_micros: int, currency: str, allocation_id: str,
    ) -> FundsAllocated:
        store = self._store(uow)
        business_center = await self._visible(store, caller, business_center_id)
        ad_account = await store.load_ad_account(ad_account_id)
        source_kind: OwnerKind = "business_center" if direction is AllocationDirection.BUSINESS_CENTER_TO_AD_ACCOUNT else "ad_account"
        source_id = business_center_id if source_kind == "business_center" else ad_account_id
        [source] = await read_owner_balances(uow, self.ledger, [(source_kind, source_id)])
        available = (
            source.cash_micros - source.cash_held_micros
            if bucket is AllocationBucket.CASH
            else source.vouchers_micros - source.vouchers_held_micros
        )
        allocation = plan_allocation(
            caller, business_center, ad_account, bucket=bucket, direction=direction,
            amount_micros=amount_micros, currency=currency, source_available_micros=available,
        )
        destination_kind: OwnerKind = "ad_account" if source_kind == "business_center" else "business_center"
        now = self.clock.now()
        await self._transfer(
            uow, f"allocation:{business_center_id}:{allocation_id}",
            owner_account_id(source_kind, allocation.source_owner_id, bucket.value),
            owner_account_id(destination_kind, allocation.destination_owner_id, bucket.value),
            amount_micros, currency, f"allocation_{bucket.value}",
        )
        event = FundsAllocated(
            business_center_id=business_center_id, ad_account_id=ad_account_id, bucket=bucket.value,
            direction="to_ad_account" if source_kind == "business_center" else "to_business_center",
            amount_micros=amount_micros, currency=currency, allocated_by_user_id=caller.user_id, allocated_at=now,
        )
        uow.publish(event, topic=self.events_topic, key=business_center_id)
        await publish_balances(uow, self.ledger, [("business_center", business_center_id), ("ad_account", ad_account_id)], now, topic=self.balances_topic)
        return event

    # Money in (I1, S2) -----------------------------------------------------------------------------

    async def receive_payment(self, uow: UnitOfWork, paid: InvoicePaid) -> FundsReceived | None:
        """Credit a paid invoice to its owner once: an open overspend is covered first (S2).

        Raises `UnknownOwnerError` or `CurrencyMismatchError` for a payment that can't be applied;
        the consumer sends those to the dead-letter topic and the balance is untouched.
        """
        store = self._store(uow)
        found = await store.owner_kind_of(paid.owner_id)
        if found is None:
            raise UnknownOwnerError(paid.owner_id)
        owner_kind, business_center_id = found
        business_center = await store.load_business_center(business_center_id, for_update=True)
        require_same_currency(business_center.currency, paid.currency)
        [before] = await read_owner_balances(uow, self.ledger, [(owner_kind, paid.owner_id)])
        cover = min(paid.amount_micros, -before.overspend_micros)
        world = system_account_id("world_payments", paid.currency)
        requests = []
        if cover > 0:
            requests.append(TransferRequest(id=f"payment:{paid.invoice_id}:overspend", debit_account_id=world, credit_account_id=owner_account_id(owner_kind, paid.owner_id, "overspend"), amount_micros=cover, currency=paid.currency, code="payment_covered_overspend", linked=paid.amount_micros > cover))
        if paid.amount_micros > cover:
            requests.append(TransferRequest(id=f"payment:{paid.invoice_id}:cash", debit_account_id=world, credit_account_id=owner_account_id(owner_kind, paid.owner_id, "cash"), amount_micros=paid.amount_micros - cover, currency=paid.currency, code="payment_received"))
        now = self.clock.now()
        results = await self.ledger.create_transfers(uow.conn, requests, now)
        raise_first_error(results)
        if all(result.replayed for result in results):
            # The same invoice paid again (a second notification under a new event id): the
            # ledger applied nothing (M5), so nothing happened and nothing is announced.
            return None
        if owner_kind == "business_center":
            await store.record_payment(business_center_id, paid.amount_micros)
        # W14: payouts waiting for this owner's money go out by themselves now.
        released = await self._release_ready_payouts(uow, store, owner_kind, paid.owner_id)
        for payout_id in released:
            uow.publish(PayoutSettled(payout_id=payout_id, payer_owner_id=paid.owner_id, status="paid"), topic=self.events_topic, key=paid.owner_id)
        event = FundsReceived(
            owner_id=paid.owner_id, invoice_id=paid.invoice_id, amount_micros=paid.amount_micros,
            overspend_covered_micros=max(cover, 0), currency=paid.currency, received_at=now,
        )
        uow.publish(event, topic=self.events_topic, key=business_center_id)
        await publish_balances(uow, self.ledger, [(owner_kind, paid.owner_id)], now, topic=self.balances_topic)
        return event

    # Commands from other services (wallet.commands.v1) ------------------------------------------

    async def place_hold(self, uow: UnitOfWork, command: PlaceHold) -> HoldPlaced | HoldRejected:
        """Hold an owner's cash (M4). A hold that can't be placed is answered, not raised: the
        asking service acts on the answer, and nothing changed."""
        owner = await self._owner(uow, command.owner_id, command.currency)
        if isinstance(owner, str):
            return self._reject(uow, command.hold_id, command.owner_id, owner, command.requested_by)
        owner_kind, _ = owner
        [item] = await read_owner_balances(uow, self.ledger, [(owner_kind, command.owner_id)])
        available_micros = item.cash_micros - item.cash_held_micros
        amount_micros = command.amount_micros
        if available_micros < amount_micros and command.allow_partial:
            amount_micros = available_micros
        if amount_micros <= 0:
            return self._reject(uow, command.hold_id, command.owner_id, "insufficient_funds", command.requested_by)
        if command.payee_owner_id is not None:
            payee = await self._owner(uow, command.payee_owner_id, command.currency)
            if isinstance(payee, str):
                return self._reject(uow, command.hold_id, command.owner_id, f"payee_{payee}", command.requested_by)
            destination_account_id = owner_account_id(payee[0], command.payee_owner_id, "cash")
        else:
            system = "escrow_orders" if command.purpose == "order_escrow" else "platform_revenue"
            destination_account_id = system_account_id(system, command.currency)
        now = self.clock.now()
        request = TransferRequest(
            id=f"hold:{command.hold_id}", debit_account_id=owner_account_id(owner_kind, command.owner_id, "cash"),
            credit_account_id=destination_account_id, amount_micros=amount_micros,
            currency=command.currency, code=command.purpose, pending=True, expires_at=command.expires_at,
            user_data={"owner_kind": owner_kind, "owner_id": command.owner_id, "payee_owner_id": command.payee_owner_id or ""},
        )
        [result] = await self.ledger.create_transfers(uow.conn, [request], now)
        if result.error is not None:
            return self._reject(uow, command.hold_id, command.owner_id, _error_code(result.error), command.requested_by)
        assert result.transfer is not None
        event = HoldPlaced(
            hold_id=command.hold_id, owner_id=command.owner_id, requested_micros=command.amount_micros,
            held_micros=result.transfer.amount_micros, currency=command.currency,
            requested_by=command.requested_by, placed_at=now,
        )
        uow.publish(event, topic=self.events_topic, key=command.owner_id)
        await publish_balances(uow, self.ledger, [(owner_kind, command.owner_id)], now, topic=self.balances_topic)
        return event

    async def resolve_hold(self, uow: UnitOfWork, command: ResolveHold) -> HoldResolved | HoldRejected:
        pending_id = f"hold:{command.hold_id}"
        found = (await self.ledger.lookup_transfers(uow.conn, [pending_id])).get(pending_id)
        if found is None:
            return self._reject(uow, command.hold_id, None, "unknown_hold", command.requested_by)
        owner_kind: OwnerKind = found.user_data["owner_kind"]
        owner_id = str(found.user_data["owner_id"])
        now = self.clock.now()
        request = TransferRequest(
            id=f"{pending_id}:{command.action}", pending_id=pending_id, currency=found.currency, code=found.code,
            amount_micros=command.amount_micros if command.action == "post" else None,
            post_pending=command.action == "post", void_pending=command.action == "void",
        )
        [result] = await self.ledger.create_transfers(uow.conn, [request], now)
        if result.error is not None:
            return self._reject(uow, command.hold_id, owner_id, _error_code(result.error), command.requested_by)
        assert result.transfer is not None
        event = HoldResolved(
            hold_id=command.hold_id, action=command.action,
            posted_micros=result.transfer.amount_micros if command.action == "post" else 0,
            requested_by=command.requested_by, resolved_at=now,
        )
        uow.publish(event, topic=self.events_topic, key=owner_id)
        owners: list[tuple[OwnerKind, str]] = [(owner_kind, owner_id)]
        payee_owner_id = str(found.user_data.get("payee_owner_id") or "")
        if payee_owner_id and command.action == "post":
            payee = await self._store(uow).owner_kind_of(payee_owner_id)
            if payee is not None:
                owners.append((payee[0], payee_owner_id))
        await publish_balances(uow, self.ledger, owners, now, topic=self.balances_topic)
        return event

    async def resize_hold(self, uow: UnitOfWork, command: ResizeHold) -> list[HoldResolved | HoldPlaced] | HoldRejected:
        """Shrink a hold (C2): void it and place the smaller `new_hold_id` in ONE linked ledger
        chain, so the difference goes back at once and nothing can take the rest in between.
        A repeat applies nothing and answers the same two events again (M5); a hold that is
        unknown, already resolved or not larger than the new amount is refused, nothing changed."""
        pending_id = f"hold:{command.hold_id}"
        found = (await self.ledger.lookup_transfers(uow.conn, [pending_id])).get(pending_id)
        if found is None or not found.pending:
            return self._reject(uow, command.hold_id, None, "unknown_hold", command.requested_by)
        owner_kind: OwnerKind = found.user_data["owner_kind"]
        owner_id = str(found.user_data["owner_id"])
        if command.amount_micros >= found.amount_micros:
            return self._reject(uow, command.hold_id, owner_id, "resize_not_smaller", command.requested_by)
        now = self.clock.now()
        # The void's id names the resize, not a plain void: a hold voided earlier by ResolveHold
        # must refuse this chain (already resolved), never be held again by it.
        requests = [
            TransferRequest(
                id=f"{pending_id}:resize:{command.new_hold_id}", pending_id=pending_id, currency=found.currency,
                code=found.code, void_pending=True, linked=True,
            ),
            TransferRequest(
                id=f"hold:{command.new_hold_id}", debit_account_id=found.debit_account_id,
                credit_account_id=found.credit_account_id, amount_micros=command.amount_micros, currency=found.currency,
                code=found.code, pending=True, expires_at=found.expires_at,
                user_data={**found.user_data, "resized_from": command.hold_id},
            ),
        ]
        results = await self.ledger.create_transfers(uow.conn, requests, now)
        failed = next((result.error for result in results if result.error is not None), None)
        if failed is not None:
            return self._reject(uow, command.hold_id, owner_id, _error_code(failed), command.requested_by)
        resolved = HoldResolved(hold_id=command.hold_id, action="void", posted_micros=0, requested_by=command.requested_by, resolved_at=now)
        placed = HoldPlaced(
            hold_id=command.new_hold_id, owner_id=owner_id, requested_micros=command.amount_micros,
            held_micros=command.amount_micros, currency=found.currency, requested_by=command.requested_by, placed_at=now,
        )
        uow.publish(resolved, topic=self.events_topic, key=owner_id)
        uow.publish(placed, topic=self.events_topic, key=owner_id)
        await publish_balances(uow, self.ledger, [(owner_kind, owner_id)], now, topic=self.balances_topic)
        return [resolved, placed]

    async def copy_budget_cap(self, uow: UnitOfWork, event: AdAccountBudgetCapChanged) -> bool:
        """Keep the campaign service's cap of an ad account (W10), so Budget Sync (W5) knows whether
        a budget is set; the newest version wins, an account of another wallet is ignored."""
        try:
            budget = Budget(BudgetKind(event.kind), event.amount_micros, event.starts_on, event.ends_on)
        except InvalidBudgetError:
            return False  # not a cap the campaign service publishes (it validates its caps); nothing to keep
        return await self._store(uow).copy_budget_cap(event.ad_account_id, budget, event.version)

    async def request_payout(self, uow: UnitOfWork, command: RequestPayout) -> PayoutSettled | HoldRejected:
        payer = await self._owner(uow, command.payer_owner_id, command.currency)
        payee = await self._owner(uow, command.payee_owner_id, command.currency)
        for found in (payer, payee):
            if isinstance(found, str):
                return self._reject(uow, command.payout_id, command.payer_owner_id, found, command.requested_by)
        assert not isinstance(payer, str) and not isinstance(payee, str)
        now = self.clock.now()
        payout = Payout(
            id=command.payout_id, payer_kind=payer[0], payer_id=command.payer_owner_id,
            payee_account_id=owner_account_id(payee[0], command.payee_owner_id, "cash"),
            amount_micros=command.amount_micros, currency=command.currency, code="payout",
        )
        store = self._store(uow)
        payout_allowed(0, payout.amount_micros)  # a float or a non-positive amount is refused before anything is written
        await store.insert_payout(payout, now)
        await self._release_ready_payouts(uow, store, payout.payer_kind, payout.payer_id)
        paid = await store.payout_paid(payout.id)
        event = PayoutSettled(payout_id=command.payout_id, payer_owner_id=command.payer_owner_id, status="paid" if paid else "outstanding")
        uow.publish(event, topic=self.events_topic, key=command.payer_owner_id)
        if paid:
            await publish_balances(uow, self.ledger, [payer, (payee[0], command.payee_owner_id)], now, topic=self.balances_topic)
        return event

    async def _release_ready_payouts(self, uow: UnitOfWork, store: WalletStore, payer_kind: OwnerKind, payer_id: str) -> list[str]:
        """W14: pay out the payer's outstanding payouts its real balance covers, oldest first.
        The one ledger call of its transaction that moves money for them (the ledger locks once)."""
        outstanding = await store.outstanding_payouts(payer_id)
        if not outstanding:
            return []
        [payer] = await read_owner_balances(uow, self.ledger, [(payer_kind, payer_id)])
        ready = outstanding[: payouts_ready(payer.real_micros, [item.amount_micros for item in outstanding])]
        if not ready:
            return []
        now = self.clock.now()
        payer_cash = owner_account_id(payer_kind, payer_id, "cash")
        requests = [
            TransferRequest(
                id=f"payout:{item.id}", debit_account_id=payer_cash, credit_account_id=item.payee_account_id,
                amount_micros=item.amount_micros, currency=item.currency, code=item.code,
            )
            for item in ready
        ]
        raise_first_error(await self.ledger.create_transfers(uow.conn, requests, now))
        paid_ids = [item.id for item in ready]
        await store.mark_payouts_paid(paid_ids, now)
        return paid_ids

    async def expire_holds(self, uow: UnitOfWork) -> list[str]:
        """Release every hold whose `expires_at` has passed (M4), each at most once."""
        now = self.clock.now()
        expired = await self.ledger.expire_pending(uow.conn, now)
        owners: list[tuple[OwnerKind, str]] = []
        for transfer in expired:
            owner_id = str(transfer.user_data.get("owner_id", ""))
            if not owner_id:
                continue  # a hold placed by another service directly on the ledger: not the wallet's to announce
            owners.append((transfer.user_data["owner_kind"], owner_id))
            uow.publish(
                HoldResolved(hold_id=transfer.id.removeprefix("hold:"), action="expire", posted_micros=0, requested_by="wallet", resolved_at=now),
                topic=self.events_topic,
                key=owner_id,
            )
        await publish_balances(uow, self.ledger, owners, now, topic=self.balances_topic)
        return [transfer.id for transfer in expired]

    async def _owner(self, uow: UnitOfWork, owner_id: str, currency: str) -> tuple[OwnerKind, str] | str:
        """The owner's kind and id, or the code of why it can't be used."""
        store = self._store(uow)
        found = await store.owner_kind_of(owner_id)
        if found is None:
            return "unknown_owner"
        kind, business_center_id = found
        business_center = await store.load_business_center(business_center_id)
        if business_center.currency != currency:
            return "currency_mismatch"
        return kind, owner_id

    def _reject(self, uow: UnitOfWork, hold_id: str, owner_id: str | None, error: str, requested_by: str) -> HoldRejected:
        event = HoldRejected(hold_id=hold_id, error=error, reason=error.replace("_", " "), requested_by=requested_by)
        uow.publish(event, topic=self.events_topic, key=owner_id or hold_id)
        return event

    # Reading ------------------------------------------------------------------------------------------

    async def balance_of(self, uow: UnitOfWork, caller: Caller, owner_id: str) -> OwnerBalance:
        store = self._store(uow)
        found = await store.owner_kind_of(owner_id)
        if found is None or not (caller.platform_operator or caller.is_member_of(found[1])):
            # Not this caller's: the same answer as an owner that does not exist (W9).
            raise UnknownOwnerError(owner_id)
        owner_kind, _ = found
        [item] = await read_owner_balances(uow, self.ledger, [(owner_kind, owner_id)])
        return item

    async def history(
        self, uow: UnitOfWork, caller: Caller, owner_id: str, from_day: date | None, to_day: date | None
    ) -> list[Snapshot]:
        """W13: the owner's day-close snapshots, authorized like reading its balance."""
        await self.balance_of(uow, caller, owner_id)
        return await self._store(uow).history(owner_id, from_day, to_day)

    async def business_center(self, uow: UnitOfWork, caller: Caller, business_center_id: str) -> tuple[BusinessCenter, str]:
        store = self._store(uow)
        business_center = await self._visible(store, caller, business_center_id)
        return business_center, await store.business_center_name(business_center_id)

    async def ad_accounts(self, uow: UnitOfWork, caller: Caller, business_center_id: str) -> list[AdAccount]:
        store = self._store(uow)
        await self._visible(store, caller, business_center_id)
        return await store.load_ad_accounts(business_center_id)

    async def switch_to_manual_allocation(self, uow: UnitOfWork, caller: Caller, business_center_id: str) -> None:
        """W2: refused once ABA is on (it is one-way); a Business Center still on manual allocation is
        already there, and nothing changes."""
        store = self._store(uow)
        business_center = await self._visible(store, caller, business_center_id)
        authorize(caller, business_center.id, Action.ENABLE_ABA, finance_roles_set_up=business_center.finance_roles_enabled)
        check_switch_to_manual_allocation(business_center)

    async def _transfer(
        self, uow: UnitOfWork, transfer_id: str, debit_account_id: str, credit_account_id: str,
        amount_micros: int, currency: str, code: str,
    ) -> None:
        request = TransferRequest(
            id=transfer_id, debit_account_id=debit_account_id, credit_account_id=credit_account_id,
            amount_micros=amount_micros, currency=currency, code=code,
        )
        raise_first_error(await self.ledger.create_transfers(uow.conn, [request], self.clock.now()))


def _error_code(error: Exception) -> str:
    """A stable code for a ledger refusal, for the answer events."""
    name = type(error).__name__.removesuffix("Error")
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


class BusinessCenterExistsError(Refusal):
    def __init__(self, business_center_id: str) -> None:
        super().__init__(f"Business Center {business_center_id!r} exists already")


class AdAccountExistsError(Refusal):
    def __init__(self, ad_account_id: str) -> None:
        super().__init__(f"ad account {ad_account_id!r} exists already")


class UnknownOwnerError(Refusal, LookupError):
    def __init__(self, owner_id: str) -> None:
        super().__init__(f"no Business Center or ad account {owner_id!r}")
        self.owner_id = owner_id
