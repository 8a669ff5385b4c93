"""Prune applies the retention plan, audits it first, collects objects; holds protect."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa
from tests.unit.backup.conftest import add_objects, canary

from strongroom.audit import Actor, EventTag
from strongroom.audit.models import AuditEvent
from strongroom.backup.errors import BackupNotFound
from strongroom.backup.retention import hold_backup, prune_backups, release_backup
from strongroom.backup.services import BackupKind, repository_for, run_backup, verify_backups
from strongroom.deployment import Deployment

pytestmark = pytest.mark.usefixtures("repo_dir")
DAY = dt.timedelta(days=1)
T0 = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)


def _prune_events(dep: Deployment) -> list[dict[str, object]]:
    with dep.transaction() as session:
        return [json.loads(e.details) for e in session.scalars(
            sa.select(AuditEvent).where(AuditEvent.tag == EventTag.BACKUP_PRUNE.value))]


def test_prune_keeps_the_newest_three_daily_and_collects_their_objects(dep: Deployment) -> None:
    ids = []
    for day in range(5):
        add_objects(dep, f"tenant-{day}", [canary(str(day))])
        ids.append(run_backup(dep, BackupKind.DAILY, now=T0 + day * DAY).backup_id)
    repo = repository_for(dep.settings)
    before = set(repo.object_refs())
    assert len(before) == 5
    plan = prune_backups(dep, Actor.cli(), dry_run=True).plan
    assert plan.prune == tuple(ids[:2])
    assert repo.backup_ids() == ids, "a dry run removes nothing"
    assert _prune_events(dep) == [], "a dry run is not a prune"
    result = prune_backups(dep, Actor.cli())
    assert repo.backup_ids() == ids[2:]
    # Each backup holds every object that existed then, so nothing is unreferenced yet.
    assert (result.objects_removed, result.objects_kept) == (0, 5)
    [event] = _prune_events(dep)
    assert event["prune"] == ids[:2]
    assert all(r.ok for r in verify_backups(dep))


def test_prune_collects_objects_only_pruned_backups_referred_to(dep: Deployment) -> None:
    from strongroom.storage.interfaces import BlobRef

    [gone] = add_objects(dep, "acme", [canary("gone")])
    first = run_backup(dep, now=T0).backup_id
    dep.store.delete(BlobRef(gone.tenant_id, gone.digest, gone.size))
    for day in range(1, 4):
        run_backup(dep, now=T0 + day * DAY)
    repo = repository_for(dep.settings)
    assert repo.has_object(gone.tenant_id, gone.digest, gone.size)
    result = prune_backups(dep, Actor.cli())
    assert result.plan.prune == (first,)
    assert result.objects_removed == 1
    assert not repo.has_object(gone.tenant_id, gone.digest, gone.size)


def test_a_held_backup_is_never_pruned_until_released(dep: Deployment) -> None:
    ids = [run_backup(dep, now=T0 + day * DAY).backup_id for day in range(5)]
    hold_backup(dep, Actor.cli(), ids[0])
    plan = prune_backups(dep, Actor.cli()).plan
    assert (ids[0], "held") in plan.keep
    assert plan.prune == (ids[1],)
    assert repository_for(dep.settings).backup_ids() == [ids[0], *ids[2:]]
    release_backup(dep, Actor.cli(), ids[0])
    assert prune_backups(dep, Actor.cli()).plan.prune == (ids[0],)
    tags = _tags(dep)
    assert EventTag.BACKUP_HOLD.value in tags
    assert EventTag.BACKUP_RELEASE.value in tags


def test_weekly_backups_are_a_separate_series(dep: Deployment) -> None:
    weekly = [run_backup(dep, BackupKind.WEEKLY, now=T0 + 7 * w * DAY).backup_id
              for w in range(6)]
    daily = [run_backup(dep, now=T0 + 40 * DAY + d * DAY).backup_id for d in range(2)]
    plan = prune_backups(dep, Actor.cli()).plan
    assert plan.prune == tuple(weekly[:2])
    assert repository_for(dep.settings).backup_ids() == sorted(weekly[2:] + daily)


def test_hold_of_an_unknown_backup(dep: Deployment) -> None:
    run_backup(dep)
    with pytest.raises(BackupNotFound):
        hold_backup(dep, Actor.cli(), "20990101T000000.000Z-daily-abcdef")
    with pytest.raises(BackupNotFound, match="not on hold"):
        release_backup(dep, Actor.cli(), "20990101T000000.000Z-daily-abcdef")


def _tags(dep: Deployment) -> list[str]:
    with dep.transaction() as session:
        return list(session.scalars(sa.select(AuditEvent.tag)))
