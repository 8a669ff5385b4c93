"""Velocity limits: rolling windows, users and tenant, subjects by key, persistence, races.

Every export here is a real one (sandbox, transforms, encrypted object); the
clock is the ``now`` each export is given, so a window can be seen to slide.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from tests.unit.exports.conftest import NOW, requester, spec

from strongroom.audit import EventTag
from strongroom.audit.models import AuditEvent
from strongroom.config import Settings
from strongroom.deployment import Deployment, open_deployment
from strongroom.exports import velocity
from strongroom.exports.errors import ExportQuotaExceeded, ExportTooLarge, LimitAboveCap
from strongroom.exports.models import Export, ExportRefusal, ExportUsage, Scope, Window
from strongroom.exports.services import AnonymousSpec, CreatedExport, create_export
from strongroom.privacy.errors import AnonymityRefused
from strongroom.storage.models import StoredObject
from strongroom.tenancy.models import Tenant

MINUTE = dt.timedelta(minutes=1)
ONE = {"field": "id", "op": "eq", "value": 1}


def only(ids: list[int]) -> dict[str, Any]:
    return {"field": "id", "op": "in", "value": ids}


def set_limits(deployment: Deployment, tenant: Tenant, *, user: dict[str, int] | None = None,
               tenant_limits: dict[str, int] | None = None) -> None:
    with deployment.transaction() as session:
        velocity.set_tenant_limits(session, deployment.settings, tenant.id, "admin-1",
                                   {Scope.USER: user or {}, Scope.TENANT: tenant_limits or {}})


def count(deployment: Deployment, model: type[Any]) -> int:
    with deployment.transaction() as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def audit_tags(deployment: Deployment) -> list[tuple[str, str, str | None]]:
    with deployment.transaction() as session:
        rows = session.execute(
            sa.select(AuditEvent.tag, AuditEvent.outcome, AuditEvent.reason)
            .order_by(AuditEvent.seq))
        return [(r.tag, r.outcome, r.reason) for r in rows]


def test_the_rolling_hour_releases_rows_as_the_clock_moves(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    set_limits(deployment, tenant, user={"rows_per_hour": 15})
    export(now=NOW, selection=only([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))
    with pytest.raises(ExportQuotaExceeded) as refused:
        export(now=NOW + 10 * MINUTE, selection=only([1, 2, 3, 4, 5, 6]))
    # The first export's 10 rows leave the window at NOW + 60 min: 50 minutes from then.
    assert refused.value.retry_after == 50 * 60
    [exceeded] = refused.value.exceeded
    assert exceeded == {"scope": "user", "window": "hour", "measure": "rows", "limit": 15,
                        "used": 10, "requested": 6}
    assert refused.value.remaining["user"]["hour"]["rows"] == {
        "limit": 15, "used": 10, "remaining": 5}
    # Five more still fit; then, one second before the hour, six still do not.
    export(now=NOW + 20 * MINUTE, selection=only([1, 2, 3, 4, 5]))
    with pytest.raises(ExportQuotaExceeded):
        export(now=NOW + 59 * MINUTE, selection=only([1]))
    # At NOW + 60 min the first export has slid out; the second (5 rows) is still in.
    created = export(now=NOW + 60 * MINUTE + dt.timedelta(seconds=1),
                     selection=only([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))
    assert created.export.rows == 10


def test_the_24_hour_window_is_rolling_not_a_calendar_day(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    set_limits(deployment, tenant, user={"exports_per_day": 2})
    late = dt.datetime(2026, 11, 26, 23, 50, tzinfo=dt.UTC)
    export(now=late)
    export(now=late + MINUTE)
    # Past midnight is a new calendar day, but not a new 24 hours.
    with pytest.raises(ExportQuotaExceeded) as refused:
        export(now=late + 20 * MINUTE)
    assert refused.value.retry_after == (24 * 60 - 20) * 60
    assert refused.value.exceeded[0]["window"] == Window.DAY.value
    export(now=late + dt.timedelta(hours=24, seconds=1))


def test_limits_hold_across_the_users_of_a_tenant(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    set_limits(deployment, tenant, tenant_limits={"rows_per_hour": 25})
    export(user="analyst-1", now=NOW)
    export(user="analyst-2", now=NOW + MINUTE)
    with pytest.raises(ExportQuotaExceeded) as refused:
        export(user="analyst-3", now=NOW + 2 * MINUTE)
    [exceeded] = refused.value.exceeded
    assert (exceeded["scope"], exceeded["used"], exceeded["requested"]) == ("tenant", 20, 10)
    # analyst-3 has used nothing of its own allowance; the tenant's is what ran out.
    assert refused.value.remaining["user"]["hour"]["rows"]["used"] == 0
    assert refused.value.remaining["tenant"]["hour"]["rows"]["remaining"] == 5


def test_a_user_limit_stops_one_user_and_not_the_others(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    set_limits(deployment, tenant, user={"exports_per_hour": 1})
    export(user="analyst-1")
    with pytest.raises(ExportQuotaExceeded):
        export(user="analyst-1")
    export(user="analyst-2")


def test_many_small_exports_cannot_slice_past_the_subject_limit(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    set_limits(deployment, tenant, user={"subjects_per_day": 4})
    for customer in (1, 2, 3, 4):
        export(now=NOW + customer * MINUTE, selection={"field": "id", "op": "eq",
                                                       "value": customer})
    with pytest.raises(ExportQuotaExceeded) as refused:
        export(now=NOW + 10 * MINUTE, selection={"field": "id", "op": "eq", "value": 5})
    [exceeded] = refused.value.exceeded
    assert (exceeded["measure"], exceeded["used"], exceeded["requested"]) == ("subjects", 4, 1)
    # The first slice leaves the window 24 hours after it was taken.
    assert refused.value.retry_after == (24 * 60 - 9) * 60


def test_exporting_the_same_people_again_does_not_count_them_twice(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    set_limits(deployment, tenant, user={"subjects_per_hour": 3})
    for minute in range(6):
        export(now=NOW + minute * MINUTE, selection=only([1, 2, 3]))
    export(now=NOW + 7 * MINUTE, selection=only([2]))
    with pytest.raises(ExportQuotaExceeded):
        export(now=NOW + 8 * MINUTE, selection=only([3, 4]))
    with deployment.transaction() as session:
        ledger = velocity.load_ledger(session, tenant.id, NOW + 8 * MINUTE)
        limits = velocity.effective_limits(session, deployment.settings, tenant.id)
    report = velocity.quota(ledger, limits, "analyst-1")
    assert report[Scope.USER][Window.HOUR][velocity.Metric.SUBJECTS].used == 3
    assert report[Scope.USER][Window.HOUR][velocity.Metric.ROWS].used == 19


def test_subjects_are_counted_by_key_across_datasets_and_stored_only_as_hmacs(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    export(selection=only([1, 2]))
    with deployment.transaction() as session:
        [usage] = session.scalars(sa.select(ExportUsage)).all()
    assert usage.subjects == 2
    assert len(usage.subject_macs) == 16  # two 64-bit HMACs
    assert b"\x01\x00\x00\x00\x00\x00\x00\x00" not in usage.subject_macs  # not the raw ids


def test_the_quota_survives_a_restart(
    settings: Settings, tenant: Tenant, deployment: Deployment
) -> None:
    set_limits(deployment, tenant, user={"rows_per_hour": 15})
    create_export(deployment, requester(tenant), spec(), now=NOW)
    deployment.close()
    reopened = open_deployment(settings)
    try:
        with pytest.raises(ExportQuotaExceeded):
            create_export(reopened, requester(tenant), spec(selection=only([1, 2, 3, 4, 5, 6])),
                          now=NOW + MINUTE)
        create_export(reopened, requester(tenant), spec(selection=only([1, 2, 3, 4, 5])),
                      now=NOW + MINUTE)
    finally:
        reopened.close()


def test_an_export_larger_than_a_limit_is_refused_as_too_large(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    set_limits(deployment, tenant, user={"rows_per_day": 5})
    with pytest.raises(ExportTooLarge) as refused:
        export()
    assert refused.value.status == 422
    assert refused.value.exceeded[0]["requested"] == 10


def test_bytes_are_checked_against_the_estimate_and_recorded_after(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    created = export(selection=only([1, 2, 3, 4, 5]))
    with deployment.transaction() as session:
        [usage] = session.scalars(sa.select(ExportUsage)).all()
    assert usage.settled
    assert usage.size == created.export.size
    assert usage.export_id == created.export.id
    set_limits(deployment, tenant, user={"bytes_per_hour": created.export.size + 50})
    with pytest.raises(ExportQuotaExceeded) as refused:
        export(selection=only([6, 7, 8, 9, 10]))
    assert refused.value.exceeded[0]["measure"] == "bytes"
    assert refused.value.exceeded[0]["used"] == created.export.size


def test_refusals_are_audited_counted_and_raise_an_alert(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    every = deployment.settings.export_refusal_alert_count
    set_limits(deployment, tenant, user={"exports_per_hour": 1})
    export()
    objects = count(deployment, StoredObject)
    for attempt in range(every):
        with pytest.raises(ExportQuotaExceeded):
            export(now=NOW + attempt * MINUTE)
    assert count(deployment, StoredObject) == objects  # nothing produced when refused
    assert count(deployment, ExportRefusal) == every
    tags = audit_tags(deployment)
    denied = [t for t in tags if t == (EventTag.EXPORT_CREATE.value, "denied",
                                       "export-quota-exceeded")]
    assert len(denied) == every
    alerts = [t for t in tags if t[0] == EventTag.ALERT_RAISE.value]
    assert alerts == [(EventTag.ALERT_RAISE.value, "success", "export-velocity-refusals")]
    assert tags[-1][0] == EventTag.ALERT_RAISE.value  # raised by the Nth refusal
    with deployment.transaction() as session:
        assert velocity.refusals_last_hour(session, tenant.id, "analyst-1", NOW + 5 * MINUTE) \
            == every


def test_admin_limits_must_stay_within_the_operators_caps(
    deployment: Deployment, tenant: Tenant
) -> None:
    caps = velocity.default_caps(deployment.settings)
    with pytest.raises(LimitAboveCap):
        set_limits(deployment, tenant, tenant_limits={"rows_per_hour": caps["rows_per_hour"] + 1})
    set_limits(deployment, tenant, tenant_limits={"rows_per_hour": 500},
               user={"rows_per_hour": 800})
    with deployment.transaction() as session:
        velocity.set_caps(session, tenant.id, {"rows_per_hour": 300})
        effective = velocity.effective_limits(session, deployment.settings, tenant.id)
        own = velocity.tenant_limits(session, tenant.id)
    # The lower cap wins over what the admin set; a user never gets more than the tenant.
    assert effective[Scope.TENANT]["rows_per_hour"] == 300
    assert effective[Scope.USER]["rows_per_hour"] == 300
    assert own[Scope.TENANT]["rows_per_hour"] == 500
    with pytest.raises(LimitAboveCap):
        set_limits(deployment, tenant, tenant_limits={"rows_per_hour": 301})


def test_concurrent_exports_cannot_both_take_the_last_of_a_quota(
    deployment: Deployment, tenant: Tenant
) -> None:
    set_limits(deployment, tenant, user={"exports_per_hour": 1})
    outcomes: list[str] = []
    barrier = threading.Barrier(3)

    def run() -> None:
        barrier.wait()
        try:
            create_export(deployment, requester(tenant), spec(), now=NOW)
            outcomes.append("ok")
        except ExportQuotaExceeded:
            outcomes.append("refused")

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok", "refused", "refused"]
    assert count(deployment, Export) == 1


def test_a_failed_export_gives_its_reservation_back(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    set_limits(deployment, tenant, user={"exports_per_hour": 1})
    objects = count(deployment, StoredObject)
    # Every customer has a distinct age: k=5 would suppress every row, so it is refused.
    with pytest.raises(AnonymityRefused):
        export(columns=[{"name": "age"}, {"name": "region"}],
               anonymous=AnonymousSpec(["age"], k=5))
    assert count(deployment, ExportUsage) == 0
    assert count(deployment, StoredObject) == objects
    export()  # the one export of the hour is still there to take


def test_the_ledger_forgets_what_is_older_than_a_day(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    export(now=NOW)
    with deployment.transaction() as session:
        assert velocity.prune_ledger(session, NOW + dt.timedelta(hours=23)) == 0
        assert velocity.prune_ledger(session, NOW + dt.timedelta(hours=24)) == 1
    assert count(deployment, ExportUsage) == 0
