"""Settings of the campaign service, from ADLEDGER_* environment variables."""

from adledger_libs.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "campaign"
    http_port: int = 8082
