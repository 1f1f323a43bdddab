"""How much the fuzzing does: CI-sized defaults, more by environment variable for a local run
(`ADLEDGER_FUZZ_EXAMPLES=2000 make test-integration PYTEST_ARGS=-k fuzz`, docs/decisions.md).

Every generated input comes from Hypothesis seeded by `ADLEDGER_FUZZ_SEED` (a new seed per run
when unset, printed on failure), so a failing run is replayed by setting the seed it printed.
"""

from __future__ import annotations

import os
import random


def _count(name: str, default: int) -> int:
    value = int(os.environ.get(name, str(default)))
    if value < 1:
        raise ValueError(f"{name} must be at least 1")
    return value


#: Generated requests per API operation in the OpenAPI phase (each with the platform operator or
#: a Business Center member as the caller, valid and invalid data, real and generated path ids).
EXAMPLES = _count("ADLEDGER_FUZZ_EXAMPLES", 12)
#: Generated call sequences (scenarios) in the stateful phase, per service, and steps per scenario.
SCENARIOS = _count("ADLEDGER_FUZZ_SCENARIOS", max(EXAMPLES // 2, 4))
STEPS = _count("ADLEDGER_FUZZ_STEPS", 8)
#: Hostile records Hypothesis generates per consumed (topic, message type), beside the fixed
#: catalogue of hostile records every type gets.
RECORDS = _count("ADLEDGER_FUZZ_RECORDS", 3)
#: The seed of every generator in the fuzzing tests.
SEED = int(os.environ.get("ADLEDGER_FUZZ_SEED") or random.SystemRandom().randrange(2**32))


def replay_hint() -> str:
    return f"replay with ADLEDGER_FUZZ_SEED={SEED} (and the same ADLEDGER_FUZZ_* counts)"
