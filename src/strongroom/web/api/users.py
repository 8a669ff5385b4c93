"""Tenant admins manage their tenant's users."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request

from strongroom.audit import EventTag
from strongroom.errors import Conflict
from strongroom.identity import services as identity
from strongroom.identity.models import Role, User
from strongroom.identity.permissions import Permission
from strongroom.web.api.schemas import UserCreate, UserOut, UserUpdate
from strongroom.web.api.session import user_out
from strongroom.web.auth import current, deployment_of, route_options, tenant_of

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.get("", response_model=list[UserOut], **route_options(Permission.USERS_MANAGE))
def list_users(request: Request) -> list[UserOut]:
    """Every user of your tenant."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        return [user_out(request, session, u)
                for u in identity.list_users(session, principal.tenant_id)]


@router.post("", response_model=UserOut, status_code=201,
             **route_options(Permission.USERS_MANAGE))
def create_user(body: UserCreate, request: Request) -> UserOut:
    """Add a user to your tenant with a first password (at least 15 characters)."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        tenant = tenant_of(session, principal)
        user = identity.create_user(session, dep.keys, tenant, body.email, body.role,
                                    body.password)
        dep.audit.record_event(session, EventTag.USER_CREATE, actor=principal.actor(),
                               tenant=tenant.id, target=f"user:{user.id}",
                               details={"role": user.role})
        return user_out(request, session, user)


@router.get("/{user_id}", response_model=UserOut, **route_options(Permission.USERS_MANAGE))
def get_user(user_id: str, request: Request) -> UserOut:
    """One user of your tenant."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        return user_out(request, session, identity.get_user(session, principal.tenant_id, user_id))


def _active_admins(session: sa.orm.Session, tenant_id: str) -> int:
    return int(session.scalar(
        sa.select(sa.func.count()).select_from(User).where(
            User.tenant_id == tenant_id, User.role == Role.ADMIN.value, User.disabled.is_(False)
        )
    ) or 0)


@router.patch("/{user_id}", response_model=UserOut, **route_options(Permission.USERS_MANAGE))
def update_user(user_id: str, body: UserUpdate, request: Request) -> UserOut:
    """Change a user's role, or disable them (which ends their sessions at once)."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        user = identity.get_user(session, principal.tenant_id, user_id)
        was_admin = user.role == Role.ADMIN.value and not user.disabled
        if body.role is not None:
            user.role = body.role.value
        ended = 0
        if body.disabled is not None:
            ended = identity.set_disabled(session, user, body.disabled)
        session.flush()
        if was_admin and _active_admins(session, principal.tenant_id) == 0:
            raise Conflict("a tenant must keep at least one active admin")
        tag = EventTag.USER_DISABLE if body.disabled else EventTag.USER_UPDATE
        dep.audit.record_event(session, tag, actor=principal.actor(), tenant=principal.tenant_id,
                               target=f"user:{user.id}",
                               details={"role": user.role, "disabled": user.disabled,
                                        "sessions_ended": ended})
        return user_out(request, session, user)
