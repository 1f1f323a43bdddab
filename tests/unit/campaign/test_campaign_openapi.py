"""The campaign service's checked-in OpenAPI document is what it serves; typed errors are declared."""

import json
from pathlib import Path

from adledger_campaign.inject import openapi

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas" / "openapi"


def test_campaign_openapi_is_checked_in_and_current() -> None:
    checked_in = json.loads((SCHEMAS / "campaign.json").read_text())
    assert checked_in == json.loads(json.dumps(openapi())), "run `make schemas` and commit the result"


def test_every_campaign_command_takes_an_idempotency_key_and_every_call_a_bearer_token() -> None:
    for path, operations in openapi()["paths"].items():
        for method, operation in operations.items():
            assert operation.get("security") == [{"bearer": []}], f"{method} {path}"
            if method in {"post", "put", "patch", "delete"}:
                names = {parameter["name"] for parameter in operation["parameters"]}
                assert "Idempotency-Key" in names, f"{method} {path}"


def test_w9_w10_c2_c5_the_typed_errors_are_documented() -> None:
    text = json.dumps(openapi())
    for code in ("permission_denied", "too_many_cap_changes", "budget_below_minimum", "campaign_state"):
        assert code in text, code
