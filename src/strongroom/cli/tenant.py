"""strongroom tenant ..."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from strongroom.audit import EventTag
from strongroom.cli._audited import audited_failure, record
from strongroom.cli._common import HomeOption, deployment, table
from strongroom.tenancy import limits as tenant_limits
from strongroom.tenancy import services
from strongroom.tenancy.models import Tenant

app = typer.Typer(help="Create, list, suspend and resume tenants.", no_args_is_help=True)


def _row(tenant: Tenant) -> dict[str, str]:
    return {
        "slug": tenant.slug,
        "name": tenant.name,
        "status": tenant.status,
        "created_at": tenant.created_at.isoformat(timespec="seconds"),
    }


@app.command("create")
def create(
    slug: Annotated[
        str, typer.Argument(help="Short name: 3-40 lower-case letters, digits, hyphens.")
    ],
    name: Annotated[str | None, typer.Option(help="Display name (defaults to the slug).")] = None,
    home: HomeOption = None,
) -> None:
    """Create a tenant with its own key-encryption keyset."""
    with deployment(home) as dep, audited_failure(dep, EventTag.TENANT_CREATE):
        with dep.transaction() as session:
            tenant = services.create_tenant(session, dep.keys, slug, name)
            record(dep, session, EventTag.TENANT_CREATE, tenant=tenant.id,
                   target=f"tenant:{tenant.id}")
        typer.echo(f"created tenant {tenant.slug}")


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """List tenants with their status."""
    with deployment(home) as dep, dep.transaction() as session:
        rows = [_row(t) for t in services.list_tenants(session)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    elif rows:
        typer.echo(table([tuple(r.values()) for r in rows], ("SLUG", "NAME", "STATUS", "CREATED")))
    else:
        typer.echo("no tenants")


@app.command("suspend")
def suspend(
    slug: Annotated[str, typer.Argument(help="The tenant to suspend.")],
    home: HomeOption = None,
) -> None:
    """Suspend a tenant: nothing can be done with it, but its data and keys are kept intact."""
    with (
        deployment(home) as dep,
        audited_failure(dep, EventTag.TENANT_SUSPEND),
        dep.transaction() as session,
    ):
        tenant = services.suspend_tenant(session, slug)
        record(dep, session, EventTag.TENANT_SUSPEND, tenant=tenant.id,
               target=f"tenant:{tenant.id}")
    typer.echo(f"suspended tenant {slug}")


@app.command("resume")
def resume(
    slug: Annotated[str, typer.Argument(help="The tenant to resume.")],
    home: HomeOption = None,
) -> None:
    """Resume a suspended tenant."""
    with (
        deployment(home) as dep,
        audited_failure(dep, EventTag.TENANT_RESUME),
        dep.transaction() as session,
    ):
        tenant = services.resume_tenant(session, slug)
        record(dep, session, EventTag.TENANT_RESUME, tenant=tenant.id,
               target=f"tenant:{tenant.id}")
    typer.echo(f"resumed tenant {slug}")


@app.command("limits")
def limits(
    slug: Annotated[str, typer.Argument(help="The tenant whose limits to show or set.")],
    upload_max_bytes: Annotated[
        int | None,
        typer.Option(help="Set the largest upload this tenant may send, in bytes.", min=1),
    ] = None,
    use_default: Annotated[
        bool, typer.Option("--use-default", help="Drop the tenant's own upload limit: the "
                           "deployment's upload_max_bytes setting applies again.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Show a tenant's limits, or set its upload size limit (uploads already open keep theirs)."""
    if upload_max_bytes is not None and use_default:
        raise typer.BadParameter("give --upload-max-bytes or --use-default, not both")
    with (
        deployment(home) as dep,
        audited_failure(dep, EventTag.TENANT_LIMITS),
        dep.transaction() as session,
    ):
        tenant = services.get_tenant(session, slug)
        if upload_max_bytes is not None or use_default:
            previous = tenant_limits.set_upload_max_bytes(session, tenant, upload_max_bytes)
            record(dep, session, EventTag.TENANT_LIMITS, tenant=tenant.id,
                   target=f"tenant:{tenant.id}",
                   details={"upload_max_bytes": upload_max_bytes, "previous": previous})
        effective = tenant_limits.upload_max_bytes(
            session, tenant.id, dep.settings.upload_max_bytes)
    source = "tenant" if effective.own else "deployment default"
    if as_json:
        typer.echo(json.dumps({"tenant": slug, "upload_max_bytes": effective.value,
                               "upload_max_bytes_source": source}, indent=2))
    else:
        typer.echo(table([("upload_max_bytes", str(effective.value), source)],
                         ("LIMIT", "VALUE", "SET BY")))


def _register_deletion() -> None:
    from strongroom.cli import tenant_clone, tenant_deletion

    tenant_deletion.register(app)
    tenant_clone.register(app)


_register_deletion()
