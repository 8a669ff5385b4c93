"""The audit log over HTTP: tenant admins read their own tenant's events only."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session

from strongroom.audit import Actor, EventTag, Outcome
from strongroom.audit import query as audit_query
from strongroom.audit.services import AuditTrail
from strongroom.errors import InvalidInput
from strongroom.identity.permissions import Permission
from strongroom.web.api.schemas import AuditEventOut, AuditPage
from strongroom.web.auth import current, deployment_of, route_options

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
# Actor ids are printable ASCII; anything else (a NUL, say) never reaches the database.
ACTOR_PATTERN = r"^[!-~]{1,64}$"


def audit_page(
    session: Session, trail: AuditTrail, actor: Actor, tag: EventTag,
    flt: audit_query.AuditFilter, reader_tenant: str | None,
) -> AuditPage:
    """One page of events; the read is recorded before the events are released."""
    events = audit_query.list_events(session, flt)
    trail.record_event(session, tag, actor=actor, tenant=reader_tenant,
                       details={"events": len(events)})
    out = [AuditEventOut(**audit_query.event_record(e)) for e in events]
    more = len(events) == flt.limit
    return AuditPage(events=out, next_after_seq=events[-1].seq if more and events else None)


def _utc(name: str, raw: str | None) -> str | None:
    """An ISO 8601 time as UTC (a time without a zone is taken as UTC), else a 422."""
    if raw is None:
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC).isoformat()
    # OverflowError: 0001-01-01T00:00+01:00 is before the first representable UTC time.
    except (ValueError, OverflowError):
        raise InvalidInput(
            f"filter {name} is not an ISO 8601 time in range (for example 2026-11-26T10:00:00Z)"
        ) from None


def filter_values(
    request: Request, since: str | None, until: str | None, actor: str | None,
    tag: EventTag | None, outcome: Outcome | None, after_seq: int, limit: int,
) -> dict[str, object]:
    """The declared filters, after refusing any query parameter that is not one of them."""
    audit_query.parse_filter({k: "" for k in request.query_params if k != "tenant"})
    return {"since": _utc("since", since), "until": _utc("until", until), "actor": actor,
            "tag": tag, "outcome": outcome, "after_seq": after_seq, "limit": limit}


@router.get("/events", response_model=AuditPage, **route_options(Permission.AUDIT_READ))
def list_events(
    request: Request,
    since: Annotated[str | None, Query(max_length=64, description="ISO 8601 time, inclusive",
                                      json_schema_extra={"format": "date-time"})] = None,
    until: Annotated[str | None, Query(max_length=64, description="ISO 8601 time, inclusive",
                                      json_schema_extra={"format": "date-time"})] = None,
    actor: str | None = Query(None, pattern=ACTOR_PATTERN, description="Actor id"),
    tag: Annotated[EventTag | None, Query(description="Event tag")] = None,
    outcome: Annotated[Outcome | None, Query(description="success, denied or failure")] = None,
    after_seq: int = Query(0, ge=0, le=2**62, description="Only events after this sequence"),
    limit: int = Query(100, ge=1, le=audit_query.MAX_LIMIT),
) -> AuditPage:
    """Your tenant's audit events, oldest first; page on with after_seq."""
    principal = current(request)
    dep = deployment_of(request)
    raw = filter_values(request, since, until, actor, tag, outcome, after_seq, limit)
    with dep.transaction() as session:
        flt = audit_query.parse_filter(raw, principal.tenant_id)
        return audit_page(session, dep.audit, principal.actor(), EventTag.TENANT_AUDIT_READ, flt,
                          principal.tenant_id)
