"""The backup scheduler inside ``strongroom serve``: a small background thread.

Every minute it asks :func:`due_jobs` what is due (UTC): the daily backup once a
day from ``backup_hour``; on ``backup_weekday`` also the weekly backup and then a
restore drill. After each backup it prunes. What ran when is read back from the
repository and the drill evidence at start, so a restart does not run a job twice
in a day, and a server that was down at the hour catches up when it starts.
A failed job is audited as a failure and raises a security alert; the server
keeps serving.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from enum import StrEnum

import sqlalchemy as sa

from strongroom.audit import Actor, EventTag, Outcome
from strongroom.backup.drill import run_drill
from strongroom.backup.models import BackupDrill
from strongroom.backup.retention import prune_backups
from strongroom.backup.services import BackupKind, repository_for, run_backup
from strongroom.db import utcnow
from strongroom.deployment import Deployment
from strongroom.errors import StrongroomError

logger = logging.getLogger("strongroom.backup")
TICK_SECONDS = 60.0


class Job(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    DRILL = "drill"


def due_jobs(
    now: dt.datetime, hour: int, weekday: int, last: dict[Job, dt.date | None]
) -> list[Job]:
    """Jobs due at ``now`` given the day each last ran (pure: no clock, no files)."""
    today = now.astimezone(dt.UTC).date()
    if now.astimezone(dt.UTC).hour < hour:
        return []
    jobs = []
    if last.get(Job.DAILY) != today:
        jobs.append(Job.DAILY)
    if today.weekday() == weekday:
        if last.get(Job.WEEKLY) != today:
            jobs.append(Job.WEEKLY)
        if last.get(Job.DRILL) != today:
            jobs.append(Job.DRILL)
    return jobs


class BackupScheduler:
    """Runs due jobs on a daemon thread until :meth:`stop`."""

    def __init__(self, dep: Deployment, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self._dep = dep
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0
        self.last: dict[Job, dt.date | None] = self._read_last()

    def _read_last(self) -> dict[Job, dt.date | None]:
        last: dict[Job, dt.date | None] = dict.fromkeys(Job)
        try:
            ids = repository_for(self._dep.settings).backup_ids()
        except StrongroomError:
            ids = []
        for backup_id in ids:
            day = dt.datetime.strptime(backup_id[:8], "%Y%m%d").replace(tzinfo=dt.UTC).date()
            last[Job(backup_id.split("-")[1])] = day
        with self._dep.transaction() as session:
            started = session.scalar(sa.select(sa.func.max(BackupDrill.started_at)))
        if started is not None:
            last[Job.DRILL] = started.astimezone(dt.UTC).date()
        return last

    def tick(self) -> list[Job]:
        """Run whatever is due now; returns the jobs attempted."""
        settings = self._dep.settings
        now = self._clock()
        jobs = due_jobs(now, settings.backup_hour, settings.backup_weekday, self.last)
        for job in jobs:
            self.last[job] = now.astimezone(dt.UTC).date()
            try:
                self._run(job)
            except StrongroomError as exc:
                logger.error("scheduled %s failed: %s", job.value, exc.slug)
                self._alert(job, exc)
        self.ticks += 1
        return jobs

    def _run(self, job: Job) -> None:
        actor = Actor.system()
        if job is Job.DRILL:
            drill = run_drill(self._dep, actor, now=self._clock())  # evidence and alert too
            logger.info("scheduled drill %s", "passed" if drill.passed else "FAILED")
            return
        result = run_backup(self._dep, BackupKind(job.value), now=self._clock())
        with self._dep.transaction() as session:
            self._dep.audit.record_event(
                session, EventTag.BACKUP_RUN, actor=actor, target=f"backup:{result.backup_id}",
                details={"kind": result.kind, "objects": result.objects,
                         "objects_copied": result.objects_copied, "scheduled": True},
            )
        prune_backups(self._dep, actor)
        logger.info("scheduled %s backup %s", job.value, result.backup_id)

    def _alert(self, job: Job, exc: StrongroomError) -> None:
        tag = EventTag.BACKUP_DRILL if job is Job.DRILL else EventTag.BACKUP_RUN
        try:
            with self._dep.transaction() as session:
                self._dep.audit.record_event(session, tag, actor=Actor.system(),
                                             outcome=Outcome.FAILURE, reason=exc.slug)
                self._dep.audit.record_event(
                    session, EventTag.ALERT_RAISE, actor=Actor.system(),
                    reason=f"scheduled-{job.value}-failed", details={"error": exc.slug},
                )
        except StrongroomError:
            logger.error("the failure of scheduled %s could not be audited", job.value)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - the server must keep serving
                logger.error("backup scheduler tick failed: %s", type(exc).__name__)
            self._stop.wait(TICK_SECONDS)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="strongroom-backups",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def start_scheduler(dep: Deployment) -> BackupScheduler | None:
    """Start the scheduler if a backup repository is set; None (and a log line) if not."""
    if dep.settings.sources.get("backup_repository") is None:
        logger.warning("backups are not scheduled: the setting backup_repository is not set")
        return None
    scheduler = BackupScheduler(dep)
    scheduler.start()
    return scheduler
