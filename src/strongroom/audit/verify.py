"""Proving the audit log intact: every event present, unaltered, and linked.

Checks, in order: purge records (signed, contiguous from sequence 1); every
remaining event (no gaps, hash of its content, HMAC seal, link to the previous
hash or to the last purge's boundary hash); the head row (tail truncation or
appended rows); and every signed checkpoint, stored or exported, against the
chain. The first problem found is reported with its sequence number.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from strongroom.audit import canonical
from strongroom.audit.errors import InvalidAuditFilter
from strongroom.audit.models import AuditCheckpoint, AuditEvent, AuditHead, AuditPurge
from strongroom.audit.retention import purge_message
from strongroom.audit.services import checkpoint_message
from strongroom.crypto.audit_keys import AuditKeys, AuditPublicKey
from strongroom.errors import StrongroomError

_TABLES = ("audit_events", "audit_head", "audit_purges", "audit_checkpoints")


class NotAnAuditLog(StrongroomError):
    status = 422
    slug = "not-an-audit-log"
    title = "Not a Strongroom audit log"


@dataclasses.dataclass
class VerifyReport:
    ok: bool = True
    seq: int | None = None
    problem: str | None = None
    events: int = 0
    first_seq: int | None = None
    last_seq: int = 0
    purged: int = 0
    purge_records: int = 0
    checkpoints: int = 0
    exported_checkpoints: int = 0

    def fail(self, seq: int | None, problem: str) -> VerifyReport:
        if self.ok:
            self.ok, self.seq, self.problem = False, seq, problem
        return self

    def summary(self) -> str:
        if not self.ok:
            where = f"at sequence {self.seq}: " if self.seq is not None else ""
            return f"audit log NOT intact {where}{self.problem}"
        span = f"{self.first_seq}..{self.last_seq}" if self.events else "none"
        return (
            f"audit log intact: {self.events} events (sequence {span}), {self.purged} purged "
            f"under {self.purge_records} signed purge records, {self.checkpoints} checkpoints"
            + (f", {self.exported_checkpoints} exported checkpoints" if self.exported_checkpoints
               else "")
            + " verified"
        )


def _missing_tables(connection: sa.Connection) -> list[str]:
    inspector = sa.inspect(connection)
    return [t for t in _TABLES if not inspector.has_table(t)]


def _not_an_audit_log() -> NotAnAuditLog:
    return NotAnAuditLog(
        "this database holds no Strongroom audit log (it is empty or belongs to something "
        "else: the audit tables are missing)",
        hint="check --home and database_url point at a Strongroom deployment",
    )


def require_audit_log(engine: sa.Engine) -> None:
    """Refuse plainly, before anything else, a database that holds no audit log.

    A database that cannot be reached is left for the caller's own opening to report.
    """
    try:
        with engine.connect() as connection:
            missing = _missing_tables(connection)
    except OperationalError:
        return
    if missing:
        raise _not_an_audit_log()


def _check_is_audit_log(session: Session) -> AuditHead:
    if _missing_tables(session.connection()):
        raise _not_an_audit_log()
    head = session.get(AuditHead, 1)
    if head is None:
        raise NotAnAuditLog("this audit log has no head record; it was not made by Strongroom")
    return head


def _verify_purges(
    session: Session, public_key: AuditPublicKey, report: VerifyReport
) -> tuple[int, str]:
    purged_through, boundary = 0, canonical.GENESIS_HASH
    for record in session.scalars(sa.select(AuditPurge).order_by(AuditPurge.first_seq)):
        message = purge_message(record.first_seq, record.last_seq, record.count,
                                record.boundary_hash, record.policy, record.created_at)
        if not public_key.verify(record.signature, message):
            report.fail(record.first_seq, f"purge record {record.first_seq}..{record.last_seq} "
                        "has an invalid signature (forged or altered)")
            break
        if record.first_seq != purged_through + 1 or (
            record.count != record.last_seq - record.first_seq + 1
        ):
            report.fail(record.first_seq, f"purge record {record.first_seq}..{record.last_seq} "
                        f"does not continue from sequence {purged_through}")
            break
        purged_through, boundary = record.last_seq, record.boundary_hash
        report.purge_records += 1
    report.purged = purged_through
    return purged_through, boundary


def _check_checkpoints(
    points: Iterable[tuple[int, str, str, str]],
    public_key: AuditPublicKey,
    hashes: dict[int, str],
    purged_through: int,
    last_seq: int,
    report: VerifyReport,
    source: str,
) -> int:
    checked = 0
    for seq, head_hash, created_at, signature in points:
        if not public_key.verify(signature, checkpoint_message(seq, head_hash, created_at)):
            report.fail(seq, f"{source} checkpoint at {seq} has an invalid signature")
            break
        if seq <= purged_through:
            checked += 1
            continue
        if seq > last_seq:
            report.fail(last_seq + 1, f"{source} checkpoint at {seq} is beyond the end of the "
                        f"log at {last_seq}: events {last_seq + 1}..{seq} were truncated")
            break
        if hashes.get(seq) != head_hash:
            report.fail(seq, f"{source} checkpoint at {seq} does not match the chain")
            break
        checked += 1
    return checked


_POINT_TEXT_FIELDS = ("hash", "created_at", "signature", "public_key")


def _exported_point(line: str) -> dict[str, Any] | None:
    try:
        raw = json.loads(line)
        point = {k: raw[k] for k in ("seq", *_POINT_TEXT_FIELDS)}
    except (ValueError, KeyError, TypeError):
        return None
    seq_ok = isinstance(point["seq"], int) and not isinstance(point["seq"], bool)
    if not seq_ok or not all(isinstance(point[k], str) for k in _POINT_TEXT_FIELDS):
        return None
    return point


def read_exported_checkpoints(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Parse an exported checkpoint file; a malformed line is refused with its number."""
    points = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        point = _exported_point(line)
        if point is None:
            raise InvalidAuditFilter(f"checkpoint file line {number} is not a checkpoint")
        points.append(point)
    return points


def verify_log(
    session: Session,
    keys: AuditKeys,
    exported: list[dict[str, Any]] | None = None,
) -> VerifyReport:
    """Verify the whole log; the report names the first broken sequence number, if any."""
    report = VerifyReport()
    head = _check_is_audit_log(session)
    public_key = keys.public_key
    purged_through, prev_hash = _verify_purges(session, public_key, report)
    if not report.ok:
        return report
    stored_points = list(session.execute(
        sa.select(AuditCheckpoint.seq, AuditCheckpoint.hash, AuditCheckpoint.created_at,
                  AuditCheckpoint.signature).order_by(AuditCheckpoint.seq)
    ))
    wanted = {p[0] for p in stored_points} | {int(p["seq"]) for p in exported or []}
    hashes: dict[int, str] = {}
    expected = purged_through + 1
    # Closed explicitly: stopping at the first problem must not leave a server-side
    # cursor (PostgreSQL) open past the transaction.
    with contextlib.closing(session.scalars(
        sa.select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=2000)
    )) as rows:
        for event in rows:
            if event.seq < expected:
                return report.fail(event.seq, "event lies inside a purged range")
            if event.seq > expected:
                gap = (f"event {expected} is missing" if event.seq == expected + 1
                       else f"events {expected}..{event.seq - 1} are missing")
                return report.fail(expected, f"{gap} (deleted)")
            if canonical.event_hash(event) != event.hash:
                return report.fail(event.seq, "content does not match its hash (modified)")
            if not keys.mac_matches(canonical.MAC_DOMAIN, event.hash.encode(), event.mac):
                return report.fail(event.seq, "seal (HMAC) does not match: forged or rewritten")
            if event.prev_hash != prev_hash:
                return report.fail(event.seq, "does not link to the event before it (inserted, "
                                   "removed or reordered)")
            if event.seq in wanted:
                hashes[event.seq] = event.hash
            report.first_seq = report.first_seq or event.seq
            report.events += 1
            prev_hash = event.hash
            expected += 1
    last_seq = expected - 1
    report.last_seq = last_seq
    if head.seq > last_seq:
        return report.fail(last_seq + 1, f"the head says the log ends at {head.seq} but it ends "
                           f"at {last_seq}: the tail was truncated")
    if head.seq < last_seq or head.hash != prev_hash:
        return report.fail(head.seq + 1 if head.seq < last_seq else last_seq,
                           "the head record does not match the last event (rows appended "
                           "or head altered)")
    report.checkpoints = _check_checkpoints(
        ((seq, h, canonical.timestamp(at), sig) for seq, h, at, sig in stored_points),
        public_key, hashes, purged_through, last_seq, report, "stored",
    )
    if report.ok and exported:
        foreign = [p for p in exported if p["public_key"] != public_key.hex()]
        if foreign:
            return report.fail(int(foreign[0]["seq"]), "exported checkpoint was signed by "
                               "another deployment's key")
        report.exported_checkpoints = _check_checkpoints(
            ((int(p["seq"]), p["hash"], p["created_at"], p["signature"]) for p in exported),
            public_key, hashes, purged_through, last_seq, report, "exported",
        )
    return report
