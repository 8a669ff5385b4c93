"""strongroom keys ..."""

from __future__ import annotations

from typing import Annotated

import typer

from strongroom.audit import EventTag
from strongroom.cli._audited import audited_failure, record
from strongroom.cli._common import HomeOption, deployment
from strongroom.storage.services import rewrap_data_keys
from strongroom.tenancy import services

app = typer.Typer(help="Rotate tenant keys and re-wrap data keys.", no_args_is_help=True)


@app.command("rotate")
def rotate(
    tenant: Annotated[
        str, typer.Option("--tenant", help="Slug of the tenant whose keyset to rotate.")
    ],
    home: HomeOption = None,
) -> None:
    """Add a new primary key version to a tenant's keyset. Older data stays readable."""
    with (
        deployment(home) as dep,
        audited_failure(dep, EventTag.KEYS_ROTATE),
        dep.transaction() as session,
    ):
        found = services.get_tenant(session, tenant)
        ring = dep.keys.rotate_tenant(session, found.id)
        record(dep, session, EventTag.KEYS_ROTATE, tenant=found.id,
               target=f"tenant:{found.id}", details={"version": ring.version})
    typer.echo(f"tenant {tenant}: key version {ring.version} is now primary")


@app.command("rewrap")
def rewrap(
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant (default: every tenant).")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Re-wrap every data key under its tenant's newest key version."""
    lines = []
    with (
        deployment(home) as dep,
        audited_failure(dep, EventTag.KEYS_REWRAP),
        dep.transaction() as session,
    ):
        tenants = (
            [services.get_tenant(session, tenant)] if tenant else services.list_tenants(session)
        )
        for found in tenants:
            ring = dep.keys.tenant_ring(session, found.id)
            changed = rewrap_data_keys(session, ring)
            record(dep, session, EventTag.KEYS_REWRAP, tenant=found.id,
                   target=f"tenant:{found.id}",
                   details={"version": ring.version, "rewrapped": changed})
            lines.append(
                f"tenant {found.slug}: re-wrapped {changed} data keys under version "
                f"{ring.version}"
            )
    for line in lines:
        typer.echo(line)
