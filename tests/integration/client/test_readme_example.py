"""The example of clients/python/README.md, run as it is written, on the test's own topics: the
gate knows from its cold start that acme-video's campaign is paused, so only acme-search spends,
a charge and its final cost (rule S6)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from adledger_client import Topics

from ..conftest import Stack
from ..kafka_io import read_all
from .conftest import WAIT_S, Platform

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[3] / "clients" / "python" / "README.md"


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "the client's README has one Python example"
    return str(blocks[0])


def test_the_readme_example_is_about_twenty_lines() -> None:
    assert len(readme_example().splitlines()) <= 25


async def test_s4_s6_the_readme_example_serves_only_what_may_serve_and_publishes_a_charge_and_its_final_cost(
    stack: Stack, topics: Topics, platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    await platform.state("acme-video", "launch", False, "campaign_budget_reached")
    namespace: dict[str, Any] = {"__name__": "adledger_client_readme_example"}
    exec(compile(readme_example(), str(README), "exec"), namespace)  # noqa: S102 - the project's own README
    await asyncio.wait_for(namespace["run_ad_server"](stack.kafka_bootstrap_servers, topics), WAIT_S)

    assert "acme-video launch paused: campaign_budget_reached" in capsys.readouterr().out
    records = await read_all(stack.kafka_bootstrap_servers, topics.spend, expect=2)
    spent = [json.loads(record.value or b"") for record in records]
    assert [(item["ad_account_id"], item["campaign_id"], item["charge_id"], item["amount_micros"]) for item in spent] == [
        ("acme-search", "spring-sale", "spring-sale-1", 1_500),
        ("acme-search", "spring-sale", "spring-sale-1", 1_200),
    ]
    assert spent[0]["event_id"] != spent[1]["event_id"]
