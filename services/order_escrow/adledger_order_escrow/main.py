"""Entry point: `python -m adledger_order_escrow` or `adledger-order-escrow` [serve|migrate]."""

from adledger_libs.runtime import run_cli

from adledger_order_escrow.inject import build


def main() -> None:
    run_cli(build)
