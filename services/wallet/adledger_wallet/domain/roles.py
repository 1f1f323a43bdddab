"""Roles and tenancy inside a Business Center (rule W9).

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
| enable_aba        | Admin only                                                       |
| manage_users      | Admin only                                                       |
| manage_campaigns  | Admin, Operator                                                  |

- `enable_aba` is Admin only, even with finance roles set up: enabling Automatic Balance
  Allocation can never be undone (W2), it moves the cash of every eligible ad account at once
  (W4) and rewrites their budgets (W5). An irreversible change to how the whole Business Center
  works is a decision for its owners, not a day-to-day finance task, so it is kept with the
  role that can also grant and remove every other role.
- `request_top_up` brings money in; it follows the same rule as the other money actions.
- `manage_campaigns` (create, pause, edit campaigns) is what an Operator is for; it is not a
  money action (a campaign's own budget is not the ad-account cap that W9 restricts).
  A Finance Manager without another role does not run campaigns.
- A user with several roles gets the union of what each allows.
- Where finance roles are not set up, a Finance Manager role a user still holds grants nothing
  beyond what an Analyst may do (read): W9 says "only Admins" there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from adledger_wallet.domain.errors import PermissionDeniedError
from adledger_wallet.domain.model import BusinessCenter


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
    ENABLE_ABA = "enable_aba"
    MANAGE_USERS = "manage_users"
    MANAGE_CAMPAIGNS = "manage_campaigns"
    #: Opening an ad account under the Business Center: Admin only, like managing its users.
    OPEN_AD_ACCOUNT = "open_ad_account"


_EVERY_ROLE = frozenset(Role)
_ADMIN_ONLY = frozenset({Role.ADMIN})
_FINANCE = frozenset({Role.ADMIN, Role.FINANCE_MANAGER})
_MONEY_ACTIONS = frozenset({Action.CHANGE_BUDGET, Action.ALLOCATE_FUNDS, Action.REQUEST_TOP_UP})
_ROLES_BY_OTHER_ACTION: Mapping[Action, frozenset[Role]] = MappingProxyType(
    {
        Action.READ: _EVERY_ROLE,
        Action.ENABLE_ABA: _ADMIN_ONLY,
        Action.MANAGE_USERS: _ADMIN_ONLY,
        Action.OPEN_AD_ACCOUNT: _ADMIN_ONLY,
        Action.MANAGE_CAMPAIGNS: frozenset({Role.ADMIN, Role.OPERATOR}),
    }
)


@dataclass(frozen=True)
class User:
    """A user and the roles they hold in each Business Center they belong to."""

    id: str
    #: Roles per Business Center id; a Business Center that is absent is one the user is not part of.
    roles_by_business_center_id: Mapping[str, frozenset[Role]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A read-only copy keeps the frozen user truly immutable even if the caller's dict changes.
        frozen = MappingProxyType({key: frozenset(roles) for key, roles in self.roles_by_business_center_id.items()})
        object.__setattr__(self, "roles_by_business_center_id", frozen)

    def roles_in(self, business_center_id: str) -> frozenset[Role]:
        return self.roles_by_business_center_id.get(business_center_id, frozenset())


def roles_allowed_to(business_center: BusinessCenter, action: Action) -> frozenset[Role]:
    """The roles that may take `action` in this Business Center (the table in the module docstring)."""
    if action in _MONEY_ACTIONS:
        return _FINANCE if business_center.finance_roles_enabled else _ADMIN_ONLY
    return _ROLES_BY_OTHER_ACTION[action]


def is_authorized(user: User, business_center: BusinessCenter, action: Action) -> bool:
    return not user.roles_in(business_center.id).isdisjoint(roles_allowed_to(business_center, action))


def authorize(user: User, business_center: BusinessCenter, action: Action) -> None:
    """Raise `PermissionDeniedError` unless `user` may take `action` in `business_center` (W9)."""
    required_roles = roles_allowed_to(business_center, action)
    held_roles = user.roles_in(business_center.id)
    if held_roles.isdisjoint(required_roles):
        raise PermissionDeniedError(user.id, business_center.id, action, required_roles, held_roles)
