"""Backup, incremental backup, verify and restore times beside restic, on the same files.

    .venv/bin/python benchmarks/backup_bench.py [--mib 1024] [--object-mib 64] [--dir DIR]

A fresh deployment gets ``--mib`` of random data in objects of ``--object-mib``
(encrypted by the object store as usual). Then, in one run and on the same files
(the object store's directory):

* strongroom: ``run_backup`` (full: encrypted database snapshot, every object copied,
  signed manifest), ``run_backup`` again with nothing changed, ``verify_backups`` of
  the newest backup (every byte re-read, digests and tags), ``restore_backup`` into
  an empty directory (which verifies the backup first, then writes everything);
* restic (Debian's package), when installed: ``init``, ``backup DIR``, ``backup DIR``
  again, ``check --read-data``, ``restore latest --target``.

Every step is timed once with a monotonic clock, wall time, including its fsyncs.
The files are read once before timing so both tools start from a warm page cache.
Targets (issue 7): full backup and restore within 1.5x of restic; the unchanged
incremental no slower than restic's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from strongroom.audit import Actor
from strongroom.backup.services import (
    BackupKind,
    repository_for,
    restore_backup,
    run_backup,
    verify_backups,
)
from strongroom.config import Environment, load_settings
from strongroom.deployment import Deployment, initialise, open_deployment
from strongroom.storage.services import put_object
from strongroom.tenancy.services import create_tenant

MiB = 1 << 20


def timed(step: Callable[[], object]) -> float:
    start = time.monotonic()
    step()
    return time.monotonic() - start


def fill(dep: Deployment, total_mib: int, object_mib: int) -> None:
    with dep.transaction() as session:
        tenant = create_tenant(session, dep.keys, "bench")
        ring = dep.keys.tenant_ring(session, tenant.id)
    for _ in range(total_mib // object_mib):
        with dep.transaction() as session:
            chunks = (os.urandom(MiB) for _ in range(object_mib))
            put_object(session, dep.store, ring, tenant, chunks, kind="upload")


def warm(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                while handle.read(8 * MiB):
                    pass


def ours(dep: Deployment, work: Path) -> dict[str, float]:
    results: dict[str, float] = {}
    results["full backup"] = timed(lambda: run_backup(dep, BackupKind.DAILY))
    results["unchanged incremental"] = timed(lambda: run_backup(dep, BackupKind.DAILY))
    newest = repository_for(dep.settings).backup_ids()[-1]

    def verify() -> None:
        [report] = verify_backups(dep, newest)
        assert report.ok, report.problems

    results["verify (read all data)"] = timed(verify)
    target = work / "restored"
    results["restore"] = timed(lambda: restore_backup(
        repository_for(dep.settings), dep.keys, newest, target,
        master_key_file=dep.settings.master_key_file,
    ))
    return results


def restic(files: Path, work: Path) -> dict[str, float] | None:
    binary = shutil.which("restic")
    if binary is None:
        return None
    env = dict(os.environ, RESTIC_REPOSITORY=str(work / "restic-repo"),
               RESTIC_PASSWORD="benchmark-only",  # noqa: S106 - a throwaway repository
               RESTIC_CACHE_DIR=str(work / "restic-cache"))

    def run(*args: str) -> Callable[[], None]:
        return lambda: subprocess.run([binary, "--quiet", *args], env=env, check=True,
                                      stdout=subprocess.DEVNULL)

    run("init")()
    return {
        "full backup": timed(run("backup", str(files))),
        "unchanged incremental": timed(run("backup", str(files))),
        "verify (read all data)": timed(run("check", "--read-data")),
        "restore": timed(run("restore", "latest", "--target", str(work / "restic-restored"))),
    }


def restic_version() -> str:
    binary = shutil.which("restic")
    if binary is None:
        return "absent"
    out = subprocess.run([binary, "version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=1024, help="data to back up (MiB)")
    parser.add_argument("--object-mib", type=int, default=64, help="size of each object")
    parser.add_argument("--dir", type=Path, default=None, help="where to work (default: tmp)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="strongroom-backup-bench-", dir=args.dir))
    try:
        repo = work / "repo"
        repo.mkdir()
        home = work / "home"
        initialise(home, Environment.DEVELOPMENT,
                   extra_settings={"backup_repository": str(repo)}, actor=Actor.system())
        dep = open_deployment(load_settings(home))
        try:
            fill(dep, args.mib, args.object_mib)
            warm(dep.settings.objects_dir)
            mine = ours(dep, work)
        finally:
            dep.close()
        warm(home / "objects")
        theirs = restic(home / "objects", work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.mib} MiB in {args.mib // args.object_mib} objects; restic: {restic_version()}")
    if theirs is None:
        print("restic is not installed (apt-get install restic): strongroom figures only")
    print(f"{'step':<24}{'strongroom s':>14}{'restic s':>11}{'ratio':>8}  target")
    targets = {"full backup": 1.5, "unchanged incremental": 1.0, "restore": 1.5}
    for step, seconds in mine.items():
        if theirs is None:
            print(f"{step:<24}{seconds:>14.2f}")
            continue
        ratio = seconds / theirs[step] if theirs[step] else float("inf")
        target = targets.get(step)
        verdict = "" if target is None else f"<= {target}x " + (
            "met" if ratio <= target else "MISSED")
        print(f"{step:<24}{seconds:>14.2f}{theirs[step]:>11.2f}{ratio:>8.2f}  {verdict}")


if __name__ == "__main__":
    main()
