"""The audit log over HTTP: tenant admins read their own tenant's events only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session

from strongroom.audit import Actor, EventTag, Outcome
from strongroom.audit import query as audit_query
from strongroom.audit.services import AuditTrail
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


def filter_query(
    request: Request,
    since: Annotated[str | None, Query(min_length=1, max_length=64,
                                      description="ISO 8601 time, inclusive",
                                      json_schema_extra={"format": "date-time"})] = None,
    until: Annotated[str | None, Query(min_length=1, max_length=64,
                                      description="ISO 8601 time, inclusive",
                                      json_schema_extra={"format": "date-time"})] = None,
    actor: Annotated[str | None, Query(pattern=ACTOR_PATTERN, description="Actor id")] = None,
    tag: Annotated[EventTag | None, Query(description="Event tag")] = None,
    outcome: Annotated[Outcome | None, Query(description="success, denied or failure")] = None,
    after_seq: Annotated[
        int, Query(ge=0, le=2**62, description="Only events after this sequence")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=audit_query.MAX_LIMIT)] = 100,
) -> dict[str, object]:
    """The declared filters (one dependency for both planes), after refusing any query
    parameter that is not one of them."""
    audit_query.parse_filter({k: "" for k in request.query_params if k != "tenant"})
    return {"since": since, "until": until, "actor": actor, "tag": tag, "outcome": outcome,
            "after_seq": after_seq, "limit": limit}


FilterQuery = Annotated[dict[str, object], Depends(filter_query)]


@router.get("/events", response_model=AuditPage, **route_options(Permission.AUDIT_READ))
def list_events(request: Request, raw: FilterQuery) -> AuditPage:
    """Your tenant's audit events, oldest first; page on with after_seq."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        flt = audit_query.parse_filter(raw, principal.tenant_id)
        return audit_page(session, dep.audit, principal.actor(), EventTag.TENANT_AUDIT_READ, flt,
                          principal.tenant_id)
