"""Login throttling per account and per client address, kept in the database.

Consecutive failures grow a delay: the first few cost nothing, then each
further failure locks the key for twice as long as the last (1 s, 2 s, 4 s,
...) up to 15 minutes, so an account sees at most a few dozen guesses an hour
and is locked long before 100 consecutive failures. Addresses get more free
failures, because several people can share one. A success resets the
account's count; failures older than a day are forgotten.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from strongroom.db import utcnow
from strongroom.identity.errors import LoginThrottled
from strongroom.identity.models import LoginThrottle

FORGET_AFTER = dt.timedelta(days=1)
MAX_LOCK = dt.timedelta(minutes=15)


@dataclasses.dataclass(frozen=True)
class ThrottleRule:
    free_failures: int


ACCOUNT = ThrottleRule(free_failures=3)
ADDRESS = ThrottleRule(free_failures=20)


def lock_duration(failures: int, rule: ThrottleRule) -> dt.timedelta:
    over = failures - rule.free_failures
    if over <= 0:
        return dt.timedelta(0)
    return min(MAX_LOCK, dt.timedelta(seconds=2 ** min(over - 1, 20)))


def check(session: Session, keys: list[str], now: dt.datetime | None = None) -> None:
    """Refuse with 429 and the wait while any of ``keys`` is locked."""
    now = now or utcnow()
    locked = [
        until
        for until in session.scalars(
            sa.select(LoginThrottle.locked_until).where(
                LoginThrottle.key.in_(keys), LoginThrottle.locked_until > now
            )
        )
        if until is not None
    ]
    if locked:
        wait = max(locked) - now
        raise LoginThrottled(max(1, math.ceil(wait.total_seconds())))


@dataclasses.dataclass(frozen=True)
class FailureCount:
    """After a failure: the highest consecutive count among the keys, and any lock it set."""

    failures: int
    locked_seconds: int


def record_failure(
    session: Session, rules: dict[str, ThrottleRule], now: dt.datetime | None = None
) -> FailureCount:
    """Count a failure against each key; return the highest count and the longest lock."""
    now = now or utcnow()
    highest = 0
    longest = dt.timedelta(0)
    for key, rule in rules.items():
        _ensure_row(session, key, now)
        row = session.scalars(
            sa.select(LoginThrottle).where(LoginThrottle.key == key).with_for_update()
            .execution_options(populate_existing=True)
        ).one()
        if now - row.last_failure_at > FORGET_AFTER:
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        duration = lock_duration(row.failures, rule)
        row.locked_until = now + duration if duration else None
        highest = max(highest, row.failures)
        longest = max(longest, duration)
    session.flush()
    return FailureCount(highest, math.ceil(longest.total_seconds()))


def _ensure_row(session: Session, key: str, now: dt.datetime) -> None:
    """Insert the key's row unless it exists, without failing when a concurrent failure
    inserts it first (a plain INSERT would end that request in an IntegrityError)."""
    insert = (postgresql.insert if session.get_bind().dialect.name == "postgresql"
              else sqlite.insert)
    session.execute(
        insert(LoginThrottle)
        .values(key=key, failures=0, last_failure_at=now)
        .on_conflict_do_nothing(index_elements=[LoginThrottle.key])
    )


def reset(session: Session, key: str) -> None:
    session.execute(sa.delete(LoginThrottle).where(LoginThrottle.key == key))


def failures(session: Session, key: str) -> int:
    row = session.get(LoginThrottle, key)
    return row.failures if row else 0
