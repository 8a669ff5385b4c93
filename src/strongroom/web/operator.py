"""The operator plane: its own listener (default 127.0.0.1:8444), accounts and routes.

Operators always log in with a password and a one-time code. The tenant plane's
listener never routes here, and tenant sessions or tokens are not accepted.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from strongroom.audit import Actor, EventTag, Outcome, Sensitive
from strongroom.audit import query as audit_query
from strongroom.identity import services as identity
from strongroom.identity import sessions, throttle
from strongroom.identity.errors import (
    BadCredentials,
    LoginThrottled,
    MfaRequired,
    PermissionDenied,
)
from strongroom.identity.models import Operator, Plane
from strongroom.identity.permissions import Permission
from strongroom.tenancy.services import get_tenant, list_tenants
from strongroom.web.api.audit import FilterQuery, audit_page
from strongroom.web.api.schemas import (
    AuditPage,
    OperatorLoginRequest,
    OperatorSessionOut,
    TenantOut,
)
from strongroom.web.api.session import clear_session_cookie, set_session_cookie
from strongroom.web.auth import (
    anonymous_actor,
    client_address,
    current,
    deployment_of,
    route_options,
    session_policy,
)

router = APIRouter(prefix="/operator/v1", tags=["operator"])


def _options(permission: Permission) -> Any:
    return route_options(permission, Plane.OPERATOR)


@router.post("/login", response_model=OperatorSessionOut, **_options(Permission.PUBLIC))
def login(body: OperatorLoginRequest, request: Request, response: Response) -> OperatorSessionOut:
    """Operator login: name, password and a one-time (or recovery) code, always."""
    dep = deployment_of(request)
    address = client_address(request)
    limiter = request.app.state.limiter
    limiter.hit(limiter.login, "operator-login", address)
    with dep.transaction() as session:
        keys = identity.login_keys(dep.keys.identity_key(session), "operator", body.name, address)
    try:
        with dep.transaction() as session:
            identity.check_throttle(session, keys)
        with dep.transaction() as session:
            operator = identity.authenticate_operator(
                session, dep.keys, body.name, body.password, body.code
            )
            token, record = sessions.new_session(
                session, Plane.OPERATOR, operator.id, None, session_policy(dep)
            )
            throttle.reset(session, keys.account)
            actor = Actor("operator", operator.id, "operator", f"session:{record.id_hash[:16]}",
                          address, request.headers.get("user-agent"))
            dep.audit.record_event(session, EventTag.OPERATOR_LOGIN, actor=actor,
                                   target=f"operator:{operator.id}")
            out = OperatorSessionOut(
                operator=operator.name,
                csrf_token=sessions.csrf_token(dep.keys.identity_key(session), record.id_hash),
                expires_at=record.expires_at,
            )
    except (BadCredentials, MfaRequired, LoginThrottled) as exc:
        details: dict[str, object] = {"name": Sensitive(body.name)}
        with dep.transaction() as session:
            # Only a wrong password or code counts: a login without a code tested nothing.
            if isinstance(exc, BadCredentials):
                counted = identity.record_login_failure(session, keys)
                details |= {"failures": counted.failures, "locked_seconds": counted.locked_seconds}
            dep.audit.record_event(
                session, EventTag.OPERATOR_LOGIN_FAILED, actor=anonymous_actor(request),
                outcome=Outcome.DENIED, reason=exc.slug, details=details,
            )
        raise
    set_session_cookie(response, sessions.OPERATOR_COOKIE_NAME, token,
                       dep.settings.session_absolute_hours * 3600)
    return out


@router.post("/logout", status_code=204, **_options(Permission.OPERATOR))
def logout(request: Request, response: Response) -> None:
    """End this operator session."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        if principal.session_id is not None:
            sessions.end_by_id(session, principal.session_id)
        dep.audit.record_event(session, EventTag.OPERATOR_LOGOUT, actor=principal.actor())
    clear_session_cookie(response, sessions.OPERATOR_COOKIE_NAME)


@router.get("/me", response_model=OperatorSessionOut, **_options(Permission.OPERATOR))
def me(request: Request) -> OperatorSessionOut:
    """Who you are, and the CSRF token for this session."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        operator = session.get(Operator, principal.principal_id)
        if operator is None or principal.session_id is None or principal.session_expires_at is None:
            raise PermissionDenied("the operator account no longer exists")
        return OperatorSessionOut(
            operator=operator.name,
            csrf_token=sessions.csrf_token(dep.keys.identity_key(session), principal.session_id),
            expires_at=principal.session_expires_at,
        )


@router.get("/tenants", response_model=list[TenantOut], **_options(Permission.OPERATOR))
def tenants(request: Request) -> list[TenantOut]:
    """Every tenant with its status."""
    dep = deployment_of(request)
    with dep.transaction() as session:
        return [TenantOut(slug=t.slug, name=t.name, status=t.status)
                for t in list_tenants(session)]


@router.get("/audit/events", response_model=AuditPage, **_options(Permission.OPERATOR))
def audit_events(
    request: Request,
    raw: FilterQuery,
    tenant: Annotated[
        str | None, Query(max_length=40, description="Only this tenant (slug)")
    ] = None,
) -> AuditPage:
    """Every tenant's and the deployment's audit events, oldest first."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        tenant_id = get_tenant(session, tenant).id if tenant else None
        flt = audit_query.parse_filter(raw, tenant_id)
        return audit_page(session, dep.audit, principal.actor(), EventTag.AUDIT_READ, flt, None)
