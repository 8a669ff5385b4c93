"""Reading the log: validated filters, listing, and JSON Lines export for a SIEM."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
from collections.abc import Iterator, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from strongroom.audit import canonical
from strongroom.audit.errors import InvalidAuditFilter
from strongroom.audit.models import AuditEvent
from strongroom.audit.tags import EventTag, Outcome

FILTER_FIELDS = ("since", "until", "tenant", "actor", "tag", "outcome", "after_seq", "limit")
MAX_LIMIT = 10_000


@dataclasses.dataclass(frozen=True)
class AuditFilter:
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    tenant_id: str | None = None
    actor: str | None = None
    tag: EventTag | None = None
    outcome: Outcome | None = None
    after_seq: int = 0
    limit: int = 100


def _parse_time(name: str, raw: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(raw)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        # OverflowError: a valid ISO time whose UTC form falls outside year 1..9999.
        raise InvalidAuditFilter(
            f"filter {name} is not an ISO 8601 date or time (for example 2026-11-26T10:00:00Z)"
        ) from None


def _parse_int(name: str, raw: str | int, low: int, high: int) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise InvalidAuditFilter(f"filter {name} must be a whole number") from None
    if not low <= value <= high:
        raise InvalidAuditFilter(f"filter {name} must be between {low} and {high}")
    return value


def parse_filter(raw: Mapping[str, Any], tenant_id: str | None = None) -> AuditFilter:
    """Validate filter values from the CLI or HTTP query; unknown fields are refused.

    ``tenant`` arrives already resolved to ``tenant_id`` by the caller, because only
    the caller knows whether the reader may see that tenant.
    """
    if "tenant" in raw:
        # Silently ignoring it would turn a tenant-filtered read into a read of everything.
        raise TypeError("parse_filter takes the tenant resolved, as tenant_id, never raw")
    unknown = sorted(set(raw) - set(FILTER_FIELDS))
    if unknown:
        raise InvalidAuditFilter(
            f"unknown filter {unknown[0]!r}; filters are {', '.join(FILTER_FIELDS)}"
        )
    values: dict[str, Any] = {"tenant_id": tenant_id}
    if raw.get("since"):
        values["since"] = _parse_time("since", str(raw["since"]))
    if raw.get("until"):
        values["until"] = _parse_time("until", str(raw["until"]))
    if values.get("since") and values.get("until") and values["since"] > values["until"]:
        raise InvalidAuditFilter("filter since is after until")
    if raw.get("actor"):
        values["actor"] = str(raw["actor"])[:64]
    if raw.get("tag"):
        try:
            values["tag"] = EventTag(str(raw["tag"]))
        except ValueError:
            raise InvalidAuditFilter("filter tag is not a known event tag") from None
    if raw.get("outcome"):
        try:
            values["outcome"] = Outcome(str(raw["outcome"]))
        except ValueError:
            raise InvalidAuditFilter("filter outcome must be success, denied or failure") from None
    if raw.get("after_seq") not in (None, ""):
        values["after_seq"] = _parse_int("after_seq", raw["after_seq"], 0, 2**62)
    if raw.get("limit") not in (None, ""):
        values["limit"] = _parse_int("limit", raw["limit"], 1, MAX_LIMIT)
    return AuditFilter(**values)


def _statement(flt: AuditFilter) -> sa.Select[AuditEvent]:
    stmt = sa.select(AuditEvent).where(AuditEvent.seq > flt.after_seq)
    if flt.since:
        stmt = stmt.where(AuditEvent.occurred_at >= flt.since)
    if flt.until:
        stmt = stmt.where(AuditEvent.occurred_at <= flt.until)
    if flt.tenant_id:
        stmt = stmt.where(AuditEvent.tenant_id == flt.tenant_id)
    if flt.actor:
        stmt = stmt.where(AuditEvent.actor_id == flt.actor)
    if flt.tag:
        stmt = stmt.where(AuditEvent.tag == flt.tag.value)
    if flt.outcome:
        stmt = stmt.where(AuditEvent.outcome == flt.outcome.value)
    return stmt.order_by(AuditEvent.seq)


def list_events(session: Session, flt: AuditFilter) -> list[AuditEvent]:
    return list(session.scalars(_statement(flt).limit(flt.limit)))


def iter_events(session: Session, flt: AuditFilter) -> Iterator[AuditEvent]:
    """Every matching event (no limit), streamed: for exports."""
    # Closed when the consumer stops early, so no server-side cursor outlives the export.
    with contextlib.closing(
        session.scalars(_statement(flt).execution_options(yield_per=2000))
    ) as events:
        yield from events


def event_record(event: AuditEvent) -> dict[str, Any]:
    """The event as a JSON-ready dict, including its hash and seal for external checking."""
    record = canonical.canonical_fields(event)
    record["details"] = json.loads(event.details)
    record["hash"] = event.hash
    record["mac"] = event.mac
    return record


def to_jsonl(event: AuditEvent) -> str:
    return json.dumps(event_record(event), sort_keys=True, separators=(",", ":"))
