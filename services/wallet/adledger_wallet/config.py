"""Settings of the wallet service, from ADLEDGER_* environment variables."""

from adledger_libs.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "wallet"
    http_port: int = 8081
    #: What the wallet publishes (Business Centers, ad accounts, hold answers, funds) and the commands
    #: other services send it; tests give a world its own.
    events_topic: str = "wallet.events.v1"
    commands_topic: str = "wallet.commands.v1"
    #: What the wallet consumes besides its commands: paid invoices, the campaign service's budget
    #: caps (W5), and the balances (W12; the wallet publishes its owners' balances there too).
    invoicing_events_topic: str = "invoicing.events.v1"
    campaign_events_topic: str = "campaign.events.v1"
    balances_topic: str = "balances.v1"
    #: The schema of the shared double-entry ledger (the wallet migrates it: its one owner).
    ledger_schema: str = "ledger"
    #: How often the day-close job (W13) looks for a due UTC day close, in milliseconds.
    day_close_poll_interval_ms: int = 60_000
    #: How often holds past their `expires_at` are released (rule M4).
    hold_expiry_poll_interval_ms: int = 1000
