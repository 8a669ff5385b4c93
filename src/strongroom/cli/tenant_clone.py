"""strongroom tenant clone (registered on the tenant group)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from strongroom.audit import EventTag
from strongroom.cli._audited import audited_failure
from strongroom.cli._common import resolve_home
from strongroom.config import Settings, load_settings
from strongroom.deployment import Deployment, open_deployment
from strongroom.tenancy import clone as cloning


@contextmanager
def _source(settings: Settings) -> Iterator[Deployment]:
    opened = cloning.open_source(settings)
    try:
        yield opened
    finally:
        opened.close()


def clone(
    source: Annotated[
        Path, typer.Option("--from", help="Home of the deployment to clone from (read only).",
                           show_default=False),
    ],
    target: Annotated[
        Path, typer.Option("--to", help="Home of the test or development deployment to clone "
                           "into (made with `strongroom init`).", show_default=False),
    ],
    anonymise: Annotated[
        Path | None,
        typer.Option("--anonymise", help="JSON profile: for each dataset to clone, its columns "
                     "and their transforms; columns not named are dropped. Required."),
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Clone only this tenant (default: every one).")
    ] = None,
) -> None:
    """Clone datasets into a test or development deployment, through anonymising transforms.

    Users, tokens, policies and the audit trail are not cloned.
    """
    source_settings = load_settings(resolve_home(source))
    target_settings = load_settings(resolve_home(target))
    with _source(source_settings) as dep, audited_failure(
        dep, EventTag.TENANT_CLONE_OUT
    ):
        cloning.check_environments(source_settings.environment, target_settings.environment,
                                   anonymised=anonymise is not None)
        if anonymise is None:  # refused just above; this narrows the type
            return
        profile = cloning.read_profile(anonymise)
        opened_target = open_deployment(target_settings)
        try:
            result = cloning.clone(
                dep, opened_target, profile, tenant_slug=tenant,
                on_version=lambda v: typer.echo(
                    f"cloned {v.tenant}/{v.dataset} as version {v.version} ({v.rows} rows)"),
            )
        finally:
            opened_target.close()
    for name in result.skipped:
        typer.echo(f"not cloned (not in the profile): {name}")
    typer.echo(f"cloned {len(result.versions)} dataset versions into the "
               f"{target_settings.environment.value} deployment at {target_settings.home}; "
               "users, tokens and audit were not cloned")


def register(app: typer.Typer) -> None:
    app.command("clone")(clone)
