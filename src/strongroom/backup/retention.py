"""Which backups to keep: the newest N daily and newest M weekly, as two separate series.

The rules, exactly (docs/measures/availability-control.md says the same):

1. Daily and weekly backups form two series, counted separately. A weekly backup
   never counts as a daily one, nor the other way round.
2. In each series the newest ``keep`` backups by creation time are kept; older
   ones are pruned. The count is of backups, not of calendar days or weeks: a
   missed day (or week) prunes nothing, so the last ``keep`` backups that exist
   are always kept, however old.
3. When only weekly backups are being made (daily runs stopped), the last
   ``daily_keep`` daily backups stay until newer daily ones replace them.
4. A held backup is never pruned and does not count towards its series, so
   holding one never pushes another out.
5. ``keep`` of 0 is not allowed (settings are at least 1), so the newest backup of
   each series always survives a prune.

The function takes the backups with their explicit creation times and returns
the plan; it reads no clock and touches no files, so it can be tested over any
simulated calendar.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

from strongroom.audit import Actor, EventTag
from strongroom.backup import manifest as manifests
from strongroom.backup.errors import BackupCorrupted, BackupNotFound
from strongroom.backup.services import repository_for
from strongroom.deployment import Deployment


@dataclasses.dataclass(frozen=True)
class BackupInfo:
    backup_id: str
    kind: str  # "daily" or "weekly"
    created_at: dt.datetime
    held: bool = False


@dataclasses.dataclass(frozen=True)
class RetentionPlan:
    keep: tuple[tuple[str, str], ...]  # (backup id, why it is kept)
    prune: tuple[str, ...]

    def as_details(self) -> dict[str, object]:
        return {"keep": [list(k) for k in self.keep], "prune": list(self.prune)}


def plan_retention(
    backups: Iterable[BackupInfo], daily_keep: int, weekly_keep: int
) -> RetentionPlan:
    """Decide what a prune keeps and removes (see the module docstring for the rules)."""
    if daily_keep < 1 or weekly_keep < 1:
        raise ValueError("each series keeps at least one backup")
    limits = {"daily": daily_keep, "weekly": weekly_keep}
    keep: list[tuple[str, str]] = []
    prune: list[str] = []
    counted = dict.fromkeys(limits, 0)
    ordered = sorted(backups, key=lambda b: (b.created_at, b.backup_id), reverse=True)
    for backup in ordered:
        if backup.held:
            keep.append((backup.backup_id, "held"))
        elif backup.kind not in limits:
            keep.append((backup.backup_id, "unknown kind: kept"))
        elif counted[backup.kind] < limits[backup.kind]:
            counted[backup.kind] += 1
            why = f"{backup.kind} {counted[backup.kind]} of {limits[backup.kind]}"
            keep.append((backup.backup_id, why))
        else:
            prune.append(backup.backup_id)
    return RetentionPlan(tuple(sorted(keep)), tuple(sorted(prune)))


# -- prune and holds (services over the repository) --------------------------------------------


def _info(backup_id: str, held: set[str]) -> BackupInfo:
    stamp, kind, _ = backup_id.split("-")
    created = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=dt.UTC)
    return BackupInfo(backup_id, kind, created, backup_id in held)


@dataclasses.dataclass(frozen=True)
class PruneResult:
    plan: RetentionPlan
    objects_removed: int
    objects_kept: int
    collection_skipped: str | None = None


def prune_backups(dep: Deployment, actor: Actor, *, dry_run: bool = False) -> PruneResult:
    """Apply the retention plan: record it in the audit, remove pruned backups, then
    collect objects no remaining backup refers to. ``dry_run`` only returns the plan."""
    settings = dep.settings
    repo = repository_for(settings)
    repo.check_readable()
    with repo.lock():
        held = repo.held()
        plan = plan_retention(
            (_info(b, held) for b in repo.backup_ids()),
            settings.backup_daily_keep, settings.backup_weekly_keep,
        )
        if dry_run:
            return PruneResult(plan, 0, 0)
        repo.check_writable()
        # Fail-closed: the plan is in the audit trail before anything is removed.
        with dep.transaction() as session:
            dep.audit.record_event(session, EventTag.BACKUP_PRUNE, actor=actor,
                                   details=plan.as_details())
            expected = dep.keys.backup_signing_key(session).public_key.hex()
        repo.clear_incoming()
        for backup_id in plan.prune:
            repo.delete_backup(backup_id)
        referenced: set[tuple[str, str]] = set()
        for backup_id in repo.backup_ids():
            try:
                found = manifests.load(repo.read_manifest(backup_id), backup_id, dep.keys,
                                       expected)
            except BackupCorrupted:
                return PruneResult(plan, 0, 0, f"backup {backup_id} has an unreadable manifest, "
                                   "so no object was collected")
            referenced.update((o.prefix, o.digest) for o in found.objects)
        removed = kept = 0
        for ref in list(repo.object_refs()):
            if ref in referenced:
                kept += 1
            else:
                repo.delete_object(*ref)
                removed += 1
    return PruneResult(plan, removed, kept)


def hold_backup(dep: Deployment, actor: Actor, backup_id: str) -> None:
    """Put a backup on hold: prune never removes it until it is released."""
    repo = repository_for(dep.settings)
    repo.check_readable()
    with repo.lock():
        repo.read_manifest(backup_id)  # BackupNotFound for an unknown id
        with dep.transaction() as session:
            dep.audit.record_event(session, EventTag.BACKUP_HOLD, actor=actor,
                                   target=f"backup:{backup_id}")
            repo.hold(backup_id)


def release_backup(dep: Deployment, actor: Actor, backup_id: str) -> None:
    """Release a hold; the backup falls under the retention rules again."""
    repo = repository_for(dep.settings)
    repo.check_readable()
    with repo.lock():
        if backup_id not in repo.held():
            raise BackupNotFound(f"backup {backup_id} is not on hold")
        with dep.transaction() as session:
            dep.audit.record_event(session, EventTag.BACKUP_RELEASE, actor=actor,
                                   target=f"backup:{backup_id}")
            repo.release(backup_id)
