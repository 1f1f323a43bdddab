"""docs/sends-walkthrough.md runs as written: every `bash` block, in order, in one bash, against the
identity, wallet, invoicing and sends services in-process (the walkthrough makes its people through
the identity service, as under `make run`)."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

from ..conftest import Stack, unique
from ..waits import until
from .conftest import USD, with_identity_service

DOC = Path(__file__).resolve().parents[3] / "docs" / "sends-walkthrough.md"


async def _rows(platform: Any, query: str, *args: object) -> list[dict[str, Any]]:
    return [dict(row) for row in await platform.billing.fetch(query, *args)]


async def test_u1_u2_u3_u4_u5_u6_the_sends_walkthrough_runs_as_written(stack: Stack, tmp_path: Path) -> None:
    blocks = re.findall(r"```(\w+)\n(.*?)```", DOC.read_text(), flags=re.S)
    assert {language for language, _ in blocks} == {"bash"} and len(blocks) >= 9
    run = unique("r")[-8:]
    async with with_identity_service(stack, str(tmp_path / "keys")) as platform:
        env = {**os.environ, **platform.urls(), "RUN": run}
        process = await asyncio.create_subprocess_exec(
            "bash", "-euo", "pipefail", "-c", "\n".join(body for _, body in blocks), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=240)
        output = out.decode()
        assert process.returncode == 0, f"{output}\n{err.decode()}"
        lines = output.splitlines()
        assert any(line.startswith('{"balance_micros":30000000,"funding_source_id":"sales-' + run) for line in lines)
        assert [line for line in lines if line.startswith('{"error"')] == [
            '{"error":"insufficient_user_balance"}', '{"error":"insufficient_funds"}', '{"error":"add_funds_disabled"}',
        ]
        assert '{"state":"charged","charged_micros":20000000}' in lines, "add-funds charged the send (U3)"
        assert '{"state":"awaiting_approval","via":"integration","charged_micros":0}' in lines
        assert '{"state":"charged","charged_micros":25000000}' in lines, "approved: charged (U4)"
        assert '{"state":"adjusted","charged_micros":15000000}' in lines
        assert '{"balance_micros":18000000}' in lines, "U2: the refused send changed nothing"
        # What it caused in invoicing: the prepaid source charged 30 + 20 + 3 (U6, U3, U5), an invoice for the
        # added funds, one card payment for the approved send.
        world_like = platform.billing

        async def charged() -> bool:
            answer = await world_like.call(world_like.invoicing, "GET", f"/v1/funding-sources/sales-{run}",
                                           env["PLATFORM"])
            return bool(answer.json()["balance_micros"] == -53 * USD)

        await until(charged, "the prepaid source charged 53 USD")
        invoices = await _rows(platform, f"select payer_id, purpose, amount_micros from {world_like.invoicing_schema}"
                                         ".invoices where payer_id like $1 order by purpose", f"%-{run}")
        assert [(i["payer_id"], i["purpose"], i["amount_micros"]) for i in invoices] == [
            (f"card-{run}", "card_charge", 25 * USD), (f"sales-{run}", "funding_source_top_up", 20 * USD),
        ]
