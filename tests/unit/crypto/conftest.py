"""Key rings and contexts for crypto tests that need no database."""

from __future__ import annotations

import uuid

import pytest

from strongroom.config import Environment
from strongroom.crypto.keyring import TenantKeyRing


@pytest.fixture
def ring() -> TenantKeyRing:
    return TenantKeyRing.generate(Environment.TEST, uuid.uuid4().hex)


@pytest.fixture
def other_ring() -> TenantKeyRing:
    """Another tenant's ring in the same environment."""
    return TenantKeyRing.generate(Environment.TEST, uuid.uuid4().hex)
