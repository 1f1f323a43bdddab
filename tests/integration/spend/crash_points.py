"""The real spend consumer (`python -m adledger_spend_consumer serve`), with a crash at an exact point.

Run as a script by the resilience tests, never imported by the service. Settings, all optional:

- ADLEDGER_TEST_CRASH_POINT=offset_commit: SIGKILL itself at the Nth batch, after its database
  transaction committed and before the offsets are committed to Kafka (Kafka never hears of it).
- ADLEDGER_TEST_CRASH_POINT=outbox_published: SIGKILL itself at the Nth relay round, after Kafka
  acknowledged the outbox rows and before they are deleted (they are published again).
- ADLEDGER_TEST_CRASH_POINT=early_pause_sent: SIGKILL itself at the Nth batch that announced a
  pause early (issue 14), once the broker has it and before the batch's transaction commits.
- ADLEDGER_TEST_CRASH_AFTER=N: which occurrence (default 1).
- ADLEDGER_TEST_REWIND=1: on every assignment, read the partitions from offset 0 again, as a broker
  redelivering everything would; only the stored positions then stand between it and doubles.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from adledger_libs import consumer as consumer_module
from adledger_libs import outbox as outbox_module

POINT = os.environ.get("ADLEDGER_TEST_CRASH_POINT", "")
AFTER = int(os.environ.get("ADLEDGER_TEST_CRASH_AFTER", "1") or "1")
REWIND = os.environ.get("ADLEDGER_TEST_REWIND", "") == "1"
_seen = 0


def _occurrence() -> None:
    global _seen
    _seen += 1
    if _seen >= AFTER:
        # Flush nothing, close nothing: exactly what a power cut or the OOM killer does.
        os.kill(os.getpid(), signal.SIGKILL)


if POINT == "offset_commit":
    original_commit = consumer_module.TransactionalConsumer._commit_offsets

    async def _commit_offsets(self: Any, next_offsets: Any) -> None:
        if next_offsets:
            _occurrence()
        await original_commit(self, next_offsets)

    consumer_module.TransactionalConsumer._commit_offsets = _commit_offsets  # type: ignore[method-assign]
elif POINT == "outbox_published":
    original_init = outbox_module.OutboxRelay.__init__

    async def _after_publish(_: list[int]) -> None:
        _occurrence()

    def _init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **{**kwargs, "after_publish": _after_publish})

    outbox_module.OutboxRelay.__init__ = _init  # type: ignore[method-assign]
elif POINT == "early_pause_sent":
    from adledger_spend_consumer import core as core_module

    original_announce = core_module.SpendConsumer._announce

    async def _announce(self: Any, transitions: Any, *args: Any) -> None:
        await original_announce(self, transitions, *args)
        producer = self._early_producer() if self._early_producer is not None else None
        if producer is not None and any(transition.action == "pause" for transition in transitions):
            await producer.flush()
            _occurrence()

    core_module.SpendConsumer._announce = _announce  # type: ignore[method-assign]
elif POINT:
    raise SystemExit(f"unknown ADLEDGER_TEST_CRASH_POINT {POINT!r}")

if REWIND:
    original_assigned = consumer_module._SeekToStoredPositions.on_partitions_assigned

    async def _assigned(self: Any, assigned: Any) -> None:
        await original_assigned(self, assigned)
        for tp in assigned:
            self._owner.seek(tp, 0)

    consumer_module._SeekToStoredPositions.on_partitions_assigned = _assigned  # type: ignore[method-assign]


if __name__ == "__main__":
    from adledger_spend_consumer.main import main

    main()
