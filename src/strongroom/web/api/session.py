"""Logging in and out, and a user's own account: password, email, MFA."""

from __future__ import annotations

import contextlib

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from strongroom.audit import Actor, EventTag, Outcome, Sensitive
from strongroom.errors import InvalidInput, StrongroomError
from strongroom.firewall.addresses import allowed
from strongroom.identity import services as identity
from strongroom.identity import sessions, throttle
from strongroom.identity.errors import (
    AddressNotAllowed,
    BadCredentials,
    LoginThrottled,
    MfaRequired,
    PermissionDenied,
    ReauthenticationRequired,
)
from strongroom.identity.models import Plane, Role, User
from strongroom.identity.permissions import Permission
from strongroom.telemetry import Subject, UsageFeature, record_soon
from strongroom.tenancy.errors import TenantSuspended
from strongroom.tenancy.models import Tenant
from strongroom.tenancy.services import SLUG_PATTERN
from strongroom.web.api.schemas import (
    EmailChange,
    LoginRequest,
    MfaConfirm,
    MfaEnrolment,
    PasswordChange,
    Reauth,
    RecoveryCodes,
    SessionOut,
    TenantOut,
    UserOut,
)
from strongroom.web.auth import (
    Principal,
    anonymous_actor,
    client_address,
    current,
    deployment_of,
    route_options,
    session_policy,
)

router = APIRouter(prefix="/api/v1", tags=["session"])
_LOGIN_FAILURES = (BadCredentials, AddressNotAllowed, TenantSuspended)


def user_out(request: Request, session: Session, user: User) -> UserOut:
    dep = deployment_of(request)
    return UserOut(
        id=user.id, email=identity.user_email(dep.keys, session, user), role=Role(user.role),
        disabled=user.disabled, mfa_enabled=user.mfa_enabled, created_at=user.created_at,
    )


def _tenant_by_slug(session: Session, slug: str) -> Tenant | None:
    if not SLUG_PATTERN.fullmatch(slug):
        return None
    return session.scalar(sa.select(Tenant).where(Tenant.slug == slug))


def set_session_cookie(response: Response, name: str, token: str, max_age: int) -> None:
    response.set_cookie(name, token, max_age=max_age, path="/", secure=True, httponly=True,
                        samesite="strict")


def clear_session_cookie(response: Response, name: str) -> None:
    """Drop the cookie with the same attributes it was set with, so browsers match it."""
    response.delete_cookie(name, path="/", secure=True, httponly=True, samesite="strict")


@router.post("/login", response_model=SessionOut, **route_options(Permission.PUBLIC))
def login(body: LoginRequest, request: Request, response: Response) -> SessionOut:
    """Log in with tenant, email, password and (when enrolled) a one-time or recovery code."""
    dep = deployment_of(request)
    address = client_address(request)
    agent = request.headers.get("user-agent")
    dep_limiter = request.app.state.limiter
    dep_limiter.hit(dep_limiter.login, "login", address)
    with dep.transaction() as session:
        mac = dep.keys.identity_key(session)
        keys = identity.login_keys(mac, body.tenant, body.email.strip().casefold(), address)
    failure_details = {"tenant": body.tenant[:40], "email": Sensitive(body.email)}
    try:
        with dep.transaction() as session:
            identity.check_throttle(session, keys)
    except LoginThrottled as exc:
        _record_failure(request, None, keys, exc, failure_details, count=False)
        raise
    tenant_id: str | None = None
    try:
        with dep.transaction() as session:
            tenant = _tenant_by_slug(session, body.tenant)
            tenant_id = tenant.id if tenant is not None else None
            if tenant is not None:
                policy = identity.tenant_policy(session, tenant.id)
                if not allowed(address, identity.allowlist_networks(policy)):
                    raise AddressNotAllowed("this address is not in the tenant's allow-list")
            user = identity.authenticate_user(
                session, dep.keys, tenant, body.email, body.password, body.code
            )
            if tenant is None or not tenant.is_active:
                raise TenantSuspended("this tenant is suspended")
            token, record = sessions.new_session(
                session, Plane.TENANT, user.id, tenant.id, session_policy(dep)
            )
            throttle.reset(session, keys.account)
            actor = Actor("user", user.id, user.role, f"session:{record.id_hash[:16]}",
                          address, agent)
            dep.audit.record_event(session, EventTag.SESSION_LOGIN, actor=actor,
                                   tenant=tenant.id, target=f"user:{user.id}")
            out = SessionOut(
                user=user_out(request, session, user),
                tenant=TenantOut(slug=tenant.slug, name=tenant.name, status=tenant.status),
                csrf_token=sessions.csrf_token(dep.keys.identity_key(session), record.id_hash),
                expires_at=record.expires_at,
                mfa_required=policy.require_mfa and not user.mfa_enabled,
            )
    except MfaRequired as exc:
        # The password was right; the user is asked for their code. Audited, not counted.
        _record_failure(request, tenant_id, keys, exc, failure_details, count=False)
        raise
    except _LOGIN_FAILURES as exc:
        _record_failure(request, tenant_id, keys, exc, failure_details)
        raise
    set_session_cookie(response, sessions.COOKIE_NAME, token,
                       dep.settings.session_absolute_hours * 3600)
    record_soon(dep, Subject(out.user.id, tenant_id), UsageFeature.LOGIN)
    return out


def _record_failure(
    request: Request, tenant_id: str | None, keys: identity.LoginKeys, exc: StrongroomError,
    details: dict[str, object], *, count: bool = True,
) -> None:
    dep = deployment_of(request)
    with dep.transaction() as session:
        if count:
            counted = identity.record_login_failure(session, keys)
            # A failure that sets a lock says so: the lock is audited with the failure.
            details = {**details, "failures": counted.failures,
                       "locked_seconds": counted.locked_seconds}
        dep.audit.record_event(
            session, EventTag.SESSION_LOGIN_FAILED, actor=anonymous_actor(request),
            tenant=tenant_id, outcome=Outcome.DENIED, reason=exc.slug,
            details=details,
        )


@router.post("/logout", status_code=204, **route_options(Permission.AUTHENTICATED))
def logout(request: Request, response: Response) -> None:
    """End this session."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        if principal.session_id is not None:
            sessions.end_by_id(session, principal.session_id)
        dep.audit.record_event(session, EventTag.SESSION_LOGOUT, actor=principal.actor(),
                               tenant=principal.tenant_id)
    clear_session_cookie(response, sessions.COOKIE_NAME)


@router.post("/logout-everywhere", status_code=204, **route_options(Permission.AUTHENTICATED))
def logout_everywhere(request: Request, response: Response) -> None:
    """End every session of this user, on every device."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        ended = sessions.end_all(session, principal.principal_id)
        dep.audit.record_event(session, EventTag.SESSION_LOGOUT_ALL, actor=principal.actor(),
                               tenant=principal.tenant_id, details={"sessions": ended})
    clear_session_cookie(response, sessions.COOKIE_NAME)


@router.get("/me", response_model=SessionOut, **route_options(Permission.AUTHENTICATED))
def me(request: Request) -> SessionOut:
    """Who you are, your tenant, and the CSRF token for this session."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        user = session.get(User, principal.principal_id)
        tenant = session.get(Tenant, principal.tenant_id)
        if user is None or tenant is None:
            raise PermissionDenied("the account no longer exists")
        csrf = None
        if principal.session_id is not None:
            csrf = sessions.csrf_token(dep.keys.identity_key(session), principal.session_id)
        return SessionOut(
            user=user_out(request, session, user),
            tenant=TenantOut(slug=tenant.slug, name=tenant.name, status=tenant.status),
            csrf_token=csrf,
            expires_at=principal.session_expires_at,
            mfa_required=principal.mfa_pending,
        )


@contextlib.contextmanager
def _own_account(request: Request, password: str | None, tag: EventTag):  # type: ignore[no-untyped-def]
    """The signed-in user's row in a transaction, after re-authentication; audited."""
    principal = current(request)
    if principal.session_id is None:
        raise PermissionDenied("change your account in an interactive session, not with a token")
    dep = deployment_of(request)
    with dep.transaction() as session:
        user = session.get(User, principal.principal_id)
        tenant = session.get(Tenant, principal.tenant_id)
        if user is None or tenant is None:
            raise PermissionDenied("the account no longer exists")
        if password is not None:
            try:
                identity.confirm_password(user, password)
            except ReauthenticationRequired as exc:
                _deny(request, principal, tag, exc)
                raise
        yield session, user, tenant
        dep.audit.record_event(session, tag, actor=principal.actor(), tenant=tenant.id,
                               target=f"user:{user.id}")


def _deny(request: Request, principal: Principal, tag: EventTag, exc: StrongroomError) -> None:
    dep = deployment_of(request)
    with dep.transaction() as session:
        dep.audit.record_event(session, tag, actor=principal.actor(), tenant=principal.tenant_id,
                               outcome=Outcome.DENIED, reason=exc.slug)


@router.post("/me/password", status_code=204, **route_options(Permission.AUTHENTICATED))
def change_password(body: PasswordChange, request: Request) -> None:
    """Change your password (needs the current one)."""
    dep = deployment_of(request)
    with _own_account(request, body.current_password, EventTag.PASSWORD_CHANGE) as (
        session, user, tenant,
    ):
        identity.change_password(session, tenant, dep.keys, user, body.new_password)


@router.post("/me/email", status_code=204, **route_options(Permission.AUTHENTICATED))
def change_email(body: EmailChange, request: Request) -> None:
    """Change your email (needs your password)."""
    dep = deployment_of(request)
    with _own_account(request, body.current_password, EventTag.EMAIL_CHANGE) as (
        session, user, tenant,
    ):
        identity.change_email(session, dep.keys, tenant, user, body.email)


@router.post("/me/mfa", response_model=MfaEnrolment, **route_options(Permission.AUTHENTICATED))
def begin_mfa(body: Reauth, request: Request) -> MfaEnrolment:
    """Start enrolling an authenticator app: returns the secret, URI and a QR code (SVG)."""
    dep = deployment_of(request)
    with _own_account(request, body.current_password, EventTag.MFA_ENROL) as (
        session, user, _tenant,
    ):
        if user.mfa_enabled:
            raise InvalidInput("MFA is already on; turn it off first to enrol a new device")
        return MfaEnrolment(**identity.begin_mfa_enrolment(session, dep.keys, user))


@router.post("/me/mfa/confirm", response_model=RecoveryCodes,
             **route_options(Permission.AUTHENTICATED))
def confirm_mfa(body: MfaConfirm, request: Request) -> RecoveryCodes:
    """Finish enrolment with a code from the app; returns recovery codes, shown once."""
    dep = deployment_of(request)
    with _own_account(request, None, EventTag.MFA_ENROL) as (session, user, _tenant):
        codes = identity.confirm_mfa_enrolment(session, dep.keys, user, body.code)
    return RecoveryCodes(recovery_codes=codes)


@router.post("/me/mfa/disable", status_code=204, **route_options(Permission.AUTHENTICATED))
def disable_mfa(body: Reauth, request: Request) -> None:
    """Turn MFA off (needs your password; refused where the tenant requires MFA)."""
    with _own_account(request, None, EventTag.MFA_DISABLE) as (session, user, tenant):
        policy = identity.tenant_policy(session, tenant.id)
        identity.disable_mfa(session, policy, user, body.current_password)
