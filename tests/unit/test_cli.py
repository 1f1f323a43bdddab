"""The `adledger` command line's pure parts, with no broker and no database: which dead letters a
selection chooses, what a replay sends, how bytes are shown, how a balance record is compared
with the ledger's figures, and that every command answers `--help`."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from adledger_cli.audit import compare_balances
from adledger_cli.dlq import HEADER_REPLAYED_FROM, DeadLetter, Selection, dead_letter_topic_of, printable
from adledger_cli.main import app
from adledger_cli.output import table
from adledger_cli.settings import SERVICE_SCHEMAS
from adledger_cli.topics import Record
from adledger_contracts.external import BalanceBuckets, BalanceChanged
from adledger_ledger.audit import OwnerFigures
from adledger_libs.events import encode
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)


def _dead_letter(offset: int = 7, *, reason: str = "unknown ad account acc-1", partition: str = "2") -> DeadLetter:
    headers = (
        ("event-type", b"SpendReported"),
        ("dlq-reason", reason.encode()),
        ("dlq-topic", b"ads.spend.v1"),
        ("dlq-partition", partition.encode()),
        ("dlq-offset", b"41"),
        ("dlq-consumer-group", b"adledger.spend_consumer"),
        ("dlq-failed-at", b"2026-12-03T12:00:00+00:00"),
    )
    record = Record("ads.spend.v1.dlq", 0, offset, 1_764_763_200_000, b"acc-1", b'{"event_id": "e-1"}', headers)
    return DeadLetter.from_record(record)


def test_a_dead_letter_reads_its_origin_from_its_headers() -> None:
    letter = _dead_letter()
    assert (letter.origin_topic, letter.origin_partition, letter.origin_offset) == ("ads.spend.v1", 2, 41)
    assert (letter.reason, letter.consumer_group, letter.name) == (
        "unknown ad account acc-1",
        "adledger.spend_consumer",
        "ads.spend.v1.dlq:0:7",
    )


def test_a_replay_keeps_the_original_headers_drops_the_dlq_ones_and_names_the_dead_letter() -> None:
    assert _dead_letter().replay_headers() == [
        ("event-type", b"SpendReported"),
        (HEADER_REPLAYED_FROM, b"ads.spend.v1.dlq:0:7"),
    ]


def test_a_dead_letter_with_a_bad_partition_header_has_no_origin_partition() -> None:
    assert _dead_letter(partition="two").origin_partition is None


@pytest.mark.parametrize(
    ("selection", "chosen"),
    [
        (Selection(from_offset=7), True),
        (Selection(from_offset=8), False),
        (Selection(to_offset=7), True),
        (Selection(to_offset=6), False),
        (Selection(reason="UNKNOWN AD"), True),
        (Selection(reason="currency"), False),
        (Selection(origin_partition=2), True),
        (Selection(origin_partition=3), False),
        (Selection(consumer_group="adledger.spend_consumer"), True),
        (Selection(consumer_group="another"), False),
        (Selection(from_offset=0, to_offset=10, reason="account", origin_partition=2), True),
        (Selection(from_offset=0, to_offset=10, reason="account", origin_partition=1), False),
    ],
)
def test_a_selection_chooses_by_offset_range_reason_partition_and_group(selection: Selection, chosen: bool) -> None:
    assert selection.matches(_dead_letter()) is chosen
    assert selection.chooses_something


def test_an_empty_selection_chooses_nothing_explicitly() -> None:
    assert not Selection().chooses_something


def test_a_topic_is_named_by_its_dead_letter_topic_or_its_origin() -> None:
    assert dead_letter_topic_of("ads.spend.v1") == dead_letter_topic_of("ads.spend.v1.dlq") == "ads.spend.v1.dlq"


def test_bytes_are_shown_printable_and_bounded() -> None:
    assert printable(None, 10) is None
    assert printable(b"a\nb\x1b[31m", 100) == "a\\x0ab\\x1b[31m"
    assert printable(b"\xff\xfeok", 100) == "\ufffd\ufffdok"
    assert printable(b"x" * 30, 10) == "x" * 10 + "... (20 more characters)"


def test_a_table_aligns_columns_and_shows_none_as_a_dash() -> None:
    assert table(["A", "LONGER"], [[1, None], ["wide cell", "x"]]).splitlines() == [
        "A          LONGER",
        "1          -",
        "wide cell  x",
    ]


def _figures(version: int = 3, real_micros: int = 5_000_000) -> OwnerFigures:
    expected = BalanceChanged(
        owner_id="bc-1",
        owner_kind="business_center",
        currency="USD",
        real_micros=real_micros,
        virtual_micros=real_micros,
        available_micros=real_micros,
        buckets=BalanceBuckets(cash=real_micros, credit_line=0, vouchers=0),
        version=version,
        updated_at=NOW,
    )
    return OwnerFigures("bc-1", "business_center", version, expected)


def _latest(event: BalanceChanged | None, value: bytes | None = None) -> dict[bytes, Record]:
    if event is not None:
        value = encode(event, key=event.owner_id, trace_id="t").value
    return {b"bc-1": Record("balances.v1", 0, 12, 0, b"bc-1", value, ())}


def test_a_balance_record_equal_to_the_ledger_but_for_its_id_and_time_is_not_a_break() -> None:
    published = _figures().expected.model_copy(
        update={"event_id": "another", "updated_at": datetime(2026, 1, 1, tzinfo=UTC)}
    )
    assert compare_balances([_figures()], _latest(published)) == {}


@pytest.mark.parametrize(
    ("latest", "kind"),
    [
        ({}, "no record"),
        (_latest(_figures(version=2).expected), "behind"),
        (_latest(_figures(version=4).expected), "ahead"),
        (_latest(_figures(real_micros=4_999_999).expected), "differs"),
        (_latest(None, b'{"owner_id": "bc-1"}'), "undecodable"),
    ],
)
def test_a_balance_record_off_the_ledger_says_how(latest: dict[bytes, Record], kind: str) -> None:
    broken = compare_balances([_figures()], latest)
    assert list(broken) == ["bc-1"]
    assert broken["bc-1"].kind == kind
    assert broken["bc-1"].finding.detail.startswith(f"{kind}: business_center bc-1: ")


def test_a_differing_record_names_each_figure_that_differs() -> None:
    broken = compare_balances([_figures()], _latest(_figures(real_micros=1).expected))
    detail = broken["bc-1"].finding.detail
    for name in ("real_micros", "virtual_micros", "available_micros", "buckets"):
        assert f"{name} published" in detail


COMMANDS = [
    [],
    ["dlq"],
    ["dlq", "list"],
    ["dlq", "show"],
    ["dlq", "replay"],
    ["lag"],
    ["ledger"],
    ["ledger", "audit"],
    ["delivery"],
    ["delivery", "state"],
    ["clock"],
    ["clock", "show"],
    ["clock", "advance"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(command) or "adledger" for command in COMMANDS])
def test_every_command_answers_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: adledger" in result.output
    leaves = {"list", "show", "replay", "lag", "audit", "state", "advance"}
    if command and command[-1] in leaves:
        assert "--json" in result.output


def test_a_replay_that_chooses_nothing_is_refused() -> None:
    result = CliRunner().invoke(app, ["dlq", "replay", "ads.spend.v1"])
    assert result.exit_code == 2
    assert re.search(r"choose the dead letters", result.output)


def test_the_cli_is_a_package_of_its_own_with_the_adledger_console_script_installed_by_make_venv() -> None:
    project = tomllib.loads((ROOT / "tools" / "cli" / "pyproject.toml").read_text())["project"]
    assert project["name"] == "adledger-cli"
    assert project["scripts"] == {"adledger": "adledger_cli.main:main"}
    assert {re.split(r"[<>=\[ ]", requirement)[0] for requirement in project["dependencies"]} == {
        "adledger-libs",
        "typer",
        "httpx",  # `adledger clock` calls the identity service's sandbox clock (issue 17)
    }
    makefile = (ROOT / "Makefile").read_text()
    assert "-e tools/cli" in makefile and "tools/cli/pyproject.toml" in makefile
    pinned = {
        line.split("==")[0].lower() for line in (ROOT / "requirements.lock").read_text().splitlines() if "==" in line
    }
    assert {"typer", "click", "rich", "shellingham", "httpx"} <= pinned


def test_the_audit_checks_the_outbox_of_every_service_by_default() -> None:
    makefile = (ROOT / "Makefile").read_text()
    [services] = [line.split(":=", 1)[1].split() for line in makefile.splitlines() if line.startswith("SERVICES :=")]
    assert sorted(SERVICE_SCHEMAS) == sorted(services)
