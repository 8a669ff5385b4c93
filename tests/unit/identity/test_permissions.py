"""Roles and permissions: the table, deny by default, and the ordering tokens rely on."""

from __future__ import annotations

import pytest

from strongroom.identity.errors import InvalidRole
from strongroom.identity.models import Role
from strongroom.identity.permissions import (
    ROLE_PERMISSIONS,
    Permission,
    parse_role,
    role_allows,
    role_at_most,
)


def test_each_role_holds_what_the_design_says() -> None:
    assert ROLE_PERMISSIONS[Role.VIEWER] == {Permission.AUTHENTICATED, Permission.COUNT}
    assert ROLE_PERMISSIONS[Role.ANALYST] == ROLE_PERMISSIONS[Role.VIEWER] | {
        Permission.ANALYSE, Permission.EXPORT}
    assert ROLE_PERMISSIONS[Role.ADMIN] == ROLE_PERMISSIONS[Role.ANALYST] | {
        Permission.USERS_MANAGE, Permission.POLICY_MANAGE, Permission.AUDIT_READ,
        Permission.PERSONAL_VIEW, Permission.TOKEN_REVERSE}


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ANALYST])
def test_only_admins_reverse_privacy_tokens(role: Role) -> None:
    """A token in an export is only as good as this: nobody below admin turns it back."""
    assert role_allows(Role.ADMIN, Permission.TOKEN_REVERSE)
    assert not role_allows(role, Permission.TOKEN_REVERSE)


@pytest.mark.parametrize("role", list(Role))
def test_no_tenant_role_holds_operator_or_public(role: Role) -> None:
    assert not role_allows(role, Permission.OPERATOR)
    assert not role_allows(role, Permission.PUBLIC)


def test_every_role_is_in_the_table() -> None:
    assert set(ROLE_PERMISSIONS) == set(Role)


@pytest.mark.parametrize(("role", "ceiling", "expected"), [
    (Role.VIEWER, Role.VIEWER, True), (Role.VIEWER, Role.ADMIN, True),
    (Role.ANALYST, Role.VIEWER, False), (Role.ADMIN, Role.ANALYST, False),
    (Role.ADMIN, Role.ADMIN, True),
])
def test_role_at_most(role: Role, ceiling: Role, expected: bool) -> None:
    assert role_at_most(role, ceiling) is expected
    # The ordering agrees with the permission sets.
    assert expected is (ROLE_PERMISSIONS[role] <= ROLE_PERMISSIONS[ceiling])


@pytest.mark.parametrize("raw", ["Admin", "root", "", "admin ", "operator"])
def test_unknown_roles_are_refused(raw: str) -> None:
    with pytest.raises(InvalidRole, match="admin, analyst, viewer"):
        parse_role(raw)


def test_known_roles_parse() -> None:
    assert [parse_role(r.value) for r in Role] == list(Role)
