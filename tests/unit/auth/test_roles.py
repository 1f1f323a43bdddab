"""Roles and tenancy per Business Center (W9): the one table every service authorizes with."""

import pytest

from adledger_auth.roles import Action, PermissionDeniedError, Role, authorize, is_allowed, roles_allowed_to
from tests.unit.wallet.factories import Member, user

MONEY_ACTIONS = (Action.CHANGE_BUDGET, Action.ALLOCATE_FUNDS, Action.REQUEST_TOP_UP, Action.PLACE_ORDER)


@pytest.mark.parametrize("action", MONEY_ACTIONS)
@pytest.mark.parametrize("role", [Role.ADMIN, Role.FINANCE_MANAGER])
def test_w9_finance_manager_and_admin_may_change_budgets_and_allocate_funds(action: Action, role: Role) -> None:
    authorize(user("u-1", "bc-1", role), "bc-1", action, finance_roles_set_up=True)


@pytest.mark.parametrize("action", MONEY_ACTIONS)
@pytest.mark.parametrize("role", [Role.OPERATOR, Role.ANALYST])
def test_w9_operator_and_analyst_may_not_change_budgets_or_allocate_funds(action: Action, role: Role) -> None:
    with pytest.raises(PermissionDeniedError) as caught:
        authorize(user("u-1", "bc-1", role), "bc-1", action, finance_roles_set_up=True)
    error = caught.value
    assert (error.business_center_id, error.action) == ("bc-1", action)
    assert "needs one of (admin, finance_manager)" in str(error) and f"has {role}" in str(error)


@pytest.mark.parametrize("action", MONEY_ACTIONS)
def test_w9_without_finance_roles_only_admins_may_change_budgets_or_allocate_funds(action: Action) -> None:
    authorize(user("u-1", "bc-1", Role.ADMIN), "bc-1", action, finance_roles_set_up=False)
    with pytest.raises(PermissionDeniedError) as caught:
        authorize(user("u-2", "bc-1", Role.FINANCE_MANAGER), "bc-1", action, finance_roles_set_up=False)
    assert "needs one of (admin)" in str(caught.value)


@pytest.mark.parametrize("action", list(Action))
def test_w9_user_of_one_bc_cannot_act_in_another(action: Action) -> None:
    admin_of_first = user("u-1", "bc-1", *Role)
    with pytest.raises(PermissionDeniedError) as caught:
        authorize(admin_of_first, "bc-2", action, finance_roles_set_up=True)
    assert caught.value.business_center_id == "bc-2"
    assert "has no role there" in str(caught.value)


@pytest.mark.parametrize("role", list(Role))
def test_w9_every_role_may_read_its_own_business_center_and_send(role: Role) -> None:
    assert is_allowed({role}, Action.READ, finance_roles_set_up=True)
    assert is_allowed({role}, Action.SEND, finance_roles_set_up=False)


@pytest.mark.parametrize("finance_roles_set_up", [True, False])
def test_w9_only_admin_may_enable_aba_manage_users_open_accounts_or_manage_sends(finance_roles_set_up: bool) -> None:
    for action in (Action.ENABLE_ABA, Action.MANAGE_USERS, Action.OPEN_AD_ACCOUNT, Action.MANAGE_SENDS):
        assert roles_allowed_to(action, finance_roles_set_up=finance_roles_set_up) == frozenset({Role.ADMIN})
        assert not is_allowed({Role.FINANCE_MANAGER, Role.OPERATOR, Role.ANALYST}, action,
                              finance_roles_set_up=finance_roles_set_up)


def test_w9_operator_manages_campaigns_and_finance_manager_does_not() -> None:
    assert is_allowed({Role.OPERATOR}, Action.MANAGE_CAMPAIGNS, finance_roles_set_up=True)
    assert not is_allowed({Role.FINANCE_MANAGER}, Action.MANAGE_CAMPAIGNS, finance_roles_set_up=True)


def test_w9_roles_in_several_business_centers_are_kept_apart() -> None:
    member = Member("u-1", {"bc-1": frozenset({Role.ANALYST}), "bc-2": frozenset({Role.ADMIN})})
    with pytest.raises(PermissionDeniedError):
        authorize(member, "bc-1", Action.ALLOCATE_FUNDS, finance_roles_set_up=True)
    authorize(member, "bc-2", Action.ALLOCATE_FUNDS, finance_roles_set_up=True)
