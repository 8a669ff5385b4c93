"""strongroom telemetry ..."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from strongroom.audit import Actor, EventTag
from strongroom.audit.canonical import timestamp
from strongroom.cli._audited import record
from strongroom.cli._common import HomeOption, deployment, table
from strongroom.telemetry.export import ExportFormat, iter_records, parse_since, render, summarise
from strongroom.telemetry.services import purge_before, purge_expired_usage, retention_cutoff

app = typer.Typer(
    help="Product-usage telemetry kept in this deployment: summary and export.",
    no_args_is_help=True,
)

Since = Annotated[
    str | None,
    typer.Option(help="Only events at or after this date (YYYY-MM-DD) or ISO 8601 time."),
]


@app.command("export")
def export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    export_format: Annotated[
        ExportFormat, typer.Option("--format", help="jsonl (one event a line) or csv.")
    ] = ExportFormat.JSONL,
    since: Since = None,
    home: HomeOption = None,
) -> None:
    """Write usage events to a file: users as pseudonyms, insiders by user id; no personal data."""
    start = parse_since(since)
    with deployment(home) as dep:
        # On the record, committed, before the first event leaves (as audit export does).
        with dep.transaction() as session:
            record(dep, session, EventTag.TELEMETRY_EXPORT, details={
                "format": export_format.value, "since": start is not None,
                "to_file": output is not None,
            })
        with dep.transaction() as session:
            key = dep.keys.telemetry_key(session)
            count = 0

            def counted() -> Iterator[dict[str, Any]]:
                nonlocal count
                for item in iter_records(session, key, start):
                    count += 1
                    yield item

            sink = _open_output(output) if output is not None else sys.stdout
            try:
                for line in render(counted(), export_format):
                    sink.write(line)
            finally:
                if output is not None:
                    sink.close()
    if output is not None:
        typer.echo(f"exported {count} usage events to {output}", err=True)


def _open_output(path: Path) -> TextIO:
    """Owner-only, like everything else the operator's commands write."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


@app.command("show")
def show(since: Since = None, home: HomeOption = None) -> None:
    """Summarise usage events: how many, of which features, how many users and insiders."""
    start = parse_since(since)
    with deployment(home) as dep, dep.transaction() as session:
        summary = summarise(session, start)
        enabled = dep.settings.telemetry_enabled
    typer.echo(f"telemetry: {'recording' if enabled else 'off (telemetry_enabled = false)'}")
    period = (f"{timestamp(summary.first)} .. {timestamp(summary.last)}"
              if summary.first and summary.last else "-")
    typer.echo(f"events: {summary.events} ({period}); distinct users: {summary.users}; "
               f"insiders now: {summary.insiders}")
    if summary.by_feature:
        rows: list[tuple[str, ...]] = [(f, str(n)) for f, n in summary.by_feature.items()]
        typer.echo(table(rows, ("FEATURE", "EVENTS")))


@app.command("purge")
def purge(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would go, delete nothing.")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Delete usage events older than telemetry_retention_days (serve also does it hourly)."""
    with deployment(home) as dep:
        cutoff = retention_cutoff(dep)
        if dry_run:
            with dep.transaction() as session:
                count = purge_before(session, cutoff, dry_run=True)
        else:
            count = purge_expired_usage(dep, Actor.cli())
    verb = "would delete" if dry_run else "deleted"
    typer.echo(f"{verb} {count} usage events from before {timestamp(cutoff)}")

