"""`python -m adledger_invoicing.alerts worker -l info`: the alerts job as its own Faust worker."""

from adledger_invoicing.alerts.app import create_app


def main() -> None:
    create_app().main()


if __name__ == "__main__":
    main()
