"""Settings of the order_escrow service, from ADLEDGER_* environment variables."""

from adledger_libs.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "order_escrow"
    http_port: int = 8084
