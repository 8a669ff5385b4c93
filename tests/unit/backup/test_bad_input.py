"""Bad repositories and a full disk: one clear error, and earlier backups untouched."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tests.functional.support import listing
from tests.unit.backup.conftest import add_objects, remount_read_only, tmpfs

from strongroom.backup.errors import BackupFailed, RepositoryUnusable
from strongroom.backup.services import repository_for, run_backup, verify_backups
from strongroom.config import Settings
from strongroom.deployment import Deployment, open_deployment


def _open(make_home: Callable[..., Settings], **extra: object) -> Deployment:
    return open_deployment(make_home(**extra))


def test_repository_not_set(make_home: Callable[..., Settings]) -> None:
    dep = _open(make_home)
    try:
        with pytest.raises(RepositoryUnusable, match="backup_repository is not set"):
            run_backup(dep)
    finally:
        dep.close()


def test_repository_inside_home(make_home: Callable[..., Settings], tmp_path: Path) -> None:
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "backups").mkdir()
    dep = _open(make_home, name="h", backup_repository="backups")
    try:
        with pytest.raises(RepositoryUnusable, match="is inside HOME"):
            run_backup(dep)
    finally:
        dep.close()
    assert listing(tmp_path / "h" / "backups") == {}


def test_repository_containing_home(make_home: Callable[..., Settings], tmp_path: Path) -> None:
    dep = _open(make_home, backup_repository=str(tmp_path))
    try:
        with pytest.raises(RepositoryUnusable, match="contains HOME"):
            run_backup(dep)
    finally:
        dep.close()


def test_missing_repository_is_not_created(
    make_home: Callable[..., Settings], tmp_path: Path
) -> None:
    missing = tmp_path / "unmounted" / "backups"
    dep = _open(make_home, backup_repository=str(missing))
    try:
        with pytest.raises(RepositoryUnusable, match="does not exist"):
            run_backup(dep)
    finally:
        dep.close()
    assert not missing.exists()


def test_repository_of_another_deployment(
    make_home: Callable[..., Settings], tmp_path: Path
) -> None:
    repo = tmp_path / "shared"
    repo.mkdir()
    first = _open(make_home, backup_repository=str(repo))
    second = _open(make_home, backup_repository=str(repo))
    try:
        run_backup(first)
        before = listing(repo)
        with pytest.raises(RepositoryUnusable, match="belongs to another deployment"):
            run_backup(second)
        assert listing(repo) == before
    finally:
        first.close()
        second.close()


def test_read_only_repository(make_home: Callable[..., Settings], tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "16m") as repo:
        dep = _open(make_home, backup_repository=str(repo))
        try:
            add_objects(dep, "acme", [b"x" * 1000])
            first = run_backup(dep)
            remount_read_only(repo)
            before = listing(repo)
            with pytest.raises(RepositoryUnusable, match="is not writable"):
                run_backup(dep)
            assert listing(repo) == before
            [report] = verify_backups(dep)
            assert report.ok
            assert report.backup_id == first.backup_id
        finally:
            dep.close()


def test_full_disk_publishes_nothing_and_keeps_earlier_backups(
    make_home: Callable[..., Settings], tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "small", "3m") as repo:
        dep = _open(make_home, backup_repository=str(repo))
        try:
            add_objects(dep, "acme", [b"small" * 100])
            first = run_backup(dep)
            add_objects(dep, "acme", [bytes(range(256)) * 4096 * 4], create=False)  # 4 MiB
            with pytest.raises(BackupFailed, match="full \\(no space left on device\\)"):
                run_backup(dep)
            repository = repository_for(dep.settings)
            assert repository.backup_ids() == [first.backup_id]
            assert list(repository.incoming.iterdir()) == []
            [report] = verify_backups(dep)
            assert report.ok, report.problems
        finally:
            dep.close()
