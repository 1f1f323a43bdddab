"""Entry point: `python -m adledger_identity` or `adledger-identity` [serve|migrate]."""

from adledger_identity.inject import build
from adledger_libs.runtime import run_cli


def main() -> None:
    run_cli(build)
