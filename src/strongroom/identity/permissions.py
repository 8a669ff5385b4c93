"""Roles and what they may do. Deny by default: a route names one permission it needs."""

from __future__ import annotations

from enum import StrEnum

from strongroom.identity.errors import InvalidRole
from strongroom.identity.models import Role


class Permission(StrEnum):
    PUBLIC = "public"  # no authentication: login and health only
    AUTHENTICATED = "authenticated"  # any signed-in user: their own session, profile, tokens
    COUNT = "data:count"  # counts and cubes, no record-level data
    ANALYSE = "data:analyse"  # upload, build, preview, SQL
    EXPORT = "data:export"
    PERSONAL_VIEW = "data:personal"  # see personal columns unmasked (preview, SQL, selections)
    USERS_MANAGE = "users:manage"
    POLICY_MANAGE = "policy:manage"
    AUDIT_READ = "audit:read"
    # Turn privacy tokens in exports back into values (a permission name, not a secret).
    TOKEN_REVERSE = "privacy:reverse"  # noqa: S105  # nosec B105
    OPERATOR = "operator"  # operator plane only


_VIEWER = frozenset({Permission.AUTHENTICATED, Permission.COUNT})
_ANALYST = _VIEWER | {Permission.ANALYSE, Permission.EXPORT}
_ADMIN = _ANALYST | {
    Permission.USERS_MANAGE, Permission.POLICY_MANAGE, Permission.AUDIT_READ,
    Permission.PERSONAL_VIEW, Permission.TOKEN_REVERSE,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: _VIEWER,
    Role.ANALYST: _ANALYST,
    Role.ADMIN: _ADMIN,
}
_RANK = {Role.VIEWER: 0, Role.ANALYST: 1, Role.ADMIN: 2}


def parse_role(raw: str) -> Role:
    try:
        return Role(raw)
    except ValueError:
        raise InvalidRole("role must be one of admin, analyst, viewer") from None


def role_allows(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


def role_at_most(role: Role, ceiling: Role) -> bool:
    """True when ``role`` grants nothing that ``ceiling`` does not."""
    return _RANK[role] <= _RANK[ceiling]
