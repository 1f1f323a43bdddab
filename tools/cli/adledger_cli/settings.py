"""The command line's settings: the services' own ADLEDGER_* variables, so an operator's shell
that runs a service runs `adledger` against the same broker, database and ledger."""

from __future__ import annotations

from adledger_libs.settings import ServiceSettings

#: The schemas whose outbox the audit checks by default: one per service (their default names;
#: a test keeps this list equal to the Makefile's SERVICES).
SERVICE_SCHEMAS = ("identity", "wallet", "campaign", "invoicing", "order_escrow", "spend_consumer", "sends")


class CliSettings(ServiceSettings):
    service_name: str = "adledger-cli"
    #: The operator's Kafka principal (read every topic and group, write the alert thresholds).
    kafka_sasl_username: str = "operator"
    #: The schema of the shared double-entry ledger, as the wallet and the spend consumer name it.
    ledger_schema: str = "ledger"
    #: The topics the audit and `delivery state` read, named as the services name them.
    balances_topic: str = "balances.v1"
    delivery_state_topic: str = "delivery.state.v1"
