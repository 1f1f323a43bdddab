"""How an ad server authenticates to the platform's Kafka: SASL/SCRAM-SHA-512 as its own principal.

A deployment gives each ad server a principal (by default `adserver`) whose ACLs allow exactly the
contract: write `ads.spend.v1`, read `delivery.state.v1`, `delivery.control.v1` and `balances.v1`.
Every other topic (the wallet's commands, invoices) refuses it with TopicAuthorizationFailed.

    options = sasl_scram_options("adserver", Path("/run/secrets/kafka-adserver").read_text().strip())
    async with SpendPublisher("kafka:9094", kafka_options=options) as spend: ...

The options are the same that the platform's own services build (`ADLEDGER_KAFKA_*` settings).
"""

from __future__ import annotations

import ssl
from typing import Any, Literal

Mechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256"]


def sasl_scram_options(
    username: str,
    password: str,
    *,
    mechanism: Mechanism = "SCRAM-SHA-512",
    tls: bool = False,
    cafile: str | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
) -> dict[str, Any]:
    """aiokafka options for a SASL/SCRAM principal, over TLS (`SASL_SSL`) when `tls` is true;
    pass them as `kafka_options` to `SpendPublisher`, `DeliveryGate` or `BalanceSubscriber`."""
    if not username or not password:
        raise ValueError("SASL/SCRAM needs a username and a password")
    if mechanism not in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
        raise ValueError(f"unknown SCRAM mechanism {mechanism!r}")
    options: dict[str, Any] = {
        "security_protocol": "SASL_SSL" if tls else "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": username,
        "sasl_plain_password": password,
    }
    if tls:
        context = ssl.create_default_context(cafile=cafile)
        if certfile:
            context.load_cert_chain(certfile, keyfile)
        options["ssl_context"] = context
    return options
