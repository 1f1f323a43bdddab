"""The typed errors of the wallet's rules.

Each error carries the facts that caused it as attributes, so an adapter can turn it into an
HTTP problem or an event without parsing the message, and a test can assert on the facts.
A currency mix is reported with `adledger_libs.money.CurrencyMismatchError` (rule M2), and a
permission refused with `adledger_auth.roles.PermissionDeniedError` (W9), which every service
shares, rather than with wallet-specific classes. Every rejection is a `Refusal`: an API answers it
with a 4xx, a consumer dead-letters the record that caused it.
"""

from __future__ import annotations

from adledger_libs.refusals import Refusal


class WalletError(Refusal):
    """The base of every rejection by the wallet's rules; a caller may catch this one class."""


class InvalidAmountError(WalletError, ValueError):
    """An amount of money is not a strictly positive integer of micros (rule M1)."""

    def __init__(self, amount_micros: object, reason: str) -> None:
        super().__init__(f"invalid amount {amount_micros!r}: {reason}")
        self.amount_micros = amount_micros
        self.reason = reason


class InvalidBudgetError(WalletError, ValueError):
    """A budget is not well formed for its kind (rule W10)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid budget: {reason}")
        self.reason = reason


class AbaAlreadyEnabledError(WalletError):
    """Automatic Balance Allocation is already on for this Business Center (rule W2)."""

    def __init__(self, business_center_id: str) -> None:
        super().__init__(f"automatic balance allocation is already enabled for business center {business_center_id}")
        self.business_center_id = business_center_id


class AbaIsOneWayError(WalletError):
    """A request to switch a Business Center back to manual allocation (rule W2)."""

    def __init__(self, business_center_id: str) -> None:
        super().__init__(
            f"business center {business_center_id} uses automatic balance allocation, "
            "which cannot be switched back to manual allocation"
        )
        self.business_center_id = business_center_id


class DuplicateAdAccountError(WalletError, ValueError):
    """The same ad account was listed twice in one request."""

    def __init__(self, ad_account_id: str) -> None:
        super().__init__(f"ad account {ad_account_id} is listed more than once")
        self.ad_account_id = ad_account_id


class MissingCashBalanceError(LookupError):
    """Enabling ABA needs the available cash of every eligible ad account; one was not given.

    This is a bug in the caller (the adapter reads every balance before planning), so it is
    raised loudly instead of assuming zero and silently leaving money behind.
    """

    def __init__(self, ad_account_id: str) -> None:
        super().__init__(f"no available cash figure was given for eligible ad account {ad_account_id}")
        self.ad_account_id = ad_account_id


class AdAccountNotOwnedError(WalletError):
    """The ad account does not belong to the Business Center named in the request (rules W1, W9).

    It deliberately does not say which Business Center owns the account: that would tell a user
    of one Business Center something about another (W9).
    """

    def __init__(self, ad_account_id: str, business_center_id: str) -> None:
        super().__init__(f"ad account {ad_account_id} does not belong to business center {business_center_id}")
        self.ad_account_id = ad_account_id
        self.business_center_id = business_center_id


class ManualCashAllocationUnderAbaError(WalletError):
    """Cash cannot be allocated by hand to an ad account that draws on the BC automatically (W3, W4)."""

    def __init__(self, ad_account_id: str, business_center_id: str) -> None:
        super().__init__(
            f"ad account {ad_account_id} draws cash from business center {business_center_id} automatically; "
            "cash is not allocated to it by hand (vouchers still are)"
        )
        self.ad_account_id = ad_account_id
        self.business_center_id = business_center_id


class InsufficientFundsError(WalletError):
    """A bucket holds less than a request takes from it."""

    def __init__(self, owner_id: str, bucket: str, requested_micros: int, available_micros: int) -> None:
        super().__init__(
            f"{owner_id} has {available_micros} micros available in {bucket}, "
            f"less than the {requested_micros} micros requested"
        )
        self.owner_id = owner_id
        self.bucket = bucket
        self.requested_micros = requested_micros
        self.available_micros = available_micros
