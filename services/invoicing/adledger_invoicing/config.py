"""Settings of the invoicing service, from ADLEDGER_* environment variables."""

from __future__ import annotations

from adledger_libs.settings import ServiceSettings, UnsafeSettingsError


class Settings(ServiceSettings):
    service_name: str = "invoicing"
    http_port: int = 8083
    #: The schema of the shared double-entry ledger (funding sources' balances, I6).
    ledger_schema: str = "ledger"
    #: The secret the payment provider signs its webhooks with (HMAC-SHA256). The default is for the
    #: local profile only: production refuses to start with it, an empty or a short one. Changing it
    #: rotates it: once the service runs with the new one, a signature with the old one is refused
    #: (the provider signs with both while it rolls its secret, so no webhook is lost).
    payment_webhook_secret: str = "local-webhook-secret"
    #: How far a webhook's signed timestamp may be from the clock, in seconds (replay protection).
    payment_webhook_tolerance_s: int = 300
    #: The local payment provider (pay, fail, pay twice… over HTTP) for `make run` and tests. It
    #: exists only in the local profile, where it is on unless this is false; production refuses to
    #: start when it is asked for (it would let anyone with the operator's token mint money).
    local_provider_enabled: bool | None = None
    #: Where the local provider sends its webhooks; by default this service's own endpoint.
    local_provider_webhook_url: str = ""
    #: How often the clock-driven jobs run: UTC day closes (I6), month closes (I7), card payments.
    clock_jobs_poll_interval_ms: int = 10_000
    #: A card payment asked of the provider whose webhook has not come after this long (an instance
    #: stopped between claiming it and asking, or the answer was lost) is asked again; the provider
    #: is asked idempotently by invoice id, so a second request never charges twice.
    card_collection_retry_after_s: int = 3600
    wallet_events_topic: str = "wallet.events.v1"
    balances_topic: str = "balances.v1"
    commands_topic: str = "invoicing.commands.v1"
    spend_posted_topic: str = "spend.posted.v1"
    events_topic: str = "invoicing.events.v1"
    #: Where the escrowed orders ask for their e-mails (O4), which the e-mail adapter renders and sends.
    orders_events_topic: str = "orders.events.v1"

    @property
    def local_provider_on(self) -> bool:
        return self.local and self.local_provider_enabled is not False

    @property
    def webhook_url(self) -> str:
        host = "127.0.0.1" if self.http_host in ("0.0.0.0", "::") else self.http_host
        return self.local_provider_webhook_url or f"http://{host}:{self.http_port}/v1/payments/webhook"

    def secret_settings(self) -> dict[str, str]:
        return {"payment_webhook_secret": self.payment_webhook_secret}

    def check_safe(self) -> None:
        super().check_safe()
        if not self.local and self.local_provider_enabled:
            raise UnsafeSettingsError(
                "ADLEDGER_LOCAL_PROVIDER_ENABLED is set, but the local payment provider exists only in the "
                "local profile"
            )
