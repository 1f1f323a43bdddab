"""Safe by default (issue 12): the invoicing service's secret and its local payment provider."""

from __future__ import annotations

import pytest
from adledger_invoicing.config import Settings
from adledger_libs.settings import UnsafeSettingsError

STRONG = "s" * 40


@pytest.mark.parametrize("secret", ["", "local-webhook-secret", "short-secret"])
def test_production_refuses_to_start_with_an_empty_default_or_short_webhook_secret(secret: str) -> None:
    with pytest.raises(UnsafeSettingsError, match="ADLEDGER_PAYMENT_WEBHOOK_SECRET"):
        Settings(profile="production", payment_webhook_secret=secret).check_safe()


def test_production_starts_with_its_own_secret_and_without_the_local_provider() -> None:
    settings = Settings(profile="production", payment_webhook_secret=STRONG)
    settings.check_safe()
    assert settings.secret_settings() == {"payment_webhook_secret": STRONG}
    assert not settings.local_provider_on


def test_production_cannot_turn_the_local_provider_on() -> None:
    settings = Settings(profile="production", payment_webhook_secret=STRONG, local_provider_enabled=True)
    assert not settings.local_provider_on
    with pytest.raises(UnsafeSettingsError, match="ADLEDGER_LOCAL_PROVIDER_ENABLED"):
        settings.check_safe()


def test_the_local_profile_keeps_its_default_secret_and_its_provider_unless_turned_off() -> None:
    settings = Settings(profile="local")
    settings.check_safe()
    assert settings.payment_webhook_secret == "local-webhook-secret" and settings.local_provider_on
    assert not Settings(profile="local", local_provider_enabled=False).local_provider_on
