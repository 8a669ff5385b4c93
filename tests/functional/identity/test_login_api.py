"""Logging in: one answer for every wrong part, throttling per account and per address,
and every failure and lock in the audit trail."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import sqlalchemy as sa

from strongroom.db import utcnow
from strongroom.identity import services as identity
from strongroom.identity.models import LoginThrottle, Role
from strongroom.identity.throttle import ACCOUNT, ADDRESS
from tests.functional.identity.support import World, problem, problem_slug

# The issue asks for a lock "well before 100 consecutive failures"; we ask for far less.
ENOUGH_TO_LOCK = 30


def attempt(world: World, address: str, **body: str) -> object:
    with world.client(address) as client:
        return client.post("/api/v1/login", json=body)


def test_unknown_user_unknown_tenant_and_wrong_password_get_one_answer(world: World) -> None:
    viewer = world.account("alpha", Role.VIEWER)
    cases = {
        "wrong password": {"tenant": "alpha", "email": viewer.email, "password": "not it"},
        "unknown user": {"tenant": "alpha", "email": "ghost@alpha.example", "password": "x"},
        "unknown tenant": {"tenant": "nosuch", "email": viewer.email, "password": "x"},
        "malformed tenant": {"tenant": "../Alpha", "email": viewer.email, "password": "x"},
        "malformed email": {"tenant": "alpha", "email": "not an email", "password": "x"},
        "other tenant's user": {"tenant": "bravo", "email": viewer.email,
                                "password": viewer.password},
    }
    answers = {}
    for case, body in cases.items():
        response = attempt(world, world.fresh_address(), **body)
        found = problem(response, 401)  # type: ignore[arg-type]
        answers[case] = (found["type"], found["title"], found["detail"])
        assert dict(response.headers).keys() >= {"www-authenticate"}  # type: ignore[attr-defined]
    assert len(set(answers.values())) == 1, answers
    assert answers["wrong password"][0].endswith("/bad-credentials")


def test_a_nul_in_the_tenant_or_email_is_just_a_failed_login(world: World) -> None:
    for body in ({"tenant": "alpha\x00", "email": "a@b.example", "password": "x"},
                 {"tenant": "alpha", "email": "a\x00@b.example", "password": "x"}):
        response = attempt(world, world.fresh_address(), **body)
        assert problem_slug(response, 401) == "bad-credentials"  # type: ignore[arg-type]


def test_consecutive_failures_lock_the_account_with_retry_after(world: World) -> None:
    account = world.add_user("alpha", Role.VIEWER)
    before = world.last_seq()
    statuses = []
    for n in range(1, ENOUGH_TO_LOCK + 1):
        # A new address each time: this is the per-account throttle, not the per-address one.
        response = attempt(world, world.fresh_address(), tenant="alpha", email=account.email,
                           password=f"guess number {n}")
        statuses.append(response.status_code)  # type: ignore[attr-defined]
        if response.status_code == 429:  # type: ignore[attr-defined]
            break
    assert statuses[-1] == 429, statuses
    assert len(statuses) > ACCOUNT.free_failures, "locked before any free failure"
    body = problem(response, 429)  # type: ignore[arg-type]
    assert body["type"].endswith("/too-many-attempts")
    retry = int(response.headers["retry-after"])  # type: ignore[attr-defined]
    assert 1 <= retry <= 15 * 60
    # While locked, even the right password is refused (the lock is made long, not waited on).
    with world.deployment.transaction() as session:
        session.execute(sa.update(LoginThrottle).where(LoginThrottle.locked_until.is_not(None))
                        .values(locked_until=utcnow() + dt.timedelta(minutes=10)))
    right = attempt(world, world.fresh_address(), tenant="alpha", email=account.email,
                    password=account.password)
    assert problem_slug(right, 429) == "too-many-attempts"  # type: ignore[arg-type]
    # Every failure and the lock are audited, with reasons.
    events = world.audit_events("user:session:login-failed", before)
    reasons = [e.reason for e in events]
    failures = statuses.count(401)
    assert reasons.count("bad-credentials") == failures
    assert reasons.count("too-many-attempts") == 2
    locks = [json.loads(e.details).get("locked_seconds", 0) for e in events
             if e.reason == "bad-credentials"]
    assert locks[:ACCOUNT.free_failures] == [0] * ACCOUNT.free_failures
    assert locks[-1] >= 1


def test_a_success_resets_the_account_count(world: World) -> None:
    account = world.add_user("alpha", Role.VIEWER)
    address = world.fresh_address()
    with world.deployment.transaction() as session:
        keys = identity.login_keys(world.deployment.keys.identity_key(session), "alpha",
                                   account.email, address)

    def fail(times: int) -> None:
        for n in range(times):
            response = attempt(world, address, tenant="alpha", email=account.email,
                               password=f"wrong {n}")
            assert problem_slug(response, 401) == "bad-credentials"  # type: ignore[arg-type]

    def stored() -> tuple[int, bool]:
        with world.deployment.transaction() as session:
            row = session.get(LoginThrottle, keys.account)
            return (row.failures, row.locked_until is not None) if row else (0, False)

    fail(ACCOUNT.free_failures)
    assert stored() == (ACCOUNT.free_failures, False)
    assert attempt(world, address, tenant="alpha", email=account.email,
                   password=account.password).status_code == 200  # type: ignore[attr-defined]
    assert stored() == (0, False)
    fail(ACCOUNT.free_failures)
    assert stored() == (ACCOUNT.free_failures, False)
    fail(1)  # counted from the reset: this one is the first to lock
    assert stored() == (ACCOUNT.free_failures + 1, True)


def test_many_accounts_from_one_address_lock_the_address(world: World) -> None:
    address = world.fresh_address()
    statuses = []
    for _ in range(ADDRESS.free_failures + ENOUGH_TO_LOCK):
        response = attempt(world, address, tenant="alpha",
                           email=f"{uuid.uuid4().hex[:10]}@alpha.example", password="guess")
        statuses.append(response.status_code)  # type: ignore[attr-defined]
        if statuses[-1] == 429:
            break
    assert statuses[-1] == 429
    assert len(statuses) > ADDRESS.free_failures
    # Another address is not affected.
    viewer = world.account("alpha", Role.VIEWER)
    assert attempt(world, world.fresh_address(), tenant="alpha", email=viewer.email,
                   password=viewer.password).status_code == 200  # type: ignore[attr-defined]


def test_a_missing_code_is_audited_but_not_counted(world: World) -> None:
    """An MFA user's right password without a code: the client is asked for the code."""
    from tests.functional.identity.test_mfa_api import enrol

    account = world.add_user("alpha", Role.VIEWER)
    enrol(world, account)
    before = world.last_seq()
    address = world.fresh_address()
    for _ in range(ACCOUNT.free_failures + 2):
        response = attempt(world, address, tenant="alpha", email=account.email,
                           password=account.password)
        assert problem_slug(response, 401) == "mfa-required"  # type: ignore[arg-type]
    events = world.audit_events("user:session:login-failed", before)
    assert [e.reason for e in events] == ["mfa-required"] * (ACCOUNT.free_failures + 2)
