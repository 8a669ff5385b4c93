"""Saved selections: versions, checks at save time, tenant separation, sealing, audit."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from tests.unit.datasets.test_uploads import ANALYST

from strongroom.analysis import saved
from strongroom.analysis.errors import InvalidSelection, SelectionExists, SelectionNotFound
from strongroom.analysis.models import SavedSelection, SavedSelectionVersion
from strongroom.analysis.selections import DatasetSchema, Schema
from strongroom.audit.models import AuditEvent
from strongroom.crypto.errors import DecryptionFailed
from strongroom.deployment import Deployment
from strongroom.errors import InvalidInput
from strongroom.tenancy.models import Tenant

SCHEMA = Schema({"customers": DatasetSchema({"id": "integer", "joined": "date"}, "id")})
TODAY = dt.date(2026, 11, 26)
OVER_3 = {"field": "id", "op": "gt", "value": 3}


@pytest.fixture
def tenant(make_tenant: Callable[[str], Tenant]) -> Tenant:
    return make_tenant("acme")


def create(deployment: Deployment, tenant: Tenant, name: str = "big", selection: object = OVER_3,
           ) -> str:
    with deployment.transaction() as session:
        return saved.create_selection(
            session, deployment, tenant, ANALYST, name=name, dataset="customers",
            selection=selection, schema=SCHEMA, today=TODAY).id


def test_versions_count_up_and_old_ones_stay(deployment: Deployment, tenant: Tenant) -> None:
    selection_id = create(deployment, tenant)
    later = {"field": "joined", "op": "within_last", "value": {"days": 30}}
    with deployment.transaction() as session:
        updated = saved.update_selection(session, deployment, tenant, ANALYST, selection_id,
                                         selection=later, schema=SCHEMA, today=TODAY)
        assert updated.latest_version == 2
    with deployment.transaction() as session:
        found = saved.get_selection(session, tenant, selection_id)
        latest = saved.read_version(session, deployment, found)
        first = saved.read_version(session, deployment, found, 1)
        assert (latest.version, latest.selection) == (2, later)
        assert (first.version, first.latest_version, first.selection) == (1, 2, OVER_3)
        with pytest.raises(SelectionNotFound):
            saved.read_version(session, deployment, found, 3)
        assert [s.id for s in saved.list_selections(session, tenant)] == [selection_id]


def test_a_selection_must_compile_when_saved(deployment: Deployment, tenant: Tenant) -> None:
    with pytest.raises(InvalidSelection, match=r'selection \(field "joined", operator "gt"\)'):
        create(deployment, tenant, selection={"field": "joined", "op": "gt", "value": 5})
    with (pytest.raises(InvalidSelection, match="unknown dataset"),
          deployment.transaction() as session):
        saved.create_selection(session, deployment, tenant, ANALYST, name="x",
                               dataset="orders", selection=OVER_3, schema=SCHEMA, today=TODAY)
    selection_id = create(deployment, tenant)
    with deployment.transaction() as session, pytest.raises(InvalidSelection):
        saved.update_selection(session, deployment, tenant, ANALYST, selection_id,
                               selection={"field": "nope", "op": "is_null"}, schema=SCHEMA,
                               today=TODAY)
    with deployment.transaction() as session:
        assert saved.get_selection(session, tenant, selection_id).latest_version == 1


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "tab\there"])
def test_bad_names_are_refused(deployment: Deployment, tenant: Tenant, name: str) -> None:
    with pytest.raises(InvalidInput):
        create(deployment, tenant, name=name)


def test_names_are_unique_per_tenant_only(
    deployment: Deployment, tenant: Tenant, make_tenant: Callable[[str], Tenant]
) -> None:
    create(deployment, tenant, name="same")
    with pytest.raises(SelectionExists):
        create(deployment, tenant, name=" same ")
    create(deployment, make_tenant("globex"), name="same")


def test_another_tenants_selection_is_not_found(
    deployment: Deployment, tenant: Tenant, make_tenant: Callable[[str], Tenant]
) -> None:
    other = make_tenant("globex")
    selection_id = create(deployment, tenant)
    with deployment.transaction() as session:
        for bad in (selection_id, "not-an-id", "0" * 32):
            with pytest.raises(SelectionNotFound):
                saved.get_selection(session, other, bad)
        with pytest.raises(SelectionNotFound):
            saved.delete_selection(session, deployment, other, ANALYST, selection_id)
    with deployment.transaction() as session:
        assert saved.get_selection(session, tenant, selection_id).latest_version == 1


def test_sealed_versions_cannot_be_swapped(deployment: Deployment, tenant: Tenant) -> None:
    """A version's ciphertext is bound to its selection and number."""
    first, second = create(deployment, tenant, "a"), create(deployment, tenant, "b", {
        "field": "id", "op": "lt", "value": 2})
    with deployment.transaction() as session:
        row_a = session.get_one(SavedSelectionVersion, (first, 1))
        row_b = session.get_one(SavedSelectionVersion, (second, 1))
        assert b'"gt"' not in row_a.selection_sealed
        sealed_a, sealed_b = row_a.selection_sealed, row_b.selection_sealed
        row_a.selection_sealed, row_b.selection_sealed = sealed_b, sealed_a
    with deployment.transaction() as session:
        found = saved.get_selection(session, tenant, first)
        with pytest.raises(DecryptionFailed):
            saved.read_version(session, deployment, found)


def test_changes_are_audited_without_the_selection(deployment: Deployment, tenant: Tenant) -> None:
    marker = {"field": "id", "op": "eq", "value": 987654321}
    selection_id = create(deployment, tenant, "watched", marker)
    with deployment.transaction() as session:
        saved.update_selection(session, deployment, tenant, ANALYST, selection_id,
                               selection=OVER_3, schema=SCHEMA, today=TODAY)
        saved.delete_selection(session, deployment, tenant, ANALYST, selection_id)
    with deployment.transaction() as session:
        events = list(session.scalars(sa.select(AuditEvent).where(
            AuditEvent.target == f"selection:{selection_id}").order_by(AuditEvent.seq)))
        assert session.get(SavedSelection, selection_id) is None
        assert session.scalar(sa.select(sa.func.count()).select_from(SavedSelectionVersion)) == 0
    assert [e.tag for e in events] == ["user:selection:create", "user:selection:update",
                                       "user:selection:delete"]
    for event in events:
        assert "987654321" not in event.details
        assert "watched" not in event.details
    assert json.loads(events[2].details) == {"versions": 2}


def test_a_selection_too_large_to_keep_is_refused(deployment: Deployment, tenant: Tenant) -> None:
    huge = {"field": "id", "op": "in", "value": [10**17 + i for i in range(1000)]}
    create(deployment, tenant, "fits", huge)  # about 19 KB of JSON
    with pytest.raises(InvalidSelection, match="larger than"):
        saved.canonical({"or": [huge] * 4})


def test_a_version_number_taken_meanwhile_is_a_conflict_not_a_crash(
    deployment: Deployment, tenant: Tenant
) -> None:
    selection_id = create(deployment, tenant)
    with deployment.transaction() as session:
        # What a concurrent save that has not bumped latest_version yet leaves behind.
        session.add(SavedSelectionVersion(selection_id=selection_id, number=2,
                                          selection_sealed=b"taken", created_by="other"))
    with deployment.transaction() as session, pytest.raises(SelectionExists, match="version 2"):
        saved.update_selection(session, deployment, tenant, ANALYST, selection_id,
                               selection=OVER_3, schema=SCHEMA, today=TODAY)
    with deployment.transaction() as session:
        assert saved.get_selection(session, tenant, selection_id).latest_version == 1
