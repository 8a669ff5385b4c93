"""Retention: purge expired events from the oldest end, leaving a signed purge record.

Each event class has a retention period (a minimum: nothing is purged younger
than its class allows). A purge removes the longest run of events, starting at
the oldest, in which every event has passed its own class's retention; the first
event still inside its period stops the run. Before deleting, a signed
``AuditPurge`` row (range, count, policy, boundary hash) and a chained
``operator:audit:purge`` event are written in the same transaction, so verify
can prove that exactly the purged range, and nothing else, is gone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json

import sqlalchemy as sa
from sqlalchemy.orm import Session

from strongroom.audit import canonical
from strongroom.audit.actors import Actor
from strongroom.audit.models import AuditEvent, AuditPurge
from strongroom.audit.services import AuditTrail
from strongroom.audit.tags import EventClass, EventTag
from strongroom.db import utcnow


@dataclasses.dataclass(frozen=True)
class RetentionPolicy:
    days: dict[EventClass, int]

    def as_json(self) -> str:
        return json.dumps({k.value: v for k, v in sorted(self.days.items())}, sort_keys=True)


@dataclasses.dataclass(frozen=True)
class PurgePlan:
    first_seq: int
    last_seq: int
    count: int
    boundary_hash: str


def purge_message(
    first_seq: int, last_seq: int, count: int, boundary_hash: str, policy: str,
    created_at: dt.datetime,
) -> bytes:
    return canonical.canonical_bytes({
        "kind": "strongroom-audit-purge", "first_seq": first_seq, "last_seq": last_seq,
        "count": count, "boundary_hash": boundary_hash, "policy": policy,
        "created_at": canonical.timestamp(created_at),
    })


def plan_purge(
    session: Session, policy: RetentionPolicy, now: dt.datetime | None = None
) -> PurgePlan | None:
    """The oldest run of events past retention, or None when nothing can go."""
    now = now or utcnow()
    first = last = None
    boundary = ""
    count = 0
    statement = (
        sa.select(AuditEvent.seq, AuditEvent.event_class, AuditEvent.occurred_at, AuditEvent.hash)
        .order_by(AuditEvent.seq)
        .execution_options(yield_per=1000)
    )
    # Closed explicitly: the scan stops early, and a PostgreSQL server-side cursor must not
    # outlive it.
    with contextlib.closing(session.execute(statement)) as rows:
        for seq, klass, occurred_at, event_hash in rows:
            keep_days = policy.days[EventClass(klass)]
            if occurred_at > now - dt.timedelta(days=keep_days):
                break
            first = seq if first is None else first
            last, boundary = seq, event_hash
            count += 1
    if first is None or last is None:
        return None
    return PurgePlan(first, last, count, boundary)


def purge(
    session: Session,
    trail: AuditTrail,
    policy: RetentionPolicy,
    actor: Actor,
    now: dt.datetime | None = None,
) -> PurgePlan | None:
    """Carry out :func:`plan_purge` with its signed record, in the caller's transaction."""
    plan = plan_purge(session, policy, now)
    if plan is None:
        return None
    created_at = utcnow()
    policy_json = policy.as_json()
    session.add(
        AuditPurge(
            first_seq=plan.first_seq,
            last_seq=plan.last_seq,
            count=plan.count,
            boundary_hash=plan.boundary_hash,
            policy=policy_json,
            created_at=created_at,
            signature=trail.keys.sign(
                purge_message(plan.first_seq, plan.last_seq, plan.count, plan.boundary_hash,
                              policy_json, created_at)
            ),
        )
    )
    trail.record_event(
        session,
        EventTag.AUDIT_PURGE,
        actor=actor,
        details={
            "first_seq": plan.first_seq, "last_seq": plan.last_seq, "count": plan.count,
            "boundary_hash": plan.boundary_hash, "policy": json.loads(policy_json),
        },
    )
    session.execute(
        sa.delete(AuditEvent).where(
            AuditEvent.seq >= plan.first_seq, AuditEvent.seq <= plan.last_seq
        )
    )
    return plan
