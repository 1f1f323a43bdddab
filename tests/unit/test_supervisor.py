"""`make run` supervises (issue 12): a child that exits is restarted with back-off and logged,
and the other children keep running; stopping ends them all."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

SUPERVISE = Path(__file__).resolve().parents[2] / "deploy" / "local" / "supervise.py"
_spec = importlib.util.spec_from_file_location("supervise", SUPERVISE)
assert _spec is not None and _spec.loader is not None
supervise = importlib.util.module_from_spec(_spec)
sys.modules["supervise"] = supervise
_spec.loader.exec_module(supervise)


async def test_a_child_that_exits_is_restarted_with_back_off_while_the_others_keep_running(tmp_path: Path) -> None:
    said: list[str] = []
    lines: list[tuple[str, bytes]] = []
    crashing = supervise.Child("crashing", (sys.executable, "-c", "import sys; print('up'); sys.exit(3)"))
    steady = supervise.Child("steady", (sys.executable, "-c", "import time; print('steady up', flush=True); time.sleep(600)"))
    supervisor = supervise.Supervisor(
        [crashing, steady], base_env={}, output=lambda name, line: lines.append((name, line)),
        initial_backoff_s=0.01, maximum_backoff_s=0.04, stable_after_s=60, say=said.append,
    )

    async def watch() -> None:
        while supervisor.restarts["crashing"].starts < 4:
            await asyncio.sleep(0.01)
        assert supervisor.running("steady") is not None, "the other child is untouched"
        supervisor.stop()

    await asyncio.wait_for(supervisor.run(after_start=watch), 60)
    crashed = supervisor.restarts["crashing"]
    assert crashed.exits[:3] == [3, 3, 3]
    assert supervisor.restarts["steady"].starts == 1 and supervisor.restarts["steady"].exits == []
    assert said[0] == "supervisor: crashing exited with code 3; restarting it in 0.01s (start 2)"
    assert "restarting it in 0.02s" in said[1] and "restarting it in 0.04s" in said[2], "the back-off doubles up to its cap"
    assert ("steady", b"steady up\n") in lines
    assert supervisor.running("steady") is None, "stopping ends every child"
