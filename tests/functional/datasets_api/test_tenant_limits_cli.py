"""`strongroom tenant limits`: show, set and drop a tenant's upload limit, audited, and
refusals that change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from strongroom.audit.models import AuditEvent
from strongroom.config import Environment, load_settings
from strongroom.deployment import initialise, open_deployment
from strongroom.tenancy import limits
from strongroom.tenancy.services import create_tenant, get_tenant
from tests.functional.support import assert_clean_failure, assert_ok, run_cli

DEFAULT = 10 * 1024**3


def _state(home: Path) -> tuple[limits.EffectiveLimit, list[AuditEvent]]:
    """The tenant's effective limit and the limit events, read through the services."""
    deployment = open_deployment(load_settings(home))
    try:
        with deployment.transaction() as session:
            tenant = get_tenant(session, "acme")
            effective = limits.upload_max_bytes(session, tenant.id, DEFAULT)
            events = list(session.scalars(
                sa.select(AuditEvent).where(AuditEvent.tag == "operator:tenant:limits")
                .order_by(AuditEvent.seq)))
            return effective, events
    finally:
        deployment.close()


def test_show_set_and_drop_a_tenants_upload_limit_and_refusals(tmp_path: Path) -> None:
    home = tmp_path / "home"
    initialise(home, Environment.DEVELOPMENT)
    deployment = open_deployment(load_settings(home))
    with deployment.transaction() as session:
        create_tenant(session, deployment.keys, "acme")
    deployment.close()

    shown = json.loads(assert_ok(run_cli("tenant", "limits", "acme", "--json", "--home", home)))
    assert shown == {"tenant": "acme", "upload_max_bytes": DEFAULT,
                     "upload_max_bytes_source": "deployment default"}
    out = assert_ok(run_cli("tenant", "limits", "acme", "--upload-max-bytes", "5000",
                            "--home", home))
    assert out.split("\n")[1].split() == ["upload_max_bytes", "5000", "tenant"]
    assert _state(home)[0] == limits.EffectiveLimit(5000, own=True)

    # Refusals: both options at once, an unknown tenant, a limit past the ceiling.
    both = run_cli("tenant", "limits", "acme", "--upload-max-bytes", "10", "--use-default",
                   "--home", home)
    assert both.returncode == 2
    assert "Traceback" not in both.stderr
    assert_clean_failure(run_cli("tenant", "limits", "nosuch", "--upload-max-bytes", "10",
                                 "--home", home), "nosuch")
    assert_clean_failure(run_cli("tenant", "limits", "acme", "--upload-max-bytes",
                                 str(2**50 + 1), "--home", home), "upload limit")
    assert _state(home)[0] == limits.EffectiveLimit(5000, own=True)

    assert_ok(run_cli("tenant", "limits", "acme", "--use-default", "--home", home))
    effective, events = _state(home)
    assert effective == limits.EffectiveLimit(DEFAULT, own=False)
    assert [(e.outcome, e.reason, json.loads(e.details)) for e in events] == [
        ("success", None, {"upload_max_bytes": 5000, "previous": None}),
        ("failure", "not-found", {}),
        ("failure", "tenant-limit-invalid", {}),
        ("success", None, {"upload_max_bytes": None, "previous": 5000}),
    ]
