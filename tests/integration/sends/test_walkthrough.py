"""docs/sends-walkthrough.md runs as written: its `bash` blocks, in order, in one bash, against the
sends and invoicing services of the test world (the people come from the world's identity, as the
walkthrough's first block makes them through the identity service under `make run`)."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from ..conftest import unique
from ..identity_world import PLATFORM
from .conftest import USD, SendsWorld

DOC = Path(__file__).resolve().parents[3] / "docs" / "sends-walkthrough.md"


async def test_u1_u2_u3_u4_u5_u6_the_sends_walkthrough_runs_as_written(world: SendsWorld) -> None:
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 8
    business_center, admin = await world.account()
    ann = await world.member(business_center, "ann")
    crm = await world.integration(business_center)
    run = unique("r")[-8:]
    env = {
        **os.environ, "PLATFORM": PLATFORM, "RUN": run, "BC": business_center, "ANN_ID": ann.user_id,
        "ADMIN": admin.token, "ANN": ann.token, "CRM": crm.token,
        "SENDS": str(world.client.base_url).rstrip("/"), "INVOICING": str(world.billing.invoicing.base_url).rstrip("/"),
    }
    process = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", "\n".join(blocks), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=180)
    output = out.decode()
    assert process.returncode == 0, f"{output}\n{err.decode()}"
    lines = output.splitlines()
    assert '{"balance_micros":30000000,"funding_source_id":"sales-' + run + '"' in "\n".join(lines)
    assert [line for line in lines if line.startswith('{"error"')] == [
        '{"error":"insufficient_user_balance"}', '{"error":"insufficient_funds"}', '{"error":"add_funds_disabled"}',
    ]
    assert '{"state":"charged","charged_micros":20000000}' in lines, "add-funds charged the send (U3)"
    assert '{"state":"awaiting_approval","via":"integration","charged_micros":0}' in lines
    assert '{"state":"charged","charged_micros":25000000}' in lines, "approved: charged (U4)"
    assert '{"state":"adjusted","charged_micros":15000000}' in lines
    assert '{"balance_micros":18000000}' in lines, "U2: the refused send changed nothing"
    # What the walkthrough caused, in invoicing: the prepaid source charged 30 + 20 + 3 (I6, U3, U5, U6),
    # an invoice for the added funds, one card payment for the approved send.
    await world.source_balance_until(f"sales-{run}", -53 * USD)
    added = await world.invoices_until(f"sales-{run}", 1)
    assert [(i["purpose"], i["amount_micros"]) for i in added] == [("funding_source_top_up", 20 * USD)]
    [card] = await world.invoices_until(f"card-{run}", 1)
    assert (card["purpose"], card["amount_micros"]) == ("card_charge", 25 * USD)
