"""Settings of the campaign service, from ADLEDGER_* environment variables."""

from adledger_libs.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "campaign"
    http_port: int = 8082
    #: C2: the smallest campaign budget; reducing a prepaid budget to it undoes an activation
    #: made in error. Default: one unit of currency.
    minimum_budget_micros: int = 1_000_000
    #: How often the deadline job (scheduled ends, C3's 48 h, C4's end of month) looks for due
    #: deadlines, in milliseconds.
    deadline_poll_interval_ms: int = 1000
