"""The platform's public HTTP APIs as the console calls them: always with the signed-in user's own
token, a command always with its idempotency key (M5); a refusal is the API's typed error
(`{"error", "reason"}`), shown to the user in words."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

SERVICES = ("identity", "wallet", "campaign", "invoicing", "escrow", "sends")


class Refusal(Exception):
    """An API said no (4xx), or did not answer: its code and its reason for people."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(f"{status} {error}: {reason}")
        self.status, self.error, self.reason = status, error, reason

    @property
    def not_found(self) -> bool:
        return self.status == 404


class Apis:
    def __init__(self, urls: Mapping[str, str], timeout_s: float) -> None:
        self._clients = {name: httpx.AsyncClient(base_url=url, timeout=timeout_s) for name, url in urls.items()}

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def _send(
        self,
        service: str,
        method: str,
        path: str,
        token: str | None,
        *,
        body: Any = None,
        key: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if key is not None:
            headers["Idempotency-Key"] = key
        try:
            answer = await self._clients[service].request(method, path, json=body, headers=headers, params=params)
        except httpx.HTTPError as error:
            raise Refusal(
                503, "unavailable", f"the {service} service did not answer ({type(error).__name__})"
            ) from None
        if answer.status_code >= 400:
            raise _refusal(service, answer)
        return answer

    async def get(self, service: str, path: str, token: str, params: Mapping[str, str] | None = None) -> Any:
        return (await self._send(service, "GET", path, token, params=params)).json()

    async def public(self, service: str, path: str) -> Any:
        """A read that needs no caller (a service's /health)."""
        try:
            return (await self._send(service, "GET", path, None)).json()
        except ValueError:
            raise Refusal(502, "malformed", f"the {service} service answered {path} with no JSON") from None

    async def text(self, service: str, path: str, token: str) -> str:
        return (await self._send(service, "GET", path, token)).text

    async def command(self, service: str, method: str, path: str, token: str, key: str, body: Any = None) -> Any:
        return (await self._send(service, method, path, token, body=body, key=key)).json()

    async def sign_in(self, user_id: str, password: str) -> dict[str, Any]:
        answer = await self._send(
            "identity", "POST", "/v1/sessions", None, body={"user_id": user_id, "password": password}
        )
        return dict(answer.json())


def _refusal(service: str, answer: httpx.Response) -> Refusal:
    try:
        body = answer.json()
        error, reason = str(body.get("error", "refused")), str(body.get("reason", ""))
    except (ValueError, AttributeError):
        error, reason = "refused", ""
    return Refusal(answer.status_code, error, reason or f"the {service} service answered {answer.status_code}")
