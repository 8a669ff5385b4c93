"""Privacy fixtures: tenants on a real deployment, and keys made from known material."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from strongroom.audit import Actor
from strongroom.crypto.pseudonyms import PseudonymKey
from strongroom.privacy.keys import PrivacyKeys
from strongroom.tenancy.models import Tenant

HMAC_KEY = bytes(range(32))
SIV_KEY = bytes(range(64, 128))


@pytest.fixture
def known_keys() -> PrivacyKeys:
    """Version 1 of tenant "tenant-a" with fixed key material (for fixed vectors)."""
    return PrivacyKeys("tenant-a", {1: PseudonymKey("tenant-a", 1, HMAC_KEY, SIV_KEY)})


@pytest.fixture
def tenant(make_tenant: Callable[[str], Tenant]) -> Tenant:
    return make_tenant("acme")


@pytest.fixture
def admin(tenant: Tenant) -> Actor:
    return Actor(kind="user", id="u-admin", role="admin", session="s1")


@pytest.fixture
def analyst(tenant: Tenant) -> Actor:
    return Actor(kind="user", id="u-analyst", role="analyst", session="s2")
