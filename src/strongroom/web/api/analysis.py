"""Counts, cubes, preview, read-only SQL and saved selections over the tenant's datasets.

Each query route resolves the newest ready versions it needs in a short
transaction, runs in the query sandbox outside it, and records its audit event
(dataset, version, result size, elapsed time; never a value) before answering:
an answer whose audit event cannot be written is not given. Refusals for
personal data and for SQL that is not one read-only SELECT are audited as denials.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session

from strongroom.analysis import queries, saved
from strongroom.analysis.engine import SqlRefused
from strongroom.analysis.errors import PersonalDataRefused
from strongroom.analysis.personal import check_selection, mask_values
from strongroom.analysis.selections import compile_selection
from strongroom.analysis.service import (
    Resolved,
    personal_columns,
    ready_dataset_names,
    resolve_datasets,
)
from strongroom.audit import EventTag, Sensitive
from strongroom.deployment import Deployment
from strongroom.errors import InvalidInput
from strongroom.identity import services as identity
from strongroom.identity.models import Role
from strongroom.identity.permissions import Permission, role_allows
from strongroom.telemetry.models import UsageFeature
from strongroom.telemetry.services import record_usage
from strongroom.tenancy.models import Tenant
from strongroom.web.api.analysis_schemas import (
    CountOut,
    CountRequest,
    CubeOut,
    CubeRequest,
    PreviewOut,
    PreviewRequest,
    SelectionCreate,
    SelectionOut,
    SelectionUpdate,
    SqlOut,
    SqlRequest,
)
from strongroom.web.auth import (
    Principal,
    current,
    deployment_of,
    record_denial,
    route_options,
    tenant_of,
)

router = APIRouter(prefix="/api/v1", tags=["analysis"])
_USAGE = {
    EventTag.ANALYSIS_COUNT: UsageFeature.ANALYSIS_COUNT,
    EventTag.ANALYSIS_CUBE: UsageFeature.ANALYSIS_CUBE,
    EventTag.ANALYSIS_PREVIEW: UsageFeature.ANALYSIS_PREVIEW,
    EventTag.ANALYSIS_SQL: UsageFeature.ANALYSIS_SQL,
}
T = TypeVar("T")


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _asker(session: Session, principal: Principal) -> queries.Asker:
    role = principal.role or Role.VIEWER
    # min_cell_count protects counts from viewers, who see no record-level data; analysts
    # and admins can preview records, so suppressing their cubes would protect nothing.
    minimum = (identity.tenant_policy(session, principal.tenant_id).min_cell_count
               if role is Role.VIEWER else None)
    return queries.Asker(role_allows(role, Permission.PERSONAL_VIEW), minimum)


def _resolve(
    session: Session, dep: Deployment, tenant: Tenant, base: str, selection: object
) -> Resolved:
    # Only the base and the datasets its linked conditions name (and that exist: the
    # compiler names an unknown one by its place); every file resolved is read to verify it.
    linked = queries.referenced_datasets(selection) & ready_dataset_names(session, tenant)
    return resolve_datasets(session, dep, tenant, {base, *linked})


def _selection(
    session: Session, dep: Deployment, tenant: Tenant, dataset: str | None,
    selection: dict[str, Any] | None, selection_id: str | None,
) -> tuple[str, object, saved.SelectionVersion | None]:
    """(base dataset, selection, the saved version used) from a request's three fields."""
    if selection_id is None:
        if dataset is None:
            raise InvalidInput("dataset: name the dataset (or give a selection_id)")
        return dataset, selection, None
    if selection is not None:
        raise InvalidInput("give selection or selection_id, not both")
    version = saved.read_version(session, dep, saved.get_selection(session, tenant, selection_id))
    if dataset is not None and dataset != version.dataset:
        raise InvalidInput("dataset: the saved selection is over another dataset")
    return version.dataset, version.selection, version


def _denials_audited(
    request: Request, principal: Principal, tag: EventTag, run: Callable[[], T]
) -> T:
    try:
        return run()
    except (PersonalDataRefused, SqlRefused) as refusal:
        record_denial(request, principal.actor(), refusal, principal.tenant_id, tag=tag)
        raise


def _record(
    dep: Deployment, principal: Principal, tag: EventTag, resolved: Resolved, base: str | None,
    started: float, details: dict[str, Any],
) -> None:
    if base is not None:
        info = resolved.versions[base]
        target: str | None = f"dataset:{info.dataset_id}"
        details = {"version": info.number, **details}
    else:
        target = None
        details = {"versions": {v.dataset_id: v.number for v in resolved.versions.values()},
                   **details}
    details["elapsed_ms"] = round((time.monotonic() - started) * 1000)
    with dep.transaction() as session:
        dep.audit.record_event(session, tag, actor=principal.actor(),
                               tenant=principal.tenant_id, target=target, details=details)
        # Usage telemetry: the feature, its time and the answer's size, never its content.
        size = next((details[k] for k in ("rows", "cells", "count") if k in details), None)
        record_usage(session, dep, principal, _USAGE[tag], duration_ms=details["elapsed_ms"],
                     rows=size if isinstance(size, int) else None)


def _selection_details(selection: object, used: saved.SelectionVersion | None) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if used is not None:
        details.update(selection_id=used.id, selection_version=used.version)
    elif selection is not None:
        details["selection"] = Sensitive(saved.canonical(selection))
    return details


@router.post("/count", response_model=CountOut, **route_options(Permission.COUNT))
def count(body: CountRequest, request: Request) -> CountOut:
    """How many rows of a dataset's newest ready version a selection selects."""
    principal, dep, started = current(request), deployment_of(request), time.monotonic()
    with dep.transaction() as session:
        tenant = tenant_of(session, principal)
        asker = _asker(session, principal)
        base, selection, used = _selection(session, dep, tenant, body.dataset, body.selection,
                                           body.selection_id)
        resolved = _resolve(session, dep, tenant, base, selection)
    answer = _denials_audited(request, principal, EventTag.ANALYSIS_COUNT, lambda: queries.count(
        resolved, base, selection, asker, today=_today(),
        timeout=dep.settings.query_timeout_seconds))
    _record(dep, principal, EventTag.ANALYSIS_COUNT, resolved, base, started,
            {"count": answer.count, **_selection_details(selection, used)})
    return CountOut(dataset=answer.dataset, version=answer.version, count=answer.count,
                    selection_id=used.id if used else None,
                    selection_version=used.version if used else None)


@router.post("/cubes", response_model=CubeOut, **route_options(Permission.COUNT))
def cube(body: CubeRequest, request: Request) -> CubeOut:
    """A cube of one to three dimensions; for viewers, cells under the tenant's minimum
    count are suppressed (their numbers are null) and the answer says how many."""
    principal, dep, started = current(request), deployment_of(request), time.monotonic()
    with dep.transaction() as session:
        tenant = tenant_of(session, principal)
        asker = _asker(session, principal)
        base, selection, used = _selection(session, dep, tenant, body.dataset, body.selection,
                                           body.selection_id)
        resolved = _resolve(session, dep, tenant, base, selection)
    spec = {"dataset": base, "selection": selection, "dimensions": body.dimensions,
            "measures": body.measures}
    settings = dep.settings
    answer = _denials_audited(request, principal, EventTag.ANALYSIS_CUBE, lambda: queries.cube(
        resolved, spec, asker, today=_today(), max_cells=settings.cube_max_cells,
        timeout=settings.query_timeout_seconds))
    _record(dep, principal, EventTag.ANALYSIS_CUBE, resolved, base, started, {
        "cells": len(answer.cells), "estimated_cells": answer.estimated_cells,
        "suppressed": answer.suppressed_cells,
        "dimensions": len(answer.dimensions), **_selection_details(selection, used)})
    return CubeOut.model_validate({
        "dataset": answer.dataset, "version": answer.version,
        "dimensions": answer.dimensions, "measures": answer.measures, "cells": answer.cells,
        "suppressed_cells": answer.suppressed_cells, "min_cell_count": answer.min_cell_count,
    })


@router.post("/preview", response_model=PreviewOut, **route_options(Permission.ANALYSE))
def preview(body: PreviewRequest, request: Request) -> PreviewOut:
    """The first rows (by key) a selection selects; personal columns read "•••" unless
    your role may see personal data."""
    principal, dep, started = current(request), deployment_of(request), time.monotonic()
    with dep.transaction() as session:
        tenant = tenant_of(session, principal)
        asker = _asker(session, principal)
        base, selection, used = _selection(session, dep, tenant, body.dataset, body.selection,
                                           body.selection_id)
        resolved = _resolve(session, dep, tenant, base, selection)
    answer = _denials_audited(request, principal, EventTag.ANALYSIS_PREVIEW,
                              lambda: queries.preview(
                                  resolved, base, selection, body.limit, asker, today=_today(),
                                  timeout=dep.settings.query_timeout_seconds))
    _record(dep, principal, EventTag.ANALYSIS_PREVIEW, resolved, base, started, {
        "rows": len(answer.rows), "masked_columns": len(answer.masked),
        **_selection_details(selection, used)})
    return PreviewOut(dataset=answer.dataset, version=answer.version, columns=answer.columns,
                      rows=answer.rows, masked=answer.masked)


@router.post("/sql", response_model=SqlOut, **route_options(Permission.ANALYSE))
def sql(body: SqlRequest, request: Request) -> SqlOut:
    """One read-only SELECT over the views ``ds_<dataset>`` (newest ready versions), with a
    row cap and a time limit. Personal columns read "•••" unless your role may see them."""
    principal, dep, started = current(request), deployment_of(request), time.monotonic()
    cap = dep.settings.sql_row_cap
    if body.row_limit is not None and body.row_limit > cap:
        raise InvalidInput(f"row_limit: at most {cap} (the setting sql_row_cap)")
    _denials_audited(request, principal, EventTag.ANALYSIS_SQL,
                     lambda: queries.check_sql(body.sql))
    with dep.transaction() as session:
        tenant = tenant_of(session, principal)
        asker = _asker(session, principal)
        resolved = resolve_datasets(session, dep, tenant)
    result = _denials_audited(request, principal, EventTag.ANALYSIS_SQL, lambda: queries.sql_query(
        resolved, body.sql, body.row_limit or cap, asker,
        timeout=dep.settings.query_timeout_seconds))
    _record(dep, principal, EventTag.ANALYSIS_SQL, resolved, None, started, {
        "sql": Sensitive(body.sql), "rows": len(result.rows), "truncated": result.truncated,
        "masked": not asker.personal})
    return SqlOut(columns=result.columns, rows=[list(row) for row in result.rows],
                  truncated=result.truncated)


def _selection_out(
    version: saved.SelectionVersion, personal: Mapping[str, frozenset[str]] | None = None
) -> SelectionOut:
    """A saved selection; with ``personal`` (the caller may not see personal data), the
    values it tests on those columns read as masked."""
    selection = version.selection
    if personal is not None:
        selection = cast("dict[str, Any]",
                         mask_values(version.selection, version.dataset, personal))
    return SelectionOut(id=version.id, name=version.name, dataset=version.dataset,
                        version=version.version, latest_version=version.latest_version,
                        selection=selection, created_at=version.created_at,
                        updated_at=version.updated_at)


def _masking(
    session: Session, tenant: Tenant, principal: Principal
) -> Mapping[str, frozenset[str]] | None:
    """The personal columns of the tenant's datasets, when the caller may not see them."""
    if _asker(session, principal).personal:
        return None
    return personal_columns(session, tenant)


@router.get("/selections", response_model=list[SelectionOut], **route_options(Permission.COUNT))
def list_selections(request: Request) -> list[SelectionOut]:
    """Your tenant's saved selections by name, each at its latest version."""
    principal, dep = current(request), deployment_of(request)
    with dep.transaction() as session:
        tenant = tenant_of(session, principal)
        masking = _masking(session, tenant, principal)
        return [_selection_out(saved.read_version(session, dep, s), masking)
                for s in saved.list_selections(session, tenant)]


def _checked(
    session: Session, dep: Deployment, tenant: Tenant, principal: Principal, dataset: str,
    selection: dict[str, Any],
) -> Resolved:
    """The schema a selection to be saved must compile against; personal fields refused
    for roles that could not use the selection."""
    resolved = _resolve(session, dep, tenant, dataset, selection)
    # Compiled first: the personal-field check walks only selections that are well formed.
    compile_selection(selection, resolved.schema, dataset, today=_today())
    if not _asker(session, principal).personal:
        check_selection(selection, dataset, resolved.personal, resolved.keys)
    return resolved


@router.post("/selections", response_model=SelectionOut, status_code=201,
             **route_options(Permission.ANALYSE))
def create_selection(body: SelectionCreate, request: Request) -> SelectionOut:
    """Save a named selection over a dataset as version 1; it must compile against the
    dataset's current schema."""
    principal, dep = current(request), deployment_of(request)

    def save() -> SelectionOut:
        with dep.transaction() as session:
            tenant = tenant_of(session, principal)
            resolved = _checked(session, dep, tenant, principal, body.dataset, body.selection)
            made = saved.create_selection(
                session, dep, tenant, principal.actor(), name=body.name, dataset=body.dataset,
                selection=body.selection, schema=resolved.schema, today=_today())
            record_usage(session, dep, principal, UsageFeature.SELECTION_SAVE)
            return _selection_out(saved.read_version(session, dep, made))

    # The denial is recorded after the refused transaction has ended.
    return _denials_audited(request, principal, EventTag.SELECTION_CREATE, save)


@router.get("/selections/{selection_id}", response_model=SelectionOut,
            **route_options(Permission.COUNT))
def get_selection(
    selection_id: str, request: Request,
    version: int | None = Query(default=None, ge=1, le=2**31 - 1,
                                description="A version number; default the latest"),
) -> SelectionOut:
    """One saved selection, at its latest version or the one asked for."""
    principal, dep = current(request), deployment_of(request)
    with dep.transaction() as session:
        tenant = tenant_of(session, principal)
        found = saved.get_selection(session, tenant, selection_id)
        return _selection_out(saved.read_version(session, dep, found, version),
                              _masking(session, tenant, principal))


@router.put("/selections/{selection_id}", response_model=SelectionOut,
            **route_options(Permission.ANALYSE))
def update_selection(selection_id: str, body: SelectionUpdate, request: Request) -> SelectionOut:
    """Save a new version of a saved selection; earlier versions stay as they were."""
    principal, dep = current(request), deployment_of(request)

    def save() -> SelectionOut:
        with dep.transaction() as session:
            tenant = tenant_of(session, principal)
            found = saved.get_selection(session, tenant, selection_id)
            resolved = _checked(session, dep, tenant, principal, found.dataset, body.selection)
            updated = saved.update_selection(
                session, dep, tenant, principal.actor(), selection_id, selection=body.selection,
                schema=resolved.schema, today=_today())
            record_usage(session, dep, principal, UsageFeature.SELECTION_SAVE)
            return _selection_out(saved.read_version(session, dep, updated))

    return _denials_audited(request, principal, EventTag.SELECTION_UPDATE, save)


@router.delete("/selections/{selection_id}", status_code=204,
               **route_options(Permission.ANALYSE))
def delete_selection(selection_id: str, request: Request) -> Response:
    """Remove a saved selection with all its versions."""
    principal, dep = current(request), deployment_of(request)
    with dep.transaction() as session:
        tenant = tenant_of(session, principal)
        saved.delete_selection(session, dep, tenant, principal.actor(), selection_id)
    return Response(status_code=204)
