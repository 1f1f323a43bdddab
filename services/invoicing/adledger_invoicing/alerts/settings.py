"""Settings of the alerts worker (the Faust job), from ADLEDGER_ALERTS_* environment variables.

The broker is ADLEDGER_KAFKA_BOOTSTRAP_SERVERS (as for every service) unless
ADLEDGER_ALERTS_BOOTSTRAP_SERVERS says otherwise. Tests give each run its own app id and topics.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

from adledger_invoicing.alerts.rules import DEFAULT_THRESHOLD_PERCENT, RUNWAY_FACTOR, WINDOW_DAYS


class AlertSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ADLEDGER_ALERTS_", extra="ignore", frozen=True)

    #: The Faust app id: its consumer group and the prefix of its internal and changelog topics.
    app_id: str = "adledger-invoicing-alerts"
    bootstrap_servers: str = ""
    #: Inputs: posted spend (the windowed spend per owner), balances, payments (the default
    #: threshold) and the Business Centers' thresholds. Output: alerts and their e-mail requests.
    spend_topic: str = "spend.posted.v1"
    balances_topic: str = "balances.v1"
    wallet_events_topic: str = "wallet.events.v1"
    thresholds_topic: str = "invoicing.alert-thresholds.v1"
    alerts_topic: str = "invoicing.events.v1"
    #: Partitions of the internal owner-activity topic and of every table's changelog.
    partitions: int = 6
    #: Replicas of those topics, which Faust creates itself: 1 on the single local broker, 3 on Kubernetes.
    replication_factor: int = 1
    window_days: int = WINDOW_DAYS
    runway_factor: int = RUNWAY_FACTOR
    threshold_percent: int = DEFAULT_THRESHOLD_PERCENT
    #: Runway alerts for ad accounts too (their own balance); Business Centers always.
    runway_ad_accounts: bool = True
    #: `memory://`: tables live in memory and are rebuilt from their changelog topics at start.
    store: str = "memory://"
    data_dir: Path = Path()
    log_level: str = "info"
    log_format: Literal["json", "console"] = "json"

    def broker(self) -> str:
        servers = self.bootstrap_servers or os.environ.get("ADLEDGER_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
        return ";".join(f"kafka://{server.strip()}" for server in servers.split(",") if server.strip())

    def resolved_data_dir(self) -> Path:
        """The worker's state directory, created when missing (Faust does not create its parents)."""
        if str(self.data_dir) not in ("", "."):
            directory = self.data_dir
        else:
            home = os.environ.get("ADLEDGER_HOME")
            base = Path(home) / "faust" if home else Path(tempfile.gettempdir()) / "adledger-faust"
            directory = base / self.app_id
        directory.mkdir(parents=True, exist_ok=True)
        return directory
