"""Tenants: strict slugs, create/list/suspend/resume, each with its own keyset."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from strongroom.crypto.models import KeysetRecord
from strongroom.deployment import Deployment
from strongroom.errors import InvalidInput
from strongroom.tenancy.errors import InvalidSlug, TenantExists, TenantNotFound, TenantSuspended
from strongroom.tenancy.models import Tenant, TenantStatus
from strongroom.tenancy.services import (
    create_tenant,
    get_tenant,
    list_tenants,
    require_active,
    resume_tenant,
    suspend_tenant,
    validate_slug,
)

MakeTenant = Callable[[str], Tenant]

GOOD_SLUGS = ["abc", "acme", "acme-retail", "a1-b2-c3", "x2y", "a" * 40, "shop-2024"]
BAD_SLUGS = [
    "", "ab", "a" * 41,
    "../x", "..", "a/b", "a\\b", "./acme", "acme/..", "%2e%2e",
    "Acme", "ACME", "acme_retail", "acme.retail", "acme retail", " acme", "acme ",
    "-acme", "acme-", "a--b", "1acme", "9-lives",
    "acme\n", "acme\r\n", "\nacme", "acme\t", "acme\x00", "acme;rm", "$(id)", "acme*",
    "\u0430cme",  # Cyrillic a
    "acm\u0435",  # Cyrillic e
    "\uff41\uff43\uff4d\uff45",  # fullwidth acme
    "acme\u2010retail",  # Unicode hyphen
    "acme\u200b",  # zero-width space
    "caf\u00e9",  # precomposed e-acute
    "\u2170bc",  # Roman numeral small i-like
]


@pytest.mark.parametrize("slug", GOOD_SLUGS)
def test_good_slugs_are_accepted(slug: str) -> None:
    assert validate_slug(slug) == slug


@pytest.mark.parametrize("slug", BAD_SLUGS)
def test_bad_slugs_are_refused_with_the_rule(slug: str) -> None:
    with pytest.raises(InvalidSlug, match="3-40 characters: lower-case letters") as caught:
        validate_slug(slug)
    assert caught.value.status == 422
    assert isinstance(caught.value, InvalidInput)


@pytest.mark.parametrize("slug", ["../x", "a/b", "acme\n", "\u0430cme"])
def test_bad_slug_creates_nothing(deployment: Deployment, slug: str) -> None:
    count_keysets = sa.select(sa.func.count()).select_from(KeysetRecord)
    with deployment.transaction() as session:
        keysets = session.scalar(count_keysets)
    with pytest.raises(InvalidSlug), deployment.transaction() as session:
        create_tenant(session, deployment.keys, slug)
    with deployment.transaction() as session:
        assert list_tenants(session) == []
        assert session.scalar(count_keysets) == keysets


def test_create_and_list(deployment: Deployment) -> None:
    with deployment.transaction() as session:
        globex = create_tenant(session, deployment.keys, "globex", "Globex Corporation")
        acme = create_tenant(session, deployment.keys, "acme")
    assert acme.name == "acme"  # the slug when no name is given
    assert globex.name == "Globex Corporation"
    assert acme.id != globex.id
    assert len(acme.id) == 32
    with deployment.transaction() as session:
        listed = list_tenants(session)
        assert [(t.slug, t.status) for t in listed] == [("acme", "active"), ("globex", "active")]
        assert all(t.is_active for t in listed)
        owners = set(session.scalars(sa.select(KeysetRecord.owner)))
        assert {acme.id, globex.id} <= owners
        assert get_tenant(session, "globex").id == globex.id


def test_duplicate_slug_is_refused(deployment: Deployment, make_tenant: MakeTenant) -> None:
    first = make_tenant("acme")
    with (
        pytest.raises(TenantExists, match="acme already exists") as caught,
        deployment.transaction() as session,
    ):
        create_tenant(session, deployment.keys, "acme", "Another Acme")
    assert caught.value.status == 409
    with deployment.transaction() as session:
        assert [(t.id, t.name) for t in list_tenants(session)] == [(first.id, "acme")]


@pytest.mark.parametrize("name", ["   ", "x" * 201, "bad\nname", "tab\tname"])
def test_bad_display_name_is_refused(deployment: Deployment, name: str) -> None:
    with pytest.raises(InvalidInput, match="tenant name"), deployment.transaction() as session:
        create_tenant(session, deployment.keys, "acme", name)
    with deployment.transaction() as session:
        assert list_tenants(session) == []


def test_unknown_tenant_is_not_found(deployment: Deployment) -> None:
    with deployment.transaction() as session:
        for action in (get_tenant, suspend_tenant, resume_tenant):
            with pytest.raises(TenantNotFound, match="no tenant with slug nobody"):
                action(session, "nobody")


def test_lookups_validate_the_slug_too(deployment: Deployment) -> None:
    with deployment.transaction() as session:
        for action in (get_tenant, suspend_tenant, resume_tenant):
            with pytest.raises(InvalidSlug):
                action(session, "../acme")


def test_suspend_and_resume(deployment: Deployment, make_tenant: MakeTenant) -> None:
    acme = make_tenant("acme")
    make_tenant("globex")
    created_at = acme.status_changed_at
    with deployment.transaction() as session:
        suspended = suspend_tenant(session, "acme")
    assert suspended.status == TenantStatus.SUSPENDED.value
    assert not suspended.is_active
    assert suspended.status_changed_at > created_at
    with deployment.transaction() as session:
        assert get_tenant(session, "acme").status == "suspended"
        assert get_tenant(session, "globex").status == "active"  # others are untouched
        with pytest.raises(TenantSuspended, match="acme is suspended") as caught:
            require_active(get_tenant(session, "acme"))
        assert caught.value.status == 403
        require_active(get_tenant(session, "globex"))
    # Suspending again changes nothing, not even the timestamp.
    with deployment.transaction() as session:
        again = suspend_tenant(session, "acme")
    assert again.status_changed_at == suspended.status_changed_at
    with deployment.transaction() as session:
        resumed = resume_tenant(session, "acme")
    assert resumed.is_active
    assert resumed.status_changed_at > suspended.status_changed_at
    with deployment.transaction() as session:
        require_active(get_tenant(session, "acme"))


def test_suspension_keeps_keys_intact(deployment: Deployment, make_tenant: MakeTenant) -> None:
    acme = make_tenant("acme")
    with deployment.transaction() as session:
        ring = deployment.keys.tenant_ring(session, acme.id)
        before = session.scalars(
            sa.select(KeysetRecord.encrypted_keyset).where(KeysetRecord.owner == acme.id)
        ).one()
    sealed = ring.encrypt(b"kept", b"ad")
    with deployment.transaction() as session:
        suspend_tenant(session, "acme")
    with deployment.transaction() as session:
        after = session.scalars(
            sa.select(KeysetRecord.encrypted_keyset).where(KeysetRecord.owner == acme.id)
        ).one()
        assert after == before
        assert deployment.keys.tenant_ring(session, acme.id).decrypt(sealed, b"ad") == b"kept"
