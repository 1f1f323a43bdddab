"""The contract's topic names, in one place; a test or a staging environment passes its own."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    """Where the client reads and writes. The defaults are the external contract's topics."""

    #: Spend published by ad servers, keyed by ad account.
    spend: str = "ads.spend.v1"
    #: Every pause and resume, keyed by ad account.
    delivery_control: str = "delivery.control.v1"
    #: The latest serving state per ad account and per campaign (compacted).
    delivery_state: str = "delivery.state.v1"
    #: The latest balance per Business Center and ad account (compacted).
    balances: str = "balances.v1"


#: The external contract's topics (CONTRACT.md): the default of every reader and writer.
CONTRACT_TOPICS = Topics()
