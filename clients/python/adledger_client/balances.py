"""`BalanceSubscriber`: the latest balance of each owner from compacted `balances.v1`.

Each owner's `version` grows by one with each change of its balance. Records of one owner can
reach a reader out of order (the wallet and the spend consumer both publish them, a relay re-sends
one after a crash), so the subscriber keeps the highest version per owner: a record with an older
version than the one held, or the same one, is dropped. It reads the topic from the beginning, so
it knows every balance when `start()` returns, then follows it live.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from pydantic import ValidationError

from adledger_client._reader import RawRecord, Stream, TopicReader
from adledger_client.records import BALANCE_EVENT_TYPE, Balance
from adledger_client.topics import CONTRACT_TOPICS, Topics

log = logging.getLogger("adledger_client")

HEADER_EVENT_TYPE = "event-type"

#: Called with each newer balance; it runs on the subscriber's reading task, so keep it short.
OnBalance = Callable[[Balance], None]


class BalanceBook:
    """The newest balance per owner, by version (no I/O)."""

    def __init__(self, owners: Collection[str] | None = None) -> None:
        self._owners = frozenset(owners) if owners is not None else None
        self._balances: dict[str, Balance] = {}
        #: The version of an owner whose record was deleted (a tombstone): older ones stay dropped.
        self._versions: dict[str, int] = {}
        self.stale_dropped = 0

    def get(self, owner_id: str) -> Balance | None:
        return self._balances.get(owner_id)

    def all(self) -> dict[str, Balance]:
        return dict(self._balances)

    def apply(self, balance: Balance) -> bool:
        """Keep the balance if its version is newer than the one held; returns whether it was kept."""
        if self._owners is not None and balance.owner_id not in self._owners:
            return False
        if balance.version <= self._versions.get(balance.owner_id, 0):
            self.stale_dropped += 1
            return False
        self._balances[balance.owner_id] = balance
        self._versions[balance.owner_id] = balance.version
        return True

    def forget(self, owner_id: str) -> None:
        """A tombstone: the owner's balance is gone, but its version still orders what comes later."""
        self._balances.pop(owner_id, None)


class BalanceSubscriber:
    """Follows `balances.v1`; `balance(owner_id)` is a dict lookup.

    `owners` limits what is kept (and called back) to those owners; by default every owner is.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topics: Topics = CONTRACT_TOPICS,
        owners: Collection[str] | None = None,
        on_balance: OnBalance | None = None,
        ready_timeout_s: float = 60.0,
        client_id: str = "adledger-client-balances",
        kafka_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._topic = topics.balances
        self._book = BalanceBook(owners)
        self._on_balance = on_balance
        self._ready_timeout_s = ready_timeout_s
        self._reader = TopicReader(
            bootstrap_servers, [Stream(topics.balances, from_beginning=True)], self._handle,
            client_id=client_id, kafka_options=kafka_options,
        )
        self.skipped_records = 0

    async def start(self) -> None:
        """Read every balance there is; returns once they are known.

        Raises:
            NotReadyError: the topic is missing or the cold start did not finish within `ready_timeout_s`.
        """
        await self._reader.start(self._ready_timeout_s)

    async def stop(self) -> None:
        await self._reader.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def ready(self) -> bool:
        return self._reader.ready and self._reader.following

    @property
    def stale_dropped(self) -> int:
        """How many records were dropped because their version was not newer than the one held."""
        return self._book.stale_dropped

    def balance(self, owner_id: str) -> Balance | None:
        """The newest balance known for the owner, or None."""
        return self._book.get(owner_id)

    def balances(self) -> dict[str, Balance]:
        return self._book.all()

    def _handle(self, records: Sequence[RawRecord], ready: bool) -> None:
        for record in records:
            balance = self._decode(record)
            if balance is None or not self._book.apply(balance):
                continue
            if self._on_balance is not None:
                try:
                    self._on_balance(balance)
                except Exception:  # the subscriber's callback must not stop it
                    log.exception("adledger_client: the on_balance callback failed for %s", balance.owner_id)

    def _decode(self, record: RawRecord) -> Balance | None:
        event_type = record.headers.get(HEADER_EVENT_TYPE)
        if event_type is not None and event_type != BALANCE_EVENT_TYPE.encode():
            return None
        if record.value is None:
            if record.key is not None:
                self._book.forget(record.key.decode(errors="replace"))
            return None
        try:
            balance = Balance.model_validate_json(record.value)
        except (ValidationError, ValueError) as error:
            self._skip(record, f"not a {BALANCE_EVENT_TYPE}: {error}")
            return None
        if record.key != balance.owner_id.encode():
            self._skip(record, f"its key is not {balance.owner_id!r}")
            return None
        return balance

    def _skip(self, record: RawRecord, reason: str) -> None:
        self.skipped_records += 1
        log.warning("adledger_client: skipped %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason[:500])
