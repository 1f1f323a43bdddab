"""Roles and tenancy inside a Business Center (rule W9), for every service.

A user holds zero or more roles in each Business Center (Admin, Finance Manager, Operator,
Analyst). Holding no role in a Business Center means the user is not part of it and can neither
read nor change anything in it; that is what keeps one tenant's data away from another.

The permission table, with the decisions the rules leave open:

| action            | who may                                                          |
| ----------------- | ---------------------------------------------------------------- |
| read              | any role in the Business Center                                  |
| change_budget     | Admin, Finance Manager; only Admin without finance roles (W9)    |
| allocate_funds    | Admin, Finance Manager; only Admin without finance roles (W6, W9)|
| request_top_up    | Admin, Finance Manager; only Admin without finance roles         |
| place_order       | Admin, Finance Manager; only Admin without finance roles         |
| enable_aba        | Admin only                                                       |
| manage_users      | Admin only                                                       |
| open_ad_account   | Admin only                                                       |
| manage_campaigns  | Admin, Operator                                                  |
| manage_sends      | Admin only (teams, user budgets, send campaigns, approvals; U1-U6)|
| send              | any role                                                         |

- `enable_aba` is Admin only, even with finance roles set up: enabling Automatic Balance
  Allocation can never be undone (W2), it moves the cash of every eligible ad account at once
  (W4) and rewrites their budgets (W5). An irreversible change to how the whole Business Center
  works is a decision for its owners, not a day-to-day finance task, so it is kept with the
  role that can also grant and remove every other role.
- `request_top_up` and `place_order` bring money in or put it in escrow; they follow the same
  rule as the other money actions.
- `manage_campaigns` (create, pause, edit campaigns) is what an Operator is for; it is not a
  money action (a campaign's own budget is not the ad-account cap that W9 restricts).
  A Finance Manager without another role does not run campaigns.
- "Finance roles set up" means the Business Center has at least one Finance Manager.
- A user with several roles gets the union of what each allows.
- Where finance roles are not set up, a Finance Manager role a user still holds grants nothing
  beyond what an Analyst may do (read): W9 says "only Admins" there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol

from adledger_libs.refusals import Refusal


class Role(StrEnum):
    ADMIN = "admin"
    FINANCE_MANAGER = "finance_manager"
    OPERATOR = "operator"
    ANALYST = "analyst"


class Action(StrEnum):
    READ = "read"
    CHANGE_BUDGET = "change_budget"
    ALLOCATE_FUNDS = "allocate_funds"
    REQUEST_TOP_UP = "request_top_up"
    PLACE_ORDER = "place_order"
    ENABLE_ABA = "enable_aba"
    MANAGE_USERS = "manage_users"
    OPEN_AD_ACCOUNT = "open_ad_account"
    MANAGE_CAMPAIGNS = "manage_campaigns"
    MANAGE_SENDS = "manage_sends"
    SEND = "send"


_EVERY_ROLE = frozenset(Role)
_ADMIN_ONLY = frozenset({Role.ADMIN})
_FINANCE = frozenset({Role.ADMIN, Role.FINANCE_MANAGER})
_MONEY_ACTIONS = frozenset({Action.CHANGE_BUDGET, Action.ALLOCATE_FUNDS, Action.REQUEST_TOP_UP, Action.PLACE_ORDER})
_ROLES_BY_OTHER_ACTION: Mapping[Action, frozenset[Role]] = MappingProxyType(
    {
        Action.READ: _EVERY_ROLE,
        Action.ENABLE_ABA: _ADMIN_ONLY,
        Action.MANAGE_USERS: _ADMIN_ONLY,
        Action.OPEN_AD_ACCOUNT: _ADMIN_ONLY,
        Action.MANAGE_CAMPAIGNS: frozenset({Role.ADMIN, Role.OPERATOR}),
        Action.MANAGE_SENDS: _ADMIN_ONLY,
        Action.SEND: _EVERY_ROLE,
    }
)


class PermissionDeniedError(Refusal):
    """A caller tried an action their roles do not allow (rule W9), or one only a platform
    operator may take. The one permission error of the platform: every service answers it 403."""

    def __init__(self, reason: str, *, action: str = "", business_center_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.action = action
        self.business_center_id = business_center_id


class Principal(Protocol):
    """Whoever acts: the verified caller of an API (`adledger_auth.callers.Caller`), or a test's stand-in."""

    @property
    def user_id(self) -> str: ...

    @property
    def platform_operator(self) -> bool: ...

    def roles_in(self, business_center_id: str) -> frozenset[Role]: ...


def roles_allowed_to(action: Action, *, finance_roles_set_up: bool) -> frozenset[Role]:
    """The roles that may take `action` in a Business Center (the table in the module docstring)."""
    if action in _MONEY_ACTIONS:
        return _FINANCE if finance_roles_set_up else _ADMIN_ONLY
    return _ROLES_BY_OTHER_ACTION[action]


def is_allowed(held: Iterable[Role], action: Action, *, finance_roles_set_up: bool) -> bool:
    return not frozenset(held).isdisjoint(roles_allowed_to(action, finance_roles_set_up=finance_roles_set_up))


def require(
    user_id: str, business_center_id: str, held: Iterable[Role], action: Action, *, finance_roles_set_up: bool
) -> None:
    """Raise `PermissionDeniedError` unless roles `held` in the Business Center allow `action` (W9)."""
    held_roles = frozenset(held)
    required = roles_allowed_to(action, finance_roles_set_up=finance_roles_set_up)
    if held_roles.isdisjoint(required):
        needed = ", ".join(sorted(required)) or "nobody"
        have = ", ".join(sorted(held_roles)) or "no role"
        raise PermissionDeniedError(
            f"user {user_id} may not {action} in business center {business_center_id}: it needs one of ({needed}) "
            f"and the user has {have} there",
            action=action, business_center_id=business_center_id,
        )


def authorize(principal: Principal, business_center_id: str, action: Action, *, finance_roles_set_up: bool) -> None:
    """W9 for a principal in one Business Center, by its roles there (a platform operator is not
    exempt here: a core decides where the platform may act outside the Business Center's roles)."""
    require(principal.user_id, business_center_id, principal.roles_in(business_center_id), action,
            finance_roles_set_up=finance_roles_set_up)
