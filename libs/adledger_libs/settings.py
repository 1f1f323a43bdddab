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
from typing import TYPE_CHECKING, Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from adledger_libs.kafka import KafkaConnection

#: Values that appear in the README or the code: never a secret in production.
KNOWN_DEFAULT_SECRETS = frozenset({"local-platform-token", "local-webhook-secret", "changeme", "secret", "password"})
#: The shortest secret accepted in production.
MINIMUM_SECRET_LENGTH = 32


def settings_files_dir() -> str | None:
    """Where a setting may come from a file (Docker and Kubernetes secrets): `/run/secrets/adledger_<setting>`
    (or under ADLEDGER_SETTINGS_FILES) gives that setting, e.g. `adledger_database_url`; a variable of the
    environment wins over the file. None when the directory does not exist."""
    directory = os.environ.get("ADLEDGER_SETTINGS_FILES", "/run/secrets")
    return directory if Path(directory).is_dir() else None


class UnsafeSettingsError(RuntimeError):
    """A setting that production must not run with."""


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ADLEDGER_", extra="ignore", frozen=True, secrets_dir=settings_files_dir())

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
    #: How the service connects to Kafka (issue 12). PLAINTEXT is the local stack's default; a
    #: deployment uses SASL_PLAINTEXT or SASL_SSL with SCRAM, one principal per service, whose ACLs
    #: (`adledger_libs.kafka_security`) say which topics it may write and read.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    #: The SASL principal; by default the service's name (the name its ACLs are made for).
    kafka_sasl_username: str = ""
    #: The principal's password, or (better) a file that holds it (`kafka_sasl_password_file`, e.g. a
    #: Docker or Kubernetes secret); production refuses an empty, default or short one.
    kafka_sasl_password: str = ""
    kafka_sasl_password_file: str = ""
    #: TLS (SSL, SASL_SSL): the CA that signed the broker's certificate (the system's by default), and
    #: a client certificate and key when the broker asks for one.
    kafka_ssl_cafile: str = ""
    kafka_ssl_certfile: str = ""
    kafka_ssl_keyfile: str = ""
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
    #: `system` (the wall clock) or `sandbox` (issue 17: one shared sandbox time that an operator moves
    #: forward, `adledger clock advance 48h`; never in production, refused there).
    clock: Literal["system", "sandbox"] = "system"
    #: Where the sandbox time and each service's reached time are kept (shared by every service).
    sandbox_clock_schema: str = "sandbox_clock"
    #: How often a service in a sandbox reads the sandbox time.
    sandbox_clock_poll_interval_ms: int = 100
    #: How long an advance waits for every service to catch up with one hop before it answers an error.
    sandbox_clock_hop_timeout_s: float = 60.0

    # The name shadows pydantic's deprecated v1 classmethod `BaseModel.schema` (use model_json_schema):
    # every service reads its schema here, and settings are never asked for a JSON schema.
    @property
    def schema(self) -> str:  # type: ignore[override]
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

    @property
    def kafka_principal(self) -> str:
        return self.kafka_sasl_username or self.service_name

    def kafka_password(self) -> str:
        """The SASL password: the file's content (without its final newline) when a file is named."""
        if self.kafka_sasl_password_file:
            try:
                return Path(self.kafka_sasl_password_file).read_text().rstrip("\r\n")
            except OSError as error:
                raise UnsafeSettingsError(
                    f"ADLEDGER_KAFKA_SASL_PASSWORD_FILE {self.kafka_sasl_password_file} cannot be read: {error}"
                ) from error
        return self.kafka_sasl_password

    def kafka_connection(self) -> KafkaConnection:
        """Where and as whom the service's Kafka clients connect (`adledger_libs.kafka.client_options`)."""
        from adledger_libs.kafka import KafkaConnection

        sasl = self.kafka_security_protocol.startswith("SASL_")
        return KafkaConnection(
            bootstrap_servers=self.kafka_bootstrap_servers,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_principal if sasl else "",
            password=self.kafka_password() if sasl else "",
            ssl_cafile=self.kafka_ssl_cafile,
            ssl_certfile=self.kafka_ssl_certfile,
            ssl_keyfile=self.kafka_ssl_keyfile,
        )

    def secret_settings(self) -> dict[str, str]:
        """The service's secrets by setting name; a service with secrets overrides this."""
        return {}

    def kafka_secret_settings(self) -> dict[str, str]:
        """The Kafka password, when the service authenticates to Kafka with one."""
        if not self.kafka_security_protocol.startswith("SASL_"):
            return {}
        name = "kafka_sasl_password_file" if self.kafka_sasl_password_file else "kafka_sasl_password"
        return {name: self.kafka_password()}

    def check_safe(self) -> None:
        """Refuse to run production with an empty, default or short secret, or with the sandbox clock."""
        if self.clock == "sandbox" and not self.local:
            raise UnsafeSettingsError(
                "ADLEDGER_CLOCK=sandbox moves every deadline on request: it exists only in the local profile "
                "(ADLEDGER_PROFILE=local), never in production"
            )
        if self.local:
            return
        for name, value in {**self.kafka_secret_settings(), **self.secret_settings()}.items():
            variable = f"ADLEDGER_{name.upper()}"
            if not value:
                raise UnsafeSettingsError(f"{variable} is empty: set a secret of at least {MINIMUM_SECRET_LENGTH} characters")
            if value in KNOWN_DEFAULT_SECRETS:
                raise UnsafeSettingsError(f"{variable} is a known default; production needs its own secret")
            if len(value) < MINIMUM_SECRET_LENGTH:
                raise UnsafeSettingsError(f"{variable} is shorter than {MINIMUM_SECRET_LENGTH} characters")
