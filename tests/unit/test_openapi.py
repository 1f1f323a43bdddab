"""The checked-in OpenAPI documents are what the services serve (FastAPI generates them from the
routes); this fails when they drift. And every command takes an idempotency key, every call that
is not public a bearer token."""

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "openapi"
#: Services on FastAPI, and the routes of each that need no bearer token (with why).
FASTAPI_SERVICES: dict[str, set[tuple[str, str]]] = {
    "wallet": set(),
    "sends": set(),
    # Signing in is how a token is had; the public keys are for anyone to verify tokens with.
    "identity": {("post", "/v1/sessions"), ("get", "/.well-known/jwks.json")},
}
#: Commands that are not idempotency-keyed, and why: a sign-in makes a new session each time, and
#: signing out of the current session is idempotent by nature.
UNKEYED_COMMANDS = {("identity", "post", "/v1/sessions"), ("identity", "delete", "/v1/sessions/current")}


def _openapi(service: str) -> dict[str, Any]:
    document: dict[str, Any] = importlib.import_module(f"adledger_{service}.inject").openapi()
    return document


@pytest.mark.parametrize("service", sorted(FASTAPI_SERVICES))
def test_openapi_is_checked_in_and_current(service: str) -> None:
    checked_in = json.loads((SCHEMAS / f"{service}.json").read_text())
    assert checked_in == json.loads(json.dumps(_openapi(service))), "run `make schemas` and commit the result"


@pytest.mark.parametrize("service", sorted(FASTAPI_SERVICES))
def test_every_command_takes_an_idempotency_key_and_every_call_a_bearer_token(service: str) -> None:
    for path, operations in _openapi(service)["paths"].items():
        for method, operation in operations.items():
            if (method, path) not in FASTAPI_SERVICES[service]:
                assert operation.get("security") == [{"bearer": []}], f"{method} {path}"
            if method in {"post", "put", "patch", "delete"} and (service, method, path) not in UNKEYED_COMMANDS:
                names = {parameter["name"] for parameter in operation.get("parameters", [])}
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


@pytest.mark.parametrize("service", ["identity", "wallet", "campaign", "order_escrow", "invoicing"])
def test_every_refusal_is_documented_as_the_json_it_is(service: str) -> None:
    """A 4xx is always the typed JSON error, also on a route whose answer is a document (the
    invoice's HTML, found by the OpenAPI fuzz: its refusals were documented as text/html)."""
    for path, operations in _openapi(service)["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation.get("responses", {}).items():
                if status.startswith("4"):
                    assert set(answer.get("content", {})) == {"application/json"}, f"{method} {path} {status}"
