"""Entry point: `python -m adledger_spend_consumer` or `adledger-spend-consumer` [serve|migrate]."""

from adledger_libs.runtime import run_cli

from adledger_spend_consumer.inject import build


def main() -> None:
    run_cli(build)
