"""Restore drills: prove that a backup comes back as a working deployment.

A drill verifies the backup byte for byte, restores it into a scratch home
(and, on PostgreSQL, a scratch database), opens that as a deployment with the
same master key, verifies the restored audit chain, checks every stored
object's digest against the manifest and decrypts it in full (so every
authentication tag is checked with the restored tenant keys), counts what it
finds, then removes the scratch copy. The outcome is stored as evidence in
``backup_drills`` and audited; a failed drill also raises a security alert.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from strongroom.analysis.engine import EncryptedTable, open_sandbox, run_query
from strongroom.audit import Actor, EventTag, Outcome
from strongroom.audit.models import AuditHead
from strongroom.audit.verify import verify_log
from strongroom.backup import snapshot
from strongroom.backup.errors import BackupNotFound
from strongroom.backup.manifest import Manifest
from strongroom.backup.models import BackupDrill
from strongroom.backup.services import repository_for, restore_backup, verify_backup
from strongroom.config import load_settings
from strongroom.crypto.parquet import ParquetCrypto
from strongroom.datasets.catalog import version_blob
from strongroom.datasets.models import DatasetVersion, VersionStatus
from strongroom.db import utcnow
from strongroom.deployment import Deployment, open_deployment
from strongroom.errors import StrongroomError
from strongroom.storage.models import StoredObject
from strongroom.storage.services import read_object
from strongroom.tenancy.models import Tenant


@dataclasses.dataclass(frozen=True)
class DrillCheck:
    name: str
    ok: bool
    detail: str


@dataclasses.dataclass
class DrillResult:
    backup_id: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    checks: list[DrillCheck] = dataclasses.field(default_factory=list)
    problem: str | None = None

    @property
    def passed(self) -> bool:
        return self.problem is None

    def check(self, name: str, detail: str) -> None:
        self.checks.append(DrillCheck(name, True, detail))

    def fail(self, name: str, detail: str) -> None:
        self.checks.append(DrillCheck(name, False, detail))
        if self.problem is None:
            self.problem = detail


class _DrillFailed(Exception):
    pass


def _remove(path: Path) -> None:
    for directory, _dirs, _files in os.walk(path):
        Path(directory).chmod(0o700)
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _scratch_database(dep: Deployment) -> Iterator[str | None]:
    if snapshot.backend_of(dep.settings.sqlalchemy_url) == "sqlite":
        yield None
        return
    name = f"strongroom_drill_{secrets.token_hex(6)}"
    with snapshot.scratch_postgres(dep.settings.sqlalchemy_url, name) as url:
        yield url


def _checks_in_restored(restored: Deployment, result: DrillResult, manifest_objects: set[
        tuple[str, str]], audit_seq: int) -> None:
    with restored.transaction() as session:
        report = verify_log(session, restored.audit.keys)
        if not report.ok:
            result.fail("audit chain", report.summary())
            raise _DrillFailed
        head = int(session.scalar(sa.select(AuditHead.seq)) or 0)
        if head < audit_seq:
            result.fail("audit chain", f"restored audit log ends at {head}, the backup was "
                        f"taken at {audit_seq}: events are missing")
            raise _DrillFailed
        result.check("audit chain", report.summary())
        objects = plaintext = 0
        for record in session.scalars(sa.select(StoredObject).order_by(StoredObject.id)):
            if (record.tenant_id, record.digest) not in manifest_objects:
                result.fail("objects", f"object {record.id} ({record.digest[:12]}...) of the "
                            "restored database is not in the manifest")
                raise _DrillFailed
            ring = restored.keys.tenant_ring(session, record.tenant_id)
            try:
                plaintext += sum(len(c) for c in read_object(restored.store, ring, record))
            except StrongroomError as exc:
                result.fail("objects", f"object {record.id}: {exc.detail}")
                raise _DrillFailed from None
            objects += 1
        result.check("objects", f"{objects} objects match the manifest and decrypt in full "
                     f"({plaintext} bytes, every authentication tag checked)")
        versions, rows = _check_dataset_versions(restored, session, result, manifest_objects)
        tenants = session.scalar(sa.select(sa.func.count()).select_from(Tenant)) or 0
        result.check("sample count", f"{tenants} tenants, {objects} objects, {versions} dataset "
                     f"versions ({rows} rows counted by query) in the restored deployment")


def _check_dataset_versions(
    restored: Deployment, session: Session, result: DrillResult,
    manifest_objects: set[tuple[str, str]],
) -> tuple[int, int]:
    """Every ready dataset version: its Parquet file is in the manifest with its digest,
    and a count through the query sandbox equals the row count recorded at build time."""
    versions = rows = 0
    ready = sa.select(DatasetVersion).where(DatasetVersion.status == VersionStatus.READY.value)
    for version in session.scalars(ready.order_by(DatasetVersion.id)):
        blob = version_blob(version)
        if blob is None or (blob.prefix, blob.digest) not in manifest_objects:
            result.fail("datasets", f"dataset version {version.id}: its Parquet file is not in "
                        "the manifest")
            raise _DrillFailed
        ring = restored.keys.tenant_ring(session, version.tenant_id)
        try:
            table = EncryptedTable(restored.store.verified_path(blob), ParquetCrypto(ring))
            conn = open_sandbox({"version": table})  # registered as ds_version
            try:
                counted = run_query(conn, "SELECT count(*) FROM ds_version").rows
            finally:
                conn.close()
        except StrongroomError as exc:
            result.fail("datasets", f"dataset version {version.id}: {exc.detail}")
            raise _DrillFailed from None
        if counted[0][0] != version.row_count:
            result.fail("datasets", f"dataset version {version.id}: a count finds "
                        f"{counted[0][0]} rows, the catalog recorded {version.row_count}")
            raise _DrillFailed
        versions += 1
        rows += int(counted[0][0])
    result.check("datasets", f"{versions} dataset versions: Parquet digests match the manifest "
                 f"and counts equal the recorded row counts ({rows} rows)")
    return versions, rows


def _run(dep: Deployment, result: DrillResult, scratch: Path) -> None:
    settings = dep.settings
    repo = repository_for(settings)
    repo.check_readable()
    ids = repo.backup_ids()
    if result.backup_id is None:
        if not ids:
            raise BackupNotFound("there is no backup to drill", hint="run `strongroom backup run`")
        result.backup_id = ids[-1]
    backup_id = result.backup_id
    with dep.transaction() as session:
        expected = dep.keys.backup_signing_key(session).public_key.hex()
    key_file = None if settings.master_key else settings.master_key_file
    with repo.lock(shared=True):  # no prune between the verify and the restore
        report, found = verify_backup(repo, dep.keys, backup_id, expected)
        if not report.ok or found is None:
            result.fail("verify", report.problems[0])
            raise _DrillFailed
        result.check("verify", f"{report.files} files and {report.objects} objects re-read "
                     f"({report.bytes_read} bytes): digests, tags and signature match")
        with _scratch_database(dep) as scratch_url:
            restore_backup(repo, dep.keys, backup_id, scratch / "home",
                           database_url=scratch_url, master_key_file=key_file,
                           expected_public_key=expected,
                           protected=(settings.home, settings.master_key_file))
            result.check("restore",
                         f"restored into a scratch home ({len(found.objects)} objects)")
            _open_and_check(dep, result, scratch / "home", found)


def _open_and_check(
    dep: Deployment, result: DrillResult, home: Path, found: Manifest
) -> None:
    settings = dep.settings
    # Only what the restored home needs: the live deployment's own STRONGROOM_*
    # variables (a database URL above all) must not leak into the scratch copy.
    environ = {"STRONGROOM_ENVIRONMENT": settings.environment.value}
    if settings.master_key:
        environ["STRONGROOM_MASTER_KEY"] = settings.master_key.reveal()
    restored = open_deployment(load_settings(home, environ))
    try:
        result.check("open", "the restored deployment opens with this master key")
        objects = {(o.prefix, o.digest) for o in found.objects}
        _checks_in_restored(restored, result, objects, found.audit_seq)
    finally:
        restored.close()


def run_drill(
    dep: Deployment, actor: Actor, backup_id: str | None = None,
    scratch_parent: Path | None = None, now: dt.datetime | None = None,
) -> DrillResult:
    """Drill the newest backup (or ``backup_id``); store and audit the evidence.

    Never raises for a failed drill: the result says what failed, and a failed
    drill raises a security alert event. Raises only if the evidence cannot be
    recorded (then the audit trail is unavailable and that is the louder problem).
    """
    result = DrillResult(backup_id, now or utcnow())
    scratch = Path(tempfile.mkdtemp(prefix="strongroom-drill-", dir=scratch_parent))
    try:
        _run(dep, result, scratch)
    except _DrillFailed:
        pass
    except StrongroomError as exc:
        result.fail("drill", exc.one_line())
    finally:
        _remove(scratch)
    result.finished_at = max(utcnow(), result.started_at)
    checks = [dataclasses.asdict(c) for c in result.checks]
    with dep.transaction() as session:
        session.add(BackupDrill(
            backup_id=result.backup_id, started_at=result.started_at,
            finished_at=result.finished_at, passed=result.passed,
            checks=json.dumps(checks), problem=(result.problem or "")[:500] or None,
        ))
        dep.audit.record_event(
            session, EventTag.BACKUP_DRILL, actor=actor,
            target=f"backup:{result.backup_id}" if result.backup_id else None,
            outcome=Outcome.SUCCESS if result.passed else Outcome.FAILURE,
            reason=None if result.passed else "drill-failed",
            details={"checks": [[c.name, c.ok] for c in result.checks]},
        )
        if not result.passed:
            dep.audit.record_event(
                session, EventTag.ALERT_RAISE, actor=Actor.system(),
                target=f"backup:{result.backup_id}" if result.backup_id else None,
                reason="backup-drill-failed",
                details={"problem": (result.problem or "")[:300]},
            )
    return result


def latest_drills(dep: Deployment, limit: int = 10) -> list[BackupDrill]:
    with dep.transaction() as session:
        return list(session.scalars(
            sa.select(BackupDrill).order_by(BackupDrill.id.desc()).limit(limit)
        ))


