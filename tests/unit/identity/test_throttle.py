"""Login throttling: free failures, doubling locks, resets, forgetting, and concurrency."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from strongroom.db import utcnow
from strongroom.deployment import Deployment
from strongroom.identity import throttle
from strongroom.identity.errors import LoginThrottled
from strongroom.identity.throttle import ACCOUNT, ADDRESS, MAX_LOCK, ThrottleRule


def test_lock_durations_double_after_the_free_failures_up_to_the_cap() -> None:
    rule = ThrottleRule(free_failures=3)
    waits = [throttle.lock_duration(n, rule).total_seconds() for n in range(1, 10)]
    assert waits == [0, 0, 0, 1, 2, 4, 8, 16, 32]
    assert throttle.lock_duration(100, rule) == MAX_LOCK
    assert throttle.lock_duration(10**6, rule) == MAX_LOCK


def test_accounts_lock_well_before_100_failures_addresses_a_little_later() -> None:
    assert ACCOUNT.free_failures < ADDRESS.free_failures < 100
    assert throttle.lock_duration(ACCOUNT.free_failures + 1, ACCOUNT) > dt.timedelta(0)
    # An hour of guessing at the cap: a few dozen tries, not thousands.
    assert dt.timedelta(hours=1) / MAX_LOCK <= 10


def test_a_locked_key_is_refused_with_the_wait(deployment: Deployment) -> None:
    now = utcnow()
    with deployment.transaction() as session:
        for n in range(ACCOUNT.free_failures):
            counted = throttle.record_failure(session, {"acct:k": ACCOUNT}, now=now)
            assert counted == throttle.FailureCount(n + 1, 0)
            throttle.check(session, ["acct:k"], now=now)
        counted = throttle.record_failure(session, {"acct:k": ACCOUNT}, now=now)
        assert counted == throttle.FailureCount(ACCOUNT.free_failures + 1, 1)
        with pytest.raises(LoginThrottled) as refused:
            throttle.check(session, ["other", "acct:k"], now=now)
        assert refused.value.retry_after == 1
        throttle.check(session, ["acct:k"], now=now + dt.timedelta(seconds=1))
        throttle.check(session, ["other"], now=now)


def test_a_reset_clears_the_count(deployment: Deployment) -> None:
    with deployment.transaction() as session:
        for _ in range(5):
            throttle.record_failure(session, {"acct:r": ACCOUNT})
        assert throttle.failures(session, "acct:r") == 5
        throttle.reset(session, "acct:r")
        assert throttle.failures(session, "acct:r") == 0
        throttle.check(session, ["acct:r"])


def test_failures_older_than_a_day_are_forgotten(deployment: Deployment) -> None:
    then = utcnow() - dt.timedelta(days=2)
    with deployment.transaction() as session:
        for _ in range(10):
            throttle.record_failure(session, {"acct:f": ACCOUNT}, now=then)
        counted = throttle.record_failure(session, {"acct:f": ACCOUNT})
        assert counted.failures == 1
        assert counted.locked_seconds == 0


def test_one_failure_counts_against_account_and_address(deployment: Deployment) -> None:
    with deployment.transaction() as session:
        for _ in range(ACCOUNT.free_failures + 1):
            counted = throttle.record_failure(session, {"acct:a": ACCOUNT, "addr:a": ADDRESS})
        assert counted.locked_seconds == 1  # the account's rule locked; the address's not yet
        assert throttle.failures(session, "addr:a") == ACCOUNT.free_failures + 1


def test_concurrent_first_failures_are_all_counted(deployment: Deployment) -> None:
    """Many failures for a key not yet in the table, at once: none may crash, none is lost."""
    workers = 8
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def fail() -> None:
        try:
            barrier.wait(timeout=30)
            with deployment.transaction() as session:
                throttle.record_failure(session, {"acct:race": ACCOUNT, "addr:race": ADDRESS})
        except BaseException as exc:  # noqa: BLE001 - collected and reported below
            errors.append(exc)

    threads = [threading.Thread(target=fail) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    with deployment.transaction() as session:
        assert throttle.failures(session, "acct:race") == workers
        assert throttle.failures(session, "addr:race") == workers
