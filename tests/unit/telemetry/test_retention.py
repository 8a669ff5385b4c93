"""Usage events are kept for telemetry_retention_days, then purged."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import sqlalchemy as sa
from tests.unit.telemetry.conftest import People

from strongroom.config import Settings
from strongroom.deployment import Deployment, open_deployment
from strongroom.telemetry import Subject, UsageEvent, UsageFeature, record_usage
from strongroom.telemetry.services import purge_before, retention_cutoff


def _ages(deployment: Deployment) -> list[int]:
    now = dt.datetime.now(dt.UTC)
    with deployment.transaction() as session:
        return sorted((now - e.occurred_at).days for e in session.scalars(sa.select(UsageEvent)))


def test_events_older_than_the_cutoff_are_purged(deployment: Deployment, people: People) -> None:
    subject = Subject(people.alice.id, people.alice.tenant_id)
    with deployment.transaction() as session:
        for _ in range(3):
            record_usage(session, deployment, subject, UsageFeature.LOGIN)
    now = dt.datetime.now(dt.UTC)
    with deployment.transaction() as session:
        first, second, _ = session.scalars(sa.select(UsageEvent).order_by(UsageEvent.id))
        first.occurred_at = now - dt.timedelta(days=500)
        second.occurred_at = now - dt.timedelta(days=401)
    cutoff = retention_cutoff(deployment, now)
    assert cutoff == now - dt.timedelta(days=400)
    with deployment.transaction() as session:
        assert purge_before(session, cutoff, dry_run=True) == 2
    assert len(_ages(deployment)) == 3
    with deployment.transaction() as session:
        assert purge_before(session, cutoff) == 2
    assert _ages(deployment) == [0]


def test_the_retention_is_a_setting(make_home: Callable[..., Settings], db_url: str) -> None:
    dep = open_deployment(make_home(database_url=db_url, telemetry_retention_days=30))
    try:
        now = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
        assert retention_cutoff(dep, now) == dt.datetime(2026, 10, 27, tzinfo=dt.UTC)
    finally:
        dep.close()


def test_the_periodic_maintenance_purges_old_usage_events_and_audits_it(
    deployment: Deployment, people: People
) -> None:
    from strongroom.audit.models import AuditEvent
    from strongroom.datasets.maintenance import run_maintenance

    subject = Subject(people.alice.id, people.alice.tenant_id)
    with deployment.transaction() as session:
        for _ in range(2):
            record_usage(session, deployment, subject, UsageFeature.LOGIN)
    with deployment.transaction() as session:
        old = session.scalars(sa.select(UsageEvent).order_by(UsageEvent.id)).first()
        assert old is not None
        old.occurred_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=401)
    run = run_maintenance(deployment)
    assert run.purged_usage_events == 1
    assert _ages(deployment) == [0]
    with deployment.transaction() as session:
        tags = list(session.scalars(sa.select(AuditEvent.tag)))
    assert "operator:telemetry:purge" in tags
    assert run_maintenance(deployment).purged_usage_events == 0
