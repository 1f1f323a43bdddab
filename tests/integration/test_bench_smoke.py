"""A small smoke run of `bench/spend.py` (the benchmark itself is not a CI test): it must run
end to end on the real stack, charge every event exactly once (it checks that itself and exits
non-zero otherwise), print its final line and write its JSON."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Stack

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
FINAL_LINE = re.compile(
    r"^spend_events_per_s=\d+ raw_events_per_s=\d+ naive_events_per_s=\d+ pause_p99_ms=\d+ overspend_micros_p99=\d+$"
)


def test_the_spend_benchmark_runs_end_to_end(stack: Stack, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable, str(ROOT / "bench" / "spend.py"), "--events", "3000", "--naive-events", "60",
            "--accounts", "60", "--business-centers", "10", "--pause-accounts", "6", "--pause-rate", "500",
            "--results", str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert FINAL_LINE.match(lines[-1]), lines[-1]
    result = json.loads((tmp_path / "spend-latest.json").read_text())
    assert result["pauses"] == 6
    assert result["spend_events_per_s"] > 0 and result["naive_events_per_s"] > 0
