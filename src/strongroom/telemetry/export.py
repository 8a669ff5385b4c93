"""The operator's file of usage events: JSON Lines or CSV, pseudonymous by construction.

Each line says when (to the hour), which feature, how long and how much
(coarse), which tenant as a pseudonym, and which user: the pseudonym, or for
an insider at the time of the event their user id (and then not the
pseudonym, so an insider's earlier pseudonymous events cannot be linked to
them through the file). Never an email, a name, an address or a tenant slug.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import enum
import io
import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from strongroom.crypto.macs import MacKey
from strongroom.errors import InvalidInput
from strongroom.telemetry.models import InsiderConsent, UsageEvent
from strongroom.telemetry.services import tenant_pseudonym

FIELDS = ("hour", "feature", "tenant", "user", "insider", "duration_ms", "rows", "bytes")
_BATCH = 1000


class ExportFormat(enum.StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


def parse_since(raw: str | None) -> dt.datetime | None:
    """A date (YYYY-MM-DD, from its midnight UTC) or an ISO 8601 time; naive means UTC."""
    if raw is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidInput(
            "--since must be a date or an ISO 8601 time",
            hint="for example 2026-11-01 or 2026-11-01T09:00:00Z",
        ) from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def record_of(event: UsageEvent, key: MacKey) -> dict[str, Any]:
    """One exported line: the stored, already-pseudonymous event, tenant named by pseudonym."""
    return {
        "hour": _stamp(event.occurred_at),
        "feature": event.feature,
        "tenant": tenant_pseudonym(key, event.tenant_id),
        "user": event.user_id if event.user_id is not None else event.subject,
        "insider": event.user_id is not None,
        "duration_ms": event.duration_ms,
        "rows": event.rows,
        "bytes": event.size_bytes,
    }


def iter_records(
    session: Session, key: MacKey, since: dt.datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Every event at or after ``since``, oldest first, read in batches."""
    after = 0
    while True:
        stmt = sa.select(UsageEvent).where(UsageEvent.id > after)
        if since is not None:
            stmt = stmt.where(UsageEvent.occurred_at >= since)
        batch = list(session.scalars(stmt.order_by(UsageEvent.id).limit(_BATCH)))
        if not batch:
            return
        for event in batch:
            yield record_of(event, key)
        after = batch[-1].id


def render(records: Iterator[dict[str, Any]], export_format: ExportFormat) -> Iterator[str]:
    """The lines of the file, each ending in a newline."""
    if export_format is ExportFormat.JSONL:
        for record in records:
            yield json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(record)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


@dataclasses.dataclass(frozen=True)
class Summary:
    events: int
    users: int
    insiders: int
    by_feature: dict[str, int]
    first: dt.datetime | None
    last: dt.datetime | None


def summarise(session: Session, since: dt.datetime | None = None) -> Summary:
    """Counts for ``telemetry show``: events by feature, distinct pseudonyms, insiders now."""
    condition = UsageEvent.occurred_at >= since if since is not None else sa.true()
    by_feature = {
        str(feature): int(count)
        for feature, count in session.execute(
            sa.select(UsageEvent.feature, sa.func.count())
            .where(condition)
            .group_by(UsageEvent.feature)
            .order_by(UsageEvent.feature)
        )
    }
    users = session.scalar(
        sa.select(sa.func.count(sa.distinct(UsageEvent.subject))).where(condition)
    )
    first, last = session.execute(
        sa.select(sa.func.min(UsageEvent.occurred_at), sa.func.max(UsageEvent.occurred_at))
        .where(condition)
    ).one()
    insiders = session.scalar(
        sa.select(sa.func.count()).select_from(InsiderConsent).where(InsiderConsent.insider)
    )
    return Summary(
        events=sum(by_feature.values()), users=int(users or 0), insiders=int(insiders or 0),
        by_feature=by_feature, first=first, last=last,
    )
