"""The scheduler in serve: what is due when (a pure function), and a tick that runs it."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import sqlalchemy as sa
from tests.unit.backup.conftest import add_objects, canary

from strongroom.audit.models import AuditEvent
from strongroom.backup.drill import latest_drills
from strongroom.backup.scheduler import BackupScheduler, Job, due_jobs
from strongroom.backup.services import repository_for
from strongroom.deployment import Deployment

SUNDAY = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)  # weekday 6
MONDAY = SUNDAY + dt.timedelta(days=1)


def _at(day: dt.datetime, hour: int, minute: int = 0) -> dt.datetime:
    return day.replace(hour=hour, minute=minute)


@pytest.mark.parametrize(
    ("now", "last", "expected"),
    [
        (_at(MONDAY, 1, 59), {}, []),
        (_at(MONDAY, 2), {}, [Job.DAILY]),
        (_at(MONDAY, 23), {Job.DAILY: MONDAY.date()}, []),
        # A server down at 02:00 catches up when it starts later that day.
        (_at(MONDAY, 17), {Job.DAILY: SUNDAY.date()}, [Job.DAILY]),
        (_at(SUNDAY, 2), {}, [Job.DAILY, Job.WEEKLY, Job.DRILL]),
        (_at(SUNDAY, 3), {Job.DAILY: SUNDAY.date(), Job.WEEKLY: SUNDAY.date()}, [Job.DRILL]),
        (_at(SUNDAY, 1), {}, []),
    ],
)
def test_due_jobs(now: dt.datetime, last: dict[Job, dt.date], expected: list[Job]) -> None:
    assert due_jobs(now, hour=2, weekday=6, last=dict(last)) == expected


def test_a_sunday_tick_backs_up_daily_and_weekly_then_drills(dep: Deployment) -> None:
    add_objects(dep, "acme", [canary()])
    clock = _at(SUNDAY, 2, 5)
    scheduler = BackupScheduler(dep, clock=lambda: clock)
    assert scheduler.tick() == [Job.DAILY, Job.WEEKLY, Job.DRILL]
    ids = repository_for(dep.settings).backup_ids()
    assert [i.split("-")[1] for i in ids] == ["daily", "weekly"]
    [drill] = latest_drills(dep)
    assert drill.passed
    assert scheduler.tick() == [], "nothing runs twice in a day"
    # A restarted server reads what already ran from the repository and the evidence.
    assert BackupScheduler(dep, clock=lambda: clock).tick() == []


def test_a_failed_scheduled_backup_raises_an_alert(dep: Deployment) -> None:
    repo = repository_for(dep.settings)
    repo.root.rmdir()  # the backup disk is gone
    scheduler = BackupScheduler(dep, clock=lambda: _at(MONDAY, 3))
    assert scheduler.tick() == [Job.DAILY]
    with dep.transaction() as session:
        tags = list(session.scalars(sa.select(AuditEvent.tag).order_by(AuditEvent.seq)))
    assert tags[-2:] == ["operator:backup:run", "system:alert:raise"]


def test_the_thread_starts_ticks_and_stops(dep: Deployment) -> None:
    ticked = threading.Event()

    class Probe(BackupScheduler):
        def tick(self) -> list[Job]:
            jobs = super().tick()
            ticked.set()
            return jobs

    scheduler = Probe(dep, clock=lambda: _at(MONDAY, 1))
    scheduler.start()
    try:
        assert ticked.wait(60), "the scheduler thread never ticked"
    finally:
        scheduler.stop()
    assert scheduler.ticks >= 1
