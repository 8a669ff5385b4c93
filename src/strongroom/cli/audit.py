"""strongroom audit ..."""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
import typer

from strongroom.audit import EventTag
from strongroom.audit import query as audit_query
from strongroom.audit.actors import Actor
from strongroom.audit.canonical import timestamp
from strongroom.audit.errors import InvalidAuditFilter
from strongroom.audit.models import AuditCheckpoint
from strongroom.audit.policy import retention_policy
from strongroom.audit.retention import plan_purge, purge
from strongroom.audit.services import checkpoint_line
from strongroom.audit.verify import read_exported_checkpoints, require_audit_log, verify_log
from strongroom.cli._audited import record
from strongroom.cli._common import HomeOption, deployment, resolve_home, table
from strongroom.config import load_settings
from strongroom.db import create_db_engine
from strongroom.tenancy.services import get_tenant

app = typer.Typer(
    help="Read, export, verify and purge the tamper-evident audit trail.", no_args_is_help=True
)


class ExportFormat(enum.StrEnum):
    JSONL = "jsonl"


Since = Annotated[str | None, typer.Option(help="Only events at or after this ISO 8601 time.")]
Until = Annotated[str | None, typer.Option(help="Only events at or before this ISO 8601 time.")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", help="Only events of this tenant slug.")]
ActorOpt = Annotated[str | None, typer.Option("--actor", help="Only events by this actor id.")]
TagOpt = Annotated[str | None, typer.Option("--tag", help="Only events with this tag.")]
OutcomeOpt = Annotated[
    str | None, typer.Option("--outcome", help="Only success, denied or failure events.")
]


def _filter(session: Any, raw: dict[str, Any], tenant: str | None) -> audit_query.AuditFilter:
    tenant_id = get_tenant(session, tenant).id if tenant else None
    return audit_query.parse_filter({k: v for k, v in raw.items() if v is not None}, tenant_id)


@app.command("list")
def list_events(
    since: Since = None,
    until: Until = None,
    tenant: TenantOpt = None,
    actor: ActorOpt = None,
    tag: TagOpt = None,
    outcome: OutcomeOpt = None,
    limit: Annotated[int, typer.Option(help="At most this many events (1-10000).")] = 100,
    after_seq: Annotated[int, typer.Option(help="Only events after this sequence number.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON Lines.")] = False,
    home: HomeOption = None,
) -> None:
    """List audit events, oldest first, with filters."""
    raw = {"since": since, "until": until, "actor": actor, "tag": tag, "outcome": outcome,
           "limit": limit, "after_seq": after_seq}
    with deployment(home) as dep, dep.transaction() as session:
        flt = _filter(session, raw, tenant)
        events = audit_query.list_events(session, flt)
        # Recorded before anything is shown: reading the log is itself on the record.
        record(dep, session, EventTag.AUDIT_READ, details={"events": len(events)})
        lines = [audit_query.to_jsonl(e) for e in events] if as_json else None
        rows: list[tuple[str, ...]] = [
            (str(e.seq), timestamp(e.occurred_at), e.tag, e.outcome,
             e.actor_kind + (f":{e.actor_id}" if e.actor_id else ""), e.tenant_id or "-",
             e.reason or "")
            for e in events
        ]
    if lines is not None:
        typer.echo("\n".join(lines)) if lines else None
    elif rows:
        typer.echo(table(rows, ("SEQ", "TIME", "TAG", "OUTCOME", "ACTOR", "TENANT", "REASON")))
    else:
        typer.echo("no events match")


@app.command("export")
def export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    export_format: Annotated[
        ExportFormat, typer.Option("--format", help="Output format (jsonl, one event a line).")
    ] = ExportFormat.JSONL,
    since: Since = None,
    until: Until = None,
    tenant: TenantOpt = None,
    actor: ActorOpt = None,
    tag: TagOpt = None,
    outcome: OutcomeOpt = None,
    home: HomeOption = None,
) -> None:
    """Export matching events as JSON Lines for a SIEM, with hashes and seals."""
    raw = {"since": since, "until": until, "actor": actor, "tag": tag, "outcome": outcome}
    with deployment(home) as dep:
        with dep.transaction() as session:
            flt = _filter(session, raw, tenant)
            used = sorted(k for k, v in raw.items() if v is not None)
            record(dep, session, EventTag.AUDIT_EXPORT, details={
                "format": export_format.value, "filters": used + (["tenant"] if tenant else []),
            })
        # The export is on the record, committed, before its first event leaves: a crash or
        # a closed pipe half-way must not release events with no trace of the export.
        with dep.transaction() as session:
            sink = output.open("w", encoding="utf-8") if output else sys.stdout
            count = 0
            try:
                for event in audit_query.iter_events(session, flt):
                    sink.write(audit_query.to_jsonl(event) + "\n")
                    count += 1
            finally:
                if output:
                    sink.close()
    if output:
        typer.echo(f"exported {count} events to {output}", err=True)


@app.command("verify")
def verify(
    checkpoints: Annotated[
        Path | None,
        typer.Option(help="Also check exported checkpoints from this file "
                     "(default: the audit_checkpoint_file setting, if it exists)."),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Prove the log intact. Exit 0 when intact; 1 with the first broken sequence number if not."""
    # An empty or foreign database is said to be so, not reported as a stale schema.
    engine = create_db_engine(load_settings(resolve_home(home)).sqlalchemy_url)
    try:
        require_audit_log(engine)
    finally:
        engine.dispose()
    with deployment(home) as dep:
        path = checkpoints or dep.settings.audit_checkpoint_file
        exported = None
        if checkpoints is not None or path.exists():
            try:
                exported = read_exported_checkpoints(path.read_text(encoding="utf-8").splitlines())
            except FileNotFoundError:
                raise InvalidAuditFilter(f"checkpoint file {path} does not exist") from None
        with dep.transaction() as session:
            report = verify_log(session, dep.audit.keys, exported)
    typer.echo(report.summary())
    if not report.ok:
        raise typer.Exit(1)


@app.command("hash")
def hash_value(
    value: Annotated[str, typer.Argument(help="A value you know (an email, a file name, ...).")],
    home: HomeOption = None,
) -> None:
    """Print the token a sensitive value is stored as, to find events about it."""
    with deployment(home) as dep:
        typer.echo(dep.audit.hash_value(value))


@app.command("checkpoint")
def checkpoint(
    export_to: Annotated[
        Path | None, typer.Option("--export", help="Also write every checkpoint to this file.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Sign a checkpoint of the chain head now (and optionally export all checkpoints)."""
    with deployment(home) as dep, dep.transaction() as session:
        record(dep, session, EventTag.AUDIT_CHECKPOINT)
        point = dep.audit.checkpoint_now(session)
        lines = [
            checkpoint_line(p, dep.audit.keys.public_key.hex())
            for p in session.scalars(sa.select(AuditCheckpoint).order_by(AuditCheckpoint.seq))
        ]
    if export_to is not None:
        export_to.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        typer.echo(f"wrote {len(lines)} checkpoints to {export_to}")
    if point is not None:
        typer.echo(f"checkpoint at sequence {point.seq}: {point.hash}")


@app.command("purge")
def purge_expired(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan, delete nothing.")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Delete events past their retention from the oldest end, leaving a signed purge record."""
    with deployment(home) as dep, dep.transaction() as session:
        policy = retention_policy(dep.settings)
        plan = plan_purge(session, policy) if dry_run else purge(
            session, dep.audit, policy, Actor.cli()
        )
    if plan is None:
        typer.echo("nothing is past its retention period")
        return
    verb = "would purge" if dry_run else "purged"
    typer.echo(f"{verb} {plan.count} events (sequence {plan.first_seq}..{plan.last_seq}) "
               f"under policy {json.loads(policy.as_json())}")
