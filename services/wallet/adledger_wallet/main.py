"""Entry point: `python -m adledger_wallet` or `adledger-wallet` [serve|migrate]."""

from adledger_libs.runtime import run_cli
from adledger_wallet.inject import build


def main() -> None:
    run_cli(build)
