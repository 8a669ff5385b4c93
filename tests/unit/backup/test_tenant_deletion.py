"""Tenant deletion against accidental destruction: typed-back slug, delay, undelete, purge."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.functional.support import assert_clean_failure, assert_ok, init_home, run_cli
from tests.unit.backup.conftest import add_objects, canary

from strongroom.crypto.errors import KeyNotFound
from strongroom.crypto.models import KeysetRecord
from strongroom.deployment import Deployment
from strongroom.storage.models import StoredObject
from strongroom.storage.services import read_object
from strongroom.tenancy.deletion import (
    DeletionNotConfirmed,
    DeletionPending,
    NoDeletionPending,
    cancel_deletion,
    pending_deletions,
    purge_tenant,
    remove_tenant_objects,
    request_deletion,
)
from strongroom.tenancy.errors import TenantNotFound, TenantSuspended
from strongroom.tenancy.models import Tenant
from strongroom.tenancy.services import get_tenant, require_active

NOW = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)


def test_the_slug_must_be_typed_back(dep: Deployment) -> None:
    add_objects(dep, "acme", [canary()])
    with dep.transaction() as session, pytest.raises(DeletionNotConfirmed):
        request_deletion(session, "acme", "acme ", 7)
    with dep.transaction() as session:
        assert get_tenant(session, "acme").is_active
        assert pending_deletions(session) == []


def test_deletion_suspends_at_once_and_undelete_restores_everything(dep: Deployment) -> None:
    [record] = add_objects(dep, "acme", [b"kept intact"])
    with dep.transaction() as session:
        deletion = request_deletion(session, "acme", "acme", 7, now=NOW)
        assert deletion.due_at == NOW + dt.timedelta(days=7)
    with dep.transaction() as session:
        tenant = get_tenant(session, "acme")
        with pytest.raises(TenantSuspended):
            require_active(tenant)
        with pytest.raises(DeletionPending):
            request_deletion(session, "acme", "acme", 7)
    with dep.transaction() as session:
        assert cancel_deletion(session, "acme").is_active
    with dep.transaction() as session:
        ring = dep.keys.tenant_ring(session, record.tenant_id)
        row = session.get(StoredObject, record.id)
        assert row is not None
        assert b"".join(read_object(dep.store, ring, row)) == b"kept intact"
        with pytest.raises(NoDeletionPending):
            cancel_deletion(session, "acme")


def test_purge_removes_rows_keys_and_objects_of_that_tenant_only(dep: Deployment) -> None:
    [doomed] = add_objects(dep, "acme", [canary("acme")])
    [other] = add_objects(dep, "globex", [canary("globex")])
    with dep.transaction() as session:
        request_deletion(session, "acme", "acme", 0, now=NOW)
    with dep.transaction() as session:
        [(tenant, _)] = pending_deletions(session)
        assert purge_tenant(session, tenant) >= 4
    remove_tenant_objects(dep.settings.objects_dir, doomed.tenant_id)
    with dep.transaction() as session:
        with pytest.raises(TenantNotFound):
            get_tenant(session, "acme")
        assert session.get(StoredObject, doomed.id) is None
        assert session.scalars(sa.select(KeysetRecord).where(
            KeysetRecord.owner == doomed.tenant_id)).all() == []
        with pytest.raises(KeyNotFound):
            dep.keys.tenant_ring(session, doomed.tenant_id)
        assert not (dep.settings.objects_dir / "tenants" / doomed.tenant_id).exists()
        survivor = session.get(StoredObject, other.id)
        assert survivor is not None
        ring = dep.keys.tenant_ring(session, other.tenant_id)
        assert b"".join(read_object(dep.store, ring, survivor)).startswith(b"CANARY-globex")
        assert session.scalar(sa.select(sa.func.count()).select_from(Tenant)) == 1


def test_cli_delete_undelete_and_purge_respect_the_delay(tmp_path: Path) -> None:
    home = init_home(tmp_path / "home")
    assert_ok(run_cli("tenant", "create", "acme", "--home", home))
    assert_clean_failure(run_cli("tenant", "delete", "acme", "--confirm", "acm", "--home", home),
                         "does not match")
    out = assert_ok(run_cli("tenant", "delete", "acme", "--confirm", "acme", "--home", home))
    assert "will be deleted after" in out
    assert "suspended" in assert_ok(run_cli("tenant", "list", "--home", home))
    # Inside the delay nothing is purged.
    assert "purged 0 tenants; 1 still waiting" in assert_ok(
        run_cli("tenant", "purge-deleted", "--home", home))
    assert_ok(run_cli("tenant", "undelete", "acme", "--home", home))
    assert "active" in assert_ok(run_cli("tenant", "list", "--home", home))
    # With no delay, the purge removes it.
    env = {"STRONGROOM_TENANT_DELETION_DELAY_DAYS": "0"}
    assert_ok(run_cli("tenant", "delete", "acme", "--confirm", "acme", "--home", home, env=env))
    assert "purged tenant acme" in assert_ok(run_cli("tenant", "purge-deleted", "--home", home))
    assert "no tenants" in assert_ok(run_cli("tenant", "list", "--home", home))
    assert "audit log intact" in assert_ok(run_cli("audit", "verify", "--home", home))
