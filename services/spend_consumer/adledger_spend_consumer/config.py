"""Settings of the spend_consumer service, from ADLEDGER_* environment variables."""

from adledger_libs.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "spend_consumer"
    http_port: int = 8085
