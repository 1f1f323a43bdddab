"""Entry point: `python -m adledger_invoicing` or `adledger-invoicing` [serve|migrate]."""

from adledger_libs.runtime import run_cli

from adledger_invoicing.inject import build


def main() -> None:
    run_cli(build)
