"""How the ledger's accounts map to the balances of Business Centers and ad accounts.

Every owner has one ledger account per bucket (rule W1): a Business Center has cash, credit
line and vouchers; an ad account has cash and vouchers. Each owner also has an `overspend`
account: spend that was served after the funds ran out cannot be refused (rule S2), so it is
debited there, the only owner account allowed below zero, and the next money in covers it
first. The buckets are guarded by the ledger itself (debits must not exceed credits, holds
included), so no caller can overdraw them; the overspend account is guarded the other way
(it never goes above zero).

System accounts are one per currency: `world_payments` (where paid money comes from),
`platform_credit` (the credit lines the platform grants), `platform_vouchers` (ad credits),
`platform_revenue` (where spend goes), `escrow_orders` (orders held for sellers).

Decision (rule W11, written down in docs/decisions.md): the real balance is the owner's posted
cash plus its overspend (paid money in minus posted spend and fees); vouchers and the credit
line are not paid money and are not in it. The virtual balance is the real balance minus open
holds on cash. `available_micros` is what can still be spent: every bucket less its holds, plus
the (negative) overspend.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from adledger_ledger.domain import Account, balance

OwnerKind = Literal["business_center", "ad_account"]
_KIND_PREFIX: dict[str, str] = {"business_center": "bc", "ad_account": "ad"}
BUSINESS_CENTER_BUCKETS = ("cash", "credit_line", "vouchers", "overspend")
AD_ACCOUNT_BUCKETS = ("cash", "vouchers", "overspend")
SYSTEM_ACCOUNTS = ("world_payments", "platform_credit", "platform_vouchers", "platform_revenue", "escrow_orders")


def owner_account_id(owner_kind: OwnerKind, owner_id: str, bucket: str) -> str:
    return f"{_KIND_PREFIX[owner_kind]}/{owner_id}/{bucket}"


def system_account_id(name: str, currency: str) -> str:
    if name not in SYSTEM_ACCOUNTS:
        raise ValueError(f"no system account {name!r}")
    return f"system/{name}/{currency}"


def owner_buckets(owner_kind: OwnerKind) -> tuple[str, ...]:
    return BUSINESS_CENTER_BUCKETS if owner_kind == "business_center" else AD_ACCOUNT_BUCKETS


def owner_accounts(owner_kind: OwnerKind, owner_id: str, currency: str) -> list[Account]:
    """The ledger accounts an owner needs, guarded as the module docstring says."""
    return [
        Account(
            id=owner_account_id(owner_kind, owner_id, bucket),
            currency=currency,
            code=f"{owner_kind}_{bucket}",
            owner_id=owner_id,
            debits_must_not_exceed_credits=bucket != "overspend",
            credits_must_not_exceed_debits=bucket == "overspend",
        )
        for bucket in owner_buckets(owner_kind)
    ]


def system_accounts(currency: str) -> list[Account]:
    return [
        Account(
            id=system_account_id(name, currency),
            currency=currency,
            code=name,
            # Escrow only ever holds what was put in; the others are the outside world.
            debits_must_not_exceed_credits=name == "escrow_orders",
        )
        for name in SYSTEM_ACCOUNTS
    ]


@dataclass(frozen=True, slots=True)
class OwnerBalance:
    """One owner's balance, read from its ledger accounts."""

    owner_id: str
    owner_kind: OwnerKind
    currency: str
    cash_micros: int
    cash_held_micros: int
    vouchers_micros: int
    vouchers_held_micros: int
    credit_line_micros: int
    credit_line_held_micros: int
    overspend_micros: int

    @property
    def real_micros(self) -> int:
        return self.cash_micros + self.overspend_micros

    @property
    def virtual_micros(self) -> int:
        return self.real_micros - self.cash_held_micros

    @property
    def available_micros(self) -> int:
        return (
            self.cash_micros
            - self.cash_held_micros
            + self.vouchers_micros
            - self.vouchers_held_micros
            + self.credit_line_micros
            - self.credit_line_held_micros
            + self.overspend_micros
        )


def owner_balance(owner_kind: OwnerKind, owner_id: str, accounts: Mapping[str, Account]) -> OwnerBalance:
    """Read an owner's balance from its accounts (all of them must be in `accounts`)."""

    def bucket(name: str) -> Account | None:
        if name not in owner_buckets(owner_kind):
            return None
        return accounts[owner_account_id(owner_kind, owner_id, name)]

    def posted(name: str) -> int:
        account = bucket(name)
        return balance(account) if account is not None else 0

    def held(name: str) -> int:
        account = bucket(name)
        return account.debits_pending_micros if account is not None else 0

    cash = accounts[owner_account_id(owner_kind, owner_id, "cash")]
    return OwnerBalance(
        owner_id=owner_id,
        owner_kind=owner_kind,
        currency=cash.currency,
        cash_micros=posted("cash"),
        cash_held_micros=held("cash"),
        vouchers_micros=posted("vouchers"),
        vouchers_held_micros=held("vouchers"),
        credit_line_micros=posted("credit_line"),
        credit_line_held_micros=held("credit_line"),
        overspend_micros=posted("overspend"),
    )
