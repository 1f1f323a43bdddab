"""The finance console's pure parts: amounts in integer micros, the signed session cookie, the
overview's spend per day and runway, the charts, the profile's safety, and the forms' CSRF edge
(no platform API is reached: the APIs point at a closed port, so a call would say so)."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi.testclient import TestClient

from adledger_console import charts, overview
from adledger_console.amounts import MICROS, AmountError, money, parse_micros
from adledger_console.app import create_app
from adledger_console.config import Settings
from adledger_console.sessions import COOKIE, Session, Signer
from adledger_libs.settings import UnsafeSettingsError

CLOSED = "http://127.0.0.1:9"


def test_m1_amounts_are_parsed_and_shown_in_integer_micros() -> None:
    assert parse_micros("12.5") == 12_500_000
    assert parse_micros("1,234.000001") == 1_234_000_001
    assert parse_micros("0", allow_zero=True) == 0
    assert parse_micros("999999999999.999999") == 999_999_999_999_999_999 < 2**63 - 1
    for bad in ("", "-1", "1e3", "1.1234567", "0.1.2", "nan", "inf", "0", "1234567890123"):
        with pytest.raises(AmountError):
            parse_micros(bad)
    assert money(12_500_000, "USD") == "USD 12.50"
    assert money(-1 * MICROS) == "-1.00"
    assert money(1) == "0.000001"
    assert money(1_234_567 * MICROS) == "1,234,567.00"
    assert money(None) == "—"


def test_the_session_cookie_is_signed_and_an_altered_one_is_no_session() -> None:
    signer = Signer("a secret of the console")
    session = Session(csrf="c" * 32, token="tok", user_id="ann")
    value = signer.dump(session)
    assert signer.load(value) == session
    payload, _, mac = value.rpartition(".")
    assert signer.load(payload + "." + ("0" if mac[0] != "0" else "1") + mac[1:]) is None
    assert Signer("another secret").load(value) is None
    assert signer.load("x" * 5000) is None and signer.load("") is None and signer.load("garbage") is None


def test_w13_spend_per_day_from_day_closes_and_payments_and_the_runway_in_whole_days() -> None:
    since = date(2026, 10, 22)
    business_center = [{"day": "2026-11-21", "real_micros": 0}, {"day": "2026-11-22", "real_micros": 0}]
    # The ad account opened on the 21st (after `since`): 300 paid in, 40 spent; then 60; today 25.
    account = [{"day": "2026-11-21", "real_micros": 260 * MICROS}, {"day": "2026-11-22", "real_micros": 200 * MICROS}]
    paid = [
        {"status": "paid", "paid_at": "2026-11-21T09:00:00Z", "amount_micros": 300 * MICROS},
        {"status": "open", "paid_at": None, "amount_micros": 5 * MICROS},
    ]
    spend = overview.spend_per_day([business_center, account], [0, 175 * MICROS], paid, date(2026, 11, 23), since)
    assert [(point.day.isoformat(), point.micros) for point in spend] == [
        ("2026-11-21", 40 * MICROS),
        ("2026-11-22", 60 * MICROS),
        ("2026-11-23", 25 * MICROS),
    ]
    assert [point.micros for point in overview.balance_points([business_center, account])] == [
        260 * MICROS,
        200 * MICROS,
    ]
    assert overview.runway_days(175 * MICROS, spend, date(2026, 11, 23)) == 9, "175 × 7 ÷ 125 = 9.8: 9 whole days"
    assert overview.runway_days(175 * MICROS, [], date(2026, 11, 23)) is None, "no spend: no runway"
    assert overview.runway_days(-5, spend, date(2026, 11, 23)) == 0
    # Older than 7 days does not count.
    assert overview.runway_days(100, [overview.Point(date(2026, 11, 1), 10)], date(2026, 11, 23)) is None


def test_charts_are_inline_svg_with_escaped_titles_and_integer_coordinates() -> None:
    points = [charts.Point(date(2026, 11, day), micros) for day, micros in ((1, 5 * MICROS), (2, -MICROS), (3, 0))]
    line = charts.line_chart("Balance <script>", points, "USD")
    assert line.startswith("<svg") and "<script>" not in line and "&lt;script&gt;" in line
    assert "." not in line.split('points="')[1].split('"')[0], "integer coordinates"
    bars = charts.bar_chart("Spend per day", points, "USD")
    assert bars.count("<rect") == 3 and "2026-11-02: -1.00" in bars.replace("USD ", "")
    assert "no spend yet" in charts.bar_chart("Spend per day", [], "USD")


def test_production_refuses_a_missing_or_weak_session_secret_and_has_no_local_provider() -> None:
    for secret in ("", "changeme", "short"):
        with pytest.raises(UnsafeSettingsError):
            create_app(Settings(profile="production", console_session_secret=secret))
    strong = Settings(profile="production", console_session_secret="s" * 40, local_provider_token="anything")
    assert strong.provider_token == "" and strong.secure_cookies
    create_app(strong)
    local = Settings(profile="local")
    assert local.provider_token == "local-platform-token" and not local.secure_cookies


def _client() -> TestClient:
    settings = Settings(
        profile="local",
        identity_url=CLOSED,
        wallet_url=CLOSED,
        campaign_url=CLOSED,
        invoicing_url=CLOSED,
        escrow_url=CLOSED,
        console_session_secret="unit-test-secret",
    )
    return TestClient(create_app(settings), follow_redirects=False)  # no lifespan: no Kafka reader


def test_forms_without_the_sessions_csrf_token_are_refused_before_any_api_call() -> None:
    client = _client()
    page = client.get("/sign-in")
    assert page.status_code == 200 and "Content-Security-Policy" in page.headers
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    refused = client.post(
        "/sign-in",
        content="user_id=ann&password=pw&csrf=wrong",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert refused.status_code == 400 and "expired" in refused.text and "did not answer" not in refused.text
    # A signed-in session (signed with the console's secret) still needs its CSRF token on an action.
    signer = Signer("unit-test-secret")
    client.cookies.set(COOKIE, signer.dump(Session(csrf="the-token", token="t", user_id="ann")))
    action = client.post(
        "/bc/bc1/top-ups",
        content="amount=5&currency=USD&idempotency_key=0123456789&csrf=nope",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert "the form has expired" in action.text and "did not answer" not in action.text
    with_token = client.post(
        "/bc/bc1/top-ups",
        content="amount=5&currency=USD&idempotency_key=0123456789&csrf=the-token",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert "did not answer" in with_token.text, "with its token the form reaches the (closed) API"
    assert "Refused" in with_token.text
    # Signed out: pages send you to sign in.
    client.cookies.clear()
    assert client.get("/bc/bc1").headers["location"] == "/sign-in"


def test_t1_the_sandbox_time_is_read_from_a_health_answer_only_when_it_is_a_well_formed_aware_time() -> None:
    from datetime import UTC, datetime

    from adledger_console.today import sandbox_now

    assert sandbox_now({"sandbox_clock": {"now": "2030-03-10T06:00:00+00:00"}}) == datetime(2030, 3, 10, 6, tzinfo=UTC)
    assert sandbox_now({"sandbox_clock": {"now": "2030-03-10T08:00:00+02:00"}}) == datetime(2030, 3, 10, 6, tzinfo=UTC)
    for health in ({}, {"status": "ok"}, {"sandbox_clock": None}, {"sandbox_clock": {"now": None}},
                   {"sandbox_clock": {"now": "2030-03-10T06:00:00"}}, {"sandbox_clock": {"now": "yesterday"}},
                   {"sandbox_clock": {"now": "2030-03-10T06:00:00+00:00" + " " * 100}}, [], "x"):
        assert sandbox_now(health) is None, health
