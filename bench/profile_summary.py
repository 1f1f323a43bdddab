"""Summarise a py-spy raw profile of `bench/spend.py` (docs/performance.md): the share of the
spend consumer's on-CPU samples inside a batch (`TransactionalConsumer._apply`) per step.

Record: `.venv/bin/py-spy record --format raw --rate 100 -o profile.txt -- .venv/bin/python
bench/spend.py --events 50000 --naive-events 100 --pause-accounts 20 --high-load 0`
Then: `.venv/bin/python bench/profile_summary.py profile.txt`.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

#: The steps reported, by the name of a function on the stack (the innermost match wins).
STEPS = (
    "_decode", "decode_spend", "model_validate_json", "_drop_applied", "_lock_positions", "_apply_spends",
    "account_profiles", "aba_members", "lock_states", "budgets", "_locked_funds", "charges", "decide_batch",
    "_announce", "create_transfers", "store_charges", "store_campaign_spend", "add_account_spend",
    "_decide", "publish_balances", "_publish_posted", "_forget_dead_lettered", "flush", "_settle_announced",
)


def main(path: str) -> None:
    inside = 0
    steps: Counter[str] = Counter()
    for line in Path(path).read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if "_apply (" not in stack or "consumer.py" not in stack:
            continue
        count = int(count_text)
        inside += count
        frames = [frame.split(" (", 1)[0].rsplit(".", 1)[-1] for frame in stack.split(";")]
        seen = {frame for frame in frames if frame in STEPS}
        for step in seen:
            steps[step] += count
    print(f"samples inside a batch: {inside}")
    for step in STEPS:
        if steps[step]:
            print(f"{step:<24}{steps[step] * 100 / max(inside, 1):6.1f} %")


if __name__ == "__main__":
    main(sys.argv[1])
