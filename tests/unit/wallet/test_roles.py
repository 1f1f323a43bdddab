"""Roles and tenancy per Business Center (W9)."""

import pytest

from adledger_wallet.domain.errors import PermissionDeniedError
from adledger_wallet.domain.roles import Action, Role, User, authorize, is_authorized, roles_allowed_to
from tests.unit.wallet.factories import business_center, user

MONEY_ACTIONS = (Action.CHANGE_BUDGET, Action.ALLOCATE_FUNDS, Action.REQUEST_TOP_UP)


@pytest.mark.parametrize("action", MONEY_ACTIONS)
@pytest.mark.parametrize("role", [Role.ADMIN, Role.FINANCE_MANAGER])
def test_w9_finance_manager_and_admin_may_change_budgets_and_allocate_funds(action: Action, role: Role) -> None:
    authorize(user("u-1", "bc-1", role), business_center(finance_roles_enabled=True), action)


@pytest.mark.parametrize("action", MONEY_ACTIONS)
@pytest.mark.parametrize("role", [Role.OPERATOR, Role.ANALYST])
def test_w9_operator_and_analyst_may_not_change_budgets_or_allocate_funds(action: Action, role: Role) -> None:
    with pytest.raises(PermissionDeniedError) as caught:
        authorize(user("u-1", "bc-1", role), business_center(finance_roles_enabled=True), action)
    error = caught.value
    assert (error.user_id, error.business_center_id, error.action) == ("u-1", "bc-1", action)
    assert error.required_roles == frozenset({Role.ADMIN, Role.FINANCE_MANAGER})
    assert error.held_roles == frozenset({role})


@pytest.mark.parametrize("action", MONEY_ACTIONS)
def test_w9_without_finance_roles_only_admins_may_change_budgets_or_allocate_funds(action: Action) -> None:
    center = business_center(finance_roles_enabled=False)
    authorize(user("u-1", "bc-1", Role.ADMIN), center, action)
    with pytest.raises(PermissionDeniedError) as caught:
        authorize(user("u-2", "bc-1", Role.FINANCE_MANAGER), center, action)
    assert caught.value.required_roles == frozenset({Role.ADMIN})
    assert "needs one of (admin)" in str(caught.value)


@pytest.mark.parametrize("action", list(Action))
def test_w9_user_of_one_bc_cannot_read_another(action: Action) -> None:
    admin_of_first = user("u-1", "bc-1", *Role)
    with pytest.raises(PermissionDeniedError) as caught:
        authorize(admin_of_first, business_center("bc-2"), action)
    assert caught.value.business_center_id == "bc-2"
    assert caught.value.held_roles == frozenset()
    assert "has no role there" in str(caught.value)


@pytest.mark.parametrize("role", list(Role))
def test_w9_every_role_may_read_its_own_business_center(role: Role) -> None:
    assert is_authorized(user("u-1", "bc-1", role), business_center(), Action.READ)


@pytest.mark.parametrize("finance_roles_enabled", [True, False])
def test_w9_only_admin_may_enable_aba_or_manage_users(finance_roles_enabled: bool) -> None:
    center = business_center(finance_roles_enabled=finance_roles_enabled)
    for action in (Action.ENABLE_ABA, Action.MANAGE_USERS):
        assert roles_allowed_to(center, action) == frozenset({Role.ADMIN})
        assert is_authorized(user("u-1", "bc-1", Role.ADMIN), center, action)
        assert not is_authorized(user("u-2", "bc-1", Role.FINANCE_MANAGER, Role.OPERATOR, Role.ANALYST), center, action)


def test_w9_operator_manages_campaigns_and_finance_manager_does_not() -> None:
    center = business_center()
    assert is_authorized(user("u-1", "bc-1", Role.OPERATOR), center, Action.MANAGE_CAMPAIGNS)
    assert not is_authorized(user("u-2", "bc-1", Role.FINANCE_MANAGER), center, Action.MANAGE_CAMPAIGNS)


def test_w9_roles_in_several_business_centers_are_kept_apart() -> None:
    member = User("u-1", {"bc-1": frozenset({Role.ANALYST}), "bc-2": frozenset({Role.ADMIN})})
    assert not is_authorized(member, business_center("bc-1"), Action.ALLOCATE_FUNDS)
    assert is_authorized(member, business_center("bc-2"), Action.ALLOCATE_FUNDS)


def test_w9_a_user_is_immutable_even_when_the_callers_dict_changes() -> None:
    roles = {"bc-1": frozenset({Role.ANALYST})}
    member = User("u-1", roles)
    roles["bc-1"] = frozenset({Role.ADMIN})
    assert member.roles_in("bc-1") == frozenset({Role.ANALYST})
