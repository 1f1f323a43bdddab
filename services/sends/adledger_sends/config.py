"""Settings of the sends service, from ADLEDGER_* environment variables."""

from adledger_libs.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "sends"
    http_port: int = 8087
    #: It asks the invoicing service to charge funding sources: its records are signed, and
    #: production refuses to start without its signing key (`<secrets>/services/sends.key`).
    signs_records: bool = True
    #: The schema of the shared double-entry ledger (user balances; funding sources' balances are read).
    ledger_schema: str = "ledger"
    events_topic: str = "sends.events.v1"
    invoicing_commands_topic: str = "invoicing.commands.v1"
    #: How often the schedule job (user-balance refreshes and rollovers, U1, U6) looks for due periods.
    schedule_poll_interval_ms: int = 10_000
