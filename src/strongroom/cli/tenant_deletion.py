"""strongroom tenant delete / undelete / purge-deleted (registered on the tenant group)."""

from __future__ import annotations

from typing import Annotated

import typer

from strongroom.audit import EventTag
from strongroom.cli._audited import audited_failure, record
from strongroom.cli._common import HomeOption, deployment


def delete(
    slug: Annotated[str, typer.Argument(help="The tenant to delete.")],
    confirm: Annotated[
        str, typer.Option("--confirm", help="Type the slug again to confirm.")
    ],
    home: HomeOption = None,
) -> None:
    """Schedule a tenant's deletion after tenant_deletion_delay_days; suspended meanwhile."""
    from strongroom.tenancy.deletion import request_deletion

    with (
        deployment(home) as dep,
        audited_failure(dep, EventTag.TENANT_DELETE),
        dep.transaction() as session,
    ):
        deletion = request_deletion(session, slug, confirm, dep.settings.tenant_deletion_delay_days)
        record(dep, session, EventTag.TENANT_DELETE, tenant=deletion.tenant_id,
               target=f"tenant:{deletion.tenant_id}",
               details={"due_at": deletion.due_at.isoformat(timespec="seconds")})
    typer.echo(
        f"tenant {slug} is suspended and will be deleted after "
        f"{deletion.due_at.isoformat(timespec='minutes')}; cancel with "
        f"`strongroom tenant undelete {slug}`"
    )


def undelete(
    slug: Annotated[str, typer.Argument(help="The tenant whose deletion to cancel.")],
    home: HomeOption = None,
) -> None:
    """Cancel a pending tenant deletion; the tenant returns to its previous status."""
    from strongroom.tenancy.deletion import cancel_deletion

    with (
        deployment(home) as dep,
        audited_failure(dep, EventTag.TENANT_UNDELETE),
        dep.transaction() as session,
    ):
        tenant = cancel_deletion(session, slug)
        record(dep, session, EventTag.TENANT_UNDELETE, tenant=tenant.id,
               target=f"tenant:{tenant.id}")
    typer.echo(f"deletion of tenant {slug} cancelled; it is {tenant.status} again")


def purge_deleted(home: HomeOption = None) -> None:
    """Purge tenants whose deletion delay has passed: rows, keys and objects."""
    from strongroom.db import utcnow
    from strongroom.tenancy.deletion import pending_deletions, purge_tenant, remove_tenant_objects

    purged = waiting = 0
    with deployment(home) as dep, audited_failure(dep, EventTag.TENANT_PURGE):
        with dep.transaction() as session:
            due = [(t.id, t.slug) for t, d in pending_deletions(session) if d.due_at <= utcnow()]
            waiting = len(pending_deletions(session)) - len(due)
        for tenant_id, slug in due:
            from strongroom.tenancy.models import Tenant

            with dep.transaction() as session:
                tenant = session.get(Tenant, tenant_id)
                if tenant is None:
                    continue
                record(dep, session, EventTag.TENANT_PURGE, tenant=tenant_id,
                       target=f"tenant:{tenant_id}")
                rows = purge_tenant(session, tenant)
            remove_tenant_objects(dep.settings.objects_dir, tenant_id)
            purged += 1
            typer.echo(f"purged tenant {slug} ({rows} rows, its keys and objects)")
    typer.echo(f"purged {purged} tenants; {waiting} still waiting for their delay")


def register(app: typer.Typer) -> None:
    app.command("delete")(delete)
    app.command("undelete")(undelete)
    app.command("purge-deleted")(purge_deleted)
