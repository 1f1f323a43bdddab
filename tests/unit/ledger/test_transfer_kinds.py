"""Every transfer the code can make is classified as inside one Business Center, with the platform, or
crossing two (libs/adledger_ledger/transfer_kinds.py, docs/scaling.md): the source of libs/ and services/
is read for every `TransferRequest(...)`, `Payout(...)` and wallet `_transfer(...)` and the transfer code
each can carry. A new code, or a code computed in a way this test cannot follow, fails here until it is
classified, so a transfer that crosses Business Centers (and so shards) cannot slip in unnoticed."""

from __future__ import annotations

import ast
import functools
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from adledger_contracts.wallet import PlaceHold
from adledger_ledger.transfer_kinds import TRANSFER_KINDS, TransferKind, kind_of
from adledger_wallet.domain.allocation import AllocationBucket

ROOT = Path(__file__).resolve().parents[3]
WALLET_CORE = "services/wallet/adledger_wallet/core.py"
#: Codes computed at run time, by file and expression, and every value each can take. An empty set is a
#: code copied from a transfer classified where it was made (a hold's post, void or resize keeps the
#: hold's code; a payout's transfer takes the code its Payout was queued with; the wallet's `_transfer`
#: takes its callers', which are read too).
COMPUTED_CODES: dict[tuple[str, str], set[str]] = {
    (WALLET_CORE, "f'allocation_{bucket.value}'"): {f"allocation_{bucket.value}" for bucket in AllocationBucket},
    (WALLET_CORE, "command.purpose"): set(typing.get_args(PlaceHold.model_fields["purpose"].annotation)),
    (WALLET_CORE, "found.code"): set(),
    (WALLET_CORE, "code"): set(),
    (WALLET_CORE, "item.code"): set(),
}
_CODE_POSITION_OF_WALLET_TRANSFER = 6  # self._transfer(uow, id, debit, credit, amount, currency, code)


@functools.cache
def _code_expressions() -> tuple[tuple[str, ast.expr], ...]:
    return tuple(_scan())


def _scan() -> Iterator[tuple[str, ast.expr]]:
    for path in sorted([*(ROOT / "libs").rglob("*.py"), *(ROOT / "services").rglob("*.py")]):
        relative = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(), filename=relative)):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name in ("TransferRequest", "Payout"):
                codes = [keyword.value for keyword in node.keywords if keyword.arg == "code"]
                # A resolution of a hold may leave the code out; every other transfer names it.
                assert codes or any(keyword.arg == "pending_id" for keyword in node.keywords), (
                    f"{relative}:{node.lineno}: a {name} without a code"
                )
                yield from ((relative, code) for code in codes)
            elif name == "_transfer" and isinstance(node.func, ast.Attribute):
                if len(node.args) > _CODE_POSITION_OF_WALLET_TRANSFER:
                    yield relative, node.args[_CODE_POSITION_OF_WALLET_TRANSFER]
                yield from ((relative, keyword.value) for keyword in node.keywords if keyword.arg == "code")


def _values(relative: str, expression: ast.expr) -> set[str]:
    if isinstance(expression, ast.Constant) and isinstance(expression.value, str):
        return {expression.value}
    if isinstance(expression, ast.IfExp):
        return _values(relative, expression.body) | _values(relative, expression.orelse)
    source = ast.unparse(expression)
    assert (relative, source) in COMPUTED_CODES, (
        f"{relative}:{expression.lineno}: the transfer code `{source}` is computed in a way this test does not "
        "know: list its values in COMPUTED_CODES and classify each in adledger_ledger.transfer_kinds"
    )
    return COMPUTED_CODES[(relative, source)]


def _codes_in_the_source() -> set[str]:
    return set().union(*(_values(relative, expression) for relative, expression in _code_expressions()))


def test_every_transfer_code_the_code_makes_is_classified() -> None:
    unclassified = _codes_in_the_source() - set(TRANSFER_KINDS)
    assert not unclassified, (
        f"classify these transfer codes in adledger_ledger/transfer_kinds.py: {sorted(unclassified)}"
    )


def test_the_table_has_no_code_the_code_never_makes() -> None:
    assert set(TRANSFER_KINDS) - _codes_in_the_source() == set()


def test_the_scan_finds_the_transfers_of_every_service_that_moves_money() -> None:
    files = {relative for relative, _ in _code_expressions()}
    assert {
        WALLET_CORE,
        "services/spend_consumer/adledger_spend_consumer/core.py",
        "services/invoicing/adledger_invoicing/core.py",
    } <= files
    used = {source for (relative, source) in COMPUTED_CODES if relative in files}
    assert {source for _, source in COMPUTED_CODES} == used, "COMPUTED_CODES lists an expression no longer in the code"


def test_only_escrowed_orders_and_payouts_cross_business_centers() -> None:
    crossing = {code for code, kind in TRANSFER_KINDS.items() if kind is TransferKind.CROSSING}
    assert crossing == {"order_escrow", "payout"}, "a new crossing kind needs its two-step path (docs/scaling.md)"
    assert kind_of("spend") is TransferKind.SYSTEM


def test_an_unclassified_code_says_where_to_classify_it() -> None:
    with pytest.raises(KeyError, match="adledger_ledger.transfer_kinds"):
        kind_of("teleport")
