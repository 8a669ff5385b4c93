"""Retention: purges only from the oldest end, leave a signed record, and verify clean.

Events are recorded now; time passing is simulated with the ``now`` parameter of
``plan_purge`` and ``purge`` (editing ``occurred_at`` would, rightly, break the chain).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Callable

import pytest
from tests.unit.audit.conftest import break_audit_writes, record_events, sql, verify

from strongroom.audit import Actor, EventTag
from strongroom.audit.errors import AuditUnavailable
from strongroom.audit.policy import retention_policy
from strongroom.audit.retention import PurgePlan, RetentionPolicy, plan_purge, purge
from strongroom.audit.tags import EventClass
from strongroom.deployment import Deployment

SHORT = RetentionPolicy({
    EventClass.SECURITY: 400, EventClass.ADMINISTRATION: 30, EventClass.ROUTINE: 30,
})


def later(days: int) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=days)


def record(deployment: Deployment, tag: EventTag, count: int = 1) -> None:
    with deployment.transaction() as session:
        for _ in range(count):
            deployment.audit.record_event(session, tag, actor=Actor.system())


def do_purge(
    deployment: Deployment, policy: RetentionPolicy, now: dt.datetime
) -> PurgePlan | None:
    with deployment.transaction() as session:
        return purge(session, deployment.audit, policy, Actor.cli(), now=now)


def remaining(deployment: Deployment) -> list[int]:
    return [r[0] for r in sql(deployment, "SELECT seq FROM audit_events ORDER BY seq")]


def test_a_lawful_purge_verifies_clean_and_reports_the_purged_count(
    deployment: Deployment,
) -> None:
    record_events(deployment, 120)
    plan = do_purge(deployment, retention_policy(deployment.settings), later(401))

    assert plan is not None
    assert (plan.first_seq, plan.last_seq, plan.count) == (1, 121, 121)
    report = verify(deployment)
    assert report.ok, report.summary()
    assert (report.purged, report.purge_records, report.events) == (121, 1, 1)
    assert "121 purged under 1 signed purge records" in report.summary()
    # The purge is itself on the record, chained after the purged range.
    (details,) = sql(deployment, "SELECT details FROM audit_events WHERE tag = :tag",
                     tag=EventTag.AUDIT_PURGE.value)[0]
    assert json.loads(details) | {"policy": None} == {
        "first_seq": 1, "last_seq": 121, "count": 121, "policy": None,
        "boundary_hash": plan.boundary_hash,
    }


def test_purge_stops_at_the_first_event_still_in_retention(deployment: Deployment) -> None:
    record(deployment, EventTag.DATASET_READ, 5)   # seq 2..6, routine
    record(deployment, EventTag.KEYS_ROTATE)       # seq 7, security: young for 400 days
    record(deployment, EventTag.DATASET_READ, 5)   # seq 8..12, routine: old, but after it

    plan = do_purge(deployment, SHORT, later(60))

    assert plan is not None
    assert (plan.first_seq, plan.last_seq, plan.count) == (1, 6, 6)
    assert remaining(deployment) == list(range(7, 14))  # 13 is the purge event
    report = verify(deployment)
    assert report.ok, report.summary()
    assert report.purged == 6


def test_successive_purges_chain_their_records(deployment: Deployment) -> None:
    record(deployment, EventTag.DATASET_READ, 5)
    record(deployment, EventTag.KEYS_ROTATE)
    record(deployment, EventTag.DATASET_READ, 5)
    do_purge(deployment, SHORT, later(60))
    record(deployment, EventTag.DATASET_READ, 3)

    second = do_purge(deployment, SHORT, later(401))

    assert second is not None
    assert (second.first_seq, second.last_seq) == (7, 16)
    report = verify(deployment)
    assert report.ok, report.summary()
    assert (report.purged, report.purge_records, report.events) == (16, 2, 1)


def test_nothing_is_purged_while_the_oldest_event_is_in_retention(
    deployment: Deployment,
) -> None:
    """Seq 1 (init) is an administration event kept 400 days: the old reads behind it stay."""
    record(deployment, EventTag.DATASET_READ, 10)
    policy = retention_policy(deployment.settings)
    before = remaining(deployment)

    with deployment.transaction() as session:
        assert plan_purge(session, policy, now=later(100)) is None
    assert do_purge(deployment, policy, later(100)) is None
    assert do_purge(deployment, policy, later(0)) is None
    assert remaining(deployment) == before
    assert sql(deployment, "SELECT count(*) FROM audit_purges") == [(0,)]


def test_a_plan_deletes_nothing(deployment: Deployment) -> None:
    record(deployment, EventTag.DATASET_READ, 10)
    before = remaining(deployment)
    with deployment.transaction() as session:
        plan = plan_purge(session, SHORT, now=later(60))
    assert plan is not None
    assert plan.count == 11
    assert remaining(deployment) == before


def test_checkpoints_inside_a_purged_range_still_verify(deployment: Deployment) -> None:
    record(deployment, EventTag.DATASET_READ, 10)
    with deployment.transaction() as session:
        deployment.audit.checkpoint_now(session)
    do_purge(deployment, SHORT, later(60))
    report = verify(deployment, checkpoint_file=deployment.settings.audit_checkpoint_file)
    assert report.ok, report.summary()
    assert (report.checkpoints, report.exported_checkpoints) == (1, 1)


def test_a_purge_that_cannot_be_audited_deletes_nothing(deployment: Deployment) -> None:
    record(deployment, EventTag.DATASET_READ, 10)
    before = remaining(deployment)
    break_audit_writes(deployment)

    with pytest.raises(AuditUnavailable):
        do_purge(deployment, SHORT, later(60))

    assert remaining(deployment) == before
    assert sql(deployment, "SELECT count(*) FROM audit_purges") == [(0,)]


def test_cli_purge_and_dry_run(
    deployment: Deployment, cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    home = deployment.settings.home
    dry = cli("audit", "purge", "--dry-run", "--home", home)
    assert dry.returncode == 0, dry.stderr
    assert "nothing is past its retention period" in dry.stdout
    real = cli("audit", "purge", "--home", home)
    assert real.returncode == 0, real.stderr
    assert "nothing is past its retention period" in real.stdout
    assert verify(deployment).ok
