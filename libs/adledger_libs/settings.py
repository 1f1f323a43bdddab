"""Settings from the environment (pydantic-settings), shared by every service.

Every variable is prefixed `ADLEDGER_`. A service subclasses `ServiceSettings` to set its own
defaults (name, HTTP port) and to add what only it needs.

Safe by default (issue 12): the profile is `production` unless `ADLEDGER_PROFILE=local` says
otherwise (`make run` and the tests do). In production a service refuses to start when one of its
secrets is empty or a known default, and conveniences for a developer (the local payment provider,
keys made on first start) do not exist.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

#: Values that appear in the README or the code: never a secret in production.
KNOWN_DEFAULT_SECRETS = frozenset({"local-platform-token", "local-webhook-secret", "changeme", "secret", "password"})
#: The shortest secret accepted in production.
MINIMUM_SECRET_LENGTH = 32


class UnsafeSettingsError(RuntimeError):
    """A setting that production must not run with."""


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ADLEDGER_", extra="ignore", frozen=True)

    #: `local` (make run, tests: conveniences on, local defaults allowed) or `production` (the default).
    profile: Literal["local", "production"] = "production"
    service_name: str = "adledger"
    database_url: str = "postgresql://adledger:adledger@127.0.0.1:15432/adledger"
    #: The PostgreSQL schema that holds this service's tables; by default the service's name.
    database_schema: str = ""
    database_pool_min_size: int = 1
    database_pool_max_size: int = 10
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    #: Create the catalogue's topics at start (an SRE may turn it off where topics are managed).
    kafka_create_topics: bool = True
    #: The consumer group; by default `adledger.<service>`. Tests give each run its own.
    kafka_consumer_group: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    #: The largest request body accepted, in bytes; a larger one is refused (413) before it is read.
    http_max_body_bytes: int = 64 * 1024
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    #: How often the outbox relay looks for rows when no notification woke it.
    outbox_poll_interval_ms: int = 500
    consumer_max_batch_records: int = 2000
    #: A batch is capped by time as well as by records (issue 14): when applying one took longer
    #: than this, the next reads proportionally fewer records, and it grows back by a quarter per
    #: faster batch. 0: records only.
    consumer_max_batch_ms: int = 0
    #: The platform's identity (users, API keys, roles, signing keys) that the service verifies callers with.
    identity_events_topic: str = "identity.events.v1"
    #: How long an idempotency key's answer is kept (M5); a key reused after it is a new request.
    idempotency_retention_days: int = 30
    #: Where keys live: `services/<service>.key` signs the records this service sends other services,
    #: `services/*.pub` are the services' public keys it trusts. Local profile: `$ADLEDGER_HOME/secrets`
    #: (made with 0700 on first use, a service's key made on its first start).
    secrets_dir: str = ""
    #: Production: refuse to start without the service's signing key (a service that asks others to
    #: move money, e.g. campaign, order_escrow, invoicing, sends).
    signs_records: bool = False

    @property
    def schema(self) -> str:
        return self.database_schema or self.service_name

    @property
    def consumer_group(self) -> str:
        return self.kafka_consumer_group or f"adledger.{self.service_name}"

    @property
    def local(self) -> bool:
        return self.profile == "local"

    def secrets_path(self) -> Path:
        if self.secrets_dir:
            return Path(self.secrets_dir)
        if not self.local:
            raise UnsafeSettingsError("ADLEDGER_SECRETS_DIR must be set in production (where the service's keys are)")
        home = os.environ.get("ADLEDGER_HOME") or str(Path.home() / ".cache" / "adledger")
        return Path(home) / "secrets"

    def secret_settings(self) -> dict[str, str]:
        """The service's secrets by setting name; a service with secrets overrides this."""
        return {}

    def check_safe(self) -> None:
        """Refuse to run production with an empty, default or short secret."""
        if self.local:
            return
        for name, value in self.secret_settings().items():
            variable = f"ADLEDGER_{name.upper()}"
            if not value:
                raise UnsafeSettingsError(f"{variable} is empty: set a secret of at least {MINIMUM_SECRET_LENGTH} characters")
            if value in KNOWN_DEFAULT_SECRETS:
                raise UnsafeSettingsError(f"{variable} is a known default; production needs its own secret")
            if len(value) < MINIMUM_SECRET_LENGTH:
                raise UnsafeSettingsError(f"{variable} is shorter than {MINIMUM_SECRET_LENGTH} characters")
