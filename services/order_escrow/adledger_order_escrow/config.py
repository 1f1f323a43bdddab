"""Settings of the order_escrow service, from ADLEDGER_* environment variables."""

from __future__ import annotations

from adledger_libs.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "order_escrow"
    http_port: int = 8084
    #: It asks the wallet to hold and release money: its records are signed, and production refuses
    #: to start without its signing key (`<secrets>/services/<service>.key`, issue 12).
    signs_records: bool = True
    #: Where the wallet's events come from (owners opened, answers to the holds asked for).
    wallet_events_topic: str = "wallet.events.v1"
    #: Where the holds (PlaceHold, ResolveHold) are asked for.
    wallet_commands_topic: str = "wallet.commands.v1"
    #: Where every order placed and every change of its status go, and the e-mails they ask for (O4).
    orders_events_topic: str = "orders.events.v1"
    #: How often the deadline job (O2's 48 h to answer, O5's 48 h to dispute; O6) looks for due
    #: deadlines, in milliseconds.
    deadline_poll_interval_ms: int = 1000
