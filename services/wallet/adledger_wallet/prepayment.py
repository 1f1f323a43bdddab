"""W12: the prepayment threshold signal, from the wallet's consumer of `balances.v1`.

Both the wallet and the spend consumer publish every balance change on `balances.v1` (in the
transaction that moved the money), so reading that topic sees every change whichever service
made it. For each Business Center record the wallet compares `virtual_micros` with the BC's
threshold (`prepayment_threshold_micros`) and keeps whether it is below in
`prepayment_threshold_states`; a change from at-or-above to below publishes one
`PrepaymentThresholdCrossed` on `wallet.events.v1`, in the same unit of work as the state.

- Stale records are ignored: a record whose `version` is older than the owner's current version
  (the ledger's `balance_version`, bumped in the same transaction as the money) or not newer than the
  version the state was decided from is skipped, so the threshold (which follows the last
  payment) is only ever compared with the balance of the same moment. A dip undone before the
  wallet read it is therefore not signalled; the next real crossing is.
- Ad accounts are skipped: the rule names the Business Center's threshold, and only a BC
  records its last payment. Unknown owners (another environment's records) are skipped too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adledger_contracts.external import BalanceChanged
from adledger_contracts.wallet import PrepaymentThresholdCrossed
from adledger_ledger.ports import Ledger
from adledger_libs.clock import Clock
from adledger_libs.consumer import Inbound
from adledger_libs.logs import get_logger
from adledger_libs.outbox import UnitOfWork
from adledger_wallet.domain.balances import prepayment_threshold_micros
from adledger_wallet.ports.store import WalletStore

log = get_logger(__name__)


class PrepaymentThresholds:
    def __init__(self, ledger: Ledger[Any], store: Callable[[UnitOfWork], WalletStore], clock: Clock, events_topic: str) -> None:
        self._ledger = ledger
        self._store = store
        self._clock = clock
        self._events_topic = events_topic

    async def apply(self, uow: UnitOfWork, batch: list[Inbound[Any]]) -> None:
        for inbound in batch:
            await self.observe(uow, inbound.message)

    async def observe(self, uow: UnitOfWork, balance: BalanceChanged) -> PrepaymentThresholdCrossed | None:
        if balance.owner_kind != "business_center":
            return None
        store = self._store(uow)
        if not await store.business_center_exists(balance.owner_id):
            return None
        current = await self._ledger.balance_version(uow.conn, balance.owner_id)
        if current is not None and balance.version < current:
            return None  # superseded: the newer record decides
        now = self._clock.now()
        was_below, decided_version = await store.threshold_state(balance.owner_id, now)
        if balance.version <= decided_version:
            return None  # already decided from this record or a newer one
        business_center = await store.load_business_center(balance.owner_id)
        threshold = prepayment_threshold_micros(business_center)
        below = balance.virtual_micros < threshold
        await store.save_threshold_state(balance.owner_id, below, balance.version, now)
        if not below or was_below:
            return None
        event = PrepaymentThresholdCrossed(
            owner_id=balance.owner_id,
            currency=balance.currency,
            virtual_micros=balance.virtual_micros,
            threshold_micros=threshold,
            last_payment_micros=business_center.last_payment_micros or 0,
            crossed_at=now,
        )
        uow.publish(event, topic=self._events_topic, key=balance.owner_id)
        log.info(
            "prepayment_threshold_crossed", owner_id=balance.owner_id, virtual_micros=balance.virtual_micros,
            threshold_micros=threshold,
        )
        return event
