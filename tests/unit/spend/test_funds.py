"""The spend path reads locked ledger rows as plain figures; they must give the same funds as the
ledger's own accounts (W7, W11, S2: cash less holds plus the overspend)."""

from dataclasses import replace

from adledger_ledger.owners import owner_accounts
from adledger_spend_consumer.core import _funds_of, _funds_of_figures


def test_w7_w11_funds_from_plain_figures_equal_funds_from_ledger_accounts() -> None:
    accounts = {}
    figures: dict[str, tuple[int, int]] = {}
    amounts = iter(range(1, 100))
    for kind, owner in (("business_center", "bc-1"), ("ad_account", "acc-1")):
        for account in owner_accounts(kind, owner, "USD"):  # type: ignore[arg-type]
            credits, debits, held = next(amounts) * 1_000, next(amounts) * 300, next(amounts) * 7
            if account.id.endswith("/overspend"):
                credits, held = 0, 0  # an owed overspend: debits only
            account = replace(account, credits_posted_micros=credits, debits_posted_micros=debits, debits_pending_micros=held)
            accounts[account.id] = account
            figures[account.id] = (credits - debits, held)
    owners = [("business_center", "bc-1"), ("ad_account", "acc-1"), ("ad_account", "missing")]
    expected = _funds_of(owners, accounts)  # type: ignore[arg-type]
    assert _funds_of_figures(owners, figures) == expected  # type: ignore[arg-type]
    assert set(expected) == {("business_center", "bc-1"), ("ad_account", "acc-1")}
    assert expected[("ad_account", "acc-1")].credit_line_micros == 0
