"""Request and response bodies of the tenant and operator APIs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from strongroom.identity.models import Role


def _strings(value: object) -> Iterator[str]:
    """Every string in a decoded JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


class Strict(BaseModel):
    """A request body: unknown fields are refused. Booleans and integers are declared
    Strict* so that 0, "1" or 1.0 are refused as the schema says, not coerced.

    JSON may escape a lone UTF-16 surrogate ("\\ud800"), which is no Unicode text at all:
    refused here, once, rather than failing wherever the text is first encoded.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _valid_unicode(self) -> Self:
        for text in _strings(self.model_dump()):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(
                    "the body holds text with an unpaired surrogate escape, which is not "
                    "valid Unicode"
                ) from None
        return self


class Problem(BaseModel):
    """RFC 9457 problem details: the body of every error answer."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


class LoginRequest(Strict):
    tenant: str = Field(min_length=1, max_length=40)
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    code: str | None = Field(default=None, max_length=32)


class OperatorLoginRequest(Strict):
    name: str = Field(min_length=1, max_length=40)
    password: str = Field(min_length=1, max_length=1024)
    # Optional in the schema so that leaving it out is answered 401 mfa-required.
    code: str | None = Field(default=None, max_length=32)


class TenantOut(BaseModel):
    slug: str
    name: str
    status: str


class UserOut(BaseModel):
    id: str
    email: str
    role: Role
    disabled: bool
    mfa_enabled: bool
    created_at: dt.datetime


class SessionOut(BaseModel):
    user: UserOut
    tenant: TenantOut
    csrf_token: str | None
    expires_at: dt.datetime | None
    mfa_required: bool


class OperatorSessionOut(BaseModel):
    operator: str
    csrf_token: str
    expires_at: dt.datetime


class PasswordChange(Strict):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class EmailChange(Strict):
    current_password: str = Field(min_length=1, max_length=1024)
    email: str = Field(min_length=3, max_length=254)


class Reauth(Strict):
    current_password: str = Field(min_length=1, max_length=1024)


class MfaEnrolment(BaseModel):
    secret: str
    otpauth_uri: str
    qr_svg: str


class MfaConfirm(Strict):
    code: str = Field(min_length=1, max_length=32)


class RecoveryCodes(BaseModel):
    recovery_codes: list[str]


class UserCreate(Strict):
    email: str = Field(min_length=3, max_length=254)
    role: Role
    password: str = Field(min_length=1, max_length=1024)


class UserUpdate(Strict):
    role: Role | None = None
    disabled: StrictBool | None = None


class TokenCreate(Strict):
    name: str = Field(min_length=1, max_length=80)
    role: Role | None = None
    days: StrictInt = Field(default=30, ge=1, le=3650)


class TokenOut(BaseModel):
    id: str
    name: str
    role: Role
    user_id: str
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None


class TokenCreated(TokenOut):
    token: str


class PolicyOut(BaseModel):
    require_mfa: bool
    ip_allowlist: list[str]
    min_cell_count: int = Field(description="Cube cells counting fewer rows are suppressed "
                                "for viewers")
    updated_at: dt.datetime


class PolicyUpdate(Strict):
    require_mfa: StrictBool | None = None
    ip_allowlist: list[str] | None = Field(default=None, max_length=100)
    min_cell_count: StrictInt | None = Field(default=None, ge=1, le=1_000_000)


class AuditEventOut(BaseModel):
    seq: int
    occurred_at: str
    tag: str
    event_class: str
    actor_kind: str
    actor_id: str | None
    actor_role: str | None
    actor_session: str | None
    actor_address: str | None
    actor_network: str | None
    actor_agent: str | None
    tenant_id: str | None
    target: str | None
    outcome: str
    reason: str | None
    details: dict[str, object]
    prev_hash: str
    hash: str
    mac: str


class AuditPage(BaseModel):
    events: list[AuditEventOut]
    next_after_seq: int | None
