"""Who is asking, and may they: the one dependency every route declares.

``guard(Permission.X)`` authenticates the request (API token in
``Authorization: Bearer``, else the plane's session cookie), then applies, in
order: the tenant is active, the client address is inside the tenant's
allow-list, cookie-authenticated unsafe methods carry the CSRF token, MFA is
enrolled where the tenant requires it, and the role holds the permission.
Refusals of presented credentials are audited with their reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyCookie, HTTPBearer
from sqlalchemy.orm import Session

from strongroom.audit import Actor, EventTag, Outcome
from strongroom.deployment import Deployment
from strongroom.errors import StrongroomError
from strongroom.firewall.addresses import allowed
from strongroom.identity import services as identity
from strongroom.identity import sessions, tokens
from strongroom.identity.errors import (
    AddressNotAllowed,
    CsrfFailed,
    NotAuthenticated,
    PermissionDenied,
)
from strongroom.identity.models import Operator, Plane, Role, User
from strongroom.identity.permissions import Permission, role_allows, role_at_most
from strongroom.tenancy.models import Tenant
from strongroom.web.api.schemas import Problem
from strongroom.web.problems import PROBLEM_TYPE

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"
PERMISSION_KEY = "x-permission"


@dataclasses.dataclass
class Principal:
    """Who is asking, as plain values (no ORM rows, so it outlives any transaction)."""

    plane: Plane
    principal_id: str
    role: Role | None
    tenant: str | None
    address: str
    user_agent: str | None
    session_id: str | None = None
    session_expires_at: dt.datetime | None = None
    token_id: str | None = None
    mfa_pending: bool = False

    @property
    def tenant_id(self) -> str:
        if self.tenant is None:
            raise PermissionDenied("this route needs a tenant user")
        return self.tenant

    def actor(self) -> Actor:
        if self.token_id is not None:
            handle: str | None = f"token:{self.token_id}"
        elif self.session_id is not None:
            handle = f"session:{self.session_id[:16]}"
        else:
            handle = None
        return Actor(
            kind="operator" if self.plane is Plane.OPERATOR else "user",
            id=self.principal_id,
            role=self.role.value if self.role else "operator",
            session=handle,
            address=self.address,
            user_agent=self.user_agent,
        )


def session_policy(dep: Deployment) -> sessions.SessionPolicy:
    return sessions.SessionPolicy(
        idle=dt.timedelta(minutes=dep.settings.session_idle_minutes),
        absolute=dt.timedelta(hours=dep.settings.session_absolute_hours),
    )


def deployment_of(request: Request) -> Deployment:
    dep: Deployment = request.app.state.deployment
    return dep


def client_address(request: Request) -> str:
    return str(request.scope.get("state", {}).get("client_address") or "unknown")


def anonymous_actor(request: Request) -> Actor:
    return Actor(kind="anonymous", address=client_address(request),
                 user_agent=request.headers.get("user-agent"))


def record_denial(
    request: Request, actor: Actor, exc: StrongroomError, tenant_id: str | None = None,
    tag: EventTag = EventTag.ACCESS_DENIED,
) -> None:
    """Audit a refusal in its own transaction (the refused request changes nothing)."""
    dep = deployment_of(request)
    with dep.transaction() as session:
        dep.audit.record_event(
            session, tag, actor=actor, tenant=tenant_id,
            target=f"route:{request.method} {_route_path(request)}",
            outcome=Outcome.DENIED, reason=exc.slug,
        )


def _route_path(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", request.url.path))[:100]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise NotAuthenticated("the Authorization header must be 'Bearer <token>'")
    return value.strip()


def _resolve(request: Request, session: Session, plane: Plane) -> Principal:
    dep = deployment_of(request)
    address = client_address(request)
    agent = request.headers.get("user-agent")
    policy = session_policy(dep)
    bearer = _bearer(request)
    if bearer is not None:
        if plane is not Plane.TENANT:
            raise NotAuthenticated("the operator API takes no API tokens; log in")
        token = tokens.resolve_token(session, bearer)
        if token is None:
            raise NotAuthenticated("the API token is unknown, expired or revoked")
        user = session.get(User, token.user_id)
        if user is None or user.disabled:
            raise NotAuthenticated("the API token is unknown, expired or revoked")
        # A token never outranks its user: demoting the user demotes their tokens at once.
        role = Role(token.role)
        if not role_at_most(role, Role(user.role)):
            role = Role(user.role)
        return Principal(plane, user.id, role, token.tenant_id, address, agent,
                         token_id=token.id)
    cookie_name = sessions.COOKIE_NAME if plane is Plane.TENANT else sessions.OPERATOR_COOKIE_NAME
    cookie = request.cookies.get(cookie_name)
    if not cookie:
        raise NotAuthenticated("log in first")
    record = sessions.resolve(session, cookie, plane, policy)
    if record is None:
        raise NotAuthenticated("the session has ended; log in again")
    if plane is Plane.OPERATOR:
        operator = session.get(Operator, record.principal_id)
        if operator is None or operator.disabled:
            raise NotAuthenticated("the session has ended; log in again")
        principal = Principal(plane, operator.id, None, None, address, agent,
                              session_id=record.id_hash, session_expires_at=record.expires_at)
    else:
        user = session.get(User, record.principal_id)
        if user is None or user.disabled:
            raise NotAuthenticated("the session has ended; log in again")
        principal = Principal(plane, user.id, Role(user.role), user.tenant_id, address, agent,
                              session_id=record.id_hash, session_expires_at=record.expires_at)
    # Both planes: a cookie rides along on cross-site requests, the header does not.
    if request.method not in SAFE_METHODS and not sessions.csrf_ok(
        dep.keys.identity_key(session), record.id_hash, request.headers.get(CSRF_HEADER)
    ):
        raise CsrfFailed(f"send the session's CSRF token in the {CSRF_HEADER} header")
    return principal


def _authorise(session: Session, principal: Principal, permission: Permission) -> None:
    if principal.plane is Plane.OPERATOR:
        if permission is not Permission.OPERATOR:
            raise PermissionDenied("operators use the operator API")
        return
    if permission is Permission.OPERATOR:
        raise PermissionDenied("this route is for operators")
    tenant = session.get(Tenant, principal.tenant) if principal.tenant else None
    if tenant is None or not tenant.is_active:
        raise PermissionDenied("this tenant is suspended")
    policy = identity.tenant_policy(session, tenant.id)
    if not allowed(principal.address, identity.allowlist_networks(policy)):
        raise AddressNotAllowed("this address is not in the tenant's allow-list")
    if policy.require_mfa and principal.token_id is None:
        user = session.get(User, principal.principal_id)
        if user is not None and not user.mfa_enabled:
            principal.mfa_pending = True
            if permission is not Permission.AUTHENTICATED:
                raise PermissionDenied("this tenant requires MFA: enrol an authenticator first")
    if principal.role is None or not role_allows(principal.role, permission):
        raise PermissionDenied(f"your role may not do this (needs {permission.value})")


# Declared so the OpenAPI schema says how each plane authenticates; _resolve reads the
# credentials itself, so these never refuse anything on their own.
_BEARER = HTTPBearer(scheme_name="ApiToken", auto_error=False,
                     description="A tenant API token: Authorization: Bearer sr_...")
_TENANT_COOKIE = APIKeyCookie(name=sessions.COOKIE_NAME, scheme_name="TenantSession",
                              auto_error=False,
                              description="Session cookie from POST /api/v1/login; unsafe "
                              f"methods also need the {CSRF_HEADER} header")
_OPERATOR_COOKIE = APIKeyCookie(name=sessions.OPERATOR_COOKIE_NAME, scheme_name="OperatorSession",
                                auto_error=False,
                                description="Session cookie from POST /operator/v1/login; "
                                f"unsafe methods also need the {CSRF_HEADER} header")


def guard(permission: Permission, plane: Plane = Plane.TENANT) -> Callable[..., Principal | None]:
    """The dependency for a route needing ``permission`` (PUBLIC resolves to None)."""

    def check(request: Request) -> Principal | None:
        if permission is Permission.PUBLIC:
            return None
        dep = deployment_of(request)
        principal: Principal | None = None
        try:
            with dep.transaction() as session:
                principal = _resolve(request, session, plane)
                _authorise(session, principal, permission)
        except NotAuthenticated as exc:
            if request.headers.get("authorization") or request.cookies:
                record_denial(request, anonymous_actor(request), exc)
            raise
        except StrongroomError as exc:
            actor = principal.actor() if principal else anonymous_actor(request)
            record_denial(request, actor, exc, principal.tenant if principal else None)
            raise
        request.state.principal = principal
        return principal

    dependency: Callable[..., Principal | None]
    if permission is Permission.PUBLIC:
        dependency = check
    elif plane is Plane.TENANT:

        def dependency(
            request: Request,
            _token: Annotated[object, Security(_BEARER)] = None,
            _cookie: Annotated[object, Security(_TENANT_COOKIE)] = None,
        ) -> Principal | None:
            return check(request)

    else:

        def dependency(
            request: Request, _cookie: Annotated[object, Security(_OPERATOR_COOKIE)] = None
        ) -> Principal | None:
            return check(request)

    dependency.permission = permission  # type: ignore[attr-defined]
    return dependency


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {PROBLEM_TYPE: {"schema": Problem.model_json_schema()}}}


# Every error answer is a problem document (web.problems); say so for every route.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": _problem_response("The request was refused: an RFC 9457 problem says why"),
    "5XX": _problem_response("The server could not answer: an RFC 9457 problem with an error id"),
}


def route_options(permission: Permission, plane: Plane = Plane.TENANT) -> Any:
    """Keyword arguments for a route decorator: the guard and its declared permission.

    Typed ``Any`` because it is splatted into FastAPI's many-keyword decorators.
    """
    return {
        "dependencies": [Depends(guard(permission, plane))],
        "openapi_extra": {PERMISSION_KEY: permission.value},
        "responses": PROBLEM_RESPONSES,
    }


def current(request: Request) -> Principal:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise NotAuthenticated("log in first")
    return principal


def tenant_of(session: Session, principal: Principal) -> Tenant:
    """The caller's tenant, loaded in ``session``."""
    tenant = session.get(Tenant, principal.tenant_id)
    if tenant is None:
        raise PermissionDenied("the tenant no longer exists")
    return tenant
