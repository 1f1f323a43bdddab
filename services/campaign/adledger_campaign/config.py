"""Settings of the campaign service, from ADLEDGER_* environment variables."""

from adledger_libs.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "campaign"
    http_port: int = 8082
    #: It asks the wallet to hold and release money: its records are signed, and production refuses
    #: to start without its signing key (`<secrets>/services/<service>.key`, issue 12).
    signs_records: bool = True
    #: What the service publishes (campaign and cap snapshots), what it reads and the commands it
    #: sends; tests give a world its own topics.
    events_topic: str = "campaign.events.v1"
    wallet_events_topic: str = "wallet.events.v1"
    wallet_commands_topic: str = "wallet.commands.v1"
    invoicing_commands_topic: str = "invoicing.commands.v1"
    spend_posted_topic: str = "spend.posted.v1"
    delivery_control_topic: str = "delivery.control.v1"
    #: C2: the smallest campaign budget; reducing a prepaid budget to it undoes an activation
    #: made in error. Default: one unit of currency.
    minimum_budget_micros: int = 1_000_000
    #: How often the deadline job (scheduled ends, C3's 48 h, C4's end of month) looks for due
    #: deadlines, in milliseconds.
    deadline_poll_interval_ms: int = 1000
