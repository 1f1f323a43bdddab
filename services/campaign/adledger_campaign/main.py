"""Entry point: `python -m adledger_campaign` or `adledger-campaign` [serve|migrate]."""

from adledger_libs.runtime import run_cli

from adledger_campaign.inject import build


def main() -> None:
    run_cli(build)
