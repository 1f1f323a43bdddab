"""Settings from the environment (pydantic-settings), shared by every service.

Every variable is prefixed `ADLEDGER_`. A service subclasses `ServiceSettings` to set its own
defaults (name, HTTP port) and to add what only it needs.
"""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ADLEDGER_", extra="ignore", frozen=True)

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
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    #: How often the outbox relay looks for rows when no notification woke it.
    outbox_poll_interval_ms: int = 500
    consumer_max_batch_records: int = 2000

    @property
    def schema(self) -> str:
        return self.database_schema or self.service_name

    @property
    def consumer_group(self) -> str:
        return self.kafka_consumer_group or f"adledger.{self.service_name}"
