"""The HTTP edge every service shares (`adledger_libs.web`), on a small app of its own: what the
fuzzing of the services' OpenAPI documents found (issue 12), each answer typed and documented."""

from __future__ import annotations

import httpx
from fastapi import APIRouter
from pydantic import BaseModel

from adledger_libs.money import PositiveMicros
from adledger_libs.web import AUTHENTICATED_ERRORS, build_app, responses


class Body(BaseModel):
    amount_micros: PositiveMicros


def _app() -> httpx.AsyncClient:
    router = APIRouter()

    @router.post("/things", responses=responses(*AUTHENTICATED_ERRORS))
    async def things(body: Body) -> dict[str, int]:
        return {"amount_micros": body.amount_micros}

    app = build_app(title="test", description="test", routers=[router])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_a_body_that_is_not_utf_8_is_the_documented_invalid_request() -> None:
    async with _app() as client:
        body = b"\x80{\"amount_micros\": 1}"
        answer = await client.post("/things", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_request" and answer.json()["reason"]


async def test_a_body_that_is_not_json_is_the_documented_invalid_request() -> None:
    async with _app() as client:
        answer = await client.post("/things", content=b"{not json", headers={"Content-Type": "application/json"})
    assert (answer.status_code, answer.json()["error"]) == (422, "invalid_request"), answer.text
