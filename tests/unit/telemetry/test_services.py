"""Usage events: pseudonymous unless the user opted in, coarse, and consent is audited."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from tests.unit.telemetry.conftest import People

from strongroom.audit import Actor
from strongroom.audit.models import AuditEvent
from strongroom.config import Settings
from strongroom.deployment import Deployment, open_deployment
from strongroom.identity.models import User
from strongroom.telemetry import Subject, UsageEvent, UsageFeature, record_usage, set_insider
from strongroom.telemetry.models import InsiderConsent
from strongroom.telemetry.services import coarse, hour_of, measured, user_pseudonym
from strongroom.tenancy.deletion import purge_tenant
from strongroom.tenancy.models import Tenant


def subject(user: User) -> Subject:
    return Subject(user.id, user.tenant_id)


def actor(user: User) -> Actor:
    return Actor("user", user.id, "analyst")


def record(deployment: Deployment, user: User, feature: UsageFeature = UsageFeature.LOGIN,
           **sizes: int) -> None:
    with deployment.transaction() as session:
        assert record_usage(session, deployment, subject(user), feature, **sizes) is not None


def events(deployment: Deployment) -> list[UsageEvent]:
    with deployment.transaction() as session:
        return list(session.scalars(sa.select(UsageEvent).order_by(UsageEvent.id)))


def join(deployment: Deployment, user: User, insider: bool) -> None:
    with deployment.transaction() as session:
        found = session.get_one(User, user.id)
        set_insider(session, deployment, actor(user), found, insider)


def audit_tags(deployment: Deployment) -> list[AuditEvent]:
    with deployment.transaction() as session:
        return list(session.scalars(
            sa.select(AuditEvent).where(AuditEvent.tag.like("user:telemetry:%"))
            .order_by(AuditEvent.seq)
        ))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, None), (-5, 0), (0, 0), (7, 7), (12, 12), (123, 120), (1250, 1200), (1251, 1300),
     (987_654, 990_000), (12.7, 12)],
)
def test_numbers_are_kept_to_two_significant_figures(raw: float | None, expected: int | None
                                                     ) -> None:
    assert coarse(raw) == expected


def test_times_are_truncated_to_the_hour() -> None:
    moment = dt.datetime(2026, 11, 26, 22, 47, 13, 5, tzinfo=dt.UTC)
    assert hour_of(moment) == dt.datetime(2026, 11, 26, 22, tzinfo=dt.UTC)


def test_an_event_names_a_user_by_a_stable_keyed_pseudonym(
    deployment: Deployment, people: People
) -> None:
    record(deployment, people.alice, UsageFeature.ANALYSIS_COUNT, rows=123_456, bytes=9_999,
           duration_ms=1234)
    record(deployment, people.alice)
    record(deployment, people.bob)
    first, second, third = events(deployment)
    assert first.subject == second.subject != third.subject
    assert people.alice.id not in first.subject
    assert first.user_id is None
    assert (first.rows, first.size_bytes, first.duration_ms) == (120_000, 10_000, 1200)
    assert first.feature == "analysis.count"
    assert first.occurred_at.minute == first.occurred_at.second == 0
    with deployment.transaction() as session:
        key = deployment.keys.telemetry_key(session)
    assert first.subject == user_pseudonym(key, people.alice.id)
    # The key is the telemetry key, not the audit or identity key: other HMACs don't match.
    assert first.subject != deployment.audit.hash_value(people.alice.id)[:32]


def test_pseudonyms_differ_between_deployments(
    make_home: Callable[..., Settings], db_url: str, deployment: Deployment, people: People
) -> None:
    other = open_deployment(make_home(database_url=""))
    try:
        with deployment.transaction() as session:
            here = user_pseudonym(deployment.keys.telemetry_key(session), people.alice.id)
        with other.transaction() as session:
            there = user_pseudonym(other.keys.telemetry_key(session), people.alice.id)
    finally:
        other.close()
    assert here != there


def test_an_insider_is_named_by_user_id_and_leaving_pseudonymises_the_past(
    deployment: Deployment, people: People
) -> None:
    record(deployment, people.alice)  # before joining: stays pseudonymous
    join(deployment, people.alice, True)
    record(deployment, people.alice)
    record(deployment, people.bob)
    before, during, bob = events(deployment)
    assert before.user_id is None
    assert during.user_id == people.alice.id
    assert bob.user_id is None
    join(deployment, people.alice, False)
    record(deployment, people.alice)
    assert [e.user_id for e in events(deployment)] == [None, None, None, None]
    joined, left = audit_tags(deployment)
    assert (joined.tag, joined.actor_id, joined.target) == (
        "user:telemetry:insider-join", people.alice.id, f"user:{people.alice.id}")
    assert left.tag == "user:telemetry:insider-leave"
    assert json.loads(left.details) == {"insider": False, "events_pseudonymised": 1}
    with deployment.transaction() as session:
        consent = session.get_one(InsiderConsent, people.alice.id)
        assert consent.insider is False
        assert consent.changed_at >= joined.occurred_at


def test_the_default_is_not_an_insider_and_repeating_a_choice_records_nothing(
    deployment: Deployment, people: People
) -> None:
    join(deployment, people.bob, False)  # already out: nothing to record
    assert audit_tags(deployment) == []
    join(deployment, people.bob, True)
    join(deployment, people.bob, True)
    assert [e.tag for e in audit_tags(deployment)] == ["user:telemetry:insider-join"]


def test_nothing_is_recorded_when_telemetry_is_off_or_for_an_operator(
    make_home: Callable[..., Settings], db_url: str
) -> None:
    dep = open_deployment(make_home(database_url=db_url, telemetry_enabled=False))
    try:
        with dep.transaction() as session:
            assert record_usage(session, dep, Subject("u" * 32, "t" * 32),
                                UsageFeature.LOGIN) is None
        with measured(dep, Subject("u" * 32, "t" * 32), UsageFeature.ANALYSIS_CUBE):
            pass
        assert events(dep) == []
    finally:
        dep.close()


def test_an_operator_is_never_recorded(deployment: Deployment) -> None:
    with deployment.transaction() as session:
        assert record_usage(session, deployment, Subject("o" * 32, None),
                            UsageFeature.LOGIN) is None
    assert events(deployment) == []


def test_measured_records_after_success_only(deployment: Deployment, people: People) -> None:
    with measured(deployment, subject(people.alice), UsageFeature.EXPORT_CREATE) as usage:
        usage.rows = 4321
        usage.bytes = 1_000_001
    with pytest.raises(ZeroDivisionError), measured(
        deployment, subject(people.alice), UsageFeature.EXPORT_CREATE
    ):
        _ = 1 / 0
    [event] = events(deployment)
    assert (event.feature, event.rows, event.size_bytes) == ("export.create", 4300, 1_000_000)
    assert event.duration_ms is not None


def test_an_unknown_feature_is_refused(deployment: Deployment, people: People) -> None:
    with deployment.transaction() as session, pytest.raises(ValueError, match="not a valid"):
        record_usage(session, deployment, subject(people.alice),
                     "alice@acme.example")  # type: ignore[arg-type]


def test_purging_a_tenant_removes_its_usage_events_and_consents(
    deployment: Deployment, people: People
) -> None:
    join(deployment, people.alice, True)
    record(deployment, people.alice)
    record(deployment, people.bob)
    with deployment.transaction() as session:
        tenant = session.get_one(Tenant, people.tenant.id)
        purge_tenant(session, tenant)
    assert events(deployment) == []
    with deployment.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(InsiderConsent)) == 0


def test_the_migration_matches_the_models(deployment: Deployment) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    import strongroom.models  # noqa: F401 - the whole schema

    ours = {"telemetry_events", "telemetry_consents"}
    with deployment.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, UsageEvent.metadata)

    # Entries name their table (as a string, or through a column or index): find ours.
    assert [d for d in diff if any(name in repr(d) for name in ours)] == []


def test_a_subject_is_a_plain_value() -> None:
    assert dataclasses.asdict(Subject("a", "b")) == {"principal_id": "a", "tenant": "b"}


def test_a_second_consent_row_is_never_inserted(deployment: Deployment, people: People) -> None:
    from strongroom.telemetry.services import _insert_consent

    moment = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
    with deployment.transaction() as session:
        assert _insert_consent(session, people.alice.id, True, moment) is True
    with deployment.transaction() as session:
        assert _insert_consent(session, people.alice.id, False, moment) is False
        assert session.get_one(InsiderConsent, people.alice.id).insider is True


def test_two_joins_at_once_record_one_join(deployment: Deployment, people: People) -> None:
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def join_now() -> None:
        try:
            barrier.wait(timeout=30)
            join(deployment, people.bob, True)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=join_now) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert [e.tag for e in audit_tags(deployment)] == ["user:telemetry:insider-join"]
