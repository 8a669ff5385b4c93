"""strongroom backup ... and strongroom restore."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from strongroom.audit import Actor, EventTag, Outcome
from strongroom.cli._audited import audited_failure
from strongroom.cli._common import HomeOption, deployment, resolve_home, table

app = typer.Typer(
    help="Back up, verify, drill, prune and hold backups of this deployment.",
    no_args_is_help=True,
)

BackupIdArgument = Annotated[str, typer.Argument(help="Backup id, as `backup list` shows it.")]


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return str(count)


@app.command("run")
def run(
    kind: Annotated[str, typer.Option(help="daily or weekly: the retention series it joins.")]
    = "daily",
    home: HomeOption = None,
) -> None:
    """Take a backup now: encrypted database snapshot, new objects, signed manifest."""
    from strongroom.backup.services import BackupKind, run_backup
    from strongroom.errors import InvalidInput

    if kind not in {k.value for k in BackupKind}:
        raise InvalidInput("--kind must be daily or weekly")
    with deployment(home) as dep, audited_failure(dep, EventTag.BACKUP_RUN):
        result = run_backup(dep, BackupKind(kind))
        with dep.transaction() as session:
            dep.audit.record_event(
                session, EventTag.BACKUP_RUN, actor=Actor.cli(),
                target=f"backup:{result.backup_id}",
                details={"kind": result.kind, "objects": result.objects,
                         "objects_copied": result.objects_copied,
                         "bytes_copied": result.bytes_copied},
            )
    typer.echo(
        f"backup {result.backup_id}: {result.objects} objects "
        f"({result.objects_copied} new, {_size(result.bytes_copied)} copied), "
        f"database {_size(result.database_bytes)}"
    )


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """List backups in the repository, oldest first, with holds and manifest problems."""
    from strongroom.backup.services import list_backups

    with deployment(home) as dep:
        rows = list_backups(dep)
    if as_json:
        typer.echo(json.dumps([r.__dict__ for r in rows], indent=2))
    elif rows:
        typer.echo(table(
            [(r.backup_id, r.kind, r.created_at, str(r.objects), _size(r.object_bytes),
              "held" if r.held else "", r.problem or "ok") for r in rows],
            ("ID", "KIND", "CREATED", "OBJECTS", "SIZE", "HOLD", "MANIFEST"),
        ))
    else:
        typer.echo("no backups")


@app.command("verify")
def verify(
    backup_id: Annotated[
        str | None, typer.Argument(help="Backup to verify (default: every backup).")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Re-read every byte: manifest signature, digests and authentication tags."""
    from strongroom.backup.services import verify_backups

    with deployment(home) as dep:
        reports = verify_backups(dep, backup_id)
        failed = [r for r in reports if not r.ok]
        with dep.transaction() as session:
            for report in reports:
                dep.audit.record_event(
                    session, EventTag.BACKUP_VERIFY, actor=Actor.cli(),
                    target=f"backup:{report.backup_id}",
                    outcome=Outcome.SUCCESS if report.ok else Outcome.FAILURE,
                    reason=None if report.ok else "backup-corrupted",
                    details={"files": report.files, "objects": report.objects,
                             "bytes": report.bytes_read, "problems": len(report.problems)},
                )
    for report in reports:
        state = "ok" if report.ok else "FAILED"
        typer.echo(f"{report.backup_id}: {state} ({report.files} files, {report.objects} "
                   f"objects, {_size(report.bytes_read)} re-read)")
        for problem in report.problems:
            typer.echo(f"  {problem}")
    if not reports:
        typer.echo("no backups")
    if failed:
        failed[0].raise_if_failed()


@app.command("drill")
def drill(
    backup_id: Annotated[
        str | None, typer.Argument(help="Backup to drill (default: the newest).")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Restore a backup into a scratch home, open it, check it, remove it; store the evidence."""
    from strongroom.backup.drill import run_drill
    from strongroom.backup.errors import BackupCorrupted

    with deployment(home) as dep:
        result = run_drill(dep, Actor.cli(), backup_id)
    for check in result.checks:
        typer.echo(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
    if not result.passed:
        raise BackupCorrupted(f"restore drill of {result.backup_id or 'no backup'} failed: "
                              f"{result.problem}")
    typer.echo(f"restore drill of {result.backup_id} passed")


@app.command("prune")
def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; remove nothing.")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Keep the newest daily and weekly backups (and held ones); remove the rest."""
    from strongroom.backup.retention import prune_backups

    with deployment(home) as dep, audited_failure(dep, EventTag.BACKUP_PRUNE):
        result = prune_backups(dep, Actor.cli(), dry_run=dry_run)
    for backup_id, why in result.plan.keep:
        typer.echo(f"keep   {backup_id}  ({why})")
    for backup_id in result.plan.prune:
        typer.echo(f"prune  {backup_id}")
    if dry_run:
        typer.echo("dry run: nothing was removed")
    elif result.collection_skipped:
        typer.echo(f"pruned {len(result.plan.prune)}; {result.collection_skipped}")
    else:
        typer.echo(f"pruned {len(result.plan.prune)} backups; removed "
                   f"{result.objects_removed} unreferenced objects, kept {result.objects_kept}")


@app.command("hold")
def hold(backup_id: BackupIdArgument, home: HomeOption = None) -> None:
    """Put a backup on hold: prune never removes it until it is released."""
    from strongroom.backup.retention import hold_backup

    with deployment(home) as dep, audited_failure(dep, EventTag.BACKUP_HOLD,
                                                  target=f"backup:{backup_id}"):
        hold_backup(dep, Actor.cli(), backup_id)
    typer.echo(f"backup {backup_id} is on hold")


@app.command("release")
def release(backup_id: BackupIdArgument, home: HomeOption = None) -> None:
    """Release a hold; the backup falls under the retention rules again."""
    from strongroom.backup.retention import release_backup

    with deployment(home) as dep, audited_failure(dep, EventTag.BACKUP_RELEASE,
                                                  target=f"backup:{backup_id}"):
        release_backup(dep, Actor.cli(), backup_id)
    typer.echo(f"backup {backup_id} is no longer on hold")


def restore(
    backup_id: BackupIdArgument,
    to: Annotated[Path, typer.Option("--to", help="Directory to restore the deployment into.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace the contents of a non-empty --to.")
    ] = False,
    database_url: Annotated[
        str | None,
        typer.Option(help="Empty PostgreSQL database to restore into (PostgreSQL backups)."),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Restore a full deployment from a backup into a new home directory.

    HOME supplies the repository and the master key (the backup's environment must
    match); it may be a bare home holding only strongroom.toml and the key.
    """
    from strongroom.backup.services import repository_for, restore_backup
    from strongroom.config import load_settings
    from strongroom.crypto import master
    from strongroom.crypto.keystore import KeyStore
    from strongroom.deployment import open_deployment

    settings = load_settings(resolve_home(home))
    repo = repository_for(settings)
    repo.check_readable()
    keys = KeyStore(
        master.load_master_key(settings).environment_aead(settings.environment),
        settings.environment,
    )
    key_file = None if settings.master_key else settings.master_key_file
    result = restore_backup(
        repo, keys, backup_id, to, force=force, database_url=database_url,
        master_key_file=key_file, expected_public_key=repo.owner_key(),
        protected=(settings.home, settings.master_key_file),
    )
    environ = {"STRONGROOM_ENVIRONMENT": settings.environment.value}
    if settings.master_key:
        environ["STRONGROOM_MASTER_KEY"] = settings.master_key.reveal()
    restored = open_deployment(load_settings(result.target, environ))
    try:
        with restored.transaction() as session:
            restored.audit.record_event(
                session, EventTag.BACKUP_RESTORE, actor=Actor.cli(),
                target=f"backup:{backup_id}",
                details={"objects": result.objects, "files": result.files},
            )
    finally:
        restored.close()
    typer.echo(f"restored backup {backup_id} into {result.target} ({result.objects} objects)")
    if key_file is not None:
        typer.echo(f"it uses the master key at {key_file}; move the key beside it if needed")
