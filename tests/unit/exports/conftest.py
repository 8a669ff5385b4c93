"""A deployment with tenant acme and its customers and transactions built for real."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from tests.unit.analysis.built import customers_and_transactions

from strongroom.audit import Actor
from strongroom.deployment import Deployment
from strongroom.exports.models import ExportFormat
from strongroom.exports.services import CreatedExport, ExportSpec, Requester, create_export
from strongroom.tenancy.models import Tenant

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
ALL_COLUMNS = [{"name": n} for n in ("id", "email", "region", "age", "spend", "joined")]


def requester(tenant: Tenant, user: str = "analyst-1", *, personal: bool = True) -> Requester:
    return Requester(tenant.id, user, Actor(kind="user", id=user, role="analyst"), personal)


def spec(columns: list[dict[str, Any]] | None = None, **extra: Any) -> ExportSpec:
    return ExportSpec(dataset=extra.pop("dataset", "customers"),
                      columns=columns if columns is not None else list(ALL_COLUMNS), **extra)


@pytest.fixture
def tenant(make_tenant: Callable[[str], Tenant], deployment: Deployment) -> Tenant:
    acme = make_tenant("acme")
    customers_and_transactions(deployment, acme)
    return acme


@pytest.fixture
def export(
    deployment: Deployment, tenant: Tenant
) -> Callable[..., CreatedExport]:
    """Run an export as a user of acme (default analyst-1) at a given time (default NOW)."""

    def run(*, user: str = "analyst-1", now: dt.datetime = NOW, personal: bool = True,
            fmt: ExportFormat = ExportFormat.CSV, **spec_args: Any) -> CreatedExport:
        return create_export(deployment, requester(tenant, user, personal=personal),
                             spec(format=fmt, **spec_args), now=now)

    return run
