"""Recording usage, and the insider programme a user joins and leaves themselves.

Who used a feature is recorded as a keyed pseudonym: HMAC-SHA256 of the user id
under the deployment's telemetry key (``KeyStore.telemetry_key``), so events of
one user can be told apart from another's without saying who either is. The
user id itself is kept only while the user is an insider, by their own choice.
Leaving the programme re-pseudonymises the events recorded while they were in
it (the user id is cleared from them, in the same transaction), so what an
operator can export afterwards no longer names them; a file already exported
cannot be called back.

Numbers are coarse (two significant figures) and times are truncated to the
hour, so an event cannot be matched exactly to a dataset's size or to an
audit event. Recording never refuses anything a user does: with
``telemetry_enabled`` off, or for an operator, nothing is recorded.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from strongroom.audit import Actor, EventTag
from strongroom.crypto.macs import MacKey
from strongroom.db import utcnow
from strongroom.deployment import Deployment
from strongroom.errors import StrongroomError
from strongroom.identity.models import User
from strongroom.telemetry.models import InsiderConsent, UsageEvent, UsageFeature

logger = logging.getLogger("strongroom.telemetry")
USER_DOMAIN = "telemetry-user"
TENANT_DOMAIN = "telemetry-tenant"
PSEUDONYM_CHARS = 32  # 128 bits of the HMAC: no collisions among any realistic user count
SIGNIFICANT_FIGURES = 2


class UsageSubject(Protocol):
    """Who used the feature: a web ``Principal`` fits, as does :class:`Subject`."""

    @property
    def principal_id(self) -> str: ...

    @property
    def tenant(self) -> str | None: ...


@dataclasses.dataclass(frozen=True)
class Subject:
    """A tenant user named by ids, for callers that hold no ``Principal`` (login, jobs)."""

    principal_id: str
    tenant: str | None


def coarse(value: int | float | None) -> int | None:
    """``value`` rounded to two significant figures (1234 → 1200); negatives become 0."""
    if value is None:
        return None
    number = int(value)
    if number <= 0:
        return 0
    digits = int(math.log10(number)) + 1
    step = 10 ** max(digits - SIGNIFICANT_FIGURES, 0)
    return int(round(number / step) * step)


def hour_of(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def user_pseudonym(key: MacKey, user_id: str) -> str:
    return key.mac(USER_DOMAIN, user_id.encode())[:PSEUDONYM_CHARS]


def tenant_pseudonym(key: MacKey, tenant_id: str) -> str:
    return key.mac(TENANT_DOMAIN, tenant_id.encode())[:PSEUDONYM_CHARS]


def is_insider(session: Session, user_id: str) -> bool:
    consent = session.get(InsiderConsent, user_id)
    return consent is not None and consent.insider


def record_usage(
    session: Session,
    deployment: Deployment,
    principal_like: UsageSubject,
    feature: UsageFeature,
    duration_ms: int | float | None = None,
    rows: int | None = None,
    bytes: int | None = None,  # noqa: A002 - the name callers use for a size in bytes
) -> UsageEvent | None:
    """Record one use of ``feature`` in the caller's transaction; None when not recorded.

    Nothing is recorded when telemetry is off or the caller is not a tenant user.
    """
    if not deployment.settings.telemetry_enabled or principal_like.tenant is None:
        return None
    feature = UsageFeature(feature)
    user_id = principal_like.principal_id
    key = deployment.keys.telemetry_key(session)
    event = UsageEvent(
        occurred_at=hour_of(utcnow()),
        feature=feature.value,
        tenant_id=principal_like.tenant,
        subject=user_pseudonym(key, user_id),
        user_id=user_id if is_insider(session, user_id) else None,
        duration_ms=coarse(duration_ms),
        rows=coarse(rows),
        size_bytes=coarse(bytes),
    )
    session.add(event)
    return event


@dataclasses.dataclass
class Usage:
    """What a measured block handled; set ``rows`` and ``bytes`` inside the block."""

    rows: int | None = None
    bytes: int | None = None


@contextmanager
def measured(
    deployment: Deployment, principal_like: UsageSubject, feature: UsageFeature
) -> Iterator[Usage]:
    """Time the block and, if it ends without an exception, record its use.

    Recorded in a transaction of its own after the block. Best effort: if the
    event cannot be written the user's request still succeeds, and only the
    error's type is logged.
    """
    usage = Usage()
    started = time.monotonic()
    yield usage
    elapsed = (time.monotonic() - started) * 1000
    record_soon(deployment, principal_like, feature, duration_ms=elapsed, rows=usage.rows,
                bytes=usage.bytes)


def record_soon(
    deployment: Deployment,
    principal_like: UsageSubject,
    feature: UsageFeature,
    duration_ms: int | float | None = None,
    rows: int | None = None,
    bytes: int | None = None,  # noqa: A002 - the name callers use for a size in bytes
) -> None:
    """:func:`record_usage` in a transaction of its own, best effort (errors logged by type)."""
    if not deployment.settings.telemetry_enabled:
        return
    try:
        with deployment.transaction() as session:
            record_usage(session, deployment, principal_like, feature, duration_ms=duration_ms,
                         rows=rows, bytes=bytes)
    except (SQLAlchemyError, StrongroomError) as error:
        logger.warning("usage of %s not recorded: %s", feature.value, type(error).__name__)


# -- the insider programme ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ConsentState:
    insider: bool
    changed_at: dt.datetime | None
    recording: bool


def consent_state(session: Session, deployment: Deployment, user_id: str) -> ConsentState:
    consent = session.get(InsiderConsent, user_id)
    return ConsentState(
        insider=consent is not None and consent.insider,
        changed_at=consent.changed_at if consent is not None else None,
        recording=deployment.settings.telemetry_enabled,
    )


def set_insider(
    session: Session, deployment: Deployment, actor: Actor, user: User, insider: bool
) -> ConsentState:
    """The user's own choice to join (``insider``) or leave the programme; audited.

    Only the user's own request may call this (the web edge passes the signed-in
    user). Leaving clears the user id from every event recorded while they were in.
    Setting the choice already in force changes nothing and records nothing.
    """
    consent = session.get(InsiderConsent, user.id, with_for_update=True)
    current = consent is not None and consent.insider
    if current == insider:
        return consent_state(session, deployment, user.id)
    now = utcnow()
    if consent is None:
        # Only a join gets here (no row means "not an insider"). Two joins at once: the
        # second inserts nothing, finds the first's row, and has nothing left to change.
        if not _insert_consent(session, user.id, insider, now):
            consent = session.get(InsiderConsent, user.id, with_for_update=True,
                                  populate_existing=True)
            if consent is None or consent.insider == insider:
                return consent_state(session, deployment, user.id)
            consent.insider = insider
            consent.changed_at = now
    else:
        consent.insider = insider
        consent.changed_at = now
    cleared = 0
    if not insider:
        result = session.execute(
            sa.update(UsageEvent).where(UsageEvent.user_id == user.id).values(user_id=None)
        )
        cleared = int(getattr(result, "rowcount", 0) or 0)
    tag = EventTag.TELEMETRY_INSIDER_JOIN if insider else EventTag.TELEMETRY_INSIDER_LEAVE
    details: dict[str, object] = {"insider": insider}
    if not insider:
        details["events_pseudonymised"] = cleared
    deployment.audit.record_event(session, tag, actor=actor, tenant=user.tenant_id,
                                  target=f"user:{user.id}", details=details)
    session.flush()
    return consent_state(session, deployment, user.id)


def _insert_consent(session: Session, user_id: str, insider: bool, now: dt.datetime) -> bool:
    """Insert the user's consent row unless one exists already; True if this call made it.

    ON CONFLICT DO NOTHING rather than a savepoint, as privacy keys do; RETURNING says
    whether a row was made (psycopg's rowcount would count a skipped insert).
    """
    values = {"user_id": user_id, "insider": insider, "changed_at": now}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(InsiderConsent).values(values)
        .on_conflict_do_nothing(index_elements=["user_id"])
        .returning(InsiderConsent.user_id)
    )
    return session.execute(statement).first() is not None


# -- retention ------------------------------------------------------------------------------


def purge_before(session: Session, cutoff: dt.datetime, *, dry_run: bool = False) -> int:
    """Delete (or with ``dry_run`` count) usage events older than ``cutoff``."""
    condition = UsageEvent.occurred_at < cutoff
    if dry_run:
        return int(session.scalar(
            sa.select(sa.func.count()).select_from(UsageEvent).where(condition)) or 0)
    result = session.execute(sa.delete(UsageEvent).where(condition))
    return int(getattr(result, "rowcount", 0) or 0)


def retention_cutoff(deployment: Deployment, now: dt.datetime | None = None) -> dt.datetime:
    days = deployment.settings.telemetry_retention_days
    return (now or utcnow()) - dt.timedelta(days=days)



def purge_expired_usage(
    deployment: Deployment, actor: Actor | None = None, *, now: dt.datetime | None = None
) -> int:
    """Delete usage events past telemetry_retention_days, audited when any went.

    ``serve`` runs it with the hourly maintenance; ``strongroom telemetry purge``
    runs it by hand.
    """
    with deployment.transaction() as session:
        count = purge_before(session, retention_cutoff(deployment, now))
        if count:
            deployment.audit.record_event(
                session, EventTag.TELEMETRY_PURGE, actor=actor or Actor.system(),
                details={"events": count,
                         "retention_days": deployment.settings.telemetry_retention_days},
            )
    return count
