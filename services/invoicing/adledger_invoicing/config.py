"""Settings of the invoicing service, from ADLEDGER_* environment variables."""

from adledger_libs.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "invoicing"
    http_port: int = 8083
    #: The bearer token of the platform operator (an admin: users, subscriptions, funding sources,
    #: voids). The default is for a local stack only: set it in production.
    platform_token: str = "local-platform-token"
    #: The schema of the shared double-entry ledger (funding sources' balances, I6).
    ledger_schema: str = "ledger"
    #: The secret the payment provider signs its webhooks with (HMAC-SHA256). Set it in production.
    payment_webhook_secret: str = "local-webhook-secret"
    #: How far a webhook's signed timestamp may be from the clock, in seconds (replay protection).
    payment_webhook_tolerance_s: int = 300
    #: The local payment provider (pay, fail, pay twice… over HTTP) for `make run` and tests.
    local_provider_enabled: bool = True
    #: Where the local provider sends its webhooks; by default this service's own endpoint.
    local_provider_webhook_url: str = ""
    #: How often the clock-driven jobs run: UTC day closes (I6), month closes (I7), card payments.
    clock_jobs_poll_interval_ms: int = 10_000
    wallet_events_topic: str = "wallet.events.v1"
    balances_topic: str = "balances.v1"
    commands_topic: str = "invoicing.commands.v1"
    spend_posted_topic: str = "spend.posted.v1"
    events_topic: str = "invoicing.events.v1"

    @property
    def webhook_url(self) -> str:
        host = "127.0.0.1" if self.http_host in ("0.0.0.0", "::") else self.http_host
        return self.local_provider_webhook_url or f"http://{host}:{self.http_port}/v1/payments/webhook"
