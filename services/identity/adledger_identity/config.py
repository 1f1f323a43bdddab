"""Settings of the identity service, from ADLEDGER_* environment variables."""

from __future__ import annotations

from adledger_libs.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "identity"
    http_port: int = 8086
    #: Where the Business Centers come from (the wallet's `BusinessCenterOpened`: W9's first Admin).
    wallet_events_topic: str = "wallet.events.v1"
    #: The platform operator's bootstrap API key. Empty: no bootstrap key (create operators with a
    #: real credential instead). In the local profile it defaults to `local-platform-token`; in
    #: production a default or short value refuses to start. Changing it rotates it: the old value
    #: is refused everywhere once the services read the change.
    platform_token: str = ""
    #: Directory of the Ed25519 private keys (`<key id>.pem`) that sign session tokens; the newest
    #: key id (sorted) signs, every key present verifies, a key removed is published as retired.
    #: Local profile: `$ADLEDGER_HOME/secrets/identity`, with a key made on first start.
    signing_keys_dir: str = ""
    #: How long a session token lives (T1: read from the injected clock), in seconds.
    session_ttl_s: int = 3600
    #: Sign-in: after this many failed attempts for one user within the window, further attempts
    #: are refused until the window has passed (a brute-force brake).
    sign_in_failures_allowed: int = 10
    sign_in_failure_window_s: int = 900

    def secret_settings(self) -> dict[str, str]:
        return {"platform_token": self.platform_token} if self.platform_token else {}
