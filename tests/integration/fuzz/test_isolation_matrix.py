"""Issue 12, item 6: the tenant-isolation matrix, generated from the OpenAPI documents and walked on
the real stack (each service's world, `worlds.KITS`).

Rows: every operation of every service's document (`Kit.openapi`), so a new endpoint is in the
matrix as soon as it is in a document; `EXPECTATIONS` says who may call it, in the words of the
roles table (`adledger_auth.roles`, W9): an `Action` (the roles that may take it, finance roles set
up), the platform operator only, any caller (their own things), or public. An operation without an
expectation fails the test (`test_every_operation_has_an_expectation`).

Columns: the platform operator; the tenant's Admin, Finance Manager, Operator and Analyst; a user
of another Business Center; no token; a forged token (the platform's key id, a key it never
published); an expired session; a revoked API key.

Expected answers: 401 for no, forged, expired or revoked tokens (public operations: the answer of
no token, whatever the token); the member roles: 403 for a role the table does not allow, else a
2xx or the operation's own 4xx (a conflict, an invalid value: the request reached the rule);
another Business Center's user: 404 on the tenant's resources, and always exactly the answer the
same request gets with unknown ids in their place ("not yours" is "does not exist"). One request
per cell (two for the outsider's), with the tenant's real ids in the path and the body and the
rest a minimal valid example of the document's schema; every failing cell is reported at once.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import GenerationMode

from adledger_auth.roles import Action, Role, roles_allowed_to

from .responses import problems_of
from .worlds import HTTP_SERVICES, KITS, Tenant, World, unique

pytestmark = [pytest.mark.integration, pytest.mark.limit_s(240),
              pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
              pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")]

MEMBERS = ("admin", "finance_manager", "operator", "analyst")
UNAUTHENTICATED = ("no token", "forged token", "expired token", "revoked key")
CALLERS = ("platform operator", *MEMBERS, "other Business Center", *UNAUTHENTICATED)
OK = "2xx or its own 4xx"


@dataclass(frozen=True)
class Expect:
    """Who may call an operation. `action`: the members the roles table allows; `platform`: only
    the platform operator; `anyone`: any signed-in caller (their own things); `public`: no token
    needed. `overrides`: a caller's answer where the operation says more than the table."""

    action: Action | None = None
    platform: bool = False
    anyone: bool = False
    public: bool = False
    overrides: dict[str, int | str] = field(default_factory=dict)
    #: Run after the operations of a lower rank (1: it disables the user the others name; 2: it
    #: ends the caller's session).
    last: int = 0

    def of(self, caller: str) -> int | str:
        if caller in self.overrides:
            return self.overrides[caller]
        if self.public:
            return "as no token"
        if caller in UNAUTHENTICATED:
            return 401
        if caller == "platform operator" or self.anyone:
            return OK
        if self.platform:
            return 403
        if caller == "other Business Center":
            return 404
        assert self.action is not None
        return OK if Role(caller) in roles_allowed_to(self.action, finance_roles_set_up=True) else 403


def member(action: Action, **overrides: int | str) -> Expect:
    return Expect(action=action, overrides=overrides)


def platform(**overrides: int | str) -> Expect:
    return Expect(platform=True, overrides=overrides)


#: W2, W6, W9: how a Business Center's money is run is decided by its own members, not the operator.
_OWNERS_ONLY: dict[str, int | str] = {"platform operator": 403}
def party(*, buyer: int | str, operator: int | str) -> Expect:
    """An order's operation by party: the tenant's Admin placed the order (its buyer); the other
    members are none of its parties, like another tenant's user (404)."""
    return Expect(action=Action.READ, overrides={
        "admin": buyer, "platform operator": operator,
        **{role: 404 for role in ("finance_manager", "operator", "analyst", "other Business Center")}})


_NOT_A_PARTY = {role: 404 for role in (*MEMBERS, "other Business Center")}
_SELLER_ONLY = {"platform operator": 403, **{role: 403 for role in MEMBERS}}

EXPECTATIONS: dict[tuple[str, str, str], Expect] = {
    # wallet
    ("wallet", "GET", "/v1/balances/{owner_id}"): member(Action.READ),
    ("wallet", "GET", "/v1/balances/{owner_id}/history"): member(Action.READ),
    ("wallet", "POST", "/v1/business-centers"): platform(),
    ("wallet", "GET", "/v1/business-centers/{business_center_id}"): member(Action.READ),
    ("wallet", "DELETE", "/v1/business-centers/{business_center_id}/aba"): member(Action.ENABLE_ABA, **_OWNERS_ONLY),
    ("wallet", "POST", "/v1/business-centers/{business_center_id}/aba"): member(Action.ENABLE_ABA, **_OWNERS_ONLY),
    ("wallet", "GET", "/v1/business-centers/{business_center_id}/ad-accounts"): member(Action.READ),
    ("wallet", "POST", "/v1/business-centers/{business_center_id}/ad-accounts"): member(Action.OPEN_AD_ACCOUNT),
    ("wallet", "POST", "/v1/business-centers/{business_center_id}/allocations"): member(Action.ALLOCATE_FUNDS, **_OWNERS_ONLY),
    ("wallet", "PUT", "/v1/business-centers/{business_center_id}/credit-line"): platform(),
    ("wallet", "POST", "/v1/business-centers/{business_center_id}/vouchers"): platform(),
    # campaign
    ("campaign", "GET", "/v1/ad-accounts/{ad_account_id}/budget-cap"): member(Action.READ),
    ("campaign", "PUT", "/v1/ad-accounts/{ad_account_id}/budget-cap"): member(Action.CHANGE_BUDGET),
    ("campaign", "POST", "/v1/campaigns"): member(Action.MANAGE_CAMPAIGNS),
    ("campaign", "GET", "/v1/campaigns/{campaign_id}"): member(Action.READ),
    ("campaign", "GET", "/v1/ad-accounts/{ad_account_id}/campaigns"): member(Action.READ),
    ("campaign", "POST", "/v1/campaigns/{campaign_id}/activate"): member(Action.MANAGE_CAMPAIGNS),
    ("campaign", "PUT", "/v1/campaigns/{campaign_id}/budget"): member(Action.MANAGE_CAMPAIGNS),
    ("campaign", "POST", "/v1/campaigns/{campaign_id}/pause"): member(Action.MANAGE_CAMPAIGNS),
    ("campaign", "POST", "/v1/campaigns/{campaign_id}/resume"): member(Action.MANAGE_CAMPAIGNS),
    # order escrow (O1-O5, parties.py): an order's buyer is the user who placed it (here the tenant's
    # Admin), its seller the channel's integration, its admin the platform operator; anyone who is
    # none of its parties gets the answer of an order that does not exist.
    ("order_escrow", "POST", "/v1/channels"): platform(),
    ("order_escrow", "POST", "/v1/orders"): member(Action.PLACE_ORDER),
    ("order_escrow", "GET", "/v1/orders/{order_id}"): party(buyer=OK, operator=OK),
    ("order_escrow", "POST", "/v1/orders/{order_id}/accept"): party(buyer=403, operator=403),
    ("order_escrow", "POST", "/v1/orders/{order_id}/complete"): party(buyer=403, operator=403),
    ("order_escrow", "POST", "/v1/orders/{order_id}/decline"): party(buyer=403, operator=403),
    ("order_escrow", "POST", "/v1/orders/{order_id}/ready"): party(buyer=403, operator=403),
    ("order_escrow", "POST", "/v1/orders/{order_id}/dispute"): party(buyer=OK, operator=403),
    ("order_escrow", "POST", "/v1/orders/{order_id}/resolution"): party(buyer=403, operator=OK),
    ("order_escrow", "POST", "/v1/orders/{order_id}/reorder"): party(buyer=OK, operator=403),
    # identity: the target is an Analyst of the tenant; only the operator acts for another user
    ("identity", "GET", "/.well-known/jwks.json"): Expect(public=True),
    ("identity", "POST", "/v1/api-keys"): platform(),
    ("identity", "DELETE", "/v1/api-keys/{key_id}"): platform(**_NOT_A_PARTY),
    ("identity", "GET", "/v1/business-centers/{business_center_id}/members"): member(Action.READ),
    ("identity", "DELETE", "/v1/business-centers/{business_center_id}/members/{user_id}"): member(Action.MANAGE_USERS),
    ("identity", "PUT", "/v1/business-centers/{business_center_id}/members/{user_id}"): member(Action.MANAGE_USERS),
    ("identity", "POST", "/v1/sessions"): Expect(public=True),
    # An API key (the operator's) is revoked, not signed out.
    ("identity", "DELETE", "/v1/sessions/current"): Expect(anyone=True, last=2,
                                                           overrides={"platform operator": 403}),
    ("identity", "POST", "/v1/users"): platform(),
    ("identity", "GET", "/v1/users/me"): Expect(anyone=True),
    ("identity", "GET", "/v1/users/{user_id}"): member(Action.MANAGE_USERS, **{
        role: 404 for role in ("finance_manager", "operator", "analyst")}),
    ("identity", "GET", "/v1/users/{user_id}/api-keys"): platform(**_NOT_A_PARTY),
    ("identity", "POST", "/v1/users/{user_id}/disable"): Expect(platform=True, last=1),
    ("identity", "PUT", "/v1/users/{user_id}/password"): platform(),
    # invoicing
    ("invoicing", "POST", "/v1/funding-sources"): platform(),
    ("invoicing", "GET", "/v1/funding-sources/{funding_source_id}"): platform(),
    ("invoicing", "POST", "/v1/funding-sources/{funding_source_id}/charges"): platform(),
    ("invoicing", "POST", "/v1/funding-sources/{funding_source_id}/top-ups"): platform(),
    ("invoicing", "GET", "/v1/invoices"): Expect(anyone=True),
    ("invoicing", "GET", "/v1/invoices/{invoice_id}"): member(Action.READ),
    ("invoicing", "GET", "/v1/invoices/{invoice_id}/document"): member(Action.READ),
    ("invoicing", "GET", "/v1/invoices/{invoice_id}/payments"): member(Action.READ),
    ("invoicing", "POST", "/v1/invoices/{invoice_id}/uncollectible"): platform(),
    ("invoicing", "POST", "/v1/invoices/{invoice_id}/void"): platform(),
    ("invoicing", "GET", "/v1/owners/{owner_id}/billing"): member(Action.READ),
    ("invoicing", "POST", "/v1/payments/webhook"): Expect(public=True),
    ("invoicing", "GET", "/v1/subscriptions/{owner_id}"): member(Action.READ),
    ("invoicing", "PUT", "/v1/subscriptions/{owner_id}"): platform(),
    ("invoicing", "POST", "/v1/top-ups"): member(Action.REQUEST_TOP_UP),
    # sends (U1-U6): the operator attaches funding sources and reports final costs (U5); the account's
    # Admins manage teams, balances, campaigns and approvals (MANAGE_SENDS); members send (SEND). The
    # user balance read is the tenant's Analyst's, who may read their own; the send read is the
    # integration's, waiting for approval (U4).
    ("sends", "POST", "/v1/funding-sources"): platform(),
    ("sends", "PUT", "/v1/business-centers/{business_center_id}/default-funding-source"): member(Action.MANAGE_SENDS),
    ("sends", "POST", "/v1/teams"): member(Action.MANAGE_SENDS),
    ("sends", "PUT", "/v1/business-centers/{business_center_id}/user-balances/{user_id}"): member(Action.MANAGE_SENDS),
    ("sends", "GET", "/v1/business-centers/{business_center_id}/user-balances/{user_id}"): member(
        Action.MANAGE_SENDS, analyst=OK),
    ("sends", "POST", "/v1/send-campaigns"): member(Action.MANAGE_SENDS),
    # The console's reads (issue 18): teams and sends to every member, everyone's balances to Admins.
    ("sends", "GET", "/v1/business-centers/{business_center_id}/teams"): member(Action.READ),
    ("sends", "GET", "/v1/business-centers/{business_center_id}/sends"): member(Action.READ),
    ("sends", "GET", "/v1/business-centers/{business_center_id}/user-balances"): member(Action.MANAGE_SENDS),
    ("sends", "POST", "/v1/sends"): member(Action.SEND),
    ("sends", "GET", "/v1/sends/{send_id}"): member(Action.READ),
    ("sends", "POST", "/v1/sends/{send_id}/approve"): member(Action.MANAGE_SENDS),
    ("sends", "POST", "/v1/sends/{send_id}/reject"): member(Action.MANAGE_SENDS),
    ("sends", "POST", "/v1/sends/{send_id}/final-cost"): platform(),
}


def operations(service: str) -> list[tuple[str, str, dict[str, Any]]]:
    """The document's operations, (method, path, operation), in document order."""
    document = KITS[service].openapi()  # type: ignore[misc]
    return [(method.upper(), path, operation) for path, methods in document["paths"].items()
            for method, operation in methods.items()]


def test_every_operation_has_an_expectation() -> None:
    """A new endpoint in a document needs its row here (who may call it), or this fails; and so
    does a new service's document (`schemas/openapi/`) without a world in `KITS`."""
    checked_in = {path.stem for path in (Path(__file__).resolve().parents[3] / "schemas" / "openapi").glob("*.json")}
    assert checked_in <= set(HTTP_SERVICES), f"OpenAPI documents without a fuzzing world: {checked_in - set(HTTP_SERVICES)}"
    documented = {(service, method, path) for service in HTTP_SERVICES for method, path, _ in operations(service)}
    missing = sorted(documented - set(EXPECTATIONS))
    assert not missing, f"operations without an expectation in the isolation matrix: {missing}"
    stale = sorted(set(EXPECTATIONS) - documented)
    assert not stale, f"expectations of operations no document has any more: {stale}"


def _example(schema: Any, method: str, path: str) -> Any:
    """A minimal valid case of the operation (Hypothesis's simplest example of its schema)."""
    operation = schema[path][method].ok() if hasattr(schema[path][method], "ok") else schema[path][method]
    strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
    return hypothesis.find(strategy, lambda _: True, settings=settings(
        database=None, max_examples=20, deadline=None, suppress_health_check=list(HealthCheck),
        phases=[Phase.generate, Phase.shrink]))


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, Any]
    body: Any
    idempotent: bool


def _request(world: World, tenant: Tenant, method: str, path: str, operation: dict[str, Any], case: Any, *,
             unknown: bool) -> Request:
    parameters = dict(case.path_parameters or {})
    for name in parameters:
        if name in tenant.resources:
            parameters[name] = unique("unknown") if unknown else tenant.resources[name]
    body = case.body if isinstance(case.body, dict | list) else None
    if isinstance(body, dict):
        body = dict(body)
        for name, value in tenant.body_values.items():
            if name in body:
                body[name] = unique("unknown") if unknown and name in tenant.resources else value
    headers = {parameter["name"] for parameter in operation.get("parameters", []) if parameter.get("in") == "header"}
    return Request(method, path.format(**parameters), dict(case.query or {}), body, "Idempotency-Key" in headers)


def _tokens(world: World, tenant: Tenant, revoked: str) -> dict[str, str | None]:
    admin = tenant.members["admin"]
    return {
        "platform operator": world.people.platform,
        **{role: tenant.members[role].token for role in MEMBERS},
        "other Business Center": tenant.outsider.token,
        "no token": None,
        "forged token": world.people.forged(admin.user_id),
        "expired token": world.people.expired(admin.user_id),
        "revoked key": revoked,
    }


async def _send(world: World, request: Request, token: str | None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    if request.idempotent:
        headers["Idempotency-Key"] = unique("matrix")
    answer = await world.subject.client.request(
        request.method, request.path, params=request.query,
        content=json.dumps(request.body).encode() if request.body is not None else None,
        headers={**headers, **({"Content-Type": "application/json"} if request.body is not None else {})})
    return answer.status_code, answer.content


def _meets(expected: int | str, status: int, no_token_status: int | None) -> bool:
    if status >= 500:
        return False
    if expected == OK:
        return status < 400 or status not in (401, 403, 404)
    if expected == "as no token":
        return status == no_token_status
    return status == expected


@pytest.mark.parametrize("world", HTTP_SERVICES, indirect=True)
async def test_isolation_matrix_every_operation_by_every_caller(world: World) -> None:
    tenant = await KITS[world.service].tenant(world)
    await world.settle()
    revoked = await world.people.revoked_key(tenant.members["admin"].user_id)
    tokens = _tokens(world, tenant, revoked)
    document = KITS[world.service].openapi()  # type: ignore[misc]
    schema = schemathesis.openapi.from_dict(document)
    # Those that end a session or disable a user run last (sorted is stable: document order otherwise).
    rows = sorted(operations(world.service), key=lambda row: EXPECTATIONS.get((world.service, row[0], row[1]),
                                                                             Expect()).last)
    failures: list[str] = []
    cells = 0
    for method, path, operation in rows:
        expect = EXPECTATIONS.get((world.service, method, path))
        if expect is None:
            failures.append(f"{method} {path}: no expectation")
            continue
        case = await asyncio.to_thread(_example, schema, method, path)
        request = _request(world, tenant, method, path, operation, case, unknown=False)
        no_token_status: int | None = None
        for caller in ("no token", *[c for c in CALLERS if c != "no token"]):
            status, body = await _send(world, request, tokens[caller])
            cells += 1
            if caller == "no token":
                no_token_status = status
            expected = expect.of(caller)
            problems = [] if _meets(expected, status, no_token_status) else [f"expected {expected}, got {status}"]
            problems += problems_of(operation, status, body)
            if caller == "other Business Center":
                unknown = _request(world, tenant, method, path, operation, case, unknown=True)
                if unknown.path != request.path or unknown.body != request.body:
                    unknown_status, _ = await _send(world, unknown, tokens[caller])
                    if unknown_status != status:
                        problems.append(f"answers {status} where the same request with unknown ids answers "
                                        f"{unknown_status} (existence leaks)")
            if problems:
                failures.append(f"{method} {request.path} as {caller}: {'; '.join(problems)}: {body[:200]!r}")
    print(f"\n{world.service}: {len(rows)} operations x {len(CALLERS)} callers = {cells} cells")
    assert not failures, f"{world.service}: {len(failures)} of {cells} cells wrong:\n" + "\n".join(
        f"  - {failure}" for failure in failures)
