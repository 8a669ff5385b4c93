"""strongroom keys ..."""

from __future__ import annotations

from typing import Annotated

import typer

from strongroom.audit import Actor, EventTag
from strongroom.cli._audited import audited_failure, record
from strongroom.cli._common import HomeOption, deployment
from strongroom.privacy.keys import rewrap_privacy_keys, rotate_privacy_keys
from strongroom.storage.services import rewrap_data_keys
from strongroom.tenancy import services

app = typer.Typer(help="Rotate tenant and privacy keys, and re-wrap keys.", no_args_is_help=True)


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
    """Re-wrap every data key and privacy key under its tenant's newest key version."""
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
            # The privacy (pseudonym and token) keys are wrapped by the same keyring.
            privacy = rewrap_privacy_keys(session, ring)
            record(dep, session, EventTag.KEYS_REWRAP, tenant=found.id,
                   target=f"tenant:{found.id}",
                   details={"version": ring.version, "rewrapped": changed,
                            "privacy_keys_rewrapped": privacy})
            lines.append(
                f"tenant {found.slug}: re-wrapped {changed} data keys and {privacy} privacy "
                f"keys under version {ring.version}"
            )
    for line in lines:
        typer.echo(line)


@app.command("rotate-privacy")
def rotate_privacy(
    tenant: Annotated[
        str, typer.Option("--tenant", help="Slug of the tenant whose privacy keys to rotate.")
    ],
    home: HomeOption = None,
) -> None:
    """Make a new pseudonymisation and token key version current for a tenant.

    New pseudonyms and tokens differ from earlier ones (new exports no longer join with
    old ones); tokens of every earlier version can still be reversed.
    """
    with (
        deployment(home) as dep,
        audited_failure(dep, EventTag.PRIVACY_KEY_ROTATE),
        dep.transaction() as session,
    ):
        found = services.get_tenant(session, tenant)
        version = rotate_privacy_keys(session, dep, found.id, actor=Actor.cli())
    typer.echo(f"tenant {tenant}: privacy key version {version} is now current")
