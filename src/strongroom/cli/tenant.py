"""strongroom tenant ..."""

from __future__ import annotations

import json
from typing import Annotated, Any

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



def _cap_option(what: str) -> Any:
    return typer.Option(help=f"Set the cap on {what}.", min=0, max=2**53)


@app.command("export-caps")
def export_caps(
    slug: Annotated[str, typer.Argument(help="The tenant whose export caps to show or set.")],
    rows_per_hour: Annotated[int | None, _cap_option("rows exported per rolling hour")] = None,
    rows_per_day: Annotated[int | None, _cap_option("rows exported per rolling 24 hours")] = None,
    bytes_per_hour: Annotated[int | None, _cap_option("bytes exported per rolling hour")] = None,
    bytes_per_day: Annotated[
        int | None, _cap_option("bytes exported per rolling 24 hours")] = None,
    exports_per_hour: Annotated[int | None, _cap_option("exports per rolling hour")] = None,
    exports_per_day: Annotated[int | None, _cap_option("exports per rolling 24 hours")] = None,
    subjects_per_hour: Annotated[
        int | None, _cap_option("distinct data subjects per rolling hour")] = None,
    subjects_per_day: Annotated[
        int | None, _cap_option("distinct data subjects per rolling 24 hours")] = None,
    use_defaults: Annotated[
        bool, typer.Option("--use-defaults", help="Drop every cap set for this tenant: the "
                           "export_cap_* settings apply again.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Show a tenant's export velocity caps, or set some; its admins set limits within them."""
    from strongroom.exports import velocity
    from strongroom.exports.models import LIMIT_NAMES

    given = {name: value for name, value in (
        ("rows_per_hour", rows_per_hour), ("rows_per_day", rows_per_day),
        ("bytes_per_hour", bytes_per_hour), ("bytes_per_day", bytes_per_day),
        ("exports_per_hour", exports_per_hour), ("exports_per_day", exports_per_day),
        ("subjects_per_hour", subjects_per_hour), ("subjects_per_day", subjects_per_day),
    ) if value is not None}
    if given and use_defaults:
        raise typer.BadParameter("give caps to set or --use-defaults, not both")
    with (
        deployment(home) as dep,
        audited_failure(dep, EventTag.EXPORT_CAPS_CHANGE),
        dep.transaction() as session,
    ):
        tenant = services.get_tenant(session, slug)
        changes: dict[str, int | None] = (
            dict.fromkeys(LIMIT_NAMES) if use_defaults else dict(given))
        if changes:
            previous = velocity.own_caps(session, tenant.id)
            velocity.set_caps(session, tenant.id, changes)
            record(dep, session, EventTag.EXPORT_CAPS_CHANGE, tenant=tenant.id,
                   target=f"tenant:{tenant.id}",
                   details={"set": changes, "previous": {n: previous[n] for n in changes}})
        own = velocity.own_caps(session, tenant.id)
        caps = velocity.tenant_caps(session, dep.settings, tenant.id)
    sources = {name: "tenant" if own[name] is not None else "deployment default"
               for name in LIMIT_NAMES}
    if as_json:
        typer.echo(json.dumps({"tenant": slug, "caps": caps, "set_by": sources}, indent=2))
    else:
        typer.echo(table([(name, str(caps[name]), sources[name]) for name in LIMIT_NAMES],
                         ("CAP", "VALUE", "SET BY")))

def _register_deletion() -> None:
    from strongroom.cli import tenant_clone, tenant_deletion

    tenant_deletion.register(app)
    tenant_clone.register(app)


_register_deletion()
