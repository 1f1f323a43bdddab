"""What every answer of a service must be, whatever was asked (issue 12, "every edge is hostile"):

- never a 5xx;
- a 4xx is the platform's typed error `{"error": <code>, "reason": <text>}` (`details` may
  follow), with a status the operation's OpenAPI `responses` lists and a code that status lists
  (`adledger_libs.web.responses` writes a status's codes, sorted, as its description);
- a refused request (any 4xx) changed nothing: the world's snapshot before and after it is equal.
"""

from __future__ import annotations

import json
from typing import Any

#: The codes the framework itself answers on any route: an unknown path's 404 and an unknown
#: method's 405 are not a route's documented answers (they are answered before any route runs).
FRAMEWORK_ANSWERS = {404: "not_found", 405: "method_not_allowed"}


def documented_codes(operation: dict[str, Any], status: int) -> set[str] | None:
    """The error codes the operation documents for `status`, or None when the status is not listed."""
    answer = operation.get("responses", {}).get(str(status))
    if answer is None:
        return None
    return {code.strip() for code in str(answer.get("description", "")).split(",") if code.strip()}


def problems_of(operation: dict[str, Any], status: int, body: bytes, *, unknown_route: bool = False) -> list[str]:
    """What is wrong with one answer (empty: nothing)."""
    if status >= 500:
        return [f"a server error {status}: {body[:300]!r}"]
    if not 400 <= status < 500:
        return []
    try:
        parsed = json.loads(body)
    except ValueError:
        return [f"{status} without a JSON body: {body[:300]!r}"]
    problems: list[str] = []
    if not (isinstance(parsed, dict) and isinstance(parsed.get("error"), str) and isinstance(parsed.get("reason"), str)
            and parsed["error"] and parsed["reason"]):
        return [f"{status} is not the typed error {{error, reason}}: {parsed!r:.300}"]
    extra = set(parsed) - {"error", "reason", "details"}
    if extra or not isinstance(parsed.get("details", {}), dict):
        problems.append(f"{status} carries more than error, reason and details: {sorted(extra)}")
    if unknown_route and FRAMEWORK_ANSWERS.get(status) == parsed["error"]:
        return problems
    codes = documented_codes(operation, status)
    if codes is None:
        problems.append(f"status {status} ({parsed['error']}: {parsed['reason'][:200]}) is not documented for this operation")
    elif parsed["error"] not in codes:
        problems.append(f"code {parsed['error']!r} ({parsed['reason'][:200]}) is not documented for {status} "
                        f"(documented: {sorted(codes)})")
    return problems


def changed_tables(before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]) -> list[str]:
    return sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
