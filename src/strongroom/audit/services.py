"""Recording events, fail-closed, and signing checkpoints of the chain head."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, SessionTransaction

from strongroom.audit import canonical
from strongroom.audit.actors import Actor, clip_agent, network_of
from strongroom.audit.errors import AuditUnavailable
from strongroom.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from strongroom.audit.tags import EventTag, Outcome, event_class
from strongroom.crypto.audit_keys import AuditKeys
from strongroom.db import utcnow

logger = logging.getLogger("strongroom.audit")
SENSITIVE_DOMAIN = "audit-value"
ADDRESS_DOMAIN = "audit-address"


class Sensitive:
    """A detail value that may be personal data: stored only as a keyed HMAC."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "Sensitive(**********)"


@dataclasses.dataclass(frozen=True, slots=True)
class RecordedEvent:
    """What :meth:`AuditTrail.record_event` wrote: where the event sits in the chain."""

    seq: int
    hash: str
    tag: EventTag
    occurred_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class CheckpointPolicy:
    every_events: int = 1000
    every_minutes: int = 60
    export_file: Path | None = None


def checkpoint_message(seq: int, head_hash: str, created_at: str) -> bytes:
    return canonical.canonical_bytes({
        "kind": "strongroom-audit-checkpoint", "seq": seq, "hash": head_hash,
        "created_at": created_at,
    })


_HEAD = cast(sa.Table, AuditHead.__table__)
_EVENTS = cast(sa.Table, AuditEvent.__table__)
_CHECKPOINTS = cast(sa.Table, AuditCheckpoint.__table__)
# Built once: the hot path only binds values into cached, compiled statements.
#
# Moving the head takes the write lock (SQLite) or the head row lock (PostgreSQL)
# before the event is inserted, so concurrent writers queue there and sequence
# numbers never collide. The usual way is one compare-and-set UPDATE from the head
# this trail wrote last: it matches only if no other writer has moved the head since,
# so the database stays the only source of truth and a stale guess costs one
# statement. Otherwise the head is claimed (seq + 1, returning the previous hash)
# and its hash set once the event is written.
_ADVANCE_HEAD = (
    sa.update(_HEAD)
    .where(
        _HEAD.c.id == 1,
        _HEAD.c.seq == sa.bindparam("expect_seq"),
        _HEAD.c.hash == sa.bindparam("expect_hash"),
    )
    .values(seq=sa.bindparam("new_seq"), hash=sa.bindparam("new_hash"))
)
# PostgreSQL runs the compare-and-set and the insert as one statement (one round trip):
# the event is inserted only if the head moved, so a stale guess inserts nothing.
_HEAD_MOVED = _ADVANCE_HEAD.returning(_HEAD.c.id).cte("head_moved")
_ADVANCE_AND_INSERT = sa.insert(_EVENTS).from_select(
    [column.name for column in _EVENTS.columns],
    sa.select(
        *(sa.bindparam(column.name, type_=column.type) for column in _EVENTS.columns)
    ).select_from(_HEAD_MOVED),
).returning(_EVENTS.c.seq)  # rowcount is not reported for INSERT ... SELECT; RETURNING is
_CLAIM_NEXT_SEQ = (
    sa.update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(seq=_HEAD.c.seq + 1)
    .returning(_HEAD.c.seq, _HEAD.c.hash, _HEAD.c.checkpoint_seq, _HEAD.c.checkpoint_at)
)
_INSERT_EVENT = sa.insert(_EVENTS)
_SET_HEAD_HASH = sa.update(_HEAD).where(_HEAD.c.id == 1).values(hash=sa.bindparam("head_hash"))
_MARK_CHECKPOINT = (
    sa.update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(checkpoint_seq=sa.bindparam("point_seq"), checkpoint_at=sa.bindparam("point_at"))
)
_INSERT_CHECKPOINT = sa.insert(_CHECKPOINTS)
_READ_HEAD = sa.select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1)
_COLUMN_LIMITS = {
    column.name: column.type.length
    for column in _EVENTS.columns
    if isinstance(column.type, sa.String) and column.type.length
}
_PENDING_EXPORTS = "strongroom.audit.pending_checkpoint_exports"


@dataclasses.dataclass(frozen=True, slots=True)
class _Head:
    """The chain head as this trail last wrote it: a guess, always checked by the database."""

    seq: int
    hash: str
    checkpoint_seq: int
    checkpoint_at: dt.datetime

    def moved_to(self, seq: int, head_hash: str) -> _Head:
        return _Head(seq, head_hash, self.checkpoint_seq, self.checkpoint_at)


class AuditTrail:
    """Writes audit events with the caller's session, in the caller's transaction."""

    def __init__(self, keys: AuditKeys, policy: CheckpointPolicy | None = None) -> None:
        self.keys = keys
        self.policy = policy or CheckpointPolicy()
        self._checkpoint_interval = dt.timedelta(minutes=self.policy.every_minutes)
        # Replaced whole, never mutated, so threads sharing the trail see one or the other.
        self._last_head: _Head | None = None

    def hash_value(self, value: str) -> str:
        """The token a sensitive value is stored as; lets an operator find events about it."""
        return self.keys.mac(SENSITIVE_DOMAIN, value.encode())

    def clean_details(self, details: Any) -> Any:
        """``details`` with every :class:`Sensitive` value replaced by its HMAC token."""
        if isinstance(details, Sensitive):
            return {"hmac": self.hash_value(details.value)}
        if isinstance(details, dict):
            if not all(isinstance(k, str) for k in details):
                raise TypeError("audit detail keys must be plain strings")
            return {k: self.clean_details(v) for k, v in details.items()}
        if isinstance(details, list | tuple):
            return [self.clean_details(v) for v in details]
        if details is None or isinstance(details, bool | int | float | str):
            return details
        raise TypeError(f"audit detail of type {type(details).__name__} is not allowed")

    def event_row(
        self, tag: EventTag, actor: Actor, tenant: str | None = None, target: str | None = None,
        outcome: Outcome = Outcome.SUCCESS, reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The stored columns of an event before it is linked into the chain (no seq or hashes).

        Sensitive values and the address are already replaced by their HMACs here.
        """
        if not isinstance(tag, EventTag):
            raise TypeError("audit tags must be EventTag members")
        row: dict[str, Any] = {
            "occurred_at": utcnow(),
            "tag": tag.value,
            "event_class": event_class(tag).value,
            "actor_kind": actor.kind,
            "actor_id": actor.id,
            "actor_role": actor.role,
            "actor_session": actor.session,
            "actor_address": (
                self.keys.mac(ADDRESS_DOMAIN, actor.address.encode()) if actor.address else None
            ),
            "actor_network": network_of(actor.address),
            "actor_agent": clip_agent(actor.user_agent),
            "tenant_id": tenant,
            "target": target,
            "outcome": Outcome(outcome).value,
            "reason": reason,
            "details": json.dumps(
                self.clean_details(details or {}), sort_keys=True, separators=(",", ":"),
                allow_nan=False,
            ),
        }
        # PostgreSQL would refuse an over-long value and SQLite would keep it: either way
        # the caller's bug, so it is refused here alike on both, not turned into a 503.
        for name, limit in _COLUMN_LIMITS.items():
            value = row.get(name)
            if value is not None and len(value) > limit:
                raise ValueError(f"audit field {name} is longer than {limit} characters")
        return row

    def record_event(
        self,
        session: Session,
        tag: EventTag,
        *,
        actor: Actor,
        tenant: str | None = None,
        target: str | None = None,
        outcome: Outcome = Outcome.SUCCESS,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> RecordedEvent:
        """Append one event to the chain, written now so a failure stops the caller's change.

        Raises :class:`AuditUnavailable` (503) when the event cannot be written; the
        caller's transaction must then roll back, which its context manager does.
        Returns the new event's sequence number and hash.
        """
        row = self.event_row(tag, actor, tenant, target, outcome, reason, details)
        # The caller's own pending changes go first, so that their errors stay theirs
        # and are not reported as the audit trail failing.
        session.flush()
        try:
            head = self._append(session.connection(), row)
            due_by_count = row["seq"] - head.checkpoint_seq >= self.policy.every_events
            due_by_time = row["occurred_at"] - head.checkpoint_at >= self._checkpoint_interval
            if due_by_count or due_by_time:
                self.checkpoint(session, row["seq"], row["hash"])
        except SQLAlchemyError as exc:
            self._last_head = None
            logger.error("audit write failed (%s); refusing the action", type(exc).__name__)
            raise AuditUnavailable(
                "the audit trail cannot be written, so nothing was done",
                hint="check the metadata database (disk space, permissions) and retry",
            ) from None
        return RecordedEvent(row["seq"], row["hash"], tag, row["occurred_at"])

    def _seal(self, row: dict[str, Any], seq: int, prev_hash: str) -> None:
        row["seq"], row["prev_hash"] = seq, prev_hash
        row["hash"] = canonical.values_hash(row)
        row["mac"] = self.keys.mac(canonical.MAC_DOMAIN, row["hash"].encode())

    def _append(self, connection: Connection, row: dict[str, Any]) -> _Head:
        """Link ``row`` to the head, insert it and move the head; return the old head."""
        guess = self._last_head
        if guess is not None:
            self._seal(row, guess.seq + 1, guess.hash)
            expect = {"expect_seq": guess.seq, "expect_hash": guess.hash,
                      "new_seq": row["seq"], "new_hash": row["hash"]}
            if connection.dialect.name == "postgresql":
                inserted = connection.execute(_ADVANCE_AND_INSERT, expect | row)
                moved = inserted.scalar_one_or_none() == row["seq"]
            else:
                moved = connection.execute(_ADVANCE_HEAD, expect).rowcount == 1
                if moved:
                    connection.execute(_INSERT_EVENT, row)
            if moved:
                self._last_head = guess.moved_to(row["seq"], row["hash"])
                return guess
        claimed = connection.execute(_CLAIM_NEXT_SEQ).one()
        self._seal(row, claimed.seq, claimed.hash)
        connection.execute(_INSERT_EVENT, row)
        connection.execute(_SET_HEAD_HASH, {"head_hash": row["hash"]})
        head = _Head(claimed.seq - 1, claimed.hash, claimed.checkpoint_seq, claimed.checkpoint_at)
        self._last_head = head.moved_to(row["seq"], row["hash"])
        return head

    def checkpoint(self, session: Session, seq: int, head_hash: str) -> AuditCheckpoint:
        """Sign the chain head now; also append it to the export file after commit."""
        created_at = utcnow()
        point = AuditCheckpoint(
            seq=seq,
            hash=head_hash,
            created_at=created_at,
            signature=self.keys.sign(
                checkpoint_message(seq, head_hash, canonical.timestamp(created_at))
            ),
        )
        connection = session.connection()
        connection.execute(_INSERT_CHECKPOINT, {
            "seq": seq, "hash": head_hash, "created_at": created_at,
            "signature": point.signature,
        })
        connection.execute(_MARK_CHECKPOINT, {"point_seq": seq, "point_at": created_at})
        last = self._last_head
        if last is not None:
            self._last_head = _Head(last.seq, last.hash, seq, created_at)
        if self.policy.export_file is not None:
            _export_after_commit(
                session, self.policy.export_file, checkpoint_line(point, self.keys.public_key.hex())
            )
        return point

    def checkpoint_now(self, session: Session) -> AuditCheckpoint | None:
        """Checkpoint the current head unless it is already checkpointed."""
        session.flush()
        head = session.connection().execute(_READ_HEAD).one_or_none()
        if head is None or head.seq == 0:
            return None
        existing = session.scalar(sa.select(AuditCheckpoint).where(AuditCheckpoint.seq == head.seq))
        return existing or self.checkpoint(session, head.seq, head.hash)


def _export_after_commit(session: Session, path: Path, line: str) -> None:
    """Queue ``line`` for the export file: written once the transaction commits, dropped
    if it (or the savepoint it was made in) rolls back, even when the session is reused."""
    pending: list[tuple[SessionTransaction, Path, str]] | None = session.info.get(
        _PENDING_EXPORTS
    )
    if pending is None:
        pending = session.info[_PENDING_EXPORTS] = []
        sa.event.listen(session, "after_commit", _write_pending_exports)
        sa.event.listen(session, "after_soft_rollback", _drop_rolled_back_exports)
    current = session.get_nested_transaction() or session.get_transaction()
    if current is None:
        raise SQLAlchemyError("a checkpoint needs a transaction")
    pending.append((current, path, line))


def _write_pending_exports(session: Session) -> None:
    pending = session.info.get(_PENDING_EXPORTS) or []
    lines, pending[:] = list(pending), []
    for _transaction, path, line in lines:
        try:
            append_checkpoint(path, line)
        except OSError as exc:
            # The events are committed; failing now would tell the caller a lie. The
            # checkpoint stays in the database, and verify reports the file as behind.
            logger.error("could not export an audit checkpoint to the checkpoint file (%s)",
                         type(exc).__name__)


def _drop_rolled_back_exports(session: Session, previous: SessionTransaction) -> None:
    pending = session.info.get(_PENDING_EXPORTS) or []

    def inside(transaction: SessionTransaction | None) -> bool:
        while transaction is not None:
            if transaction is previous:
                return True
            transaction = transaction.parent
        return False

    pending[:] = [entry for entry in pending if not inside(entry[0])]


def checkpoint_line(point: AuditCheckpoint, public_key: str) -> str:
    return json.dumps({
        "seq": point.seq,
        "hash": point.hash,
        "created_at": canonical.timestamp(point.created_at),
        "signature": point.signature,
        "public_key": public_key,
    }, sort_keys=True)


def append_checkpoint(path: Path, line: str) -> None:
    """Append-only export of checkpoints, fsynced: a copy the database cannot take back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())
