"""The ad-server side of `make run`'s simulator (deploy/local/simulator.py) on the client, on the
test's own topics: it serves only what its gate allows, logs pauses, notes an owner paused for lack
of funds, and its charges get final costs under the same charge id (rules S4, W8, S6)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from adledger_client import DeliveryGate, SpendPublisher, Topics

from ..conftest import Stack
from ..kafka_io import read_all
from .conftest import WAIT_S, Platform

pytestmark = pytest.mark.integration

SIMULATOR = Path(__file__).resolve().parents[3] / "deploy" / "local" / "simulator.py"


def simulator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("adledger_simulator", SIMULATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up while they are made.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_the_simulator_serves_only_what_its_gate_allows_and_adjusts_its_charges(
    stack: Stack, topics: Topics, platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = simulator()
    accounts = [sim.Account("acc-1", "bc-1", campaigns=["open", "spent"], funded_by="bc-1"), sim.Account("acc-2", "bc-1", campaigns=["any"], funded_by="bc-1")]
    await platform.state("acc-1", "spent", False, "campaign_budget_reached")
    deliveries = sim.Deliveries()
    deliveries.accounts.update({account.id: account for account in accounts})
    bootstrap = stack.kafka_bootstrap_servers
    async with DeliveryGate(bootstrap, topics=topics, on_change=deliveries, ready_timeout_s=WAIT_S) as gate, SpendPublisher(
        bootstrap, topics=topics
    ) as publisher:
        await platform.decide("acc-2", None, "pause", "insufficient_funds")

        async def acc_2_paused() -> None:
            while gate.may_serve("acc-2", "any"):
                await asyncio.sleep(0.05)

        await asyncio.wait_for(acc_2_paused(), WAIT_S)
        serving = asyncio.ensure_future(sim.serve_ads(publisher, gate, accounts))
        try:
            # Ten impressions make a charge and its final cost: eleven records at least.
            records = await read_all(bootstrap, topics.spend, expect=11, timeout_s=WAIT_S)
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)

    spent = [json.loads(record.value or b"") for record in records]
    assert {(item["ad_account_id"], item["campaign_id"]) for item in spent} == {("acc-1", "open")}
    assert all(isinstance(item["amount_micros"], int) and item["amount_micros"] > 0 for item in spent)
    charged = [item for item in spent if "charge_id" in item]
    assert len(charged) >= 2 and len({item["charge_id"] for item in charged[:2]}) == 1, charged
    assert charged[0]["event_id"] != charged[1]["event_id"]
    assert "bc-1" in deliveries.paused_since, "an account paused for lack of funds notes its funding owner"
    out = capsys.readouterr().out
    assert "PAUSE  spent: campaign_budget_reached" in out and "PAUSE  acc-2: insufficient_funds" in out
