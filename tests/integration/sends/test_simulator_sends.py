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
from adledger_identity.config import Settings as IdentitySettings
from adledger_identity.inject import wire as wire_identity
from adledger_sends.config import Settings as SendsSettings
from adledger_sends.inject import wire as wire_sends

from ..conftest import Stack, TopicFactory, unique
from ..identity_world import PLATFORM
from ..invoicing.conftest import billing_world
from ..running import running
from ..waits import free_port

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
    identity_topic = await TopicFactory(stack.kafka_bootstrap_servers)("identity", partitions=1)
    async with billing_world(stack, own_commands_topic=True, identity_topic=identity_topic) as billing:
        common: dict[str, Any] = {
            "profile": "local", "database_url": stack.database_url, "kafka_bootstrap_servers": stack.kafka_bootstrap_servers,
            "outbox_poll_interval_ms": 100, "identity_events_topic": identity_topic,
        }
        identity = wire_identity(IdentitySettings(
            **common, database_schema=unique("t_identity"), http_port=free_port(), platform_token=PLATFORM,
            kafka_consumer_group=unique("identity"), signing_keys_dir=str(tmp_path / "keys"),
            wallet_events_topic=billing.wallet_events_topic,
        ), billing.clock)
        sends = wire_sends(SendsSettings(
            **common, database_schema=unique("t_sends"), ledger_schema=billing.ledger_schema, http_port=free_port(),
            kafka_consumer_group=unique("sends"), events_topic=await TopicFactory(stack.kafka_bootstrap_servers)("se"),
            invoicing_commands_topic=billing.invoicing_commands_topic, schedule_poll_interval_ms=3_600_000,
        ), billing.clock)
        async with running(identity.runtime, stack) as identity_client, running(sends.runtime, stack) as sends_client:
            simulator = _simulator()
            simulator.PLATFORM_TOKEN = PLATFORM
            simulator.IDENTITY = str(identity_client.base_url).rstrip("/")
            simulator.SENDS = str(sends_client.base_url).rstrip("/")
            simulator.WALLET = str(billing.wallet.base_url).rstrip("/")
            simulator.INVOICING = str(billing.invoicing.base_url).rstrip("/")
            simulator.RUN_ID = unique("r")[-8:]
            async with httpx.AsyncClient(timeout=15) as client:
                await asyncio.wait_for(simulator.sends_demo(client), timeout=240)
    said = capsys.readouterr().out
    for expected in ("initial budget charged", "refused: 409 insufficient_user_balance", "insufficient_funds",
                     "with add-funds it is charged", "waits: awaiting_approval", "approved by the Admin: charged",
                     "final cost is 15.00 USD: adjusted", "now -93.00 USD"):
        assert expected in said, said
