"""Server-side sessions: random ids stored hashed, idle and absolute limits, ending, CSRF."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
import sqlalchemy as sa

from strongroom.db import utcnow
from strongroom.deployment import Deployment
from strongroom.identity import sessions
from strongroom.identity.models import AuthSession, Plane

POLICY = sessions.SessionPolicy(idle=dt.timedelta(minutes=30), absolute=dt.timedelta(hours=12))


def start(deployment: Deployment, principal: str = "u1", plane: Plane = Plane.TENANT) -> str:
    with deployment.transaction() as session:
        token, _record = sessions.new_session(session, plane, principal, "t1", POLICY)
    return token


def resolve(deployment: Deployment, token: str, at: dt.datetime | None = None,
            plane: Plane = Plane.TENANT) -> AuthSession | None:
    with deployment.transaction() as session:
        return sessions.resolve(session, token, plane, POLICY, now=at)


def test_ids_are_256_bit_random_and_stored_only_hashed(deployment: Deployment) -> None:
    tokens = {start(deployment) for _ in range(20)}
    assert len(tokens) == 20
    assert all(len(t) == 43 for t in tokens)  # 32 bytes, URL-safe base64
    with deployment.transaction() as session:
        stored = set(session.scalars(sa.select(AuthSession.id_hash)))
    assert not tokens & stored
    assert {hashlib.sha256(t.encode()).hexdigest() for t in tokens} <= stored


def test_a_session_resolves_on_its_own_plane_only(deployment: Deployment) -> None:
    token = start(deployment)
    assert resolve(deployment, token) is not None
    assert resolve(deployment, token, plane=Plane.OPERATOR) is None
    assert resolve(deployment, token + "x") is None
    assert resolve(deployment, "") is None


def test_idle_and_absolute_limits(deployment: Deployment) -> None:
    token = start(deployment)
    now = utcnow()
    assert resolve(deployment, token, now + dt.timedelta(minutes=29)) is not None
    # That use moved last_seen_at on, so 29 minutes later still counts as active...
    assert resolve(deployment, token, now + dt.timedelta(minutes=58)) is not None
    # ...but not 30 minutes after the last use.
    assert resolve(deployment, token, now + dt.timedelta(minutes=88, seconds=1)) is None


def test_the_absolute_limit_holds_however_active(deployment: Deployment) -> None:
    token = start(deployment)
    now = utcnow()
    for minutes in range(20, 12 * 60, 20):  # a request every 20 minutes, up to 11:40
        assert resolve(deployment, token, now + dt.timedelta(minutes=minutes)) is not None
    assert resolve(deployment, token, now + dt.timedelta(hours=12)) is None


def test_ending_one_and_ending_all(deployment: Deployment) -> None:
    first, second, other = start(deployment), start(deployment), start(deployment, "u2")
    with deployment.transaction() as session:
        sessions.end_by_id(session, hashlib.sha256(first.encode()).hexdigest())
    assert resolve(deployment, first) is None
    assert resolve(deployment, second) is not None
    with deployment.transaction() as session:
        assert sessions.end_all(session, "u1") == 1
        assert sessions.end_all(session, "u1") == 0
    assert resolve(deployment, second) is None
    assert resolve(deployment, other) is not None


@pytest.mark.parametrize("presented", [None, "", "0" * 64, "x"])
def test_csrf_tokens_belong_to_one_session(deployment: Deployment, presented: str | None) -> None:
    with deployment.transaction() as session:
        key = deployment.keys.identity_key(session)
    token = sessions.csrf_token(key, "session-a")
    assert sessions.csrf_ok(key, "session-a", token)
    assert not sessions.csrf_ok(key, "session-b", token)
    assert not sessions.csrf_ok(key, "session-a", presented)
