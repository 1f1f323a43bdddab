"""`python -m adledger_invoicing.alerts worker -l info`: the alerts job as its own Faust worker.

Faust's worker serves a web page on port 6066 unless told `--without-web`; this job needs none,
so `--without-web` is added unless `--with-web` is given (two workers then never fight for it).
"""

import sys

from adledger_libs.logs import configure_logging

from adledger_invoicing.alerts.app import create_app
from adledger_invoicing.alerts.settings import AlertSettings


def main() -> None:
    settings = AlertSettings()
    # Our structured log lines go to stderr as JSON, beside Faust's own (its -l sets its level).
    configure_logging(settings.log_level, settings.log_format, service="invoicing-alerts")
    arguments = sys.argv[1:]
    if arguments[:1] == ["worker"] and not {"--with-web", "--without-web"} & set(arguments):
        sys.argv.append("--without-web")
    create_app(settings).main()


if __name__ == "__main__":
    main()
