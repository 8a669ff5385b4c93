"""The audit log over HTTP: a tenant admin reads only their tenant; an operator reads all."""

from __future__ import annotations

import pyotp
import pytest
from fastapi.testclient import TestClient

from strongroom.audit import Actor, EventTag
from strongroom.deployment import Deployment
from strongroom.identity import services as identity
from strongroom.identity.models import Role
from strongroom.web.app import create_app, create_operator_app

PASSWORD = "a long enough passphrase for tests"


@pytest.fixture
def world(deployment: Deployment, make_tenant):
    """Two tenants with an admin and an analyst each, an operator, and events of both."""
    alpha, beta = make_tenant("alpha"), make_tenant("beta")
    with deployment.transaction() as session:
        for tenant in (alpha, beta):
            for role in (Role.ADMIN, Role.ANALYST):
                identity.create_user(session, deployment.keys, tenant,
                                     f"{role.value}@{tenant.slug}.example", role, PASSWORD)
            deployment.audit.record_event(session, EventTag.DATASET_BUILD, actor=Actor.system(),
                                          tenant=tenant.id, target=f"dataset:{tenant.slug}")
        _, enrolment, _ = identity.create_operator(session, deployment.keys, "ops", PASSWORD)
    return {"alpha": alpha, "beta": beta, "totp": enrolment["secret"]}


def _login(client: TestClient, tenant: str, email: str) -> None:
    answer = client.post("/api/v1/login",
                         json={"tenant": tenant, "email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text


def test_tenant_admin_reads_only_their_own_tenant(deployment, world):
    client = TestClient(create_app(deployment), base_url="https://testserver")
    _login(client, "alpha", "admin@alpha.example")
    answer = client.get("/api/v1/audit/events", params={"limit": 1000})
    assert answer.status_code == 200, answer.text
    events = answer.json()["events"]
    tenants = {e["tenant_id"] for e in events}
    assert tenants == {world["alpha"].id}
    assert any(e["target"] == "dataset:alpha" for e in events)
    # Asking for the other tenant does not widen the view.
    again = client.get("/api/v1/audit/events", params={"tenant": "beta", "limit": 1000})
    assert {e["tenant_id"] for e in again.json()["events"]} == {world["alpha"].id}


def test_analyst_may_not_read_the_audit_log(deployment, world):
    client = TestClient(create_app(deployment), base_url="https://testserver")
    _login(client, "alpha", "analyst@alpha.example")
    answer = client.get("/api/v1/audit/events")
    assert answer.status_code == 403
    assert answer.headers["content-type"] == "application/problem+json"


def test_reading_is_itself_recorded_before_release(deployment, world):
    client = TestClient(create_app(deployment), base_url="https://testserver")
    _login(client, "beta", "admin@beta.example")
    first = client.get("/api/v1/audit/events", params={"limit": 1000}).json()["events"]
    second = client.get("/api/v1/audit/events",
                        params={"after_seq": first[-1]["seq"]}).json()["events"]
    assert [e["tag"] for e in second] == ["user:audit:read"]


def test_operator_reads_every_tenant(deployment, world):
    client = TestClient(create_operator_app(deployment), base_url="https://testserver")
    code = pyotp.TOTP(world["totp"]).now()
    answer = client.post("/operator/v1/login",
                         json={"name": "ops", "password": PASSWORD, "code": code})
    assert answer.status_code == 200, answer.text
    events = client.get("/operator/v1/audit/events", params={"limit": 1000}).json()["events"]
    tenants = {e["tenant_id"] for e in events}
    assert {world["alpha"].id, world["beta"].id} <= tenants
    assert None in tenants  # deployment-level events too
    only_beta = client.get("/operator/v1/audit/events",
                           params={"tenant": "beta", "limit": 1000}).json()["events"]
    assert {e["tenant_id"] for e in only_beta} == {world["beta"].id}


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"since": "not-a-date"}, "ISO 8601"),
        ({"until": "2026-13-45"}, "ISO 8601"),
        ({"outcome": "maybe"}, "outcome"),
        ({"tag": "user:nothing:here"}, "tag"),
        ({"colour": "blue"}, "unknown filter"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_bad_filters_are_422_problems(deployment, world, params, fragment):
    client = TestClient(create_app(deployment), base_url="https://testserver")
    _login(client, "alpha", "admin@alpha.example")
    answer = client.get("/api/v1/audit/events", params=params)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert fragment in answer.text
