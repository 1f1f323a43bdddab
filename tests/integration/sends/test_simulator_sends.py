"""The simulator's sends part (deploy/local/simulator.py `sends_demo`) runs against the real services:
the identity service (sign-in, roles, an API key scoped to sends) beside the wallet, invoicing and
sends, on the real Kafka and PostgreSQL, on ports and topics of the test's own."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..conftest import Stack, unique
from .conftest import with_identity_service

ROOT = Path(__file__).resolve().parents[3]


def _simulator() -> Any:
    spec = importlib.util.spec_from_file_location("adledger_simulator_under_test", ROOT / "deploy/local/simulator.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_u1_u2_u3_u4_u5_u6_the_simulators_sends_part_runs_on_the_real_services(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with with_identity_service(stack, str(tmp_path / "keys")) as platform:
        simulator = _simulator()
        urls = platform.urls()
        simulator.PLATFORM_TOKEN = urls["PLATFORM"]
        for name in ("IDENTITY", "SENDS", "WALLET", "INVOICING"):
            setattr(simulator, name, urls[name])
        simulator.RUN_ID = unique("r")[-8:]
        async with httpx.AsyncClient(timeout=15) as client:
            await asyncio.wait_for(simulator.sends_demo(client), timeout=240)
    said = capsys.readouterr().out
    for expected in ("initial budget charged", "refused: 409 insufficient_user_balance", "insufficient_funds",
                     "with add-funds it is charged", "waits: awaiting_approval", "approved by the Admin: charged",
                     "final cost is 15.00 USD: adjusted", "now -93.00 USD"):
        assert expected in said, said
