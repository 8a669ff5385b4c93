"""API tokens for scripts: shown once, listed without secrets, revocable."""

from __future__ import annotations

from fastapi import APIRouter, Request

from strongroom.audit import EventTag
from strongroom.identity import tokens
from strongroom.identity.errors import PermissionDenied
from strongroom.identity.models import ApiToken, Role, User
from strongroom.identity.permissions import Permission
from strongroom.web.api.schemas import TokenCreate, TokenCreated, TokenOut
from strongroom.web.auth import current, deployment_of, route_options

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])


def _out(token: ApiToken) -> TokenOut:
    return TokenOut(id=token.id, name=token.name, role=Role(token.role), user_id=token.user_id,
                    created_at=token.created_at, expires_at=token.expires_at,
                    revoked_at=token.revoked_at, last_used_at=token.last_used_at)


def _is_admin(role: Role | None) -> bool:
    return role is Role.ADMIN


@router.get("", response_model=list[TokenOut], **route_options(Permission.AUTHENTICATED))
def list_tokens(request: Request) -> list[TokenOut]:
    """Your tokens (admins: every token of the tenant), without their secrets."""
    principal = current(request)
    dep = deployment_of(request)
    owner = None if _is_admin(principal.role) else principal.principal_id
    with dep.transaction() as session:
        return [_out(t) for t in tokens.list_tokens(session, principal.tenant_id, owner)]


@router.post("", response_model=TokenCreated, status_code=201,
             **route_options(Permission.AUTHENTICATED))
def create_token(body: TokenCreate, request: Request) -> TokenCreated:
    """Make a token with a role no higher than yours. The secret is in this answer only."""
    principal = current(request)
    if principal.session_id is None:
        raise PermissionDenied("tokens are made in an interactive session, not with a token")
    if principal.mfa_pending:
        # Otherwise a token would be a way around the tenant's MFA requirement.
        raise PermissionDenied("this tenant requires MFA: enrol an authenticator first")
    dep = deployment_of(request)
    with dep.transaction() as session:
        user = session.get(User, principal.principal_id)
        if user is None:
            raise PermissionDenied("the account no longer exists")
        role = body.role or Role(user.role)
        secret, token = tokens.create_token(session, user, body.name, role, body.days,
                                            dep.settings.api_token_max_days)
        dep.audit.record_event(session, EventTag.TOKEN_CREATE, actor=principal.actor(),
                               tenant=principal.tenant_id, target=f"token:{token.id}",
                               details={"role": token.role, "days": body.days})
        return TokenCreated(token=secret, **_out(token).model_dump())


@router.delete("/{token_id}", status_code=204, **route_options(Permission.AUTHENTICATED))
def revoke_token(token_id: str, request: Request) -> None:
    """Revoke a token at once (yours; admins: any of the tenant's)."""
    principal = current(request)
    dep = deployment_of(request)
    owner = None if _is_admin(principal.role) else principal.principal_id
    with dep.transaction() as session:
        token = tokens.revoke_token(session, principal.tenant_id, token_id, owner)
        dep.audit.record_event(session, EventTag.TOKEN_REVOKE, actor=principal.actor(),
                               tenant=principal.tenant_id, target=f"token:{token.id}")
