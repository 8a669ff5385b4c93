"""Fail-closed: an action whose audit event cannot be written does not happen.

The audit write is made to fail for real, in the database: a trigger refuses
every INSERT into ``audit_events`` as a full disk would. Nothing of ours is mocked.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from tests.unit.audit.conftest import break_audit_writes, repair_audit_writes, sql, verify

from strongroom.audit import Actor, EventTag
from strongroom.audit.errors import AuditUnavailable
from strongroom.crypto.models import KeysetRecord
from strongroom.deployment import Deployment
from strongroom.tenancy.models import Tenant
from strongroom.tenancy.services import create_tenant

REFUSAL = "the audit trail cannot be written"


def state(deployment: Deployment) -> dict[str, list[Any]]:
    """Everything a refused action could have left behind."""
    return {
        "tenants": sql(deployment, "SELECT id, slug, status FROM tenants ORDER BY id"),
        "keysets": sql(deployment, "SELECT owner, purpose, version, encrypted_keyset "
                                   "FROM keysets ORDER BY id"),
        "events": sql(deployment, "SELECT count(*), max(seq) FROM audit_events"),
        "head": sql(deployment, "SELECT seq, hash, checkpoint_seq FROM audit_head"),
        "checkpoints": sql(deployment, "SELECT count(*) FROM audit_checkpoints"),
    }


def create_audited_tenant(deployment: Deployment, slug: str) -> None:
    """What every edge does: the change and its event in one transaction."""
    with deployment.transaction() as session:
        tenant = create_tenant(session, deployment.keys, slug)
        deployment.audit.record_event(session, EventTag.TENANT_CREATE, actor=Actor.cli(),
                                      tenant=tenant.id, target=f"tenant:{tenant.id}")


def rotate_audited(deployment: Deployment, tenant_id: str) -> None:
    with deployment.transaction() as session:
        ring = deployment.keys.rotate_tenant(session, tenant_id)
        deployment.audit.record_event(session, EventTag.KEYS_ROTATE, actor=Actor.cli(),
                                      tenant=tenant_id, details={"version": ring.version})


def add_duplicate_keyset_and_record(deployment: Deployment, tenant_id: str) -> None:
    with deployment.transaction() as session:
        session.add(KeysetRecord(owner=tenant_id, purpose="kek", encrypted_keyset=b"dup"))
        deployment.audit.record_event(session, EventTag.KEYS_ROTATE, actor=Actor.cli(),
                                      tenant=tenant_id)


def test_tenant_creation_is_refused_in_process_and_leaves_nothing(deployment: Deployment) -> None:
    break_audit_writes(deployment)
    before = state(deployment)

    with pytest.raises(AuditUnavailable) as refused:
        create_audited_tenant(deployment, "acme-retail")

    assert refused.value.status == 503
    assert REFUSAL in refused.value.detail
    assert state(deployment) == before
    assert before["tenants"] == []
    repair_audit_writes(deployment)
    assert verify(deployment).ok


def test_refused_event_is_followed_by_a_gapless_chain(deployment: Deployment) -> None:
    """The failed write claimed nothing: the next event takes the next number."""
    with deployment.transaction() as session:
        first = deployment.audit.record_event(session, EventTag.AUDIT_READ, actor=Actor.cli())
    break_audit_writes(deployment)
    with pytest.raises(AuditUnavailable), deployment.transaction() as session:
        deployment.audit.record_event(session, EventTag.AUDIT_READ, actor=Actor.cli())
    repair_audit_writes(deployment)

    with deployment.transaction() as session:
        after = deployment.audit.record_event(session, EventTag.AUDIT_READ, actor=Actor.cli())

    assert after.seq == first.seq + 1
    assert verify(deployment).ok


def test_callers_own_database_error_is_not_blamed_on_the_audit_trail(
    deployment: Deployment,
) -> None:
    """A failing change of the caller's surfaces as itself, and still rolls back the event."""
    with deployment.transaction() as session:
        tenant = create_tenant(session, deployment.keys, "first-tenant")
    before = state(deployment)

    with pytest.raises(IntegrityError):
        add_duplicate_keyset_and_record(deployment, tenant.id)

    assert state(deployment) == before


def test_cli_tenant_create_is_refused_with_exit_2(
    deployment: Deployment, cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    home = deployment.settings.home
    assert cli("tenant", "create", "canary-co", "--home", home).returncode == 0
    break_audit_writes(deployment)
    before = state(deployment)

    result = cli("tenant", "create", "acme-retail", "--home", home)

    assert result.returncode == 2, result.stdout + result.stderr
    assert REFUSAL in result.stderr
    assert "Traceback" not in result.stderr
    assert state(deployment) == before
    assert [row.slug for row in before["tenants"]] == ["canary-co"]


def test_cli_key_rotation_is_refused_and_the_keyset_is_unchanged(
    deployment: Deployment,
    make_tenant: Callable[[str], Tenant],
    cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    tenant = make_tenant("acme-retail")
    home = deployment.settings.home
    # The rotation works while the audit trail does, so the refusal below is the audit's.
    assert cli("keys", "rotate", "--tenant", "acme-retail", "--home", home).returncode == 0
    break_audit_writes(deployment)
    before = state(deployment)
    version_before = sql(deployment, "SELECT version FROM keysets WHERE owner = :owner",
                         owner=tenant.id)

    result = cli("keys", "rotate", "--tenant", "acme-retail", "--home", home)

    assert result.returncode == 2, result.stdout + result.stderr
    assert REFUSAL in result.stderr
    assert "Traceback" not in result.stderr
    assert state(deployment) == before
    assert version_before == [(2,)]
    repair_audit_writes(deployment)
    assert verify(deployment).ok


def test_in_process_key_rotation_is_refused(
    deployment: Deployment, make_tenant: Callable[[str], Tenant]
) -> None:
    tenant = make_tenant("acme-retail")
    break_audit_writes(deployment)
    before = state(deployment)

    with pytest.raises(AuditUnavailable) as refused:
        rotate_audited(deployment, tenant.id)

    assert refused.value.status == 503
    assert state(deployment) == before
    with deployment.transaction() as session:
        assert deployment.keys.tenant_ring(session, tenant.id).version == 1


def test_missing_head_row_refuses_writes(deployment: Deployment) -> None:
    """Without its head the chain cannot be extended safely: refuse, do not restart it."""
    sql(deployment, "DELETE FROM audit_head")
    with pytest.raises(AuditUnavailable), deployment.transaction() as session:
        deployment.audit.record_event(session, EventTag.AUDIT_READ, actor=Actor.cli())
    assert sql(deployment, "SELECT count(*) FROM audit_events") == [(1,)]
