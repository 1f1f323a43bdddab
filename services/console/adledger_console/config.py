"""Settings of the finance console, from ADLEDGER_* environment variables."""

from __future__ import annotations

from adledger_libs.settings import ServiceSettings

#: The identity service's local-profile platform token (deploy/local, make run): it drives the
#: local payment provider's "pay" button, which exists only in the local profile.
LOCAL_PLATFORM_TOKEN = "local-platform-token"


class Settings(ServiceSettings):
    service_name: str = "console"
    http_port: int = 8088
    #: Where the platform's public HTTP APIs are (the console reads nothing else but delivery.state.v1).
    identity_url: str = "http://127.0.0.1:8086"
    wallet_url: str = "http://127.0.0.1:8081"
    campaign_url: str = "http://127.0.0.1:8082"
    invoicing_url: str = "http://127.0.0.1:8083"
    escrow_url: str = "http://127.0.0.1:8084"
    sends_url: str = "http://127.0.0.1:8087"
    #: Signs the session cookie (HMAC-SHA256). Local profile: a random one per start when empty
    #: (a restart signs everyone out); production refuses an empty, default or short one.
    console_session_secret: str = ""
    #: The compacted topic of serving states (S4) shown on the ad accounts page.
    delivery_state_topic: str = "delivery.state.v1"
    #: Local profile only: the platform operator token the local payment provider's "pay" button
    #: uses (the provider stands in for the payer's card processor). Ignored in production.
    local_provider_token: str = ""
    #: How often the ad accounts fragment is refreshed by the browser, in milliseconds.
    live_refresh_ms: int = 1000
    #: How long a call to a platform API may take before the console says it did not answer.
    api_timeout_s: float = 10.0

    @property
    def secure_cookies(self) -> bool:
        """Cookies only over HTTPS in production; the local profile serves plain HTTP on 127.0.0.1."""
        return not self.local

    @property
    def provider_token(self) -> str:
        if not self.local:
            return ""
        return self.local_provider_token or LOCAL_PLATFORM_TOKEN

    def secret_settings(self) -> dict[str, str]:
        return {"console_session_secret": self.console_session_secret}
