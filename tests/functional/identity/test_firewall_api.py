"""Firewall policies over HTTP: the tenant allow-list on every request (tokens included),
X-Forwarded-For only from configured proxies, body size, and bad input in policies.

The client address is the ASGI peer that TestClient reports, as uvicorn would.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from strongroom.identity.models import Role
from strongroom.web.app import create_app
from tests.functional.identity.support import (
    Account,
    World,
    bearer,
    csrf_header,
    login,
    problem,
    problem_slug,
)
from tests.functional.support import serve_in_thread

INSIDE = "203.0.113.5"
OUTSIDE = "198.51.100.200"
PROXY = "10.0.0.7"


@pytest.fixture
def fenced(world: World) -> Account:
    """A tenant of its own whose admin allows 203.0.113.0/24 and 2001:db8:1::/48 only."""
    admin = world.add_tenant(f"fenced-{uuid.uuid4().hex[:6]}")
    with world.client(INSIDE) as client:
        response = client.put("/api/v1/policy", headers=bearer(admin),
                              json={"ip_allowlist": ["203.0.113.0/24", "2001:db8:1::/48"]})
        assert response.status_code == 200, response.text
        assert response.json()["ip_allowlist"] == ["2001:db8:1::/48", "203.0.113.0/24"]
    return admin


def test_a_valid_token_from_outside_the_allow_list_is_refused(
    world: World, fenced: Account
) -> None:
    with world.client(OUTSIDE) as client:
        response = client.get("/api/v1/me", headers=bearer(fenced))
        assert problem_slug(response, 403) == "address-not-allowed"
    for inside in (INSIDE, "2001:db8:1::42", f"::ffff:{INSIDE}"):
        with world.client(inside) as client:
            assert client.get("/api/v1/me", headers=bearer(fenced)).status_code == 200, inside


def test_a_session_from_outside_the_allow_list_is_refused(world: World, fenced: Account) -> None:
    with world.client(INSIDE) as client:
        login(client, fenced)
        cookie = client.cookies.get("__Host-strongroom")
    assert cookie
    with world.client(OUTSIDE) as client:
        client.cookies.set("__Host-strongroom", cookie)
        assert problem_slug(client.get("/api/v1/me"), 403) == "address-not-allowed"


def test_logging_in_from_outside_the_allow_list_is_refused(world: World, fenced: Account) -> None:
    with world.client(OUTSIDE) as client:
        response = client.post("/api/v1/login", json={
            "tenant": fenced.tenant, "email": fenced.email, "password": fenced.password})
        assert problem_slug(response, 403) == "address-not-allowed"
        assert "__Host-strongroom" not in response.cookies


def test_refusals_by_address_are_audited(world: World, fenced: Account) -> None:
    before = world.last_seq()
    with world.client(OUTSIDE) as client:
        client.get("/api/v1/me", headers=bearer(fenced))
    denied = world.audit_events("user:access:denied", before)
    assert [(e.reason, e.tenant_id) for e in denied] == [("address-not-allowed", fenced.tenant_id)]


def test_a_forged_forwarded_for_from_a_client_is_ignored(world: World, fenced: Account) -> None:
    """No trusted proxies are configured here: the header is the client's own claim."""
    assert world.deployment.settings.trusted_proxies == ""
    with world.client(OUTSIDE) as client:
        response = client.get("/api/v1/me", headers={**bearer(fenced), "x-forwarded-for": INSIDE})
        assert problem_slug(response, 403) == "address-not-allowed"


@pytest.fixture
def behind_proxy(world: World) -> TestClient:
    """The same deployment, served as if configured with trusted_proxies = 10.0.0.0/8."""
    settings = dataclasses.replace(world.deployment.settings, trusted_proxies="10.0.0.0/8")
    return TestClient(create_app(dataclasses.replace(world.deployment, settings=settings)),
                      base_url="https://testserver", client=(PROXY, 50000))


def test_forwarded_for_is_honoured_only_from_a_configured_proxy(
    world: World, fenced: Account, behind_proxy: TestClient
) -> None:
    token = bearer(fenced)
    # Through the proxy: the client it names is believed, inside or outside.
    assert behind_proxy.get("/api/v1/me",
                            headers={**token, "x-forwarded-for": INSIDE}).status_code == 200
    outside = behind_proxy.get("/api/v1/me", headers={**token, "x-forwarded-for": OUTSIDE})
    assert problem_slug(outside, 403) == "address-not-allowed"
    # A client that prepends its own claim: the proxy appended the real address last.
    spoofed = behind_proxy.get("/api/v1/me",
                               headers={**token, "x-forwarded-for": f"{INSIDE}, {OUTSIDE}"})
    assert problem_slug(spoofed, 403) == "address-not-allowed"
    # Two proxies, the second adding its own header line: the lines are one list.
    chained = behind_proxy.get("/api/v1/me", headers=[
        *token.items(), ("x-forwarded-for", INSIDE), ("x-forwarded-for", "10.0.0.8")])
    assert chained.status_code == 200, chained.text
    # Without the header the proxy itself is the client, and it is not in the allow-list.
    assert problem_slug(behind_proxy.get("/api/v1/me", headers=token), 403) == (
        "address-not-allowed")


def test_the_allow_list_must_keep_the_admins_own_address(world: World, fenced: Account) -> None:
    with world.client(INSIDE) as client:
        response = client.put("/api/v1/policy", headers=bearer(fenced),
                              json={"ip_allowlist": ["192.0.2.0/24"]})
        assert "lock yourself out" in problem(response, 422)["detail"]
        kept = client.get("/api/v1/policy", headers=bearer(fenced)).json()["ip_allowlist"]
    assert kept == ["2001:db8:1::/48", "203.0.113.0/24"]


@pytest.mark.parametrize("entry", ["10.0.0.1/8", "10.0.0.0/33", "not-a-network", "", "::/129",
                                   "203.0.113.0/24; DROP", "2001:db8::1/32"])
def test_a_bad_cidr_is_refused_with_422(world: World, entry: str) -> None:
    admin = world.account("bravo", Role.ADMIN)
    with world.client() as client:
        response = client.put("/api/v1/policy", headers=bearer(admin),
                              json={"ip_allowlist": ["192.0.2.0/24", entry]})
        body = problem(response, 422)
        assert "CIDR" in body["detail"]
        assert client.get("/api/v1/policy", headers=bearer(admin)).json()["ip_allowlist"] == []


def test_an_allow_list_of_more_than_100_networks_is_refused(world: World) -> None:
    admin = world.account("bravo", Role.ADMIN)
    networks = [f"10.{i // 256}.{i % 256}.0/24" for i in range(101)]
    with world.client() as client:
        response = client.put("/api/v1/policy", headers=bearer(admin),
                              json={"ip_allowlist": networks})
        assert problem_slug(response, 422) == "invalid-input"


@pytest.mark.parametrize("role", ["superuser", "Admin", "", "operator"])
def test_an_unknown_role_is_refused_with_422(world: World, role: str) -> None:
    admin = world.account("bravo", Role.ADMIN)
    viewer = world.account("bravo", Role.VIEWER)
    with world.client() as client:
        created = client.post("/api/v1/users", headers=bearer(admin), json={
            "email": "someone@bravo.example", "role": role, "password": "long enough pass 12"})
        assert "role" in problem(created, 422)["detail"]
        changed = client.patch(f"/api/v1/users/{viewer.user_id}", headers=bearer(admin),
                               json={"role": role})
        assert "role" in problem(changed, 422)["detail"]
    assert world.user(viewer.user_id).role == "viewer"


def test_an_oversized_body_is_refused_with_413(world: World) -> None:
    admin = world.account("bravo", Role.ADMIN)
    limit = world.deployment.settings.max_request_bytes
    big = {"email": "big@bravo.example", "role": "viewer", "password": "p" * (limit + 10)}
    with world.client() as client:
        declared = client.post("/api/v1/users", headers=bearer(admin), json=big)
        assert problem_slug(declared, 413) == "too-large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
            yield b'{"email": "big@bravo.example", "role": "viewer", "password": "'
            for _ in range(limit // 1024 + 2):
                yield b"p" * 1024
            yield b'"}'

        streamed = client.post("/api/v1/users", headers={**bearer(admin),
                                                         "content-type": "application/json"},
                               content=chunks())
        assert streamed.status_code == 413
        assert streamed.headers["content-type"] == "application/problem+json"


def test_an_oversized_login_is_refused_before_anything_is_checked(world: World) -> None:
    limit = world.deployment.settings.max_request_bytes
    with world.client() as client:
        response = client.post("/api/v1/login", json={
            "tenant": "alpha", "email": "a@alpha.example", "password": "x" * limit})
        assert problem_slug(response, 413) == "too-large"


def test_a_session_admin_sets_the_policy_too(world: World, fenced: Account) -> None:
    with world.client(INSIDE) as client:
        csrf = login(client, fenced)
        response = client.put("/api/v1/policy", headers=csrf_header(csrf),
                              json={"ip_allowlist": []})
        assert response.status_code == 200
    with world.client(OUTSIDE) as client:
        assert client.get("/api/v1/me", headers=bearer(fenced)).status_code == 200


@pytest.mark.parametrize("proxies", ["", "127.0.0.1/32"])
def test_forwarded_for_over_real_tls(world: World, fenced: Account, proxies: str) -> None:
    """The same rules through uvicorn on loopback: 127.0.0.1 is the peer, and its
    X-Forwarded-For is believed only when 127.0.0.1 is configured as a proxy."""
    settings = dataclasses.replace(world.deployment.settings, trusted_proxies=proxies)
    deployment = dataclasses.replace(world.deployment, settings=settings)
    with serve_in_thread(deployment) as server, server.client(base_url=server.url("")) as http:
        claimed_inside = http.get("/api/v1/me",
                                  headers={**bearer(fenced), "x-forwarded-for": INSIDE})
        claimed_outside = http.get("/api/v1/me",
                                   headers={**bearer(fenced), "x-forwarded-for": OUTSIDE})
    assert problem_slug(claimed_outside, 403) == "address-not-allowed"
    if proxies:
        assert claimed_inside.status_code == 200, claimed_inside.text
    else:
        assert problem_slug(claimed_inside, 403) == "address-not-allowed"
