"""All wiring of the campaign service. Tests pass their own settings and clock."""

from importlib.resources import files

from adledger_libs.clock import Clock
from adledger_libs.runtime import ServiceRuntime
from adledger_campaign.config import Settings


def build(settings: Settings | None = None, clock: Clock | None = None) -> ServiceRuntime:
    return ServiceRuntime(settings or Settings(), migrations=files("adledger_campaign") / "migrations", clock=clock)
