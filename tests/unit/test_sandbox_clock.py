"""The sandbox clock's pure parts (issue 17): production refuses it, a service builds it from its
settings, a SandboxClock is never read before it knows the time, and `adledger clock`'s durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adledger_cli.clock import parse_duration
from adledger_libs.clock import SystemClock
from adledger_libs.runtime import clock_for
from adledger_libs.sandbox_clock import SandboxClock, default_next_due
from adledger_libs.settings import ServiceSettings, UnsafeSettingsError


def test_t1_production_refuses_the_sandbox_clock() -> None:
    with pytest.raises(UnsafeSettingsError, match="ADLEDGER_CLOCK=sandbox"):
        ServiceSettings(profile="production", clock="sandbox").check_safe()
    ServiceSettings(profile="local", clock="sandbox").check_safe()


def test_t1_production_refuses_the_sandbox_clock_for_every_service() -> None:
    from adledger_campaign.config import Settings as Campaign
    from adledger_identity.config import Settings as Identity
    from adledger_invoicing.config import Settings as Invoicing
    from adledger_order_escrow.config import Settings as Escrow
    from adledger_spend_consumer.config import Settings as Spend
    from adledger_wallet.config import Settings as Wallet

    for settings in (Campaign, Identity, Invoicing, Escrow, Spend, Wallet):
        with pytest.raises(UnsafeSettingsError, match="sandbox"):
            settings(profile="production", clock="sandbox").check_safe()  # type: ignore[call-arg]


def test_t1_a_service_reads_the_clock_its_settings_name() -> None:
    assert isinstance(clock_for(ServiceSettings()), SystemClock)
    sandbox = clock_for(ServiceSettings(profile="local", clock="sandbox", sandbox_clock_schema="sbx_clock"))
    assert isinstance(sandbox, SandboxClock) and sandbox.schema == "sbx_clock"
    with pytest.raises(RuntimeError, match="before the service started"):
        sandbox.now()
    with pytest.raises(ValueError):
        SandboxClock("no; drop table")


def test_t1_a_job_without_a_schedule_is_due_at_the_next_utc_midnight() -> None:
    assert default_next_due(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)
    assert default_next_due(datetime(2027, 1, 1, tzinfo=UTC)) == datetime(2027, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("48h", timedelta(hours=48)), ("90m", timedelta(minutes=90)), ("2d", timedelta(days=2)),
    ("1d12h", timedelta(days=1, hours=12)), ("1w", timedelta(weeks=1)), ("30s", timedelta(seconds=30)),
])
def test_adledger_clock_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "48", "h", "-1h", "0h", "48 hours", "1.5h", "1y"])
def test_adledger_clock_refuses_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
