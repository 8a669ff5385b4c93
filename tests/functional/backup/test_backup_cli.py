"""The real ``strongroom backup`` and ``restore`` commands in subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from strongroom.config import load_settings
from strongroom.deployment import open_deployment
from strongroom.storage.services import put_object
from strongroom.tenancy.services import create_tenant
from tests.functional.support import (
    STRONGROOM,
    assert_clean_failure,
    assert_ok,
    cli_env,
    init_home,
    listing,
    run_cli,
)

# A guard against hanging forever, not a performance expectation.
DEADLINE_SECONDS = 120.0


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = init_home(tmp_path / "home")
    (tmp_path / "repo").mkdir(mode=0o700)
    with (home / "strongroom.toml").open("a", encoding="utf-8") as config:
        config.write(f'backup_repository = "{tmp_path / "repo"}"\n')
    return home


def _fill(home: Path, count: int, size: int) -> None:
    dep = open_deployment(load_settings(home.resolve()))
    try:
        with dep.transaction() as session:
            tenant = create_tenant(session, dep.keys, "acme")
            ring = dep.keys.tenant_ring(session, tenant.id)
            for index in range(count):
                block = os.urandom(size // 64) + index.to_bytes(8, "big")
                put_object(session, dep.store, ring, tenant, [block * 64], kind="upload")
    finally:
        dep.close()


def _ids(output: str) -> list[str]:
    return [line.split()[0] for line in output.splitlines()[1:] if line.strip()]


def test_kill_9_during_a_backup_leaves_no_visible_partial_backup(home: Path) -> None:
    repo = home.parent / "repo"
    _fill(home, 8, 64 * 1024)
    assert_ok(run_cli("backup", "run", "--home", home))
    [first] = _ids(assert_ok(run_cli("backup", "list", "--home", home)))
    _fill_more(home)
    process = subprocess.Popen(  # the real CLI, killed mid-way
        [str(STRONGROOM), "backup", "run", "--home", str(home)], env=cli_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + DEADLINE_SECONDS
    seen_partial = False
    while time.monotonic() < deadline and process.poll() is None:
        incoming = repo / "incoming"
        writing = incoming.exists() and any(incoming.glob("*.partial"))
        # Kill it once it has begun copying objects into the repository.
        if writing and (any(incoming.glob("object-*")) or len(list(repo.rglob("*"))) > 30):
            seen_partial = True
            process.send_signal(signal.SIGKILL)
            break
    process.wait()
    assert seen_partial, "the backup finished before it could be killed; make it bigger"
    assert process.returncode == -signal.SIGKILL
    # Nothing partial is visible: the list is what it was, and it verifies.
    assert _ids(assert_ok(run_cli("backup", "list", "--home", home))) == [first]
    assert sorted(p.name for p in (repo / "backups").iterdir()) == [first]
    assert_ok(run_cli("backup", "verify", "--home", home))
    # The next run clears the leftovers and succeeds.
    assert_ok(run_cli("backup", "run", "--home", home))
    assert list((repo / "incoming").iterdir()) == []
    ids = _ids(assert_ok(run_cli("backup", "list", "--home", home)))
    assert len(ids) == 2
    assert ids[0] == first
    assert "ok" in assert_ok(run_cli("backup", "verify", ids[1], "--home", home))
    assert "passed" in assert_ok(run_cli("backup", "drill", "--home", home))


def _fill_more(home: Path) -> None:
    dep = open_deployment(load_settings(home.resolve()))
    try:
        from strongroom.tenancy.services import get_tenant

        with dep.transaction() as session:
            tenant = get_tenant(session, "acme")
            ring = dep.keys.tenant_ring(session, tenant.id)
            for index in range(300):
                block = os.urandom(4096) + index.to_bytes(8, "big")
                put_object(session, dep.store, ring, tenant, [block * 64], kind="upload")
    finally:
        dep.close()


def test_commands_end_to_end(home: Path, tmp_path: Path) -> None:
    _fill(home, 3, 4096)
    out = assert_ok(run_cli("backup", "run", "--kind", "weekly", "--home", home))
    assert "3 objects (3 new" in out
    [backup_id] = _ids(assert_ok(run_cli("backup", "list", "--home", home)))
    assert "-weekly-" in backup_id
    assert_ok(run_cli("backup", "hold", backup_id, "--home", home))
    assert "held" in assert_ok(run_cli("backup", "list", "--home", home))
    assert "dry run" in assert_ok(run_cli("backup", "prune", "--dry-run", "--home", home))
    assert_ok(run_cli("backup", "release", backup_id, "--home", home))
    assert "pruned 0 backups" in assert_ok(run_cli("backup", "prune", "--home", home))
    target = tmp_path / "restored"
    out = assert_ok(run_cli("restore", backup_id, "--to", target, "--home", home))
    assert "restored backup" in out
    assert "audit log intact" in assert_ok(run_cli("audit", "verify", "--home", target))
    # A second restore into the same place needs --force.
    before = listing(target)
    assert_clean_failure(run_cli("restore", backup_id, "--to", target, "--home", home),
                         "is not empty", "--force")
    assert listing(target) == before
    assert_ok(run_cli("restore", backup_id, "--to", target, "--force", "--home", home))


def test_bad_input_is_one_clear_line(home: Path, tmp_path: Path) -> None:
    repo = home.parent / "repo"
    assert_ok(run_cli("backup", "run", "--home", home))
    before = listing(repo)
    unknown = "20990101T000000.000Z-daily-abcdef"
    for args, fragment in [
        (("backup", "verify", unknown), "no backup"),
        (("backup", "hold", "../../etc"), "no such backup"),
        (("restore", unknown, "--to", tmp_path / "r"), "no backup"),
        (("backup", "run", "--kind", "hourly"), "--kind must be daily or weekly"),
    ]:
        assert_clean_failure(run_cli(*args, "--home", home), fragment)
    env = {"STRONGROOM_BACKUP_REPOSITORY": str(home / "backups")}
    assert_clean_failure(run_cli("backup", "run", "--home", home, env=env), "inside HOME")
    env = {"STRONGROOM_BACKUP_REPOSITORY": str(tmp_path / "missing")}
    assert_clean_failure(run_cli("backup", "run", "--home", home, env=env), "does not exist")
    assert listing(repo) == before


def test_a_failed_verify_exits_non_zero_with_the_problem(home: Path) -> None:
    _fill(home, 2, 4096)
    assert_ok(run_cli("backup", "run", "--home", home))
    repo = home.parent / "repo"
    victim = next(p for p in (repo / "objects").rglob("*") if p.is_file())
    victim.chmod(0o600)
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    line = assert_clean_failure(run_cli("backup", "verify", "--home", home),
                                "does not match its SHA-256 (corrupted)")
    assert victim.name[:12] in line
    assert_clean_failure(run_cli("backup", "drill", "--home", home), "restore drill of",
                         "failed", "does not match its SHA-256")


def test_disaster_restore_from_a_bare_home(home: Path, tmp_path: Path) -> None:
    """The deployment is lost; the operator has the repository, settings and the master key."""
    import shutil

    _fill(home, 3, 8192)
    assert_ok(run_cli("backup", "run", "--home", home))
    [backup_id] = _ids(assert_ok(run_cli("backup", "list", "--home", home)))
    original = {p.relative_to(home / "objects").as_posix(): p.read_bytes()
                for p in (home / "objects").rglob("*") if p.is_file()}
    bare = tmp_path / "bare"
    bare.mkdir(mode=0o700)
    shutil.copy2(home / "strongroom.toml", bare / "strongroom.toml")
    shutil.copy2(home / "master.key", bare / "master.key")
    for directory, _dirs, _files in os.walk(home):
        Path(directory).chmod(0o700)
    shutil.rmtree(home)
    target = tmp_path / "new-home"
    assert_ok(run_cli("restore", backup_id, "--to", target, "--home", bare))
    restored = {p.relative_to(target / "objects").as_posix(): p.read_bytes()
                for p in (target / "objects").rglob("*") if p.is_file()}
    assert restored == original
    assert "audit log intact" in assert_ok(run_cli("audit", "verify", "--home", target))
    assert "acme" in assert_ok(run_cli("tenant", "list", "--home", target))
    # A different master key cannot restore it, and says so in one line.
    other = tmp_path / "other"
    init_home(other)
    with (other / "strongroom.toml").open("a", encoding="utf-8") as config:
        config.write(f'backup_repository = "{home.parent / "repo"}"\n')
    assert_clean_failure(run_cli("restore", backup_id, "--to", tmp_path / "x", "--home", other),
                         "does not open with this master key")


def test_full_disk_and_read_only_repository_are_one_line(tmp_path: Path) -> None:
    from tests.unit.backup.conftest import remount_read_only, tmpfs

    home = init_home(tmp_path / "home")
    with tmpfs(tmp_path / "small", "3m") as repo:
        with (home / "strongroom.toml").open("a", encoding="utf-8") as config:
            config.write(f'backup_repository = "{repo}"\n')
        assert_ok(run_cli("backup", "run", "--home", home))
        [first] = _ids(assert_ok(run_cli("backup", "list", "--home", home)))
        _fill(home, 4, 1024 * 1024)
        assert_clean_failure(run_cli("backup", "run", "--home", home),
                             "backup repository is full", "earlier backups are untouched")
        assert _ids(assert_ok(run_cli("backup", "list", "--home", home))) == [first]
        remount_read_only(repo)
        assert_clean_failure(run_cli("backup", "run", "--home", home), "is not writable")
        assert "ok" in assert_ok(run_cli("backup", "verify", first, "--home", home))


@pytest.mark.postgresql
def test_postgresql_restore_through_the_cli(tmp_path: Path, db_url: str) -> None:
    from strongroom.backup import snapshot

    if not db_url:
        pytest.skip("PostgreSQL only")
    home = init_home(tmp_path / "home", "--database-url", db_url)
    (tmp_path / "repo").mkdir()
    with (home / "strongroom.toml").open("a", encoding="utf-8") as config:
        config.write(f'backup_repository = "{tmp_path / "repo"}"\n')
    _fill(home, 2, 8192)
    assert_ok(run_cli("backup", "run", "--home", home))
    [backup_id] = _ids(assert_ok(run_cli("backup", "list", "--home", home)))
    target = tmp_path / "restored"
    assert_clean_failure(run_cli("restore", backup_id, "--to", target, "--home", home),
                         "already holds a deployment")
    with snapshot.scratch_postgres(db_url, f"sr_restore_{os.getpid()}") as url:
        assert_ok(run_cli("restore", backup_id, "--to", target, "--database-url", url,
                          "--home", home))
        assert "audit log intact" in assert_ok(run_cli("audit", "verify", "--home", target))
        assert "acme" in assert_ok(run_cli("tenant", "list", "--home", target))
