"""API tokens over HTTP: shown once, stored hashed, role-capped, expiring and revocable."""

from __future__ import annotations

import datetime as dt
import hashlib

import sqlalchemy as sa

from strongroom.db import utcnow
from strongroom.identity.models import ApiToken, Role
from tests.functional.identity.support import (
    World,
    bearer,
    csrf_header,
    login,
    problem,
    problem_slug,
)


def me(world: World, token: str) -> int:
    with world.client() as client:
        return client.get("/api/v1/me", headers={"authorization": f"Bearer {token}"}).status_code


def make_token(world: World, creator: Role, **body: object) -> dict[str, object]:
    account = world.add_user("alpha", creator)
    with world.client() as client:
        csrf = login(client, account)
        response = client.post("/api/v1/tokens", headers=csrf_header(csrf),
                               json={"name": "script", **body})
        assert response.status_code == 201, response.text
        return dict(response.json())


def test_a_token_is_shown_once_and_stored_only_as_a_hash(world: World) -> None:
    created = make_token(world, Role.ANALYST, days=7)
    secret = str(created["token"])
    assert secret.startswith(f"sr_{created['id']}_")
    assert me(world, secret) == 200
    with world.deployment.transaction() as session:
        stored = session.get(ApiToken, created["id"])
        assert stored is not None
        assert stored.secret_hash == hashlib.sha256(secret.split("_", 2)[2].encode()).hexdigest()
        columns = session.execute(sa.select(ApiToken.__table__)).all()
    assert secret.split("_", 2)[2] not in str(columns)
    with world.client() as client:
        listed = client.get("/api/v1/tokens", headers=bearer(world.account("alpha", Role.ADMIN)))
    assert listed.status_code == 200
    assert created["id"] in {t["id"] for t in listed.json()}
    assert secret not in listed.text
    assert "token" not in listed.json()[0]


def test_an_expired_token_is_refused(world: World) -> None:
    created = make_token(world, Role.VIEWER, days=1)
    secret = str(created["token"])
    assert me(world, secret) == 200
    with world.deployment.transaction() as session:
        session.execute(sa.update(ApiToken).where(ApiToken.id == created["id"])
                        .values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    assert me(world, secret) == 401


def test_a_revoked_token_is_refused_at_once(world: World) -> None:
    created = make_token(world, Role.VIEWER)
    secret = str(created["token"])
    with world.client() as client:
        response = client.delete(f"/api/v1/tokens/{created['id']}",
                                 headers={"authorization": f"Bearer {secret}"})
        assert response.status_code == 204
        refused = client.get("/api/v1/me", headers={"authorization": f"Bearer {secret}"})
    assert "unknown, expired or revoked" in problem(refused, 401)["detail"]
    with world.client() as client:
        listed = client.get("/api/v1/tokens", headers=bearer(world.account("alpha", Role.ADMIN)))
    revoked = {t["id"]: t["revoked_at"] for t in listed.json()}
    assert revoked[created["id"]] is not None


def test_a_wrong_secret_for_a_real_token_id_is_refused(world: World) -> None:
    account = world.account("alpha", Role.VIEWER)
    forged = f"sr_{account.token_id}_{'A' * 43}"
    assert me(world, forged) == 401
    assert me(world, account.token) == 200


def test_a_token_role_cannot_exceed_its_creators(world: World) -> None:
    for creator, asked in ((Role.VIEWER, "analyst"), (Role.VIEWER, "admin"),
                           (Role.ANALYST, "admin")):
        account = world.add_user("alpha", creator)
        with world.client() as client:
            csrf = login(client, account)
            response = client.post("/api/v1/tokens", headers=csrf_header(csrf),
                                   json={"name": "escalate", "role": asked})
            assert "cannot be higher than your own" in problem(response, 422)["detail"]
    lower = make_token(world, Role.ADMIN, role="viewer")
    assert lower["role"] == "viewer"
    with world.client() as client:
        refused = client.get("/api/v1/users", headers={"authorization": f"Bearer {lower['token']}"})
    assert problem_slug(refused, 403) == "permission-denied"


def test_demoting_a_user_demotes_their_tokens(world: World) -> None:
    account = world.add_user("alpha", Role.ADMIN)
    with world.client() as client:
        assert client.get("/api/v1/users", headers=bearer(account)).status_code == 200
        admin = world.account("alpha", Role.ADMIN)
        response = client.patch(f"/api/v1/users/{account.user_id}", headers=bearer(admin),
                                json={"role": "viewer"})
        assert response.status_code == 200
        assert problem_slug(client.get("/api/v1/users", headers=bearer(account)), 403) == (
            "permission-denied")
        assert client.get("/api/v1/me", headers=bearer(account)).status_code == 200


def test_tokens_are_made_in_a_session_not_with_a_token(world: World) -> None:
    with world.client() as client:
        response = client.post("/api/v1/tokens", headers=bearer(world.account("alpha", Role.ADMIN)),
                               json={"name": "chain"})
        assert problem_slug(response, 403) == "permission-denied"


def test_a_token_lifetime_beyond_the_deployment_maximum_is_refused(world: World) -> None:
    account = world.add_user("alpha", Role.VIEWER)
    with world.client() as client:
        csrf = login(client, account)
        response = client.post("/api/v1/tokens", headers=csrf_header(csrf),
                               json={"name": "forever", "days": 91})
        assert "between 1 and 90 days" in problem(response, 422)["detail"]


def test_a_user_revokes_only_their_own_tokens_an_admin_any_of_the_tenant(world: World) -> None:
    first = world.add_user("alpha", Role.ANALYST)
    second = world.add_user("alpha", Role.ANALYST)
    with world.client() as client:
        response = client.delete(f"/api/v1/tokens/{second.token_id}", headers=bearer(first))
        assert problem_slug(response, 404) == "not-found"
        assert client.get("/api/v1/me", headers=bearer(second)).status_code == 200
        response = client.delete(f"/api/v1/tokens/{second.token_id}",
                                 headers=bearer(world.account("alpha", Role.ADMIN)))
        assert response.status_code == 204
        assert client.get("/api/v1/me", headers=bearer(second)).status_code == 401


def test_token_use_and_refusals_are_audited(world: World) -> None:
    before = world.last_seq()
    created = make_token(world, Role.VIEWER)
    with world.client() as client:
        client.get("/api/v1/users", headers={"authorization": f"Bearer {created['token']}"})
        client.get("/api/v1/me", headers={"authorization": "Bearer sr_nonsense"})
    assert [e.target for e in world.audit_events("user:token:create", before)] == [
        f"token:{created['id']}"]
    denied = world.audit_events("user:access:denied", before)
    reasons = {(e.actor_session, e.reason) for e in denied}
    assert (f"token:{created['id']}", "permission-denied") in reasons
    assert (None, "not-authenticated") in reasons
