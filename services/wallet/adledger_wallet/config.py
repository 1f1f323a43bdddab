"""Settings of the wallet service, from ADLEDGER_* environment variables."""

from adledger_libs.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "wallet"
    http_port: int = 8081
