"""Sessions over HTTP: fixation, cookie attributes, idle and absolute limits, logout,
logout everywhere, disabled users, and CSRF on cookie-authenticated changes.

Time limits are tested by moving the session's timestamps in the database, not by
waiting.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import sqlalchemy as sa

from strongroom.db import utcnow
from strongroom.identity.models import AuthSession, Role
from strongroom.identity.sessions import COOKIE_NAME
from tests.functional.identity.support import (
    OPERATOR_PASSWORD,
    Account,
    World,
    bearer,
    csrf_header,
    login,
    problem_slug,
    totp_now,
)


def session_cookie(client: object) -> str:
    value = client.cookies.get(COOKIE_NAME)  # type: ignore[attr-defined]
    assert value, "no session cookie"
    return str(value)


def me_status(world: World, cookie: str) -> int:
    with world.client() as client:
        client.cookies.set(COOKIE_NAME, cookie)
        return client.get("/api/v1/me").status_code


def shift_session(world: World, cookie: str, **values: dt.datetime) -> None:
    id_hash = hashlib.sha256(cookie.encode()).hexdigest()
    with world.deployment.transaction() as session:
        updated = session.execute(
            sa.update(AuthSession).where(AuthSession.id_hash == id_hash).values(**values)
        )
        assert updated.rowcount == 1  # type: ignore[attr-defined]


def logged_in(world: World, account: Account) -> tuple[object, str, str]:
    client = world.client()
    csrf = login(client, account)
    return client, session_cookie(client), csrf


# -- fixation and the cookie ----------------------------------------------------------------------


def test_a_cookie_set_before_login_is_not_adopted(world: World) -> None:
    account = world.account("alpha", Role.VIEWER)
    planted = "attacker-chosen-session-id-" + "x" * 20
    with world.client() as client:
        client.cookies.set(COOKIE_NAME, planted)
        response = client.post("/api/v1/login", json={
            "tenant": "alpha", "email": account.email, "password": account.password})
        assert response.status_code == 200
        issued = response.cookies.get(COOKIE_NAME)
        assert issued
        assert issued != planted
    assert me_status(world, planted) == 401
    assert me_status(world, issued) == 200


def test_an_attackers_own_session_planted_before_login_stays_the_attackers(world: World) -> None:
    attacker = world.account("alpha", Role.ANALYST)
    victim = world.account("alpha", Role.ADMIN)
    attacker_client, planted, _ = logged_in(world, attacker)
    with world.client() as victim_client:
        victim_client.cookies.set(COOKIE_NAME, planted)
        response = victim_client.post("/api/v1/login", json={
            "tenant": "alpha", "email": victim.email, "password": victim.password})
        assert response.status_code == 200
        assert response.cookies.get(COOKIE_NAME) != planted
    with world.client() as client:
        client.cookies.set(COOKIE_NAME, planted)
        assert client.get("/api/v1/me").json()["user"]["id"] == attacker.user_id
    attacker_client.close()  # type: ignore[attr-defined]


def test_every_login_issues_a_new_session_id(world: World) -> None:
    account = world.account("alpha", Role.VIEWER)
    seen = set()
    with world.client() as client:
        for _ in range(3):
            login(client, account)
            seen.add(session_cookie(client))
    assert len(seen) == 3


def test_the_session_cookie_is_host_only_secure_httponly_and_strict(world: World) -> None:
    account = world.account("alpha", Role.VIEWER)
    with world.client() as client:
        response = client.post("/api/v1/login", json={
            "tenant": "alpha", "email": account.email, "password": account.password})
    header = response.headers["set-cookie"]
    name, _, rest = header.partition("=")
    value = rest.split(";")[0]
    attributes = {a.strip().split("=")[0].lower(): a.strip() for a in header.split(";")[1:]}
    assert name == "__Host-strongroom"
    assert {"secure", "httponly", "samesite", "path"} <= set(attributes)
    assert attributes["samesite"].lower() == "samesite=strict"
    assert attributes["path"] == "Path=/"
    assert "domain" not in attributes
    # 256 random bits, URL-safe base64 without padding.
    assert len(value) == 43


def test_only_a_hash_of_the_session_id_is_stored(world: World) -> None:
    _client, cookie, _ = logged_in(world, world.account("alpha", Role.VIEWER))
    with world.deployment.transaction() as session:
        stored = set(session.scalars(sa.select(AuthSession.id_hash)))
    assert cookie not in stored
    assert hashlib.sha256(cookie.encode()).hexdigest() in stored


# -- time limits ---------------------------------------------------------------------------------


def test_a_session_idle_for_longer_than_the_limit_ends(world: World) -> None:
    _client, cookie, _ = logged_in(world, world.account("alpha", Role.VIEWER))
    shift_session(world, cookie, last_seen_at=utcnow() - dt.timedelta(minutes=29))
    assert me_status(world, cookie) == 200
    shift_session(world, cookie, last_seen_at=utcnow() - dt.timedelta(minutes=31))
    assert me_status(world, cookie) == 401


def test_a_session_past_its_absolute_lifetime_ends_however_active(world: World) -> None:
    _client, cookie, _ = logged_in(world, world.account("alpha", Role.VIEWER))
    now = utcnow()
    with world.deployment.transaction() as session:
        record = session.get(AuthSession, hashlib.sha256(cookie.encode()).hexdigest())
        assert record is not None
        lifetime = record.expires_at - record.created_at
    assert dt.timedelta(hours=11, minutes=59) < lifetime <= dt.timedelta(hours=12)
    shift_session(world, cookie, created_at=now - lifetime + dt.timedelta(minutes=1),
                  expires_at=now + dt.timedelta(minutes=1), last_seen_at=now)
    assert me_status(world, cookie) == 200
    shift_session(world, cookie, expires_at=now - dt.timedelta(seconds=1), last_seen_at=now)
    assert me_status(world, cookie) == 401


def test_activity_keeps_a_session_alive(world: World) -> None:
    """Each use moves last_seen_at on, so the idle limit counts from the last request."""
    _client, cookie, _ = logged_in(world, world.account("alpha", Role.VIEWER))
    shift_session(world, cookie, last_seen_at=utcnow() - dt.timedelta(minutes=20))
    assert me_status(world, cookie) == 200
    with world.deployment.transaction() as session:
        record = session.get(AuthSession, hashlib.sha256(cookie.encode()).hexdigest())
        assert record is not None
        assert utcnow() - record.last_seen_at < dt.timedelta(minutes=1)


# -- ending sessions -----------------------------------------------------------------------------


def test_logout_ends_the_session_on_the_server(world: World) -> None:
    client, cookie, csrf = logged_in(world, world.account("alpha", Role.VIEWER))
    response = client.post("/api/v1/logout", headers=csrf_header(csrf))  # type: ignore[attr-defined]
    assert response.status_code == 204
    assert me_status(world, cookie) == 401  # the old cookie, replayed by anyone


def test_logout_everywhere_ends_every_session_of_the_user(world: World) -> None:
    account = world.add_user("alpha", Role.ANALYST)
    other = world.account("alpha", Role.ANALYST)
    first, first_cookie, csrf = logged_in(world, account)
    _second, second_cookie, _ = logged_in(world, account)
    _third, bystander_cookie, _ = logged_in(world, other)
    response = first.post("/api/v1/logout-everywhere",  # type: ignore[attr-defined]
                          headers=csrf_header(csrf))
    assert response.status_code == 204
    assert me_status(world, first_cookie) == 401
    assert me_status(world, second_cookie) == 401
    assert me_status(world, bystander_cookie) == 200


def test_disabling_a_user_ends_their_sessions_and_stops_their_tokens(world: World) -> None:
    account = world.add_user("alpha", Role.ANALYST)
    _client, cookie, _ = logged_in(world, account)
    with world.client() as admin:
        csrf = login(admin, world.account("alpha", Role.ADMIN))
        assert admin.get("/api/v1/me", headers=bearer(account)).status_code == 200
        response = admin.patch(f"/api/v1/users/{account.user_id}", headers=csrf_header(csrf),
                               json={"disabled": True})
        assert response.status_code == 200
        assert response.json()["disabled"] is True
        assert me_status(world, cookie) == 401
        assert problem_slug(admin.get("/api/v1/me", headers=bearer(account)), 401) == (
            "not-authenticated")
        # Nor can they log in again.
        refused = admin.post("/api/v1/login", json={
            "tenant": "alpha", "email": account.email, "password": account.password})
        assert problem_slug(refused, 401) == "bad-credentials"
        # Enabling them again revives neither the ended session nor the revoked token.
        admin.patch(f"/api/v1/users/{account.user_id}", headers=csrf_header(csrf),
                    json={"disabled": False})
        assert me_status(world, cookie) == 401
        assert admin.get("/api/v1/me", headers=bearer(account)).status_code == 401


def test_the_last_admin_cannot_be_disabled_or_demoted(world: World) -> None:
    admin = world.account("bravo", Role.ADMIN)
    with world.client() as client:
        for change in ({"disabled": True}, {"role": "viewer"}):
            response = client.patch(f"/api/v1/users/{admin.user_id}", headers=bearer(admin),
                                    json=change)
            assert problem_slug(response, 409) == "conflict"
    assert world.user(admin.user_id).role == "admin"


# -- CSRF ----------------------------------------------------------------------------------------


def test_a_cookie_authenticated_change_needs_the_csrf_header(world: World) -> None:
    client, _cookie, csrf = logged_in(world, world.account("alpha", Role.ADMIN))
    body = {"name": "csrf check", "days": 1}
    without = client.post("/api/v1/tokens", json=body)  # type: ignore[attr-defined]
    assert problem_slug(without, 403) == "csrf"
    wrong = client.post("/api/v1/tokens", json=body,  # type: ignore[attr-defined]
                        headers=csrf_header("0" * 64))
    assert problem_slug(wrong, 403) == "csrf"
    right = client.post("/api/v1/tokens", json=body,  # type: ignore[attr-defined]
                        headers=csrf_header(csrf))
    assert right.status_code == 201


def test_a_form_post_without_the_csrf_header_is_refused(world: World) -> None:
    """What a cross-site HTML form could send: the cookie rides along, the header cannot."""
    client, cookie, _ = logged_in(world, world.account("alpha", Role.ADMIN))
    response = client.post(  # type: ignore[attr-defined]
        "/api/v1/logout", data={"anything": "1"},
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert problem_slug(response, 403) == "csrf"
    assert me_status(world, cookie) == 200


def test_the_csrf_token_of_another_session_is_refused(world: World) -> None:
    client, _cookie, _csrf = logged_in(world, world.account("alpha", Role.ADMIN))
    _other, _other_cookie, other_csrf = logged_in(world, world.account("alpha", Role.ADMIN))
    response = client.post("/api/v1/logout",  # type: ignore[attr-defined]
                           headers=csrf_header(other_csrf))
    assert problem_slug(response, 403) == "csrf"


def test_csrf_refusals_are_audited(world: World) -> None:
    before = world.last_seq()
    client, _cookie, _ = logged_in(world, world.account("alpha", Role.ADMIN))
    client.post("/api/v1/logout")  # type: ignore[attr-defined]
    denied = [e for e in world.audit_events("user:access:denied", before) if e.reason == "csrf"]
    assert len(denied) == 1


def test_token_requests_need_no_csrf_header(world: World) -> None:
    with world.client() as client:
        response = client.put("/api/v1/policy", headers=bearer(world.account("bravo", Role.ADMIN)),
                              json={"require_mfa": False})
        assert response.status_code == 200


def test_operator_changes_need_the_csrf_header_too(world: World) -> None:
    from strongroom.identity import services as identity

    with world.deployment.transaction() as session:
        _operator, enrolment, _codes = identity.create_operator(
            session, world.deployment.keys, "csrf-ops", OPERATOR_PASSWORD)
    with world.client(operator=True) as client:
        response = client.post("/operator/v1/login", json={
            "name": "csrf-ops", "password": OPERATOR_PASSWORD,
            "code": totp_now(enrolment["secret"])})
        assert response.status_code == 200, response.text
        csrf = response.json()["csrf_token"]
        assert problem_slug(client.post("/operator/v1/logout"), 403) == "csrf"
        assert client.get("/operator/v1/me").status_code == 200
        assert client.post("/operator/v1/logout", headers=csrf_header(csrf)).status_code == 204
        assert problem_slug(client.get("/operator/v1/me"), 401) == "not-authenticated"
