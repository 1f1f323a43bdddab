"""Entry point: `python -m adledger_console` or `adledger-console`: serves the console on
ADLEDGER_HTTP_HOST:ADLEDGER_HTTP_PORT (127.0.0.1:8088 by default)."""

from __future__ import annotations

import uvicorn

from adledger_console.app import create_app
from adledger_console.config import Settings
from adledger_libs.logs import configure_logging


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format, settings.service_name)
    app = create_app(settings)
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
