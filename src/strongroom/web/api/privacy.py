"""Privacy tokens and keys, for tenant admins: reverse tokens, list and rotate key versions.

A token in an export (the ``token`` transform) turns back into its value only here, only
for a tenant admin, and every attempt is audited under ``user:privacy-token:reverse``: a
reversal by :func:`strongroom.privacy.keys.reverse_tokens`, a refusal here in a transaction
of its own (the refused request's transaction is rolled back). A role below admin is
refused by the route's guard, as on every route (403 ``permission-denied``, audited as an
access denial), and that refusal is recorded under the privacy tag too, so the reversal
trail alone shows everybody who tried.

The path is ``/api/v1/privacy/reverse``, not ``/api/v1/tokens/reverse``: ``/api/v1/tokens``
is the API tokens' collection, whose ``/{token_id}`` would shadow it.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable
from typing import Annotated, Any

import anyio.from_thread
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from strongroom.audit import EventTag, Outcome
from strongroom.errors import StrongroomError
from strongroom.identity.errors import PermissionDenied
from strongroom.identity.permissions import Permission, role_allows
from strongroom.privacy.errors import ReversalForbidden, RotationConflict, TokenInvalid
from strongroom.privacy.keys import (
    MAX_TOKENS_PER_REVERSAL,
    audit_refused_reversal,
    list_key_versions,
    reverse_tokens,
    rotate_privacy_keys,
)
from strongroom.telemetry.models import UsageFeature
from strongroom.telemetry.services import record_usage
from strongroom.web.api.schemas import Strict
from strongroom.web.auth import Principal, current, deployment_of, guard, route_options, tenant_of

router = APIRouter(prefix="/api/v1/privacy", tags=["privacy"])

# A token is "t<version>_" and base64 of the value plus 16 bytes; the request body cap
# (max_request_bytes) bounds the whole list, this bounds one entry.
TOKEN_MAX_CHARS = 4096
PrivacyToken = Annotated[str, Field(min_length=1, max_length=TOKEN_MAX_CHARS)]


class ReverseRequest(Strict):
    tokens: list[PrivacyToken] = Field(min_length=1, max_length=MAX_TOKENS_PER_REVERSAL,
                                       description="Tokens from exports of your tenant")


class ReverseOut(BaseModel):
    values: list[str] = Field(description="The value behind each token, in the same order")


class KeyVersionOut(BaseModel):
    version: int
    created_at: dt.datetime


class PrivacyKeysOut(BaseModel):
    current: int | None = Field(
        description="The version new pseudonyms and tokens use; null until first used")
    versions: list[KeyVersionOut]


# -- the reversal guard ---------------------------------------------------------------------------


def _refused_count(request: Request) -> int:
    """How many tokens a refused request carried (0 if its body is not a token list).

    Dependencies run in a worker thread; the body is read on the event loop.
    """
    try:
        body = json.loads(anyio.from_thread.run(request.body))
    except (ValueError, HTTPException, ClientDisconnect):
        return 0
    tokens = body.get("tokens") if isinstance(body, dict) else None
    return len(tokens) if isinstance(tokens, list) else 0


def _audit_role_refusal(request: Request, authenticated: Callable[..., Principal | None]) -> None:
    """Record a refusal for want of the admin role under the privacy tag as well."""
    try:
        # Who asked: the refusing guard did not say. This resolves the same credentials
        # again; it refuses only what the first guard refused before looking at the role
        # (a suspended tenant), which is then already audited as an access denial.
        principal = authenticated(request)
    except StrongroomError:
        return
    if principal is None or principal.role is None or role_allows(
        principal.role, Permission.TOKEN_REVERSE
    ):
        return  # refused for something other than the role (MFA not enrolled)
    dep = deployment_of(request)
    refusal = ReversalForbidden("only a tenant admin can reverse tokens")
    with dep.transaction() as session:
        audit_refused_reversal(session, dep, principal.tenant_id, principal.actor(),
                               _refused_count(request), refusal)


def _reversal_guard() -> Callable[..., Principal | None]:
    """``guard(TOKEN_REVERSE)``, whose role refusals are also audited as refused reversals.

    It keeps the guard's signature (for the OpenAPI security schemes) and its declared
    permission (which the route table test reads).
    """
    inner = guard(Permission.TOKEN_REVERSE)
    authenticated = guard(Permission.AUTHENTICATED)

    @functools.wraps(inner)
    def dependency(**kwargs: Any) -> Principal | None:
        try:
            return inner(**kwargs)
        except PermissionDenied:
            _audit_role_refusal(kwargs["request"], authenticated)
            raise

    return dependency


_REVERSE_OPTIONS: dict[str, Any] = route_options(Permission.TOKEN_REVERSE)
_REVERSE_OPTIONS["dependencies"] = [Depends(_reversal_guard())]


# -- routes ---------------------------------------------------------------------------------------


@router.post("/reverse", response_model=ReverseOut, **_REVERSE_OPTIONS)
def reverse(body: ReverseRequest, request: Request) -> ReverseOut:
    """The values behind privacy tokens of your tenant (tenant admins only; audited).

    All or nothing: one malformed, altered or foreign token and nothing is returned
    (422 ``token-invalid``). The audit event holds how many tokens, their key versions
    and a keyed hash of each token, never a token or a value.
    """
    principal = current(request)
    dep = deployment_of(request)
    try:
        with dep.transaction() as session:
            tenant = tenant_of(session, principal)
            values = reverse_tokens(session, dep, tenant, principal.actor(), body.tokens)
            record_usage(session, dep, principal, UsageFeature.TOKEN_REVERSE,
                         rows=len(body.tokens))
    except (TokenInvalid, ReversalForbidden) as refusal:
        with dep.transaction() as session:
            audit_refused_reversal(session, dep, principal.tenant_id, principal.actor(),
                                   len(body.tokens), refusal)
        raise
    return ReverseOut(values=values)


def _keys_out(request: Request, tenant_id: str) -> PrivacyKeysOut:
    with deployment_of(request).transaction() as session:
        versions = list_key_versions(session, tenant_id)
    return PrivacyKeysOut(
        current=versions[-1].version if versions else None,
        versions=[KeyVersionOut(version=v.version, created_at=v.created_at) for v in versions],
    )


@router.get("/keys", response_model=PrivacyKeysOut, **route_options(Permission.POLICY_MANAGE))
def keys(request: Request) -> PrivacyKeysOut:
    """Your tenant's pseudonymisation key versions and when each was made (no key material)."""
    return _keys_out(request, current(request).tenant_id)


@router.post("/keys/rotate", response_model=PrivacyKeysOut,
             **route_options(Permission.POLICY_MANAGE))
def rotate(request: Request) -> PrivacyKeysOut:
    """Make a new key version current (audited).

    New pseudonyms and tokens differ from earlier ones, so new exports no longer join
    with old ones; tokens of every earlier version still reverse. Another rotation at
    the same moment: 409 ``privacy-key-rotation``, and nothing changed.
    """
    principal = current(request)
    dep = deployment_of(request)
    try:
        with dep.transaction() as session:
            rotate_privacy_keys(session, dep, principal.tenant_id, actor=principal.actor())
    except RotationConflict as conflict:
        with dep.transaction() as session:
            dep.audit.record_event(
                session, EventTag.PRIVACY_KEY_ROTATE, actor=principal.actor(),
                tenant=principal.tenant_id, outcome=Outcome.FAILURE, reason=conflict.slug,
            )
        raise
    return _keys_out(request, principal.tenant_id)
