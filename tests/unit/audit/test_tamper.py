"""The tamper suite: every edit an attacker with database access can make is detected.

Each test records a few hundred real events, tampers with raw SQL through the
deployment's engine, and checks that ``verify_log`` names the first broken
sequence number and says what is wrong. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pytest
import sqlalchemy as sa
from tests.unit.audit.conftest import event_row, last_seq, record_events, sql, verify

from strongroom.audit import canonical
from strongroom.audit.models import AuditEvent
from strongroom.deployment import Deployment

EVENTS = 300
# seq 1 is the deployment's own init event; these are the recorded ones.
MIDDLE = 150


@pytest.fixture
def chain(deployment: Deployment) -> Deployment:
    record_events(deployment, EVENTS)
    report = verify(deployment)
    assert report.ok, report.summary()
    assert report.events == EVENTS + 1
    return deployment


def forged_row(seq: int, prev_hash: str, **overrides: Any) -> dict[str, Any]:
    """A well-formed event whose hash is a correct plain SHA-256 of its canonical form.

    The attacker knows the format but not the deployment's HMAC key, so the seal is
    the best they can do without it: a hash of the hash.
    """
    row: dict[str, Any] = {
        "seq": seq, "occurred_at": dt.datetime.now(dt.UTC), "tag": "operator:tenant:create",
        "event_class": "administration", "actor_kind": "operator", "actor_id": "uid:0",
        "actor_role": "operator", "actor_session": None, "actor_address": None,
        "actor_network": None, "actor_agent": None, "tenant_id": None, "target": "tenant:evil",
        "outcome": "success", "reason": None, "details": "{}", "prev_hash": prev_hash,
    }
    row.update(overrides)
    fields = canonical.chain_fields(row)
    row["hash"] = hashlib.sha256(canonical.canonical_bytes(fields)).hexdigest()
    row["mac"] = hashlib.sha256(row["hash"].encode()).hexdigest()
    return row


def insert_rows(deployment: Deployment, *rows: dict[str, Any]) -> None:
    with deployment.engine.begin() as conn:
        for row in rows:
            conn.execute(sa.insert(AuditEvent.__table__), row)


def shift_up_from(deployment: Deployment, first: int) -> None:
    """Renumber events ``first``.. one place up (through negative temporaries: unique keys)."""
    sql(deployment, "UPDATE audit_events SET seq = -seq - 1 WHERE seq >= :first", first=first)
    sql(deployment, "UPDATE audit_events SET seq = -seq WHERE seq < 0")


# -- modify --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("outcome", "denied"),
        ("details", '{"n":0}'),
        ("tag", "operator:audit:read"),
        ("event_class", "routine"),
        ("tenant_id", "t-gamma"),
        ("actor_id", "u-someone-else"),
        ("reason", None),
        ("target", "dataset:ds-other"),
        ("prev_hash", "0" * 64),
    ],
)
def test_modified_field_is_detected_at_its_sequence(
    chain: Deployment, column: str, value: str | None
) -> None:
    sql(chain, f"UPDATE audit_events SET {column} = :value WHERE seq = :seq",  # noqa: S608
        value=value, seq=MIDDLE)

    report = verify(chain)

    assert not report.ok
    assert report.seq == MIDDLE
    assert "modified" in (report.problem or "")


def test_modified_time_is_detected(chain: Deployment) -> None:
    row = event_row(chain, MIDDLE)
    earlier = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    with chain.engine.begin() as conn:
        conn.execute(
            sa.update(AuditEvent.__table__).where(AuditEvent.__table__.c.seq == row["seq"])
            .values(occurred_at=earlier)
        )

    report = verify(chain)

    assert (report.ok, report.seq) == (False, MIDDLE)


def test_modified_row_with_recomputed_sha256_fails_on_the_seal(chain: Deployment) -> None:
    """Rewriting content and its hash, and re-linking the next event, still breaks the HMAC."""
    with chain.transaction() as session:
        genuine = session.get_one(AuditEvent, MIDDLE)
        fields = {name: getattr(genuine, name) for name in canonical.CHAIN_FIELDS}
    forged = forged_row(**fields | {"outcome": "success", "reason": "all-fine"})
    sql(chain, "UPDATE audit_events SET outcome = :outcome, reason = :reason, hash = :hash, "
        "mac = :mac WHERE seq = :seq", **{k: forged[k] for k in ("outcome", "reason", "hash",
                                                                  "mac", "seq")})
    sql(chain, "UPDATE audit_events SET prev_hash = :h WHERE seq = :seq",
        h=forged["hash"], seq=MIDDLE + 1)

    report = verify(chain)

    assert (report.ok, report.seq) == (False, MIDDLE)
    assert "seal" in (report.problem or "")


# -- delete --------------------------------------------------------------------------------------


def test_deleted_row_in_the_middle_is_detected(chain: Deployment) -> None:
    sql(chain, "DELETE FROM audit_events WHERE seq = :seq", seq=MIDDLE)

    report = verify(chain)

    assert (report.ok, report.seq) == (False, MIDDLE)
    assert f"event {MIDDLE} is missing" in (report.problem or "")


def test_deleted_range_is_detected_at_its_first_sequence(chain: Deployment) -> None:
    sql(chain, "DELETE FROM audit_events WHERE seq BETWEEN 120 AND 129")

    report = verify(chain)

    assert (report.ok, report.seq) == (False, 120)
    assert "events 120..129 are missing" in (report.problem or "")


def test_deleted_first_row_is_detected(chain: Deployment) -> None:
    sql(chain, "DELETE FROM audit_events WHERE seq = 1")

    report = verify(chain)

    assert (report.ok, report.seq) == (False, 1)


def test_deleted_row_with_renumbered_successors_is_detected(chain: Deployment) -> None:
    """Closing the gap by renumbering changes every later event's hashed seq."""
    sql(chain, "DELETE FROM audit_events WHERE seq = :seq", seq=MIDDLE)
    sql(chain, "UPDATE audit_events SET seq = -(seq - 1) WHERE seq > :seq", seq=MIDDLE)
    sql(chain, "UPDATE audit_events SET seq = -seq WHERE seq < 0")

    report = verify(chain)

    assert (report.ok, report.seq) == (False, MIDDLE)


# -- insert --------------------------------------------------------------------------------------


def test_forged_row_appended_at_the_end_fails_on_the_seal(chain: Deployment) -> None:
    end = last_seq(chain)
    forged = forged_row(end + 1, event_row(chain, end)["hash"])
    insert_rows(chain, forged)
    # A careful attacker moves the head too, so that only the seal can give them away.
    sql(chain, "UPDATE audit_head SET seq = :seq, hash = :h WHERE id = 1",
        seq=end + 1, h=forged["hash"])

    report = verify(chain)

    assert (report.ok, report.seq) == (False, end + 1)
    assert "seal (HMAC) does not match" in (report.problem or "")


def test_forged_row_appended_without_moving_the_head_is_detected(chain: Deployment) -> None:
    end = last_seq(chain)
    insert_rows(chain, forged_row(end + 1, event_row(chain, end)["hash"]))

    report = verify(chain)

    assert (report.ok, report.seq) == (False, end + 1)


def test_forged_row_inserted_in_the_middle_is_detected(chain: Deployment) -> None:
    end = last_seq(chain)
    shift_up_from(chain, MIDDLE)
    insert_rows(chain, forged_row(MIDDLE, event_row(chain, MIDDLE - 1)["hash"]))
    sql(chain, "UPDATE audit_head SET seq = :seq WHERE id = 1", seq=end + 1)

    report = verify(chain)

    assert (report.ok, report.seq) == (False, MIDDLE)
    assert "seal" in (report.problem or "")


def test_replayed_genuine_row_is_detected(chain: Deployment) -> None:
    """A copy of a real, correctly sealed event at another place does not fit there."""
    shift_up_from(chain, MIDDLE)
    copy = event_row(chain, 42)
    copy["seq"] = MIDDLE
    with chain.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO audit_events (" + ", ".join(copy) + ") VALUES ("  # noqa: S608
            + ", ".join(f":{k}" for k in copy) + ")"
        ), copy)

    report = verify(chain)

    assert (report.ok, report.seq) == (False, MIDDLE)
    assert "modified" in (report.problem or "")


# -- reorder -------------------------------------------------------------------------------------


def test_swapped_rows_are_detected(chain: Deployment) -> None:
    a, b = MIDDLE, MIDDLE + 1
    sql(chain, "UPDATE audit_events SET seq = -1 WHERE seq = :a", a=a)
    sql(chain, "UPDATE audit_events SET seq = :a WHERE seq = :b", a=a, b=b)
    sql(chain, "UPDATE audit_events SET seq = :b WHERE seq = -1", b=b)

    report = verify(chain)

    assert (report.ok, report.seq) == (False, a)


def test_swapped_distant_rows_are_detected_at_the_earlier(chain: Deployment) -> None:
    a, b = 60, 240
    sql(chain, "UPDATE audit_events SET seq = -1 WHERE seq = :a", a=a)
    sql(chain, "UPDATE audit_events SET seq = :a WHERE seq = :b", a=a, b=b)
    sql(chain, "UPDATE audit_events SET seq = :b WHERE seq = -1", b=b)

    report = verify(chain)

    assert (report.ok, report.seq) == (False, a)


# -- truncate ------------------------------------------------------------------------------------


def test_truncated_tail_is_detected_by_the_head(chain: Deployment) -> None:
    end = last_seq(chain)
    sql(chain, "DELETE FROM audit_events WHERE seq > :keep", keep=end - 5)

    report = verify(chain)

    assert (report.ok, report.seq) == (False, end - 4)
    assert "truncated" in (report.problem or "")


def truncate_and_rewrite_head(deployment: Deployment, keep: int) -> None:
    sql(deployment, "DELETE FROM audit_events WHERE seq > :keep", keep=keep)
    sql(deployment, "UPDATE audit_head SET seq = :seq, hash = :h WHERE id = 1",
        seq=keep, h=event_row(deployment, keep)["hash"])


def test_truncated_tail_with_rewritten_head_is_caught_by_a_stored_checkpoint(
    chain: Deployment,
) -> None:
    with chain.transaction() as session:
        point = chain.audit.checkpoint_now(session)
    assert point is not None
    truncate_and_rewrite_head(chain, keep=point.seq - 20)

    report = verify(chain)

    assert (report.ok, report.seq) == (False, point.seq - 19)
    assert f"checkpoint at {point.seq} is beyond the end" in (report.problem or "")


def test_truncated_tail_with_checkpoints_also_deleted_is_caught_by_the_exported_file(
    chain: Deployment,
) -> None:
    with chain.transaction() as session:
        point = chain.audit.checkpoint_now(session)
    assert point is not None
    exported = chain.settings.audit_checkpoint_file
    assert str(point.seq) in exported.read_text(encoding="utf-8")
    truncate_and_rewrite_head(chain, keep=point.seq - 20)
    sql(chain, "DELETE FROM audit_checkpoints")

    assert verify(chain).ok  # the database alone no longer shows it...
    report = verify(chain, checkpoint_file=exported)  # ...the exported copy does

    assert (report.ok, report.seq) == (False, point.seq - 19)
    assert "exported checkpoint" in (report.problem or "")


def test_altered_stored_checkpoint_is_detected(chain: Deployment) -> None:
    with chain.transaction() as session:
        point = chain.audit.checkpoint_now(session)
    assert point is not None
    sql(chain, "UPDATE audit_checkpoints SET hash = :h WHERE seq = :seq",
        h="f" * 64, seq=point.seq)

    report = verify(chain)

    assert (report.ok, report.seq) == (False, point.seq)
    assert "invalid signature" in (report.problem or "")


# -- forged and altered purge records ------------------------------------------------------------


def test_deleted_oldest_rows_covered_by_a_forged_purge_record_are_detected(
    chain: Deployment,
) -> None:
    sql(chain, "DELETE FROM audit_events WHERE seq <= 50")
    sql(chain,
        "INSERT INTO audit_purges (first_seq, last_seq, count, boundary_hash, policy, "
        "created_at, signature) VALUES (1, 50, 50, :boundary, :policy, :at, :sig)",
        boundary=event_row(chain, 51)["prev_hash"],
        policy=json.dumps({"routine": 1}), at="2026-01-01 00:00:00.000000",
        sig="ab" * 64)

    report = verify(chain)

    assert (report.ok, report.seq) == (False, 1)
    assert "purge record 1..50 has an invalid signature" in (report.problem or "")


def purge_everything_so_far(deployment: Deployment) -> int:
    """A lawful purge of every event recorded so far (time moved past all retention)."""
    from strongroom.audit.actors import Actor
    from strongroom.audit.policy import retention_policy
    from strongroom.audit.retention import purge

    with deployment.transaction() as session:
        plan = purge(session, deployment.audit, retention_policy(deployment.settings),
                     Actor.system(), now=dt.datetime.now(dt.UTC) + dt.timedelta(days=401))
    assert plan is not None
    return plan.last_seq


def test_altered_range_of_a_real_purge_record_is_detected(chain: Deployment) -> None:
    purged_through = purge_everything_so_far(chain)
    record_events(chain, 30)
    assert verify(chain).ok
    sql(chain, "DELETE FROM audit_events WHERE seq <= :seq", seq=purged_through + 10)
    sql(chain, "UPDATE audit_purges SET last_seq = last_seq + 10, count = count + 10")

    report = verify(chain)

    assert (report.ok, report.seq) == (False, 1)
    assert "invalid signature" in (report.problem or "")


def test_deleted_purge_record_is_detected(chain: Deployment) -> None:
    purge_everything_so_far(chain)
    sql(chain, "DELETE FROM audit_purges")

    report = verify(chain)

    assert (report.ok, report.seq) == (False, 1)
    assert "missing" in (report.problem or "")


def test_deleted_row_just_after_a_purged_range_is_detected(chain: Deployment) -> None:
    purged_through = purge_everything_so_far(chain)
    sql(chain, "DELETE FROM audit_events WHERE seq = :seq", seq=purged_through + 1)

    report = verify(chain)

    assert (report.ok, report.seq) == (False, purged_through + 1)
