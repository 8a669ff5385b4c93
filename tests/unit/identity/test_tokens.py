"""API tokens as a service: shape, hashing, role cap, lifetime, expiry and revocation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from strongroom.db import utcnow
from strongroom.deployment import Deployment
from strongroom.errors import InvalidInput
from strongroom.identity import services as identity
from strongroom.identity import tokens
from strongroom.identity.errors import TokenNotFound
from strongroom.identity.models import Role, User
from strongroom.tenancy.models import Tenant

PASSWORD = "violet kettle orbit lantern 42"


@pytest.fixture
def users(deployment: Deployment, make_tenant: Callable[[str], Tenant]) -> dict[str, User]:
    acme, other = make_tenant("acme"), make_tenant("other")
    made = {}
    with deployment.transaction() as session:
        for name, tenant, role in (("admin", acme, Role.ADMIN), ("viewer", acme, Role.VIEWER),
                                   ("stranger", other, Role.ADMIN)):
            made[name] = identity.create_user(session, deployment.keys, tenant,
                                              f"{name}@example.org", role, PASSWORD)
    return made


def make(deployment: Deployment, user: User, role: Role = Role.VIEWER, days: int = 30) -> str:
    with deployment.transaction() as session:
        secret, _record = tokens.create_token(session, user, "script", role, days, 90)
    return secret


def test_a_token_resolves_to_its_record_and_nothing_else(
    deployment: Deployment, users: dict[str, User]
) -> None:
    secret = make(deployment, users["admin"], Role.ANALYST)
    assert tokens.looks_like_token(secret)
    with deployment.transaction() as session:
        record = tokens.resolve_token(session, secret)
        assert record is not None
        assert (record.role, record.tenant_id) == ("analyst", users["admin"].tenant_id)
        assert record.secret_hash not in secret
        prefix, token_id, key = secret.split("_", 2)
        for forged in (f"{prefix}_{token_id}_{'A' * 43}", f"sr_{'0' * 32}_{key}",
                       secret + "x", secret[:-1], "", "Bearer " + secret, secret.upper()):
            assert tokens.resolve_token(session, forged) is None, forged


@pytest.mark.parametrize(("creator", "asked"), [("viewer", Role.ANALYST),
                                                ("viewer", Role.ADMIN)])
def test_a_token_is_never_stronger_than_its_creator(
    deployment: Deployment, users: dict[str, User], creator: str, asked: Role
) -> None:
    with deployment.transaction() as session, pytest.raises(InvalidInput, match="higher"):
        tokens.create_token(session, users[creator], "escalate", asked, 30, 90)


@pytest.mark.parametrize("days", [0, -1, 91])
def test_a_lifetime_outside_the_limit_is_refused(
    deployment: Deployment, users: dict[str, User], days: int
) -> None:
    with deployment.transaction() as session, pytest.raises(InvalidInput, match="between 1"):
        tokens.create_token(session, users["admin"], "x", Role.VIEWER, days, 90)


@pytest.mark.parametrize("name", ["", "   ", "x" * 81, "tab\tname", "nul\x00"])
def test_a_bad_name_is_refused(deployment: Deployment, users: dict[str, User], name: str) -> None:
    with deployment.transaction() as session, pytest.raises(InvalidInput, match="name"):
        tokens.create_token(session, users["admin"], name, Role.VIEWER, 1, 90)


def test_expired_and_revoked_tokens_resolve_to_nothing(
    deployment: Deployment, users: dict[str, User]
) -> None:
    secret = make(deployment, users["admin"], days=1)
    with deployment.transaction() as session:
        assert tokens.resolve_token(session, secret, now=utcnow() + dt.timedelta(hours=23))
        later = utcnow() + dt.timedelta(days=1, seconds=1)
        assert tokens.resolve_token(session, secret, now=later) is None
    token_id = secret.split("_")[1]
    with deployment.transaction() as session:
        tokens.revoke_token(session, users["admin"].tenant_id, token_id, None)
    with deployment.transaction() as session:
        assert tokens.resolve_token(session, secret) is None


def test_revoking_is_confined_to_the_tenant_and_the_owner(
    deployment: Deployment, users: dict[str, User]
) -> None:
    secret = make(deployment, users["admin"])
    token_id = secret.split("_")[1]
    with deployment.transaction() as session:
        with pytest.raises(TokenNotFound):
            tokens.revoke_token(session, users["stranger"].tenant_id, token_id, None)
        with pytest.raises(TokenNotFound):
            tokens.revoke_token(session, users["admin"].tenant_id, token_id, users["viewer"].id)
        with pytest.raises(TokenNotFound):
            tokens.revoke_token(session, users["admin"].tenant_id, "not-an-id", None)
        assert tokens.resolve_token(session, secret) is not None


def test_listing_is_per_tenant_and_per_owner(
    deployment: Deployment, users: dict[str, User]
) -> None:
    make(deployment, users["admin"])
    make(deployment, users["viewer"])
    make(deployment, users["stranger"])
    with deployment.transaction() as session:
        tenant_id = users["admin"].tenant_id
        assert len(tokens.list_tokens(session, tenant_id)) == 2
        assert len(tokens.list_tokens(session, tenant_id, users["viewer"].id)) == 1
        assert len(tokens.list_tokens(session, users["stranger"].tenant_id)) == 1
