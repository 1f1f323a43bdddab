"""Entry point: `python -m adledger_sends` or `adledger-sends` [serve|migrate]."""

from adledger_libs.runtime import run_cli

from adledger_sends.inject import build


def main() -> None:
    run_cli(build)
