"""TOTP over HTTP: enrolment, codes usable once, recovery codes, the tenant-wide
requirement, and operators, who always need a code.

pyotp computes the codes, as an authenticator app would. The server accepts the
current step and one either side, so a test that needs a second fresh code takes the
next step's code instead of waiting 30 seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from strongroom.identity import services as identity
from strongroom.identity.models import Role, User
from tests.functional.identity.support import (
    OPERATOR_PASSWORD,
    Account,
    World,
    bearer,
    csrf_header,
    login,
    problem,
    problem_slug,
    totp_now,
)


def login_body(account: Account, code: str | None = None) -> dict[str, str]:
    body = {"tenant": account.tenant, "email": account.email, "password": account.password}
    if code is not None:
        body["code"] = code
    return body


def enrol(world: World, account: Account) -> tuple[str, list[str]]:
    """Enrol an authenticator for ``account``; return its secret and the recovery codes."""
    with world.client() as client:
        csrf = login(client, account)
        started = client.post("/api/v1/me/mfa", headers=csrf_header(csrf),
                              json={"current_password": account.password})
        assert started.status_code == 200, started.text
        enrolment = started.json()
        assert enrolment["otpauth_uri"].startswith("otpauth://totp/")
        assert f"secret={enrolment['secret']}" in enrolment["otpauth_uri"]
        assert enrolment["qr_svg"].lstrip().startswith("<svg")
        confirmed = client.post("/api/v1/me/mfa/confirm", headers=csrf_header(csrf),
                                json={"code": totp_now(enrolment["secret"])})
        assert confirmed.status_code == 200, confirmed.text
        codes = confirmed.json()["recovery_codes"]
    return str(enrolment["secret"]), list(codes)


@pytest.fixture
def enrolled(world: World) -> tuple[Account, str, list[str]]:
    account = world.add_user("alpha", Role.ANALYST)
    secret, codes = enrol(world, account)
    return account, secret, codes


def test_enrolment_needs_the_password(world: World) -> None:
    account = world.add_user("alpha", Role.VIEWER)
    with world.client() as client:
        csrf = login(client, account)
        response = client.post("/api/v1/me/mfa", headers=csrf_header(csrf),
                               json={"current_password": "not the password"})
        assert problem_slug(response, 403) == "reauthentication-required"


def test_enrolment_is_confirmed_only_by_a_right_code(world: World) -> None:
    account = world.add_user("alpha", Role.VIEWER)
    with world.client() as client:
        csrf = login(client, account)
        client.post("/api/v1/me/mfa", headers=csrf_header(csrf),
                    json={"current_password": account.password})
        response = client.post("/api/v1/me/mfa/confirm", headers=csrf_header(csrf),
                               json={"code": "000000"})
        assert "not correct" in problem(response, 422)["detail"]
    assert world.user(account.user_id).mfa_enabled is False


def test_after_enrolment_login_needs_the_code(
    world: World, enrolled: tuple[Account, str, list[str]]
) -> None:
    account, secret, _codes = enrolled
    with world.client() as client:
        without = client.post("/api/v1/login", json=login_body(account))
        assert problem_slug(without, 401) == "mfa-required"
        wrong = client.post("/api/v1/login", json=login_body(account, "123456"))
        assert problem_slug(wrong, 401) == "bad-credentials"
        right = client.post("/api/v1/login", json=login_body(account, totp_now(secret, 1)))
        assert right.status_code == 200, right.text
        assert right.json()["user"]["mfa_enabled"] is True


def test_a_code_that_logged_in_once_is_refused_the_second_time(
    world: World, enrolled: tuple[Account, str, list[str]]
) -> None:
    account, secret, _codes = enrolled
    # The enrolment used this step's code; the next step's is fresh and inside the window.
    code = totp_now(secret, 1)
    with world.client() as client:
        first = client.post("/api/v1/login", json=login_body(account, code))
        assert first.status_code == 200, first.text
        logout = client.post("/api/v1/logout", headers=csrf_header(first.json()["csrf_token"]))
        assert logout.status_code == 204
        replay = client.post("/api/v1/login", json=login_body(account, code))
        assert problem_slug(replay, 401) == "bad-credentials"
    # The refusal was the replay rule: forget the last used step and the same code works.
    with world.deployment.transaction() as session:
        session.execute(sa.update(User).where(User.id == account.user_id)
                        .values(mfa_last_step=None))
    with world.client() as client:
        assert client.post("/api/v1/login", json=login_body(account, code)).status_code == 200


def test_an_expired_code_is_refused(
    world: World, enrolled: tuple[Account, str, list[str]]
) -> None:
    account, secret, _codes = enrolled
    import pyotp

    stale = pyotp.TOTP(secret).at(time.time() - 300)
    with world.client() as client:
        response = client.post("/api/v1/login", json=login_body(account, stale))
        assert problem_slug(response, 401) == "bad-credentials"


def test_a_recovery_code_works_once(
    world: World, enrolled: tuple[Account, str, list[str]]
) -> None:
    account, _secret, codes = enrolled
    assert len(codes) == 10
    assert len(set(codes)) == 10
    with world.client() as client:
        first = client.post("/api/v1/login", json=login_body(account, codes[0].upper()))
        assert first.status_code == 200, first.text
        again = client.post("/api/v1/login", json=login_body(account, codes[0]))
        assert problem_slug(again, 401) == "bad-credentials"
        other = client.post("/api/v1/login", json=login_body(account, codes[1]))
        assert other.status_code == 200


def test_with_mfa_the_password_minimum_is_eight(
    world: World, enrolled: tuple[Account, str, list[str]]
) -> None:
    account, secret, _codes = enrolled
    with world.client() as client:
        csrf = login(client, account, totp_now(secret, 1))
        too_short = client.post("/api/v1/me/password", headers=csrf_header(csrf), json={
            "current_password": account.password, "new_password": "gr8 owl"})
        assert "at least 8" in problem(too_short, 422)["detail"]
        eight = client.post("/api/v1/me/password", headers=csrf_header(csrf), json={
            "current_password": account.password, "new_password": "gr8 owls"})
        assert eight.status_code == 204, eight.text


def test_turning_mfa_off_needs_the_password(
    world: World, enrolled: tuple[Account, str, list[str]]
) -> None:
    account, secret, _codes = enrolled
    with world.client() as client:
        csrf = login(client, account, totp_now(secret, 1))
        wrong = client.post("/api/v1/me/mfa/disable", headers=csrf_header(csrf),
                            json={"current_password": "not the password"})
        assert problem_slug(wrong, 403) == "reauthentication-required"
        assert world.user(account.user_id).mfa_enabled is True
        right = client.post("/api/v1/me/mfa/disable", headers=csrf_header(csrf),
                            json={"current_password": account.password})
        assert right.status_code == 204
    assert world.user(account.user_id).mfa_enabled is False


def test_changing_the_email_needs_the_password(world: World) -> None:
    account = world.add_user("alpha", Role.VIEWER)
    with world.client() as client:
        csrf = login(client, account)
        wrong = client.post("/api/v1/me/email", headers=csrf_header(csrf),
                            json={"current_password": "not it", "email": "else@alpha.example"})
        assert problem_slug(wrong, 403) == "reauthentication-required"
        right = client.post("/api/v1/me/email", headers=csrf_header(csrf),
                            json={"current_password": account.password,
                                  "email": "Renamed.Person@alpha.example"})
        assert right.status_code == 204
        assert client.get("/api/v1/me").json()["user"]["email"] == "renamed.person@alpha.example"


# -- the tenant-wide requirement ---------------------------------------------------------------


@pytest.fixture
def strict_tenant(world: World) -> Iterator[tuple[Account, TestClient, dict[str, str]]]:
    """A tenant whose admin (enrolled) has required MFA for everyone."""
    import uuid

    admin = world.add_tenant(f"strict-{uuid.uuid4().hex[:6]}")
    secret, _codes = enrol(world, admin)
    with world.client() as client:
        csrf = login(client, admin, totp_now(secret, 1))
        response = client.put("/api/v1/policy", headers=csrf_header(csrf),
                              json={"require_mfa": True})
        assert response.status_code == 200
        assert response.json()["require_mfa"] is True
        yield admin, client, csrf_header(csrf)


def test_a_required_mfa_confines_users_without_it_to_their_own_account(
    world: World, strict_tenant: tuple[Account, TestClient, dict[str, str]]
) -> None:
    admin, _client, _headers = strict_tenant
    newcomer = world.add_user(admin.tenant, Role.ADMIN)
    with world.client() as client:
        response = client.post("/api/v1/login", json=login_body(newcomer))
        assert response.status_code == 200
        assert response.json()["mfa_required"] is True
        assert client.get("/api/v1/me").json()["mfa_required"] is True
        refused = client.get("/api/v1/users")
        assert "requires MFA" in problem(refused, 403)["detail"]
        # Nor can a token be minted to get around the requirement.
        csrf = client.get("/api/v1/me").json()["csrf_token"]
        minted = client.post("/api/v1/tokens", headers=csrf_header(csrf),
                             json={"name": "workaround", "days": 1})
        assert "requires MFA" in problem(minted, 403)["detail"]
    enrol(world, newcomer)
    with world.client() as client:
        csrf = login(client, newcomer, totp_now(_secret_of(world, newcomer), 1))
        assert client.get("/api/v1/users", headers=csrf_header(csrf)).status_code == 200


def _secret_of(world: World, account: Account) -> str:
    keys = world.deployment.keys
    with world.deployment.transaction() as session:
        user = session.get(User, account.user_id)
        assert user is not None
        assert user.mfa_secret_sealed is not None
        ring = keys.tenant_ring(session, user.tenant_id)
        return ring.decrypt(user.mfa_secret_sealed, identity._mfa_context(ring, user.id)).decode()


def test_mfa_cannot_be_turned_off_where_the_tenant_requires_it(
    world: World, strict_tenant: tuple[Account, TestClient, dict[str, str]]
) -> None:
    admin, client, headers = strict_tenant
    response = client.post("/api/v1/me/mfa/disable", headers=headers,
                           json={"current_password": admin.password})
    assert "requires MFA" in problem(response, 422)["detail"]
    assert world.user(admin.user_id).mfa_enabled is True


# -- operators -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def operator(world: World) -> dict[str, str]:
    with world.deployment.transaction() as session:
        made, enrolment, codes = identity.create_operator(
            session, world.deployment.keys, "night-ops", OPERATOR_PASSWORD)
    return {"name": made.name, "secret": enrolment["secret"], "recovery": codes[0]}


def operator_login(world: World, body: dict[str, str]) -> object:
    with world.client(operator=True) as client:
        return client.post("/operator/v1/login", json=body)


def test_an_operator_without_a_code_is_asked_for_one(
    world: World, operator: dict[str, str]
) -> None:
    for password in (OPERATOR_PASSWORD, "wrong password entirely"):
        response = operator_login(world, {"name": operator["name"], "password": password})
        assert problem_slug(response, 401) == "mfa-required"  # type: ignore[arg-type]
    # The same answer whether the password was right: it was not even looked at.
    right = operator_login(world, {"name": operator["name"], "password": OPERATOR_PASSWORD})
    wrong = operator_login(world, {"name": operator["name"], "password": "nope nope nope"})
    assert right.json() == {**wrong.json()}  # type: ignore[attr-defined]


def test_an_operator_logs_in_with_a_code_once(world: World, operator: dict[str, str]) -> None:
    code = totp_now(operator["secret"])
    body = {"name": operator["name"], "password": OPERATOR_PASSWORD, "code": code}
    with world.client(operator=True) as client:
        response = client.post("/operator/v1/login", json=body)
        assert response.status_code == 200, response.text
        assert client.get("/operator/v1/tenants").status_code == 200
        slugs = {t["slug"] for t in client.get("/operator/v1/tenants").json()}
        assert {"alpha", "bravo"} <= slugs
        replay = client.post("/operator/v1/login", json=body)
        assert problem_slug(replay, 401) == "bad-credentials"
    recovery = operator_login(world, {**body, "code": operator["recovery"]})
    assert recovery.status_code == 200  # type: ignore[attr-defined]


def test_operator_login_refusals_say_the_same_whatever_was_wrong(
    world: World, operator: dict[str, str]
) -> None:
    code = totp_now(operator["secret"])
    answers = []
    for body in (
        {"name": "nobody-here", "password": OPERATOR_PASSWORD, "code": code},
        {"name": operator["name"], "password": "wrong wrong wrong", "code": code},
        {"name": operator["name"], "password": OPERATOR_PASSWORD, "code": "000000"},
        {"name": "bad\x00name", "password": OPERATOR_PASSWORD, "code": code},
    ):
        response = operator_login(world, body)
        answers.append({k: problem(response, 401)[k]  # type: ignore[arg-type]
                        for k in ("type", "title", "detail")})
    assert all(answer == answers[0] for answer in answers)


def test_operator_logins_are_audited(world: World, operator: dict[str, str]) -> None:
    before = world.last_seq()
    operator_login(world, {"name": operator["name"], "password": "wrong", "code": "111111"})
    failed = world.audit_events("operator:session:login-failed", before)
    assert [e.reason for e in failed] == ["bad-credentials"]
    assert operator["name"] not in str(failed[0].details)


def test_operators_never_take_api_tokens(world: World) -> None:
    with world.client(operator=True) as client:
        response = client.get("/operator/v1/tenants",
                              headers=bearer(world.account("alpha", Role.ADMIN)))
        assert "takes no API tokens" in problem(response, 401)["detail"]
