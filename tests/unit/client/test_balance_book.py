"""The newest balance per owner by version (balances.v1: `version` grows by one per change)."""

from __future__ import annotations

from datetime import UTC, datetime

from adledger_client import Balance
from adledger_client.balances import BalanceBook


def balance(owner_id: str, version: int, available_micros: int) -> Balance:
    return Balance(
        owner_id=owner_id, owner_kind="ad_account", currency="USD", real_micros=available_micros, virtual_micros=available_micros,
        available_micros=available_micros, buckets={"cash": available_micros, "credit_line": 0, "vouchers": 0},  # type: ignore[arg-type]
        version=version, updated_at=datetime(2026, 11, 21, tzinfo=UTC),
    )


def test_an_older_or_equal_version_than_the_one_held_is_dropped() -> None:
    book = BalanceBook()
    assert book.apply(balance("acc-1", 1, 10))
    assert book.apply(balance("acc-1", 3, 30)), "a version may be skipped (a compacted topic keeps the newest)"
    assert not book.apply(balance("acc-1", 2, 20))
    assert not book.apply(balance("acc-1", 3, 31))
    assert book.get("acc-1") == balance("acc-1", 3, 30) and book.stale_dropped == 2
    assert book.apply(balance("acc-2", 1, 5)) and book.get("acc-2") is not None


def test_only_the_owners_asked_for_are_kept() -> None:
    book = BalanceBook(owners={"acc-1"})
    assert not book.apply(balance("acc-2", 1, 5))
    assert book.apply(balance("acc-1", 1, 5)) and book.all().keys() == {"acc-1"} and book.stale_dropped == 0


def test_a_tombstone_forgets_the_balance_but_still_drops_the_older_versions_behind_it() -> None:
    book = BalanceBook()
    book.apply(balance("acc-1", 4, 40))
    book.forget("acc-1")
    assert book.get("acc-1") is None
    assert not book.apply(balance("acc-1", 3, 30))
    assert book.apply(balance("acc-1", 5, 50))
