"""`adledger ledger audit`: the ledger's own checks (`adledger_ledger.audit`, the only place with
their SQL), the owners' latest `balances.v1` records against the ledger's figures, and the
services' outboxes. Any break makes the command exit non-zero.

The balances are compared at one ledger snapshot, while the services may keep moving money: a
record whose version is not the snapshot's (not yet published, or already newer) is looked at
again, at a new snapshot and the topic's new end, until `settle` has passed; only what is still
off then is a break. A record at the same version with other figures is a break at once: a
version's figures never change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
from adledger_contracts.external import BalanceChanged
from adledger_ledger.audit import (
    CHECK_ACCOUNT_TOTALS,
    CHECK_CURRENCY_SUMS,
    CHECK_EXPIRED_HOLDS,
    CHECK_HOLD_RESOLUTIONS,
    CHECK_OWNER_ACCOUNTS,
    CHECK_TRANSFER_CURRENCIES,
    Finding,
    LedgerAudit,
    OwnerFigures,
    audit_ledger,
    has_ledger,
    recheck_owner_figures,
)
from adledger_libs.clock import Clock
from adledger_libs.events import DecodeError, decode
from adledger_libs.outbox import outbox_backlog

from adledger_libs.kafka import KafkaTarget
from adledger_cli.errors import OperatorError
from adledger_cli.topics import LatestPerKey, Record

CHECK_BALANCES = "balances_topic"
CHECK_OUTBOX = "outbox_age"
#: Fields a balance record carries that are not figures: its own id and when it was made.
_NOT_FIGURES = {"event_id", "updated_at"}
_UNSETTLED = ("no record", "behind", "ahead")


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    summary: str
    findings: list[Finding] = field(default_factory=list)


@dataclass(frozen=True)
class AuditReport:
    passed: bool
    ledger_schema: str
    audited_at: datetime
    transfers: int
    accounts: int
    owners: int
    checks: list[CheckResult]


@dataclass(frozen=True)
class AuditOptions:
    ledger_schema: str
    #: None: the balances check is skipped (said so in the report).
    balances_topic: str | None
    outbox_schemas: Sequence[str]
    outbox_age: timedelta
    expiry_grace: timedelta
    settle: timedelta
    examples: int


async def run_audit(database_url: str, bootstrap_servers: KafkaTarget, options: AuditOptions, clock: Clock) -> AuditReport:
    try:
        conn = await asyncpg.connect(database_url, timeout=20)
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        raise OperatorError(f"PostgreSQL at {_without_password(database_url)} did not answer: {error!r}") from error
    try:
        if not await has_ledger(conn, options.ledger_schema):
            raise OperatorError(f"no ledger in schema {options.ledger_schema!r} (no table transfers)")
        now = clock.now()
        ledger = await audit_ledger(
            conn, options.ledger_schema, now=now, expiry_grace=options.expiry_grace, examples=options.examples
        )
        checks = _ledger_checks(ledger)
        if options.balances_topic is None:
            checks.append(CheckResult(CHECK_BALANCES, True, "skipped (--skip-balances)"))
        else:
            checks.append(await _balances_check(conn, bootstrap_servers, options, ledger, clock))
        checks.append(await _outbox_check(conn, options))
    finally:
        await conn.close()
    return AuditReport(
        passed=all(check.passed for check in checks),
        ledger_schema=options.ledger_schema,
        audited_at=ledger.audited_at,
        transfers=ledger.transfers,
        accounts=ledger.accounts,
        owners=len(ledger.owner_figures) + len(ledger.owners_without_accounts),
        checks=checks,
    )


def _without_password(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    return f"{scheme}{separator}{credentials.partition(':')[0]}@{host}"


def _ledger_checks(ledger: LedgerAudit) -> list[CheckResult]:
    findings = ledger.findings()

    def of(name: str) -> list[Finding]:
        return [finding for finding in findings if finding.check == name]

    currencies = len(ledger.currency_sums)
    open_expired = ledger.expired_hold_count
    return [
        CheckResult(
            CHECK_CURRENCY_SUMS,
            not of(CHECK_CURRENCY_SUMS),
            f"each of {currencies} currencies sums to zero (posted and pending)"
            if not of(CHECK_CURRENCY_SUMS)
            else f"currencies that do not sum to zero: {len(of(CHECK_CURRENCY_SUMS))} of {currencies}",
            of(CHECK_CURRENCY_SUMS),
        ),
        CheckResult(
            CHECK_TRANSFER_CURRENCIES,
            ledger.foreign_currency_count == 0,
            "every transfer moves accounts of its own currency"
            if ledger.foreign_currency_count == 0
            else f"accounts moved by transfers in another currency: {ledger.foreign_currency_count}",
            of(CHECK_TRANSFER_CURRENCIES),
        ),
        CheckResult(
            CHECK_ACCOUNT_TOTALS,
            ledger.totals_mismatch_count == 0,
            f"every account's totals equal the sum of its transfers ({ledger.accounts} accounts)"
            if ledger.totals_mismatch_count == 0
            else f"accounts whose totals differ from their transfers: {ledger.totals_mismatch_count}",
            of(CHECK_ACCOUNT_TOTALS),
        ),
        CheckResult(
            CHECK_EXPIRED_HOLDS,
            open_expired == 0,
            "no hold is unresolved past its expiry"
            if open_expired == 0
            else f"holds unresolved past their expiry: {open_expired}",
            of(CHECK_EXPIRED_HOLDS),
        ),
        CheckResult(
            CHECK_HOLD_RESOLUTIONS,
            not of(CHECK_HOLD_RESOLUTIONS),
            "every hold is resolved at most once, and leaves the expiry queue when resolved"
            if not of(CHECK_HOLD_RESOLUTIONS)
            else f"holds resolved twice or left in the expiry queue: {len(of(CHECK_HOLD_RESOLUTIONS))}",
            of(CHECK_HOLD_RESOLUTIONS),
        ),
        CheckResult(
            CHECK_OWNER_ACCOUNTS,
            not ledger.owners_without_accounts,
            "every owner with a balance has all its accounts"
            if not ledger.owners_without_accounts
            else f"owners that lack accounts: {len(ledger.owners_without_accounts)}",
            of(CHECK_OWNER_ACCOUNTS),
        ),
    ]


@dataclass(frozen=True)
class BalanceBreak:
    #: "no record", "behind", "ahead" (may settle: looked at again), "undecodable" or "differs".
    kind: str
    finding: Finding


def compare_balances(figures: Sequence[OwnerFigures], latest: Mapping[bytes, Record]) -> dict[str, BalanceBreak]:
    """The owners whose latest record differs from the ledger's figures, with what differs."""
    broken: dict[str, BalanceBreak] = {}
    for owner in figures:
        record = latest.get(owner.owner_id.encode())
        if record is None:
            broken[owner.owner_id] = _balance_finding(owner, "no record", f"none (ledger at version {owner.version})")
            continue
        where = f"{record.topic}:{record.partition}:{record.offset}"
        try:
            published = decode(BalanceChanged, record.value)
        except DecodeError as error:
            broken[owner.owner_id] = _balance_finding(owner, "undecodable", f"{where}: {error.reason[:300]}")
            continue
        if published.version < owner.version:
            detail = f"version {published.version} at {where}, ledger at version {owner.version}"
            broken[owner.owner_id] = _balance_finding(owner, "behind", detail)
            continue
        if published.version > owner.version:
            detail = f"version {published.version} at {where}, newer than the ledger's {owner.version}"
            broken[owner.owner_id] = _balance_finding(owner, "ahead", detail)
            continue
        shown = published.model_dump(mode="json", exclude=_NOT_FIGURES)
        expected = owner.expected.model_dump(mode="json", exclude=_NOT_FIGURES)
        if shown != expected:
            differences = "; ".join(
                f"{name} published {shown.get(name)!r}, ledger {expected.get(name)!r}"
                for name in sorted(set(shown) | set(expected))
                if shown.get(name) != expected.get(name)
            )
            broken[owner.owner_id] = _balance_finding(
                owner, "differs", f"version {owner.version} at {where}: {differences}"
            )
    return broken


def _balance_finding(owner: OwnerFigures, kind: str, detail: str) -> BalanceBreak:
    return BalanceBreak(
        kind, Finding(CHECK_BALANCES, owner.owner_id, f"{kind}: {owner.owner_kind} {owner.owner_id}: {detail}")
    )


async def _balances_check(
    conn: asyncpg.Connection, bootstrap_servers: KafkaTarget, options: AuditOptions, ledger: LedgerAudit, clock: Clock
) -> CheckResult:
    assert options.balances_topic is not None
    topic = options.balances_topic
    async with LatestPerKey(bootstrap_servers, topic) as reader:
        await reader.catch_up()
        broken = compare_balances(ledger.owner_figures, reader.values)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + options.settle.total_seconds()
        while True:
            unsettled = sorted(owner for owner, item in broken.items() if item.kind in _UNSETTLED)
            if not unsettled or loop.time() >= deadline:
                break
            await asyncio.sleep(0.5)
            await reader.catch_up()
            again = await recheck_owner_figures(conn, options.ledger_schema, clock.now(), unsettled)
            for owner_id in unsettled:
                del broken[owner_id]
            broken.update(compare_balances(again, reader.values))
        known = {owner.owner_id.encode() for owner in ledger.owner_figures} | {
            owner_id.encode() for owner_id in ledger.owners_without_accounts
        }
        others = sum(1 for key in reader.values if key not in known)
    findings = [broken[owner].finding for owner in sorted(broken)]
    owners = len(ledger.owner_figures)
    ignored = f"; ignored: the records of {others} owners this ledger does not have" if others else ""
    if not findings:
        return CheckResult(
            CHECK_BALANCES, True, f"the latest record of each of {owners} owners on {topic} equals the ledger{ignored}"
        )
    shown = findings[: options.examples]
    if len(findings) > len(shown):
        shown.append(
            Finding(CHECK_BALANCES, "(more)", f"{len(findings) - len(shown)} more not shown ({len(findings)} in all)")
        )
    return CheckResult(
        CHECK_BALANCES,
        False,
        f"owners whose latest record on {topic} is off: {len(findings)} of {owners}{ignored}",
        shown,
    )


async def _outbox_check(conn: asyncpg.Connection, options: AuditOptions) -> CheckResult:
    findings: list[Finding] = []
    read: list[str] = []
    for schema in options.outbox_schemas:
        backlog = await outbox_backlog(conn, schema, options.outbox_age)
        if backlog is None:
            continue
        read.append(schema)
        if backlog.stale_rows:
            assert backlog.oldest_created_at is not None
            age = backlog.read_at - backlog.oldest_created_at
            findings.append(
                Finding(
                    CHECK_OUTBOX,
                    schema,
                    f"schema {schema}: {backlog.stale_rows} of {backlog.rows} outbox rows older than "
                    f"{int(options.outbox_age.total_seconds())} s (the oldest {int(age.total_seconds())} s old): "
                    "its relay is not publishing",
                )
            )
    limit = int(options.outbox_age.total_seconds())
    if not read:
        return CheckResult(CHECK_OUTBOX, True, f"no outbox in schemas {', '.join(options.outbox_schemas) or '(none)'}")
    if not findings:
        return CheckResult(CHECK_OUTBOX, True, f"no outbox row older than {limit} s in {', '.join(read)}")
    return CheckResult(
        CHECK_OUTBOX, False, f"outboxes with rows older than {limit} s: {len(findings)} of {len(read)}", findings
    )
