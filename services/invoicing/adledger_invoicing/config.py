"""Settings of the invoicing service, from ADLEDGER_* environment variables."""

from adledger_libs.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "invoicing"
    http_port: int = 8083
