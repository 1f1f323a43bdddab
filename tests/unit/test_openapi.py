"""The checked-in OpenAPI documents are what the services serve; this fails when they drift."""

import json
from pathlib import Path

from adledger_wallet.inject import openapi

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "openapi"


def test_wallet_openapi_is_checked_in_and_current() -> None:
    checked_in = json.loads((SCHEMAS / "wallet.json").read_text())
    assert checked_in == json.loads(json.dumps(openapi())), "run `make schemas` and commit the result"


def test_every_wallet_command_takes_an_idempotency_key_and_every_call_a_bearer_token() -> None:
    document = openapi()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("security") == [{"bearer": []}], f"{method} {path}"
            if method in {"post", "put", "patch", "delete"}:
                names = {parameter["name"] for parameter in operation["parameters"]}
                assert "Idempotency-Key" in names, f"{method} {path}"


def test_order_escrow_openapi_is_checked_in_and_current() -> None:
    from adledger_order_escrow.inject import openapi as order_escrow_openapi

    checked_in = json.loads((SCHEMAS / "order_escrow.json").read_text())
    assert checked_in == json.loads(json.dumps(order_escrow_openapi())), "run `make schemas` and commit the result"


def test_every_order_escrow_command_takes_an_idempotency_key_and_every_call_a_bearer_token() -> None:
    from adledger_order_escrow.inject import openapi as order_escrow_openapi

    for path, operations in order_escrow_openapi()["paths"].items():
        for method, operation in operations.items():
            assert operation.get("security") == [{"bearer": []}], f"{method} {path}"
            if method in {"post", "put", "patch", "delete"}:
                names = {parameter["name"] for parameter in operation["parameters"]}
                assert "Idempotency-Key" in names, f"{method} {path}"
