"""`adledger`: the operator's command line (typer). Every command has `--help` and `--json`.

The commands are thin: they read options, run one coroutine of the modules beside this one, and
print a table for people or JSON for programs. Exit codes are in `errors.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import timedelta
from typing import Annotated, Any, TypeVar

import asyncpg
import typer
from adledger_libs.clock import SystemClock
from adledger_libs.db import checked_schema
from adledger_libs.logs import configure_logging
from aiokafka.errors import KafkaError

from adledger_cli import audit, delivery, dlq, lag
from adledger_cli.errors import EXIT_COULD_NOT_RUN, EXIT_FOUND_PROBLEMS, OperatorError
from adledger_cli.output import emit, table
from adledger_cli.settings import SERVICE_SCHEMAS, CliSettings

T = TypeVar("T")

app = typer.Typer(
    name="adledger",
    help="Operate adledger: dead-letter topics, consumer lag, the ledger's books, delivery state. "
    "Reads the services' ADLEDGER_* settings (ADLEDGER_KAFKA_BOOTSTRAP_SERVERS, ADLEDGER_DATABASE_URL, "
    "ADLEDGER_LEDGER_SCHEMA, ...); the options below override them.",
    no_args_is_help=True,
    add_completion=False,
)
dlq_app = typer.Typer(
    help="The dead-letter topics (<topic>.dlq): list, show and replay their records.", no_args_is_help=True
)
ledger_app = typer.Typer(help="The double-entry ledger's books.", no_args_is_help=True)
delivery_app = typer.Typer(help="Delivery as ad servers see it.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
app.add_typer(ledger_app, name="ledger")
app.add_typer(delivery_app, name="delivery")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.callback()
def root(
    context: typer.Context,
    bootstrap_servers: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers (default: ADLEDGER_KAFKA_BOOTSTRAP_SERVERS)")
    ] = None,
    database_url: Annotated[str | None, typer.Option(help="PostgreSQL URL (default: ADLEDGER_DATABASE_URL)")] = None,
    kafka_security_protocol: Annotated[
        str | None,
        typer.Option(help="PLAINTEXT, SASL_PLAINTEXT, SASL_SSL or SSL (default: ADLEDGER_KAFKA_SECURITY_PROTOCOL)"),
    ] = None,
    kafka_username: Annotated[
        str | None, typer.Option(help="The SASL/SCRAM principal (default: ADLEDGER_KAFKA_SASL_USERNAME, else operator)")
    ] = None,
    kafka_password_file: Annotated[
        str | None, typer.Option(help="A file holding the principal's password (default: ADLEDGER_KAFKA_SASL_PASSWORD_FILE)")
    ] = None,
) -> None:
    settings = CliSettings()
    overrides: dict[str, str] = {}
    if bootstrap_servers:
        overrides["kafka_bootstrap_servers"] = bootstrap_servers
    if kafka_username:
        overrides["kafka_sasl_username"] = kafka_username
    if kafka_password_file:
        overrides["kafka_sasl_password_file"] = kafka_password_file
    if kafka_security_protocol:
        if kafka_security_protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
            raise typer.BadParameter(f"unknown Kafka security protocol {kafka_security_protocol!r}")
        overrides["kafka_security_protocol"] = kafka_security_protocol
    if database_url:
        overrides["database_url"] = database_url
    context.obj = settings.model_copy(update=overrides)


def _settings(context: typer.Context) -> CliSettings:
    settings = context.find_root().obj
    assert isinstance(settings, CliSettings)
    return settings


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run one command's coroutine; a problem it cannot get past ends the command with its words."""
    try:
        return asyncio.run(work)
    except OperatorError as error:
        typer.echo(f"adledger: {error}", err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN) from None
    except (asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError, OSError) as error:
        # The database or the broker failed under the command (a permission, a lost connection).
        typer.echo(f"adledger: {type(error).__name__}: {error}", err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN) from None


# ----------------------------------------------------------------------------------------------
# adledger dlq
# ----------------------------------------------------------------------------------------------

TopicArgument = Annotated[
    str, typer.Argument(help="The dead-letter topic, or the topic it is for (ads.spend.v1 means ads.spend.v1.dlq).")
]
FromOffset = Annotated[int | None, typer.Option(help="Only dead letters at this dead-letter offset or later.", min=0)]
ToOffset = Annotated[int | None, typer.Option(help="Only dead letters at this dead-letter offset or earlier.", min=0)]
ReasonOption = Annotated[str | None, typer.Option(help="Only dead letters whose dlq-reason contains this (any case).")]
OriginPartition = Annotated[
    int | None, typer.Option(help="Only dead letters from this partition of the origin topic.", min=0)
]
GroupOption = Annotated[
    str | None, typer.Option("--group", help="Only dead letters of this consumer group (dlq-consumer-group).")
]


@dlq_app.command("list")
def dlq_list(
    context: typer.Context,
    topic: Annotated[
        list[str] | None,
        typer.Option(help="A dead-letter topic to count (repeatable) (default: every one of the catalogue)"),
    ] = None,
    top: Annotated[int, typer.Option(help="How many reasons to show per topic, most frequent first.", min=1)] = 20,
    as_json: JsonOption = False,
) -> None:
    """Count the records of each dead-letter topic, per reason."""
    settings = _settings(context)
    topics = [dlq.dead_letter_topic_of(name) for name in topic] if topic else dlq.catalogue_dead_letter_topics()
    summaries = _run(dlq.summarise(settings.kafka_connection(), topics, missing_ok=not topic))
    shown = [dlq.TopicCounts.of(summary, top) for summary in summaries]
    rows: list[list[object]] = []
    for item in shown:
        rows.append([item.topic, item.records if item.exists else "absent", ""])
        rows += [["", reason.records, reason.reason] for reason in item.reasons]
        if item.other_reasons:
            rows.append(["", "", f"... and {item.other_reasons} other reasons"])
    emit(as_json, shown, table(["TOPIC", "RECORDS", "REASON"], rows))


@dlq_app.command("show")
def dlq_show(
    context: typer.Context,
    topic: TopicArgument,
    from_offset: FromOffset = None,
    to_offset: ToOffset = None,
    reason: ReasonOption = None,
    origin_partition: OriginPartition = None,
    group: GroupOption = None,
    limit: Annotated[int, typer.Option(help="Show at most this many dead letters (the first ones).", min=1)] = 50,
    value_chars: Annotated[int, typer.Option(help="Show at most this many characters of each value.", min=1)] = 1000,
    as_json: JsonOption = False,
) -> None:
    """Show dead letters: reason, origin topic/partition/offset, consumer group, time, key and value."""
    settings = _settings(context)
    selection = dlq.Selection(from_offset, to_offset, reason, origin_partition, group)
    letters = _run(dlq.read_dead_letters(settings.kafka_connection(), dlq.dead_letter_topic_of(topic), selection))
    shown = [letter.shown(value_chars) for letter in letters[:limit]]
    lines: list[str] = []
    for item in shown:
        lines += [
            f"{item['dlq']}  failed {item['failed_at']}  group {item['consumer_group']}",
            f"  origin  {item['origin']}",
            f"  reason  {item['reason']}",
            f"  key     {item['key']}",
            f"  value   {item['value']}",
            "",
        ]
    more = len(letters) - len(shown)
    lines.append(f"{len(letters)} dead letters matched" + (f", the first {len(shown)} shown" if more else ""))
    emit(as_json, {"matched": len(letters), "shown": shown}, "\n".join(lines))


@dlq_app.command("replay")
def dlq_replay(
    context: typer.Context,
    topic: TopicArgument,
    from_offset: FromOffset = None,
    to_offset: ToOffset = None,
    reason: ReasonOption = None,
    origin_partition: OriginPartition = None,
    group: GroupOption = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay every dead letter of the topic.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be published.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Re-publish chosen dead letters to their origin topic and partition, once their cause is fixed.

    Each goes with its original key, value and headers (less the dlq-* ones, plus dlq-replayed-from
    naming the dead letter). Safe to repeat: consumers drop an event id they already applied."""
    settings = _settings(context)
    selection = dlq.Selection(from_offset, to_offset, reason, origin_partition, group)
    if not selection.chooses_something and not replay_all:
        typer.echo(
            "adledger: choose the dead letters (--from-offset, --to-offset, --reason, --origin-partition, --group)"
            " or --all",
            err=True,
        )
        raise typer.Exit(2)

    async def work() -> list[dlq.Replay]:
        letters = await dlq.read_dead_letters(
            settings.kafka_connection(), dlq.dead_letter_topic_of(topic), selection
        )
        return await dlq.replay(settings.kafka_connection(), letters, dry_run=dry_run)

    results = _run(work())
    rows = [
        [
            item.dlq,
            item.destination_topic,
            item.destination_partition,
            item.published_offset,
            item.key,
            item.outcome,
            item.reason,
        ]
        for item in results
    ]
    failed = [item for item in results if item.problem]
    human = table(["DEAD LETTER", "TO TOPIC", "PARTITION", "OFFSET", "KEY", "OUTCOME", "REASON"], rows)
    verb = "would be published" if dry_run else "published"
    sent = sum(1 for item in results if item.outcome in ("published", "would publish"))
    human += f"\n{sent} of {len(results)} dead letters {verb}" + (f", {len(failed)} could not be" if failed else "")
    emit(as_json, {"dry_run": dry_run, "replays": results}, human)
    if failed:
        raise typer.Exit(EXIT_FOUND_PROBLEMS)


# ----------------------------------------------------------------------------------------------
# adledger lag
# ----------------------------------------------------------------------------------------------


@app.command("lag")
def lag_command(
    context: typer.Context,
    group: Annotated[str | None, typer.Option(help="Only this consumer group (default: every group).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every consumer group's lag per partition, as Kafka's own consumer-groups --describe shows it.

    Lag is the log-end offset (high watermark) less the group's committed offset."""
    settings = _settings(context)
    groups = _run(lag.describe_lag(settings.kafka_connection(), group))
    rows = [
        [
            item.group,
            row.topic,
            row.partition,
            row.committed_offset,
            row.log_end_offset,
            row.lag,
            row.consumer_id,
            row.host,
            row.client_id,
        ]
        for item in groups
        for row in item.partitions
    ]
    headers = [
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]
    value = [{**_plain_group(item), "total_lag": item.total_lag} for item in groups]
    emit(as_json, value, table(headers, rows) if rows else "no consumer group has offsets or members")


def _plain_group(item: lag.GroupLag) -> dict[str, object]:
    return {"group": item.group, "state": item.state, "members": item.members, "partitions": item.partitions}


# ----------------------------------------------------------------------------------------------
# adledger ledger audit
# ----------------------------------------------------------------------------------------------


@ledger_app.command("audit")
def ledger_audit(
    context: typer.Context,
    ledger_schema: Annotated[
        str | None, typer.Option(help="The ledger's schema (default: ADLEDGER_LEDGER_SCHEMA, else ledger).")
    ] = None,
    balances_topic: Annotated[
        str | None, typer.Option(help="The balances topic (default: ADLEDGER_BALANCES_TOPIC, else balances.v1).")
    ] = None,
    skip_balances: Annotated[
        bool, typer.Option("--skip-balances", help="Do not compare with the balances topic.")
    ] = False,
    outbox_schema: Annotated[
        list[str] | None,
        typer.Option(
            help=f"A service schema whose outbox to check (repeatable) (default: {', '.join(SERVICE_SCHEMAS)})."
        ),
    ] = None,
    outbox_age_seconds: Annotated[int, typer.Option(help="An outbox row older than this is a break.", min=1)] = 60,
    expiry_grace_seconds: Annotated[
        int,
        typer.Option(
            help="A hold this long past its expiry and unresolved is a break (the sweep runs every second).", min=0
        ),
    ] = 60,
    settle_seconds: Annotated[
        int, typer.Option(help="How long a balance record not at the ledger's version may take to catch up.", min=0)
    ] = 10,
    examples: Annotated[int, typer.Option(help="How many examples of each break to show.", min=1)] = 20,
    as_json: JsonOption = False,
) -> None:
    """Check the books: every currency sums to zero (posted, and pending); every account's totals
    equal the sum of its transfers; no hold is unresolved past its expiry; every owner's latest
    balances.v1 record equals the ledger; no outbox row is older than a minute. Exits 1 on any break."""
    settings = _settings(context)
    try:
        schemas = [checked_schema(name) for name in (outbox_schema or SERVICE_SCHEMAS)]
        schema = checked_schema(ledger_schema or settings.ledger_schema)
    except ValueError as error:
        typer.echo(f"adledger: {error}", err=True)
        raise typer.Exit(2) from None
    options = audit.AuditOptions(
        ledger_schema=schema,
        balances_topic=None if skip_balances else (balances_topic or settings.balances_topic),
        outbox_schemas=schemas,
        outbox_age=timedelta(seconds=outbox_age_seconds),
        expiry_grace=timedelta(seconds=expiry_grace_seconds),
        settle=timedelta(seconds=settle_seconds),
        examples=examples,
    )
    report = _run(audit.run_audit(settings.database_url, settings.kafka_connection(), options, SystemClock()))
    heading = (
        f"ledger audit of schema {report.ledger_schema} at {report.audited_at.isoformat()}: "
        f"{report.transfers} transfers, {report.accounts} accounts, {report.owners} owners"
    )
    lines = [heading]
    for check in report.checks:
        lines.append(f"{'ok   ' if check.passed else 'BREAK'}  {check.name:<20} {check.summary}")
        lines += [f"         {finding.detail}" for finding in check.findings]
    broken = [check.name for check in report.checks if not check.passed]
    lines.append("the books hold" if report.passed else f"BROKEN: {', '.join(broken)}")
    emit(as_json, report, "\n".join(lines))
    if not report.passed:
        raise typer.Exit(EXIT_FOUND_PROBLEMS)


# ----------------------------------------------------------------------------------------------
# adledger delivery state
# ----------------------------------------------------------------------------------------------


@delivery_app.command("state")
def delivery_state(
    context: typer.Context,
    account: Annotated[
        str | None, typer.Option(help="Only this ad account's keys (the account and its campaigns).")
    ] = None,
    topic: Annotated[
        str | None,
        typer.Option(help="The state topic (default: ADLEDGER_DELIVERY_STATE_TOPIC, else delivery.state.v1)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """What an ad server starting cold would see: the latest state per key of delivery.state.v1
    (read from its beginning to its end): serving or not, why, and since when."""
    settings = _settings(context)
    states = _run(
        delivery.read_states(settings.kafka_connection(), topic or settings.delivery_state_topic, account)
    )
    rows = [
        [
            state.key,
            {True: "yes", False: "no", None: "?"}[state.serving],
            state.reason,
            state.since.isoformat() if state.since else None,
        ]
        for state in states
    ]
    emit(as_json, states, table(["KEY", "SERVING", "REASON", "SINCE"], rows) if rows else "no delivery state")


def main() -> None:
    # Here rather than in a callback: logging is process-wide, and a command invoked in-process (a
    # test's CliRunner) must not point the services' loggers at a stream that is closed after it.
    configure_logging(level="WARNING", fmt="console")
    app(prog_name="adledger")
