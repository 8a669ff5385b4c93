"""Export velocity limits on rolling windows, checked before anything is produced.

Four measures (rows, bytes, exports, distinct data subjects) are limited over
the last hour and the last 24 hours (rolling, not calendar), for each user and
for the whole tenant. The operator sets a tenant's caps (``export_caps``, else
the ``export_cap_*`` settings); the tenant's admins set limits within them
(``export_limits``, for the tenant and for every user); what applies is the
smallest of cap, tenant limit and, for a user, user limit.

Usage is a ledger in the metadata database (``export_usage``), so it survives
restarts and is shared by every app process. A check locks the tenant's
``export_quota_state`` row, sums the ledger inside each window and, if the
export fits, *reserves* it by adding its row in the same transaction: two
concurrent exports cannot both squeeze into the last bit of a quota. The
reservation is settled with the real byte count once the file is written, or
released if producing it fails.

Data subjects are counted by the dataset's key column. Each key value is turned
into a 64-bit truncated HMAC-SHA256 under the tenant's ledger key (random, sealed
by the tenant keyset, never a raw id) and the distinct HMACs of an export are
kept with its usage row. A window's subjects are the union over its rows, so
exporting the same people in slices still counts each of them, and exporting the
same people twice counts them once. Datasets without a key column count every
row as a new subject.

Over a limit the export is refused with :class:`ExportQuotaExceeded` (429) saying
what remains and when enough of the window frees (``retry_after``); an export
that alone is larger than a limit is refused with :class:`ExportTooLarge` (422).
Each refusal is audited and counted; every ``export_refusal_alert_count``-th
refusal of a user within an hour records a security alert.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import secrets
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from strongroom.audit import Actor, AuditTrail, EventTag, Outcome
from strongroom.config import Settings
from strongroom.crypto.keystore import KeyStore
from strongroom.crypto.macs import MacKey
from strongroom.db import utcnow
from strongroom.exports.errors import ExportQuotaExceeded, ExportTooLarge, LimitAboveCap
from strongroom.exports.models import (
    LIMIT_NAMES,
    ExportCap,
    ExportLimit,
    ExportQuotaState,
    ExportRefusal,
    ExportUsage,
    Metric,
    Scope,
    Window,
    limit_name,
)

SUBJECT_DOMAIN = "export-subject"
LEDGER_KEY_BYTES = 32
_MAC_BYTES = 8
_LONGEST = Window.DAY.length
_REFUSAL_WINDOW = dt.timedelta(hours=1)


# -- limits --------------------------------------------------------------------------------------


def default_caps(settings: Settings) -> dict[str, int]:
    """The deployment's default caps, from the ``export_cap_*`` settings."""
    return {name: int(getattr(settings, f"export_cap_{name}")) for name in LIMIT_NAMES}


def tenant_caps(session: Session, settings: Settings, tenant_id: str) -> dict[str, int]:
    """The operator's caps for one tenant: its own where set, else the deployment default."""
    caps = default_caps(settings)
    row = session.get(ExportCap, tenant_id)
    if row is not None:
        for name in LIMIT_NAMES:
            value = getattr(row, name)
            if value is not None:
                caps[name] = int(value)
    return caps


def own_caps(session: Session, tenant_id: str) -> dict[str, int | None]:
    """The caps set for this tenant itself (None: the deployment default applies)."""
    row = session.get(ExportCap, tenant_id)
    return {name: (getattr(row, name) if row is not None else None) for name in LIMIT_NAMES}


def set_caps(session: Session, tenant_id: str, values: Mapping[str, int | None]) -> None:
    """Set (a number) or clear (None) some of a tenant's caps; others stay as they are."""
    unknown = sorted(set(values) - set(LIMIT_NAMES))
    if unknown:
        raise LimitAboveCap(f"unknown export limit {unknown[0]}")
    for name, value in values.items():
        if value is not None and value < 0:
            raise LimitAboveCap(f"{name} must be 0 or more")
    row = session.get(ExportCap, tenant_id)
    if row is None:
        row = ExportCap(tenant_id=tenant_id)
        session.add(row)
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at = utcnow()


def tenant_limits(session: Session, tenant_id: str) -> dict[Scope, dict[str, int | None]]:
    """The limits the tenant's admins set, for the tenant and for each user (None: unset)."""
    found: dict[Scope, dict[str, int | None]] = {}
    for scope in Scope:
        row = session.get(ExportLimit, (tenant_id, scope.value))
        found[scope] = {name: (getattr(row, name) if row else None) for name in LIMIT_NAMES}
    return found


def set_tenant_limits(
    session: Session,
    settings: Settings,
    tenant_id: str,
    user_id: str,
    limits: Mapping[Scope, Mapping[str, int | None]],
) -> None:
    """Replace the tenant's limits. Any limit above the operator's cap is refused (422)."""
    caps = tenant_caps(session, settings, tenant_id)
    for scope, values in limits.items():
        for name, value in values.items():
            if name not in caps:
                raise LimitAboveCap(f"unknown export limit {name}")
            if value is None:
                continue
            if value < 0:
                raise LimitAboveCap(f"{scope.value}.{name} must be 0 or more")
            if value > caps[name]:
                raise LimitAboveCap(
                    f"{scope.value}.{name} of {value} is above the operator's cap of "
                    f"{caps[name]}",
                    hint="ask the operator to raise the cap, or choose a lower limit",
                )
    for scope, values in limits.items():
        row = session.get(ExportLimit, (tenant_id, scope.value))
        if row is None:
            row = ExportLimit(tenant_id=tenant_id, scope=scope.value)
            session.add(row)
        for name in LIMIT_NAMES:
            setattr(row, name, values.get(name))
        row.updated_at = utcnow()
        row.updated_by = user_id


def effective_limits(
    session: Session, settings: Settings, tenant_id: str
) -> dict[Scope, dict[str, int]]:
    """What applies: min(cap, tenant limit) for the tenant, and min(that, user limit) per user."""
    caps = tenant_caps(session, settings, tenant_id)
    own = tenant_limits(session, tenant_id)
    tenant = {n: min(caps[n], _or(own[Scope.TENANT][n], caps[n])) for n in LIMIT_NAMES}
    user = {n: min(tenant[n], _or(own[Scope.USER][n], tenant[n])) for n in LIMIT_NAMES}
    return {Scope.USER: user, Scope.TENANT: tenant}


def _or(value: int | None, default: int) -> int:
    return default if value is None else int(value)


# -- the subject ledger key ----------------------------------------------------------------------


def _ledger_context(keys: KeyStore, tenant_id: str) -> bytes:
    return f"strongroom/export-ledger/{keys.environment.value}/{tenant_id}".encode()


def _insert_ignoring_duplicate(session: Session, row: dict[str, Any]) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(ExportQuotaState).values(**row).on_conflict_do_nothing())


def ledger_key(session: Session, keys: KeyStore, tenant_id: str) -> MacKey:
    """The tenant's subject-ledger HMAC key, made (and sealed by the tenant keyset) on first use.

    Call it in a transaction of its own and commit before relying on it: two first
    exports racing each insert a key, the database keeps one, and both read that one.
    """
    ring = keys.tenant_ring(session, tenant_id)
    context = _ledger_context(keys, tenant_id)
    if session.get(ExportQuotaState, tenant_id) is None:
        sealed = ring.encrypt(secrets.token_bytes(LEDGER_KEY_BYTES), context)
        _insert_ignoring_duplicate(
            session, {"tenant_id": tenant_id, "ledger_key_sealed": sealed, "checks": 0}
        )
        session.expire_all()
    state = session.get_one(ExportQuotaState, tenant_id)
    return MacKey(ring.decrypt(state.ledger_key_sealed, context))


def subject_digests(key: MacKey, values: Iterable[str]) -> bytes:
    """The distinct 64-bit ledger HMACs of key values, as one buffer of 8-byte entries."""
    digests = b"".join(key.digests(SUBJECT_DOMAIN, (v.encode() for v in values), _MAC_BYTES))
    if not digests:
        return b""
    unique = pc.unique(_macs_array([digests]))
    start = unique.offset * _MAC_BYTES
    return bytes(unique.buffers()[1])[start : start + len(unique) * _MAC_BYTES]


# -- usage ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Planned:
    """What an export is about to take: known before it is produced (bytes estimated).

    ``subjects`` is the number of distinct key values (rows, without a key column).
    Without ``subject_macs`` every one of them counts as a new subject: an upper
    bound, enough whenever it fits; with them, subjects already in a window count once.
    """

    rows: int
    size: int  # bytes, estimated
    subjects: int
    subject_macs: bytes | None = None


@dataclasses.dataclass(frozen=True)
class _Used:
    user_id: str
    occurred_at: dt.datetime
    rows: int
    size: int
    subjects: int
    macs: bytes


def _macs_array(buffers: list[bytes]) -> pa.Array:
    joined = b"".join(buffers)
    return pa.Array.from_buffers(
        pa.uint64(), len(joined) // _MAC_BYTES, [None, pa.py_buffer(joined)]
    )


def _amount(used: list[_Used], metric: Metric, planned: Planned | None = None) -> int:
    """The measure over ``used`` (plus ``planned``): sums, or distinct subjects."""
    if metric is Metric.ROWS:
        return sum(u.rows for u in used) + (planned.rows if planned else 0)
    if metric is Metric.BYTES:
        return sum(u.size for u in used) + (planned.size if planned else 0)
    if metric is Metric.EXPORTS:
        return len(used) + (1 if planned else 0)
    keyless = sum(u.subjects for u in used if not u.macs)
    buffers = [u.macs for u in used if u.macs]
    if planned is not None:
        if planned.subject_macs is None:
            keyless += planned.subjects
        else:
            buffers.append(planned.subject_macs)
    distinct = int(pc.count_distinct(_macs_array(buffers)).as_py()) if buffers else 0
    return distinct + keyless


@dataclasses.dataclass(frozen=True)
class Ledger:
    """The tenant's usage rows of the last 24 hours, as of ``now``."""

    now: dt.datetime
    rows: list[_Used]

    def within(self, scope: Scope, window: Window, user_id: str) -> list[_Used]:
        since = self.now - window.length
        return [u for u in self.rows
                if u.occurred_at > since and (scope is Scope.TENANT or u.user_id == user_id)]


def load_ledger(session: Session, tenant_id: str, now: dt.datetime) -> Ledger:
    # Rows stamped after ``now`` count too: a clock that went back must not free quota.
    found = session.execute(
        sa.select(ExportUsage.user_id, ExportUsage.occurred_at, ExportUsage.rows,
                  ExportUsage.size, ExportUsage.subjects, ExportUsage.subject_macs)
        .where(ExportUsage.tenant_id == tenant_id, ExportUsage.occurred_at > now - _LONGEST)
        .order_by(ExportUsage.occurred_at)
    )
    return Ledger(now, [_Used(r.user_id, r.occurred_at, int(r.rows), int(r.size),
                              int(r.subjects), bytes(r.subject_macs)) for r in found])


@dataclasses.dataclass(frozen=True)
class Allowance:
    limit: int
    used: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


Quota = dict[Scope, dict[Window, dict[Metric, Allowance]]]


def quota(ledger: Ledger, limits: Mapping[Scope, Mapping[str, int]], user_id: str) -> Quota:
    """Limit, use and what remains, for each scope, window and measure."""
    return {
        scope: {
            window: {
                metric: Allowance(limits[scope][limit_name(metric, window)],
                                  _amount(ledger.within(scope, window, user_id), metric))
                for metric in Metric
            }
            for window in Window
        }
        for scope in Scope
    }


def quota_members(report: Quota) -> dict[str, Any]:
    """A quota as JSON: {scope: {window: {measure: {limit, used, remaining}}}}."""
    return {
        scope.value: {
            window.value: {
                metric.value: {"limit": a.limit, "used": a.used, "remaining": a.remaining}
                for metric, a in measures.items()
            }
            for window, measures in windows.items()
        }
        for scope, windows in report.items()
    }


@dataclasses.dataclass(frozen=True)
class Excess:
    """One limit the export would pass."""

    scope: Scope
    window: Window
    metric: Metric
    limit: int
    used: int
    requested: int
    retry_after: int | None  # None: the export alone is larger than the limit

    def as_dict(self) -> dict[str, Any]:
        return {"scope": self.scope.value, "window": self.window.value,
                "measure": self.metric.value, "limit": self.limit, "used": self.used,
                "requested": self.requested}


def _retry_after(
    used: list[_Used], metric: Metric, planned: Planned, limit: int, window: Window,
    now: dt.datetime,
) -> int | None:
    """Seconds until enough of the window has slid past for the export to fit.

    Rows leave the window oldest first; usage only falls as time passes, so the
    first moment the rest plus the export fits is the answer.
    """
    if _amount([], metric, planned) > limit:
        return None
    for index, leaving in enumerate(used):
        rest = used[index + 1 :]
        if _amount(rest, metric, planned) <= limit:
            free_at = leaving.occurred_at + window.length
            return max(1, math.ceil((free_at - now).total_seconds()))
    return max(1, math.ceil(window.length.total_seconds()))


def excesses(
    ledger: Ledger, limits: Mapping[Scope, Mapping[str, int]], user_id: str, planned: Planned
) -> list[Excess]:
    """Every limit the planned export would pass, with when it would fit."""
    found = []
    for scope in Scope:
        for window in Window:
            used = ledger.within(scope, window, user_id)
            for metric in Metric:
                limit = limits[scope][limit_name(metric, window)]
                projected = _amount(used, metric, planned)
                if projected <= limit:
                    continue
                already = _amount(used, metric)
                found.append(Excess(
                    scope, window, metric, limit, already, projected - already,
                    _retry_after(used, metric, planned, limit, window, ledger.now),
                ))
    return found


# -- check, reserve, settle, release -------------------------------------------------------------


def _lock(session: Session, tenant_id: str) -> None:
    """Serialise velocity checks of one tenant (row lock; SQLite's write lock)."""
    session.execute(
        sa.update(ExportQuotaState)
        .where(ExportQuotaState.tenant_id == tenant_id)
        .values(checks=ExportQuotaState.checks + 1)
    )


@dataclasses.dataclass(frozen=True)
class Refusal:
    excesses: list[Excess]
    remaining: dict[str, Any]


def reserve(
    session: Session, settings: Settings, tenant_id: str, user_id: str, planned: Planned,
    now: dt.datetime,
) -> str | Refusal:
    """Check the planned export against every limit and, if it fits, reserve it.

    Returns the new usage row's id, or the :class:`Refusal` (nothing reserved). The
    caller's transaction holds the tenant's lock from here to its commit.
    """
    _lock(session, tenant_id)
    ledger = load_ledger(session, tenant_id, now)
    limits = effective_limits(session, settings, tenant_id)
    over = excesses(ledger, limits, user_id, planned)
    if over:
        return Refusal(over, quota_members(quota(ledger, limits, user_id)))
    usage = ExportUsage(
        id=uuid.uuid4().hex, tenant_id=tenant_id, user_id=user_id, occurred_at=now,
        rows=planned.rows, size=planned.size, subjects=planned.subjects,
        subject_macs=planned.subject_macs or b"", settled=False,
    )
    session.add(usage)
    session.flush()
    return usage.id


def settle(
    session: Session, usage_id: str, export_id: str, rows: int, size: int,
    subject_macs: bytes | None = None,
) -> None:
    """Record what the export really took (rows after suppression, bytes written) and, if
    the reservation counted its subjects by their upper bound, which subjects they were."""
    usage = session.get_one(ExportUsage, usage_id)
    usage.export_id = export_id
    usage.rows = rows
    usage.size = size
    if subject_macs is not None:
        usage.subject_macs = subject_macs
        usage.subjects = len(subject_macs) // _MAC_BYTES
    usage.settled = True


def release(session: Session, usage_id: str) -> None:
    """Give back a reservation whose export failed before anything was delivered."""
    session.execute(sa.delete(ExportUsage).where(ExportUsage.id == usage_id))


def refuse(
    session: Session,
    settings: Settings,
    audit: AuditTrail,
    tenant_id: str,
    user_id: str,
    actor: Actor,
    refusal: Refusal,
    now: dt.datetime,
) -> ExportQuotaExceeded | ExportTooLarge:
    """Audit and count a refusal (in the caller's transaction, which must commit), raise an
    alert on every Nth refusal of the user within an hour, and return the error to raise."""
    too_large = [e for e in refusal.excesses if e.retry_after is None]
    exceeded = [e.as_dict() for e in refusal.excesses]
    first = (too_large or refusal.excesses)[0]
    what = (f"{first.scope.value} limit of {first.limit} {first.metric.value} per "
            f"{first.window.value}")
    error: ExportQuotaExceeded | ExportTooLarge
    retry: int | None = None
    if too_large:
        error = ExportTooLarge(
            f"this export alone ({first.requested} {first.metric.value}) is over the {what}",
            exceeded=exceeded, remaining=refusal.remaining,
            hint="narrow the selection, or ask a tenant admin about limits",
        )
    else:
        retry = max(e.retry_after or 0 for e in refusal.excesses)
        error = ExportQuotaExceeded(
            f"this export would pass the {what}; {max(0, first.limit - first.used)} remain",
            retry_after=retry, exceeded=exceeded, remaining=refusal.remaining,
            hint=f"retry in {retry} seconds, or export less",
        )
    session.add(ExportRefusal(id=uuid.uuid4().hex, tenant_id=tenant_id, user_id=user_id,
                              occurred_at=now, reason=error.slug))
    session.flush()
    audit.record_event(
        session, EventTag.EXPORT_CREATE, actor=actor, tenant=tenant_id,
        outcome=Outcome.DENIED, reason=error.slug,
        details={"exceeded": exceeded, "retry_after": retry},
    )
    recent = int(session.scalar(
        sa.select(sa.func.count()).select_from(ExportRefusal).where(
            ExportRefusal.tenant_id == tenant_id, ExportRefusal.user_id == user_id,
            ExportRefusal.occurred_at > now - _REFUSAL_WINDOW,
        )
    ) or 0)
    every = settings.export_refusal_alert_count
    if recent and recent % every == 0:
        audit.record_event(
            session, EventTag.ALERT_RAISE, actor=Actor.system(), tenant=tenant_id,
            target=f"user:{user_id}", reason="export-velocity-refusals",
            details={"refusals_last_hour": recent},
        )
    return error


def refusals_last_hour(session: Session, tenant_id: str, user_id: str, now: dt.datetime) -> int:
    return int(session.scalar(
        sa.select(sa.func.count()).select_from(ExportRefusal).where(
            ExportRefusal.tenant_id == tenant_id, ExportRefusal.user_id == user_id,
            ExportRefusal.occurred_at > now - _REFUSAL_WINDOW,
        )
    ) or 0)


def prune_ledger(session: Session, now: dt.datetime) -> int:
    """Drop usage and refusals older than the longest window: they limit nothing any more."""
    removed = 0
    for table, column in ((ExportUsage, ExportUsage.occurred_at),
                          (ExportRefusal, ExportRefusal.occurred_at)):
        result = session.execute(sa.delete(table).where(column <= now - _LONGEST))
        removed += int(getattr(result, "rowcount", 0) or 0)
    return removed
