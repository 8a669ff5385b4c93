"""Exports (analysts and admins), the quota left to export, and the tenant's export limits.

An export runs synchronously in the request (see :mod:`strongroom.exports.services`):
its size, and so its time, is bounded by the velocity limits checked before it runs.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from strongroom.audit import EventTag
from strongroom.db import utcnow
from strongroom.exports import velocity
from strongroom.exports.download import start_download
from strongroom.exports.models import Export, ExportFormat, Scope
from strongroom.exports.services import (
    AnonymousSpec,
    CreatedExport,
    ExportSpec,
    Requester,
    create_export,
    get_export,
    list_exports,
)
from strongroom.identity.permissions import Permission, role_allows
from strongroom.telemetry.models import UsageFeature
from strongroom.web.api.export_schemas import (
    ExportCreate,
    ExportLimitsOut,
    ExportLimitsUpdate,
    ExportOut,
    QuotaOut,
)
from strongroom.web.api.telemetry import track
from strongroom.web.auth import Principal, current, deployment_of, route_options

router = APIRouter(prefix="/api/v1", tags=["exports"])
_KEY_MAX = 100


def _out(export: Export, now: dt.datetime, download_url: str | None = None) -> ExportOut:
    return ExportOut(
        id=export.id, status=export.status_at(now).value, format=export.format, rows=export.rows,
        bytes=export.size, sha256=export.sha256, created_at=export.created_at,
        expires_at=export.expires_at, downloaded_at=export.downloaded_at,
        download_url=download_url,
        anonymity=json.loads(export.anonymity) if export.anonymity else None,
    )


def _requester(principal: Principal) -> Requester:
    personal = principal.role is not None and role_allows(principal.role,
                                                          Permission.PERSONAL_VIEW)
    return Requester(principal.tenant_id, principal.principal_id, principal.actor(), personal)


def _spec(body: ExportCreate) -> ExportSpec:
    anonymous = None
    if body.anonymous is not None:
        anonymous = AnonymousSpec(list(body.anonymous.quasi_identifiers), body.anonymous.k,
                                  body.anonymous.sensitive, body.anonymous.l)
    return ExportSpec(
        dataset=body.dataset,
        columns=[column.model_dump(exclude_none=True) for column in body.columns],
        format=ExportFormat(body.format), selection=body.selection,
        selection_id=body.selection_id, anonymous=anonymous,
    )


@router.post("/exports", response_model=ExportOut, status_code=201,
             **route_options(Permission.EXPORT))
def create(body: ExportCreate, request: Request) -> ExportOut:
    """Export a selection of a dataset as CSV or Parquet, each column with a transform.

    Velocity limits are checked first (429 with Retry-After when over). The answer's
    ``download_url`` works once, for you, until ``expires_at``; it is not shown again.
    """
    principal = current(request)
    with track(request, UsageFeature.EXPORT_CREATE) as usage:
        created: CreatedExport = create_export(deployment_of(request), _requester(principal),
                                               _spec(body))
        usage.rows, usage.bytes = created.export.rows, created.export.size
    return _out(created.export, utcnow(), created.download_url)


@router.get("/exports", response_model=list[ExportOut], **route_options(Permission.EXPORT))
def list_(request: Request) -> list[ExportOut]:
    """Your exports, newest first."""
    principal = current(request)
    now = utcnow()
    with deployment_of(request).transaction() as session:
        return [_out(e, now)
                for e in list_exports(session, principal.tenant_id, principal.principal_id)]


@router.get("/exports/{export_id}", response_model=ExportOut,
            **route_options(Permission.EXPORT))
def get(export_id: str, request: Request) -> ExportOut:
    """One of your exports."""
    principal = current(request)
    with deployment_of(request).transaction() as session:
        return _out(get_export(session, principal.tenant_id, principal.principal_id, export_id),
                    utcnow())


_DOWNLOAD_OPTIONS: dict[str, Any] = route_options(Permission.EXPORT)
_DOWNLOAD_OPTIONS["responses"] = {
    **_DOWNLOAD_OPTIONS["responses"],
    200: {"description": "The export's bytes (CSV or Parquet), decrypted as they stream",
          "content": {"text/csv": {"schema": {"type": "string", "format": "binary"}},
                      "application/vnd.apache.parquet": {
                          "schema": {"type": "string", "format": "binary"}}}},
}


@router.get("/exports/{export_id}/download", response_class=StreamingResponse,
            **_DOWNLOAD_OPTIONS)
def download(
    export_id: str, request: Request,
    key: Annotated[str, Query(min_length=1, max_length=_KEY_MAX,
                              description="The key in the download_url")],
) -> StreamingResponse:
    """Download an export once, as the user who created it; a used or expired link is 410."""
    principal = current(request)
    with track(request, UsageFeature.EXPORT_DOWNLOAD) as usage:
        started = start_download(deployment_of(request), principal.tenant_id,
                                 principal.principal_id, principal.actor(), export_id, key)
        usage.bytes = started.size
    return StreamingResponse(
        started.chunks, media_type=started.media_type,
        headers={"content-disposition": f'attachment; filename="{started.filename}"',
                 "content-length": str(started.size), "cache-control": "no-store"},
    )


@router.get("/quota", response_model=QuotaOut, **route_options(Permission.EXPORT))
def quota(request: Request) -> QuotaOut:
    """What you and your tenant may still export in the rolling hour and 24 hours."""
    principal = current(request)
    dep = deployment_of(request)
    now = utcnow()
    with dep.transaction() as session:
        ledger = velocity.load_ledger(session, principal.tenant_id, now)
        limits = velocity.effective_limits(session, dep.settings, principal.tenant_id)
        report = velocity.quota_members(velocity.quota(ledger, limits, principal.principal_id))
        refusals = velocity.refusals_last_hour(session, principal.tenant_id,
                                               principal.principal_id, now)
    return QuotaOut.model_validate({**report, "refusals_last_hour": refusals, "as_of": now})


def _limits_out(request: Request, tenant_id: str) -> ExportLimitsOut:
    dep = deployment_of(request)
    with dep.transaction() as session:
        caps = velocity.tenant_caps(session, dep.settings, tenant_id)
        own = velocity.tenant_limits(session, tenant_id)
        effective = velocity.effective_limits(session, dep.settings, tenant_id)
    return ExportLimitsOut.model_validate({
        "caps": caps, "tenant": own[Scope.TENANT], "user": own[Scope.USER],
        "effective": {"tenant": effective[Scope.TENANT], "user": effective[Scope.USER]},
    })


@router.get("/export-limits", response_model=ExportLimitsOut,
            **route_options(Permission.POLICY_MANAGE))
def get_limits(request: Request) -> ExportLimitsOut:
    """The operator's caps, your tenant's export limits, and what applies."""
    return _limits_out(request, current(request).tenant_id)


@router.put("/export-limits", response_model=ExportLimitsOut,
            **route_options(Permission.POLICY_MANAGE))
def set_limits(body: ExportLimitsUpdate, request: Request) -> ExportLimitsOut:
    """Replace your tenant's export limits (null: up to the cap); above a cap is 422."""
    principal = current(request)
    dep = deployment_of(request)
    values = {Scope.TENANT: body.tenant.model_dump(), Scope.USER: body.user.model_dump()}
    with dep.transaction() as session:
        velocity.set_tenant_limits(session, dep.settings, principal.tenant_id,
                                   principal.principal_id, values)
        dep.audit.record_event(
            session, EventTag.EXPORT_LIMITS_CHANGE, actor=principal.actor(),
            tenant=principal.tenant_id,
            details={scope.value: limits for scope, limits in values.items()},
        )
    return _limits_out(request, principal.tenant_id)
