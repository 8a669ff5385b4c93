"""Backup runs, verify, restore and drills on real deployments (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.unit.backup.conftest import CANARY_DB, add_objects, canary, flip_byte, make_writable

from strongroom.audit import Actor, EventTag
from strongroom.audit.models import AuditEvent
from strongroom.audit.verify import verify_log
from strongroom.backup import snapshot
from strongroom.backup.drill import latest_drills, run_drill
from strongroom.backup.errors import BackupCorrupted, BackupNotFound, RestoreRefused
from strongroom.backup.repository import LocalBackupRepository
from strongroom.backup.services import (
    BackupKind,
    list_backups,
    repository_for,
    restore_backup,
    run_backup,
    verify_backups,
)
from strongroom.config import load_settings
from strongroom.deployment import Deployment, open_deployment
from strongroom.storage.models import StoredObject
from strongroom.storage.services import read_object


def _repo(dep: Deployment) -> LocalBackupRepository:
    return repository_for(dep.settings)


def _tags(dep: Deployment) -> list[tuple[str, str]]:
    with dep.transaction() as session:
        return [(e.tag, e.outcome) for e in session.scalars(
            sa.select(AuditEvent).order_by(AuditEvent.seq))]


def _store_files(root: Path) -> dict[str, bytes]:
    tenants = root / "tenants"
    return {p.relative_to(tenants).as_posix(): p.read_bytes()
            for p in sorted(tenants.rglob("*")) if p.is_file()}


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """Where drills make (and must remove) their scratch homes."""
    path = tmp_path / "scratch"
    path.mkdir()
    return path


# -- runs ---------------------------------------------------------------------------------------


def test_backup_copies_only_new_objects(dep: Deployment) -> None:
    add_objects(dep, "acme", [canary("a") * 100 for _ in range(3)])
    first = run_backup(dep)
    assert (first.objects, first.objects_copied) == (3, 3)
    again = run_backup(dep, BackupKind.WEEKLY)
    assert (again.objects, again.objects_copied, again.bytes_copied) == (3, 0, 0)
    add_objects(dep, "acme", [canary("b")], create=False)
    third = run_backup(dep)
    assert (third.objects, third.objects_copied) == (4, 1)
    rows = list_backups(dep)
    assert [r.kind for r in rows] == ["daily", "weekly", "daily"]
    assert all(r.problem is None for r in rows)
    assert all(r.ok for r in verify_backups(dep))


def test_backup_files_are_read_only_and_the_master_key_is_not_in_them(dep: Deployment) -> None:
    add_objects(dep, "acme", [canary()])
    result = run_backup(dep)
    repo = _repo(dep)
    backup_dir = repo.backups / result.backup_id
    assert backup_dir.stat().st_mode & 0o777 == 0o500
    for path in backup_dir.iterdir():
        assert path.stat().st_mode & 0o777 == 0o400
    for path in repo.objects.rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o777 == 0o400
    key = dep.settings.master_key_file.read_bytes().strip()
    for path in repo.root.rglob("*"):
        if path.is_file():
            assert key not in path.read_bytes()


def test_no_plaintext_customer_data_or_database_in_the_repository(dep: Deployment) -> None:
    secrets = [canary("object") for _ in range(3)]
    add_objects(dep, "acme", [s * 50 for s in secrets])
    run_backup(dep)
    run_backup(dep, BackupKind.WEEKLY)
    needles = [*secrets, CANARY_DB.encode(), b"SQLite format 3", b"CREATE TABLE", b"COPY "]
    for path in _repo(dep).root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for needle in needles:
                assert needle not in data, f"{needle[:20]!r} in {path}"


# -- restore ------------------------------------------------------------------------------------


def _restore_and_check(dep: Deployment, tmp_path: Path, database_url: str | None) -> None:
    payloads = {canary(str(i)) * (1000 * i + 1) for i in range(4)}
    records = add_objects(dep, "acme", sorted(payloads))
    result = run_backup(dep)
    target = tmp_path / "restored"
    restore_backup(
        _repo(dep), dep.keys, result.backup_id, target, database_url=database_url,
        master_key_file=dep.settings.master_key_file,
        protected=(dep.settings.home, dep.settings.master_key_file),
    )
    # Every object bit for bit, at the same place.
    assert _store_files(target / "objects") == _store_files(dep.settings.objects_dir)
    restored = open_deployment(load_settings(target, {}))
    try:
        with restored.transaction() as session:
            report = verify_log(session, restored.audit.keys)
            assert report.ok, report.summary()
            got = set()
            for record in records:
                row = session.get(StoredObject, record.id)
                assert row is not None
                ring = restored.keys.tenant_ring(session, row.tenant_id)
                got.add(b"".join(read_object(restored.store, ring, row)))
        assert got == payloads
    finally:
        restored.close()


def test_restore_round_trip(dep: Deployment, tmp_path: Path) -> None:
    if snapshot.backend_of(dep.settings.sqlalchemy_url) == "sqlite":
        _restore_and_check(dep, tmp_path, None)
        return
    # PostgreSQL: into a new, empty database on the same server.
    name = f"strongroom_restore_{uuid.uuid4().hex[:8]}"
    with snapshot.scratch_postgres(dep.settings.sqlalchemy_url, name) as url:
        _restore_and_check(dep, tmp_path, url)


def test_restore_refuses_a_non_empty_directory_without_force(
    dep: Deployment, tmp_path: Path
) -> None:
    if snapshot.backend_of(dep.settings.sqlalchemy_url) != "sqlite":
        pytest.skip("target directory handling is the same on both backends")
    result = run_backup(dep)
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("operator's file")
    with pytest.raises(RestoreRefused, match="is not empty"):
        restore_backup(_repo(dep), dep.keys, result.backup_id, target)
    assert (target / "keep.txt").read_text() == "operator's file"
    restore_backup(_repo(dep), dep.keys, result.backup_id, target, force=True)
    assert not (target / "keep.txt").exists()
    assert (target / "strongroom.db").exists()


def test_restore_refuses_the_live_home(dep: Deployment) -> None:
    result = run_backup(dep)
    with pytest.raises(RestoreRefused, match="running deployment"):
        restore_backup(_repo(dep), dep.keys, result.backup_id, dep.settings.home, force=True,
                       protected=(dep.settings.home, dep.settings.master_key_file))
    assert dep.settings.master_key_file.exists()


def test_unknown_backup_id(dep: Deployment, tmp_path: Path) -> None:
    run_backup(dep)
    for bad in ("20990101T000000.000Z-daily-abcdef", "../../etc", "nope"):
        with pytest.raises(BackupNotFound):
            verify_backups(dep, bad)
        with pytest.raises(BackupNotFound):
            restore_backup(_repo(dep), dep.keys, bad, tmp_path / "x")


# -- tampering: verify and drill both fail, naming the problem ---------------------------------


def _tamper_object(repo: LocalBackupRepository, backup_id: str) -> str:
    path = next(p for p in repo.objects.rglob("*") if p.is_file())
    flip_byte(path)
    where = f"backup {backup_id}: object {path.parent.parent.name}/{path.name[:12]}..."
    return f"{where} does not match its SHA-256 (corrupted)"


def _remove_object(repo: LocalBackupRepository, backup_id: str) -> str:
    path = next(p for p in repo.objects.rglob("*") if p.is_file())
    make_writable(repo.objects)
    path.unlink()
    where = f"backup {backup_id}: object {path.parent.parent.name}/{path.name[:12]}..."
    return f"{where} is missing from the repository"


def _truncate_manifest(repo: LocalBackupRepository, backup_id: str) -> str:
    path = repo.backups / backup_id / "manifest.json"
    make_writable(path.parent)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return f"backup {backup_id}: manifest is truncated or not valid JSON"


def _forge_manifest(repo: LocalBackupRepository, backup_id: str) -> str:
    path = repo.backups / backup_id / "manifest.json"
    make_writable(path.parent)
    envelope = json.loads(path.read_bytes())
    body = json.loads(envelope["body"])
    body["objects"] = body["objects"][1:]  # hide an object: the signature no longer fits
    envelope["body"] = json.dumps(body, sort_keys=True, separators=(",", ":"))
    path.write_text(json.dumps(envelope))
    return f"backup {backup_id}: manifest signature does not verify (forged or altered)"


def _flip_database(repo: LocalBackupRepository, backup_id: str) -> str:
    flip_byte(repo.backups / backup_id / "database.sr")
    return f"backup {backup_id}: file database.sr (database) does not match its SHA-256"


@pytest.mark.parametrize(
    "tamper",
    [_tamper_object, _remove_object, _truncate_manifest, _forge_manifest, _flip_database],
    ids=["flipped-object-byte", "missing-object", "truncated-manifest", "forged-manifest",
         "flipped-database-byte"],
)
def test_tampering_fails_verify_and_drill_precisely(
    dep: Deployment, tamper: object, scratch: Path
) -> None:
    add_objects(dep, "acme", [canary() * 100, canary() * 200])
    backup_id = run_backup(dep).backup_id
    assert run_drill(dep, Actor.cli(), scratch_parent=scratch).passed
    expected = tamper(_repo(dep), backup_id)  # type: ignore[operator]
    [report] = verify_backups(dep, backup_id)
    assert not report.ok
    assert report.problems[0].startswith(expected), report.problems
    with pytest.raises(BackupCorrupted, match="^" + expected.split(":")[0]):
        report.raise_if_failed()
    result = run_drill(dep, Actor.cli(), scratch_parent=scratch)
    assert not result.passed
    assert result.problem is not None
    assert result.problem.startswith(expected)
    drills = latest_drills(dep)
    assert [d.passed for d in drills[:2]] == [False, True]
    assert drills[0].backup_id == backup_id
    assert json.loads(drills[0].checks)[-1]["ok"] is False
    tags = _tags(dep)
    assert (EventTag.BACKUP_DRILL.value, "failure") in tags
    assert tags[-1][0] == EventTag.ALERT_RAISE.value
    assert list(scratch.iterdir()) == [], "the scratch copy was not removed"


def test_a_forged_manifest_re_signed_with_another_key_is_refused(
    dep: Deployment, tmp_path: Path
) -> None:
    """An attacker with write access but no keys cannot re-sign: a new key is noticed."""
    from strongroom.backup import manifest as manifests
    from strongroom.crypto.backup_keys import BackupSigningKey

    add_objects(dep, "acme", [canary()])
    backup_id = run_backup(dep).backup_id
    repo = _repo(dep)
    path = repo.backups / backup_id / "manifest.json"
    found = manifests.load(path.read_bytes(), backup_id, dep.keys)
    forger = BackupSigningKey(os.urandom(32))
    forged = manifests.Manifest(**{**found.__dict__, "objects": (),
                                   "public_key": forger.public_key.hex()})
    body = forged.body()
    envelope = json.loads(path.read_bytes())
    envelope.update(body=body.decode(), signature=forger.sign(body))
    make_writable(path.parent)
    path.write_text(json.dumps(envelope))
    [report] = verify_backups(dep, backup_id)
    assert report.problems == [
        f"backup {backup_id}: manifest was signed by another deployment's key (forged)"
    ]
    # Without the live database (a restore), the KEK seal still catches it.
    with pytest.raises(BackupCorrupted, match="seal does not open"):
        restore_backup(repo, dep.keys, backup_id, tmp_path / "r", expected_public_key=None)


# -- drills -------------------------------------------------------------------------------------


def test_drill_passes_and_is_recorded_as_evidence(dep: Deployment, scratch: Path) -> None:
    add_objects(dep, "acme", [canary() * 10 for _ in range(3)])
    add_objects(dep, "globex", [canary()])
    run_backup(dep)
    newest = run_backup(dep, BackupKind.WEEKLY).backup_id
    result = run_drill(dep, Actor.cli(), scratch_parent=scratch)
    assert result.passed, result.problem
    assert result.backup_id == newest
    names = [c.name for c in result.checks]
    assert names == [
        "verify", "restore", "open", "audit chain", "objects", "datasets", "sample count"]
    assert "4 objects match the manifest" in result.checks[4].detail
    assert "0 dataset versions" in result.checks[5].detail
    assert "2 tenants" in result.checks[6].detail
    [drill] = latest_drills(dep)
    assert drill.passed
    assert (EventTag.BACKUP_DRILL.value, "success") in _tags(dep)
    assert EventTag.ALERT_RAISE.value not in [t for t, _ in _tags(dep)]
    assert list(scratch.iterdir()) == []


def test_drill_without_any_backup_fails_and_alerts(dep: Deployment, scratch: Path) -> None:
    result = run_drill(dep, Actor.cli(), scratch_parent=scratch)
    assert not result.passed
    assert "there is no backup to drill" in (result.problem or "")
    assert _tags(dep)[-1][0] == EventTag.ALERT_RAISE.value


def _built_version(dep: Deployment) -> str:
    """A tenant with one dataset built from a 200-row CSV upload; returns the version id."""
    from tests.unit.datasets.test_jobs import customers_csv, new_dataset
    from tests.unit.datasets.test_uploads import ANALYST, upload_bytes

    from strongroom.datasets import jobs
    from strongroom.tenancy.services import create_tenant

    with dep.transaction() as session:
        tenant = create_tenant(session, dep.keys, "datasets")
    upload_id = upload_bytes(dep, tenant, customers_csv(200))
    version = jobs.run_build(dep, tenant.id, new_dataset(dep, tenant), upload_id, ANALYST)
    assert version.status == "ready"
    return version.id


def test_drill_counts_every_dataset_version_through_the_query_sandbox(
    dep: Deployment, scratch: Path
) -> None:
    _built_version(dep)
    run_backup(dep)
    result = run_drill(dep, Actor.cli(), scratch_parent=scratch)
    assert result.passed, result.problem
    [datasets] = [c for c in result.checks if c.name == "datasets"]
    assert datasets.detail.startswith("1 dataset versions")
    assert "(200 rows)" in datasets.detail


def test_drill_fails_when_a_count_disagrees_with_the_catalog(
    dep: Deployment, scratch: Path
) -> None:
    from strongroom.datasets.models import DatasetVersion

    version_id = _built_version(dep)
    with dep.transaction() as session:
        version = session.get(DatasetVersion, version_id)
        assert version is not None
        version.row_count = 199  # the catalog no longer matches the data
    run_backup(dep)
    result = run_drill(dep, Actor.cli(), scratch_parent=scratch)
    assert not result.passed
    assert result.problem is not None
    assert "a count finds 200 rows, the catalog recorded 199" in result.problem
    assert _tags(dep)[-1][0] == EventTag.ALERT_RAISE.value
