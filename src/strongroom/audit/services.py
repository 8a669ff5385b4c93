"""Recording events, fail-closed, and signing checkpoints of the chain head."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

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


class AuditTrail:
    """Writes audit events with the caller's session, in the caller's transaction."""

    def __init__(self, keys: AuditKeys, policy: CheckpointPolicy | None = None) -> None:
        self.keys = keys
        self.policy = policy or CheckpointPolicy()

    def hash_value(self, value: str) -> str:
        """The token a sensitive value is stored as; lets an operator find events about it."""
        return self.keys.mac(SENSITIVE_DOMAIN, value.encode())

    def _clean_details(self, details: Any) -> Any:
        if isinstance(details, Sensitive):
            return {"hmac": self.hash_value(details.value)}
        if isinstance(details, dict):
            return {str(k): self._clean_details(v) for k, v in details.items()}
        if isinstance(details, list | tuple):
            return [self._clean_details(v) for v in details]
        if details is None or isinstance(details, bool | int | float | str):
            return details
        raise TypeError(f"audit detail of type {type(details).__name__} is not allowed")

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
    ) -> AuditEvent:
        """Append one event to the chain, flushed now so a failure stops the caller's change.

        Raises :class:`AuditUnavailable` (503) when the event cannot be written; the
        caller's transaction must then roll back, which its context manager does.
        """
        if not isinstance(tag, EventTag):
            raise TypeError("audit tags must be EventTag members")
        clean = json.dumps(
            self._clean_details(details or {}), sort_keys=True, separators=(",", ":")
        )
        try:
            # The UPDATE takes the write lock (SQLite) or row lock (PostgreSQL) first,
            # so concurrent writers queue here and sequence numbers never collide.
            head_seq, prev_hash = session.execute(
                sa.update(AuditHead)
                .where(AuditHead.id == 1)
                .values(seq=AuditHead.seq + 1)
                .returning(AuditHead.seq, AuditHead.hash)
            ).one()
            event = AuditEvent(
                seq=head_seq,
                occurred_at=utcnow(),
                tag=tag.value,
                event_class=event_class(tag).value,
                actor_kind=actor.kind,
                actor_id=actor.id,
                actor_role=actor.role,
                actor_session=actor.session,
                actor_address=(
                    self.keys.mac(ADDRESS_DOMAIN, actor.address.encode()) if actor.address else None
                ),
                actor_network=network_of(actor.address),
                actor_agent=clip_agent(actor.user_agent),
                tenant_id=tenant,
                target=target,
                outcome=outcome.value,
                reason=reason,
                details=clean,
                prev_hash=prev_hash,
            )
            event.hash = canonical.event_hash(event)
            event.mac = self.keys.mac(canonical.MAC_DOMAIN, event.hash.encode())
            session.add(event)
            session.execute(sa.update(AuditHead).where(AuditHead.id == 1).values(hash=event.hash))
            session.flush()
            self._maybe_checkpoint(session, event)
        except SQLAlchemyError as exc:
            logger.error("audit write failed (%s); refusing the action", type(exc).__name__)
            raise AuditUnavailable(
                "the audit trail cannot be written, so nothing was done",
                hint="check the metadata database (disk space, permissions) and retry",
            ) from None
        return event

    def _maybe_checkpoint(self, session: Session, event: AuditEvent) -> None:
        head = session.get(AuditHead, 1)
        if head is None:
            raise SQLAlchemyError("audit head row is missing")
        due_by_count = event.seq - head.checkpoint_seq >= self.policy.every_events
        due_by_time = event.occurred_at - head.checkpoint_at >= dt.timedelta(
            minutes=self.policy.every_minutes
        )
        if due_by_count or due_by_time:
            self.checkpoint(session, event.seq, event.hash)

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
        session.add(point)
        session.execute(
            sa.update(AuditHead)
            .where(AuditHead.id == 1)
            .values(checkpoint_seq=seq, checkpoint_at=created_at)
        )
        session.flush()
        if self.policy.export_file is not None:
            export_file = self.policy.export_file
            line = checkpoint_line(point, self.keys.public_key.hex())

            def append_after_commit(_session: Session) -> None:
                append_checkpoint(export_file, line)

            sa.event.listen(session, "after_commit", append_after_commit, once=True)
        return point

    def checkpoint_now(self, session: Session) -> AuditCheckpoint | None:
        """Checkpoint the current head unless it is already checkpointed."""
        head = session.get(AuditHead, 1)
        if head is None or head.seq == 0:
            return None
        existing = session.scalar(sa.select(AuditCheckpoint).where(AuditCheckpoint.seq == head.seq))
        return existing or self.checkpoint(session, head.seq, head.hash)


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
