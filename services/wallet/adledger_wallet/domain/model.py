"""Business Centers, ad accounts, their budgets and their balance buckets (rules W1, W10, W12).

Everything here is an immutable value: a change is a new object made with
`dataclasses.replace`, so a plan can carry the state before and after side by side.

Decisions the rules leave open:

- A budget of zero micros is allowed. It is what Budget Sync (W5) gives an account that had
  no available balance, and it is the way to stop an account's spend by its cap (S3).
- A custom budget covers whole UTC days, both ends included (`starts_on` to `ends_on`).
- "No budget" is `AdAccount.budget is None`; it is distinct from an unlimited budget only in
  how it was set, and Budget Sync (W5) treats both alike.
- The credit line of a Business Center is stored as its limit (`credit_limit_micros`); how much
  of it is in use is a ledger figure, not a property of the Business Center.
- The prepayment threshold (W12) is either an explicit amount (`prepayment_threshold_micros`)
  or, when that is not set, a percentage of the last payment received
  (`prepayment_threshold_percent`, 50 by default). See `balances.prepayment_threshold_micros`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from adledger_wallet.domain.errors import InvalidAmountError, InvalidBudgetError

_CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")


class BusinessCenterBucket(StrEnum):
    """The buckets of a Business Center balance (W1); the names match `balances.v1`."""

    CASH = "cash"
    CREDIT_LINE = "credit_line"
    VOUCHERS = "vouchers"


class AdAccountBucket(StrEnum):
    """The buckets of an ad account balance (W1): an ad account has no credit line of its own."""

    CASH = "cash"
    VOUCHERS = "vouchers"


class AdAccountType(StrEnum):
    AUCTION = "auction"
    RESERVATION = "reservation"


class BillingOption(StrEnum):
    MONTHLY_INVOICING = "monthly_invoicing"
    PREPAID = "prepaid"


class BudgetKind(StrEnum):
    """The kinds of ad-account budget cap (W10)."""

    MONTHLY = "monthly"
    DAILY = "daily"
    CUSTOM = "custom"
    UNLIMITED = "unlimited"


def require_micros(amount_micros: object, *, minimum_micros: int | None = None) -> int:
    """Return `amount_micros` if it is an integer (never a float or a boolean, M1) of at least the minimum.

    Without a minimum any integer passes: a balance may be negative after overspend (S2).
    """
    if type(amount_micros) is not int:
        raise InvalidAmountError(amount_micros, "money is an integer number of micros (rule M1)")
    if minimum_micros is not None and amount_micros < minimum_micros:
        raise InvalidAmountError(amount_micros, f"must be at least {minimum_micros} micros")
    return amount_micros


def require_positive_micros(amount_micros: object) -> int:
    """Return `amount_micros` if it is a strictly positive integer of micros."""
    return require_micros(amount_micros, minimum_micros=1)


def require_currency(currency: str) -> str:
    if not isinstance(currency, str) or not _CURRENCY_PATTERN.match(currency):
        raise ValueError(f"currency {currency!r} is not an ISO-4217 code of three upper-case letters (rule M2)")
    return currency


@dataclass(frozen=True, slots=True)
class Budget:
    """An ad account's budget cap (W10), in micros of the ad account's currency.

    Build one with `Budget.monthly`, `Budget.daily`, `Budget.custom` or `Budget.unlimited`.
    """

    kind: BudgetKind
    #: The cap; `None` only for an unlimited budget.
    amount_micros: int | None
    #: The first and last UTC day of a custom budget, both included; `None` for every other kind.
    starts_on: date | None = None
    ends_on: date | None = None

    def __post_init__(self) -> None:
        if self.kind is BudgetKind.UNLIMITED:
            if self.amount_micros is not None:
                raise InvalidBudgetError("an unlimited budget has no amount")
        else:
            try:
                require_micros(self.amount_micros, minimum_micros=0)
            except InvalidAmountError as error:
                raise InvalidBudgetError(f"a {self.kind} budget needs an amount: {error.reason}") from error
        if self.kind is BudgetKind.CUSTOM:
            if self.starts_on is None or self.ends_on is None:
                raise InvalidBudgetError("a custom budget needs a date range")
            if self.starts_on > self.ends_on:
                raise InvalidBudgetError(f"the range {self.starts_on} to {self.ends_on} ends before it starts")
        elif self.starts_on is not None or self.ends_on is not None:
            raise InvalidBudgetError(f"only a custom budget has a date range, not a {self.kind} one")

    @classmethod
    def monthly(cls, amount_micros: int) -> Budget:
        return cls(BudgetKind.MONTHLY, amount_micros)

    @classmethod
    def daily(cls, amount_micros: int) -> Budget:
        return cls(BudgetKind.DAILY, amount_micros)

    @classmethod
    def custom(cls, amount_micros: int, *, starts_on: date, ends_on: date) -> Budget:
        return cls(BudgetKind.CUSTOM, amount_micros, starts_on, ends_on)

    @classmethod
    def unlimited(cls) -> Budget:
        return cls(BudgetKind.UNLIMITED, None)

    @property
    def is_limited(self) -> bool:
        """True for a budget "set as a quantity less than unlimited" (seed 001), which Budget Sync keeps."""
        return self.kind is not BudgetKind.UNLIMITED


@dataclass(frozen=True, slots=True)
class BusinessCenter:
    """A Business Center: it owns ad accounts and holds cash, a credit line and vouchers (W1)."""

    id: str
    currency: str
    #: Automatic Balance Allocation (W2); once true it never becomes false again.
    aba_enabled: bool = False
    #: The credit line granted to the Business Center; how much of it is used is a ledger figure.
    credit_limit_micros: int = 0
    #: Whether the Business Center has set up finance roles (W9); without them only Admins handle money.
    finance_roles_enabled: bool = False
    #: An explicit prepayment threshold (W12); when `None` the percentage below applies.
    prepayment_threshold_micros: int | None = None
    #: The default threshold as a percentage of the last payment received (W12: 50).
    prepayment_threshold_percent: int = 50
    #: The amount of the last payment received, `None` before the first one.
    last_payment_micros: int | None = None

    def __post_init__(self) -> None:
        require_currency(self.currency)
        require_micros(self.credit_limit_micros, minimum_micros=0)
        if self.prepayment_threshold_micros is not None:
            require_micros(self.prepayment_threshold_micros, minimum_micros=0)
        if self.last_payment_micros is not None:
            require_micros(self.last_payment_micros, minimum_micros=0)
        percent = self.prepayment_threshold_percent
        if type(percent) is not int or not 0 <= percent <= 100:
            raise ValueError(f"prepayment threshold percent {percent!r} is not an integer from 0 to 100")


@dataclass(frozen=True, slots=True)
class AdAccount:
    """An ad account, owned by one Business Center (W1)."""

    id: str
    #: The Business Center that owns the account.
    business_center_id: str
    type: AdAccountType
    billing_option: BillingOption
    currency: str
    #: The budget cap (W10); `None` when none was ever set.
    budget: Budget | None = None

    def __post_init__(self) -> None:
        require_currency(self.currency)
