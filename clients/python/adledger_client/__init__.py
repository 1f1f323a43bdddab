"""adledger-client: what an ad server needs to spend prepaid money on adledger.

- `SpendPublisher` publishes spend on `ads.spend.v1` (idempotent, batched, stable event ids,
  final costs of earlier charges).
- `DeliveryGate` knows what may serve from `delivery.state.v1` (cold start) and
  `delivery.control.v1` (live); `may_serve()` is a local lookup.
- `BalanceSubscriber` keeps the newest balance per owner from `balances.v1`.

- `sasl_scram_options` authenticates to a deployment's Kafka as the ad server's principal.

It depends on aiokafka and pydantic only; the records are the external contract's (CONTRACT.md).
"""

from adledger_client._reader import NotReadyError
from adledger_client.balances import BalanceSubscriber
from adledger_client.delivery import DeliveryChange, DeliveryKey
from adledger_client.gate import DeliveryGate
from adledger_client.publisher import Published, SpendNotPublishedError, SpendPublisher
from adledger_client.records import Balance, BalanceBuckets, DeliveryDecision, DeliveryState, SpendEvent
from adledger_client.security import sasl_scram_options
from adledger_client.topics import Topics

__all__ = [
    "Balance",
    "BalanceBuckets",
    "BalanceSubscriber",
    "DeliveryChange",
    "DeliveryDecision",
    "DeliveryGate",
    "DeliveryKey",
    "DeliveryState",
    "NotReadyError",
    "Published",
    "SpendEvent",
    "SpendNotPublishedError",
    "SpendPublisher",
    "Topics",
    "sasl_scram_options",
]
