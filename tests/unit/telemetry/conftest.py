"""A deployment with one tenant and two users, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from strongroom.deployment import Deployment
from strongroom.identity import services as identity
from strongroom.identity.models import Role, User
from strongroom.tenancy.models import Tenant
from strongroom.tenancy.services import create_tenant

PASSWORD = "violet kettle orbit lantern 42"


@dataclasses.dataclass(frozen=True)
class People:
    tenant: Tenant
    alice: User
    bob: User
    alice_email: str
    bob_email: str


def add_user(deployment: Deployment, tenant: Tenant, email: str) -> User:
    with deployment.transaction() as session:
        found = session.get(Tenant, tenant.id)
        assert found is not None
        return identity.create_user(session, deployment.keys, found, email, Role.ANALYST,
                                    PASSWORD)


@pytest.fixture
def people(deployment: Deployment) -> People:
    tag = uuid.uuid4().hex[:8]
    with deployment.transaction() as session:
        tenant = create_tenant(session, deployment.keys, f"acme-{tag}")
    alice_email = f"alice.canary.{tag}@acme.example"
    bob_email = f"bob.canary.{tag}@acme.example"
    return People(tenant, add_user(deployment, tenant, alice_email),
                  add_user(deployment, tenant, bob_email), alice_email, bob_email)
