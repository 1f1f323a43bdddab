"""Settings of the order_escrow service, from ADLEDGER_* environment variables."""

from adledger_libs.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "order_escrow"
    http_port: int = 8084
    #: The bearer token of the platform operator, an admin: creates users, registers channels,
    #: resolves disputes. The default is for a local stack only: set it in production.
    platform_token: str = "local-platform-token"
    #: How often the deadline job (O2's 48 h to answer, O5's 48 h to dispute; O6) looks for due
    #: deadlines, in milliseconds.
    deadline_poll_interval_ms: int = 1000
