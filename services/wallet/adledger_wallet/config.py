"""Settings of the wallet service, from ADLEDGER_* environment variables."""

from adledger_libs.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "wallet"
    http_port: int = 8081
    #: The bearer token of the platform operator (opens Business Centers, creates users, grants
    #: credit lines and vouchers). The default is for a local stack only: set it in production.
    platform_token: str = "local-platform-token"
    #: The schema of the shared double-entry ledger.
    ledger_schema: str = "ledger"
    #: How often the day-close job (W13) looks for a due UTC day close, in milliseconds.
    day_close_poll_interval_ms: int = 60_000
    #: How often holds past their `expires_at` are released (rule M4).
    hold_expiry_poll_interval_ms: int = 1000
