"""Settings of the e-mail adapter, from ADLEDGER_EMAIL_* environment variables."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_sink_dir() -> Path:
    home = os.environ.get("ADLEDGER_HOME")
    return Path(home) / "emails" if home else Path(tempfile.gettempdir()) / "adledger-emails"


class EmailSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ADLEDGER_EMAIL_", extra="ignore", frozen=True)

    #: `file`: one .eml file per e-mail in `sink_dir` (local runs and tests); `log`: the service log.
    sink: Literal["file", "log"] = "file"
    #: Where the file sink writes: $ADLEDGER_HOME/emails, or <temp dir>/adledger-emails.
    sink_dir: Path = Path()
    #: The invoicing service's own events topic, read for EmailRequested and written with EmailSent (the
    #: orders' topic is the service's `orders_events_topic` setting, given to `register_email_adapter`).
    invoicing_events_topic: str = "invoicing.events.v1"

    def resolved_sink_dir(self) -> Path:
        return self.sink_dir if str(self.sink_dir) not in ("", ".") else _default_sink_dir()
