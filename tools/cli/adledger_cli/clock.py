"""`adledger clock show|advance`: the sandbox test clock (issue 17), through the identity service's
`/v1/sandbox/clock` endpoints with the platform operator's token."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import httpx

from adledger_cli.errors import OperatorError

_PART = re.compile(r"(\d+)([wdhms])")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
#: How long an advance may take (every hop waits for every service); the identity service bounds each hop.
ADVANCE_TIMEOUT_S = 600.0


def parse_duration(text: str) -> timedelta:
    """`48h`, `90m`, `2d`, `1d12h`, `1w`, `30s`: a positive duration."""
    compact = text.strip().lower().replace(" ", "")
    parts = _PART.findall(compact)
    if not compact or "".join(number + unit for number, unit in parts) != compact:
        raise ValueError(f"{text!r} is not a duration like 48h, 90m, 2d, 1d12h or 1w")
    duration = timedelta(**{_UNITS[unit]: 0 for unit in _UNITS})
    for number, unit in parts:
        duration += timedelta(**{_UNITS[unit]: int(number)})
    if duration <= timedelta(0):
        raise ValueError("a duration moves time forward: more than zero")
    return duration


class ClockApi:
    def __init__(self, identity_url: str, token: str) -> None:
        if not token:
            raise OperatorError("the sandbox clock needs the platform operator's token: set ADLEDGER_PLATFORM_TOKEN")
        self._url = identity_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}

    async def show(self) -> dict[str, Any]:
        return await self._call("GET", "/v1/sandbox/clock")

    async def advance(self, *, by: timedelta | None = None, to: datetime | None = None) -> dict[str, Any]:
        """Advance to a moment: `by` is turned into one (now + by), so repeating the call after a lost
        answer is one more advance, never half of one."""
        if to is None:
            assert by is not None
            to = datetime.fromisoformat((await self.show())["now"]) + by
        return await self._call("POST", "/v1/sandbox/clock/advance", {"to": to.isoformat()}, timeout=ADVANCE_TIMEOUT_S)

    async def _call(self, method: str, path: str, body: Any = None, *, timeout: float = 30.0) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                answer = await client.request(method, self._url + path, json=body, headers=self._headers)
        except httpx.HTTPError as error:
            raise OperatorError(f"the identity service at {self._url} did not answer: {error!r}") from error
        if answer.status_code == 404:
            raise OperatorError(
                f"{self._url} has no sandbox clock: the services run with ADLEDGER_CLOCK=sandbox only in a sandbox "
                "(make run starts one)"
            )
        try:
            found = answer.json()
        except ValueError:
            found = {}
        if answer.status_code >= 400:
            raise OperatorError(f"{answer.status_code} {found.get('error', '')}: {found.get('reason', answer.text[:300])}")
        return dict(found)


def human(answer: dict[str, Any]) -> str:
    from adledger_cli.output import table

    rows = [[s["service"], s["reached"], s["next_due"], "yes" if s["caught_up"] else "NO"] for s in answer["services"]]
    hops = answer.get("hops")
    head = f"sandbox time {answer['now']}" + (f" (advanced in {hops} hops)" if hops is not None else "")
    return head + "\n" + table(["SERVICE", "REACHED", "NEXT-DUE", "CAUGHT-UP"], rows)
