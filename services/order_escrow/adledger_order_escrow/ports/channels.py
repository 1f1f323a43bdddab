"""The channels (sellers) the platform operator registered."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from adledger_libs.refusals import Refusal

from adledger_order_escrow.domain.parties import Channel


class UnknownChannelError(Refusal, LookupError):
    def __init__(self, channel_id: str) -> None:
        super().__init__(f"no channel {channel_id!r}")
        self.channel_id = channel_id


class ChannelExistsError(Refusal):
    def __init__(self, channel_id: str) -> None:
        super().__init__(f"channel {channel_id!r} exists already")
        self.channel_id = channel_id


class ChannelRepository(Protocol):
    async def add(self, channel: Channel, now: datetime) -> None:
        """Raises:
        ChannelExistsError: a channel with this id exists already (nothing changed).
        """
        ...

    async def get(self, channel_id: str) -> Channel:
        """Raises:
        UnknownChannelError: there is no such channel.
        """
        ...
