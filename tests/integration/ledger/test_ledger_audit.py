"""`adledger ledger audit` on real books (M2, M3, M4, W11): it passes on a healthy ledger, and on a
ledger broken in a private schema behind the ledger's back it exits non-zero naming the break:
a total changed, a transfer with no matching totals, an expired hold never released, a currency
that does not sum to zero, a stale outbox row, a `balances.v1` record that differs from the
ledger or lags it. The audit's correctness on a larger, generated ledger is checked here too; its
speed on a million transfers is measured by bench/ledger_audit.py, not by a test."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from adledger_contracts.external import BalanceChanged
from adledger_ledger import audit, synthetic
from adledger_ledger.domain import TransferRequest, raise_first_error
from adledger_ledger.owners import owner_account_id, system_account_id
from adledger_ledger.postgres import LEDGER_MIGRATIONS, PostgresLedger
from adledger_libs.db import migrate
from adledger_libs.events import encode

from ..cli_process import adledger
from ..conftest import Stack, unique
from ..kafka_io import produce, read_all
from .books import USD, Books, healthy_books

pytestmark = pytest.mark.integration

LEDGER_CHECKS = {
    "currency_sums",
    "transfer_currencies",
    "account_totals",
    "expired_holds",
    "hold_resolutions",
    "owner_accounts",
    "balances_topic",
    "outbox_age",
}


async def test_m3_the_audit_passes_on_healthy_books(stack: Stack) -> None:
    async with healthy_books(stack.database_url, stack.kafka_bootstrap_servers) as books:
        result = await adledger(*books.audit_arguments())
        assert result.returncode == 0, result
        report = result.json()
        assert report["passed"] is True, result
        assert {check["name"] for check in report["checks"]} == LEDGER_CHECKS
        assert all(check["passed"] and not check["findings"] for check in report["checks"]), result
        assert (report["ledger_schema"], report["transfers"], report["owners"]) == (books.ledger_schema, 13, 3)
        balances = next(check for check in report["checks"] if check["name"] == "balances_topic")
        assert (
            balances["summary"] == f"the latest record of each of 3 owners on {books.balances_topic} equals the ledger"
        )

        human = await adledger(*[argument for argument in books.audit_arguments() if argument != "--json"])
        assert human.returncode == 0, human
        assert human.stdout.rstrip().endswith("the books hold")


Tamper = Callable[[asyncpg.Connection, Books, str], Awaitable[None]]


async def _total_changed_behind_the_ledgers_back(conn: asyncpg.Connection, books: Books, bootstrap: str) -> None:
    await conn.execute(
        f"update {books.ledger_schema}.accounts set credits_posted_micros = credits_posted_micros + 1000 where id = $1",
        owner_account_id("ad_account", books.ad_account, "cash"),
    )


async def _transfer_with_no_matching_totals(conn: asyncpg.Connection, books: Books, bootstrap: str) -> None:
    await conn.execute(
        f"""insert into {books.ledger_schema}.transfers
                (id, debit_account_id, credit_account_id, amount_micros, currency, code, kind, created_at)
            values ('sneaked-in', $1, $2, 9000000, 'EUR', 'test', 'single', now())""",
        system_account_id("world_payments", "EUR"),
        system_account_id("platform_revenue", "EUR"),
    )


async def _hold_never_released(conn: asyncpg.Connection, books: Books, bootstrap: str) -> None:
    # Through the real ledger, two hours ago, expiring an hour ago: a sweep that never ran.
    ledger = PostgresLedger(books.ledger_schema)
    request = TransferRequest(
        id="stuck-hold",
        debit_account_id=system_account_id("platform_revenue", "USD"),
        credit_account_id=system_account_id("platform_credit", "USD"),
        amount_micros=3 * USD,
        currency="USD",
        code="test",
        pending=True,
        expires_at=books.now - timedelta(hours=1),
    )
    async with conn.transaction():
        raise_first_error(await ledger.create_transfers(conn, [request], books.now - timedelta(hours=2)))


async def _currency_that_does_not_sum_to_zero(conn: asyncpg.Connection, books: Books, bootstrap: str) -> None:
    # A USD transfer into a EUR account, with both accounts' totals kept equal to their transfers.
    debit, credit = system_account_id("world_payments", "USD"), system_account_id("platform_revenue", "EUR")
    async with conn.transaction():
        await conn.execute(
            f"""insert into {books.ledger_schema}.transfers
                    (id, debit_account_id, credit_account_id, amount_micros, currency, code, kind, created_at)
                values ('across-currencies', $1, $2, 5000000, 'USD', 'test', 'single', now())""",
            debit,
            credit,
        )
        await conn.execute(
            f"update {books.ledger_schema}.accounts set debits_posted_micros = debits_posted_micros + 5000000"
            " where id = $1",
            debit,
        )
        await conn.execute(
            f"update {books.ledger_schema}.accounts set credits_posted_micros = credits_posted_micros + 5000000"
            " where id = $1",
            credit,
        )


async def _outbox_row_left_for_five_minutes(conn: asyncpg.Connection, books: Books, bootstrap: str) -> None:
    await conn.execute(
        f"""insert into {books.service_schema}.outbox (event_id, topic, key, value, headers, created_at)
            values ('stuck-event', 'balances.v1', null, '{{}}'::bytea, '[]', now() - interval '5 minutes')"""
    )


async def _balance_record_that_differs(conn: asyncpg.Connection, books: Books, bootstrap: str) -> None:
    [published] = [
        record
        for record in await read_all(bootstrap, books.balances_topic, expect=3)
        if record.key == books.business_center.encode()
    ]
    record = BalanceChanged.model_validate_json(published.value or b"")
    wrong = record.model_copy(update={"real_micros": record.real_micros + 1, "event_id": unique("wrong")})
    envelope = encode(wrong, key=books.business_center, trace_id="audit-test")
    await produce(bootstrap, books.balances_topic, [(envelope.key, envelope.value, list(envelope.headers))])


async def _balance_version_never_published(conn: asyncpg.Connection, books: Books, bootstrap: str) -> None:
    await conn.execute(
        f"update {books.ledger_schema}.owner_versions set version = version + 1 where owner_id = $1", books.ad_account
    )


Expected = Callable[[Books], dict[str, set[str]]]

#: Each break, and the checks it must fail with the subjects each must name.
BREAKS: list[tuple[str, Tamper, Expected]] = [
    (
        "total_changed",
        _total_changed_behind_the_ledgers_back,
        lambda books: {
            "account_totals": {owner_account_id("ad_account", books.ad_account, "cash")},
            "currency_sums": {"USD"},
            "balances_topic": {books.ad_account},
        },
    ),
    (
        "transfer_without_totals",
        _transfer_with_no_matching_totals,
        lambda books: {"account_totals": {"system/world_payments/EUR", "system/platform_revenue/EUR"}},
    ),
    ("hold_never_released", _hold_never_released, lambda books: {"expired_holds": {"stuck-hold"}}),
    (
        "currency_not_zero",
        _currency_that_does_not_sum_to_zero,
        lambda books: {"currency_sums": {"USD", "EUR"}, "transfer_currencies": {"across-currencies"}},
    ),
    ("outbox_stale", _outbox_row_left_for_five_minutes, lambda books: {"outbox_age": {books.service_schema}}),
    ("balance_differs", _balance_record_that_differs, lambda books: {"balances_topic": {books.business_center}}),
    ("balance_behind", _balance_version_never_published, lambda books: {"balances_topic": {books.ad_account}}),
]


@pytest.mark.parametrize(
    ("tamper", "expected"), [(tamper, expected) for _, tamper, expected in BREAKS], ids=[name for name, _, _ in BREAKS]
)
async def test_m2_m3_m4_w11_the_audit_fails_naming_each_break_of_the_books(
    stack: Stack, tamper: Tamper, expected: Expected
) -> None:
    async with healthy_books(stack.database_url, stack.kafka_bootstrap_servers) as books:
        conn = await asyncpg.connect(stack.database_url)
        try:
            await tamper(conn, books, stack.kafka_bootstrap_servers)
        finally:
            await conn.close()
        arguments = books.audit_arguments("--settle-seconds", "1")
        result = await adledger(*arguments)
        assert result.returncode == 1, result
        report = result.json()
        assert report["passed"] is False
        broken = {check["name"]: check for check in report["checks"] if not check["passed"]}
        assert set(broken) == set(expected(books)), result
        for name, subjects in expected(books).items():
            assert {finding["subject"] for finding in broken[name]["findings"]} == subjects, broken[name]
        human = await adledger(*[argument for argument in arguments if argument != "--json"])
        assert human.returncode == 1, human
        in_order = [check["name"] for check in report["checks"] if check["name"] in broken]
        assert human.stdout.rstrip().endswith(f"BROKEN: {', '.join(in_order)}"), human


async def test_the_balances_check_names_how_a_record_is_off(stack: Stack) -> None:
    async with healthy_books(stack.database_url, stack.kafka_bootstrap_servers) as books:
        conn = await asyncpg.connect(stack.database_url)
        try:
            await _balance_record_that_differs(conn, books, stack.kafka_bootstrap_servers)
            await _balance_version_never_published(conn, books, stack.kafka_bootstrap_servers)
        finally:
            await conn.close()
        result = await adledger(*books.audit_arguments("--settle-seconds", "1"))
        assert result.returncode == 1, result
        [balances] = [check for check in result.json()["checks"] if check["name"] == "balances_topic"]
        details = {finding["subject"]: finding["detail"] for finding in balances["findings"]}
        assert details[books.business_center].startswith(f"differs: business_center {books.business_center}: version 1")
        assert "real_micros published" in details[books.business_center]
        assert details[books.ad_account].startswith(f"behind: ad_account {books.ad_account}: version 1 at ")
        assert details[books.ad_account].endswith("ledger at version 2")


async def test_m3_the_audit_is_right_on_a_generated_ledger_of_twenty_thousand_transfers(stack: Stack) -> None:
    """The synthetic ledger of the benchmark, smaller: every check passes; one changed total is found."""
    schema = unique("t_audit_synthetic")
    conn = await asyncpg.connect(stack.database_url)
    try:
        await migrate(conn, schema, [("adledger_ledger", LEDGER_MIGRATIONS)])
        now = datetime.now(UTC)
        await synthetic.generate(conn, schema, transfers=20_000, owners=200, now=now)
        found = await audit.audit_ledger(conn, schema, now=now)
        assert found.findings() == []
        assert (found.transfers, found.accounts, len(found.owner_figures)) == (20_000, 10 + 3 * 200, 200)
        assert {item.currency: (item.posted_micros, item.pending_micros) for item in found.currency_sums} == {
            "USD": (0, 0),
            "EUR": (0, 0),
        }
        # Owner 0 has groups 0, 200, ..., 1800; those divisible by 3 (0, 600, 1200, 1800) leave their
        # 50,000-micro hold open, so the figures handed to the balances check hold 200,000 on cash.
        owner = next(item for item in found.owner_figures if item.owner_id == synthetic.owner_id(0))
        assert owner.expected.real_micros - owner.expected.virtual_micros == 4 * 50_000

        cli = await adledger(
            "ledger", "audit", "--ledger-schema", schema, "--skip-balances", "--outbox-schema", schema, "--json"
        )
        assert cli.returncode == 0, cli
        summaries = {check["name"]: check["summary"] for check in cli.json()["checks"]}
        assert summaries["balances_topic"] == "skipped (--skip-balances)"

        # One pending total of a EUR owner's cash changed: that account and EUR's pending sum break.
        changed = owner_account_id("ad_account", synthetic.owner_id(7), "cash")
        await conn.execute(
            f"update {schema}.accounts set debits_pending_micros = debits_pending_micros + 1 where id = $1", changed
        )
        broken = await audit.audit_ledger(conn, schema, now=now)
        assert {(finding.check, finding.subject) for finding in broken.findings()} == {
            ("currency_sums", "EUR"),
            ("account_totals", changed),
        }
    finally:
        await conn.execute(f"drop schema if exists {schema} cascade")
        await conn.close()


async def test_the_generated_ledger_is_never_made_in_the_live_schema() -> None:
    with pytest.raises(ValueError, match="live schema"):
        await synthetic.generate(None, "ledger", transfers=10, owners=1, now=datetime.now(UTC))  # type: ignore[arg-type]
