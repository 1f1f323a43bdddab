"""The campaign service's checked-in OpenAPI document is what it serves; typed errors are declared."""

import json
from pathlib import Path
from typing import Any

from adledger_campaign.inject import openapi_document

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas" / "openapi"


def _document() -> dict[str, Any]:
    return dict(json.loads(openapi_document()))


def test_campaign_openapi_is_checked_in_and_current() -> None:
    assert (SCHEMAS / "campaign.json").read_text() == openapi_document(), "run `make schemas` and commit the result"


def test_every_campaign_command_takes_an_idempotency_key_and_every_call_a_bearer_token() -> None:
    for path, operations in _document()["paths"].items():
        for method, operation in operations.items():
            assert operation.get("security") == [{"bearer": []}], f"{method} {path}"
            if method in {"post", "put", "patch", "delete"}:
                names = {parameter["name"] for parameter in operation["parameters"]}
                assert "Idempotency-Key" in names, f"{method} {path}"


def test_one_identity_the_service_has_no_users_or_members_of_its_own() -> None:
    paths = set(_document()["paths"])
    assert not any(path.startswith("/v1/users") or "/members" in path for path in paths), paths


def test_w9_w10_c2_c5_the_typed_errors_are_documented() -> None:
    text = json.dumps(_document())
    for code in ("unauthenticated", "permission_denied", "not_found", "too_many_cap_changes", "budget_below_minimum",
                 "campaign_state", "payload_too_large", "invalid_request", "idempotency_key_required"):
        assert code in text, code
