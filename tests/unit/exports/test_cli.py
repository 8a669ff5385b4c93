"""``strongroom tenant export-caps``: show, set and reset a tenant's caps, audited."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from strongroom.audit import EventTag
from strongroom.audit.models import AuditEvent
from strongroom.cli.main import main
from strongroom.config import Settings
from strongroom.deployment import open_deployment
from strongroom.exports import velocity
from strongroom.tenancy.services import create_tenant


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_export_caps_are_shown_set_and_reset(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment = open_deployment(settings)
    with deployment.transaction() as session:
        tenant_id = create_tenant(session, deployment.keys, "acme").id
    deployment.close()
    home = str(settings.home)

    code, out, _ = cli(capsys, "tenant", "export-caps", "acme", "--json", "--home", home)
    assert code == 0
    shown = json.loads(out)
    assert shown["caps"] == velocity.default_caps(settings)
    assert set(shown["set_by"].values()) == {"deployment default"}

    code, out, _ = cli(capsys, "tenant", "export-caps", "acme", "--rows-per-hour", "500",
                       "--subjects-per-day", "0", "--home", home)
    assert code == 0
    assert "rows_per_hour" in out
    assert "500" in out

    deployment = open_deployment(settings)
    try:
        with deployment.transaction() as session:
            caps = velocity.tenant_caps(session, settings, tenant_id)
            [event] = session.scalars(sa.select(AuditEvent).where(
                AuditEvent.tag == EventTag.EXPORT_CAPS_CHANGE.value))
            details = json.loads(event.details)
    finally:
        deployment.close()
    assert (caps["rows_per_hour"], caps["subjects_per_day"]) == (500, 0)
    assert details == {"set": {"rows_per_hour": 500, "subjects_per_day": 0},
                       "previous": {"rows_per_hour": None, "subjects_per_day": None}}

    code, out, _ = cli(capsys, "tenant", "export-caps", "acme", "--use-defaults", "--json",
                       "--home", home)
    assert code == 0
    assert json.loads(out)["caps"] == velocity.default_caps(settings)

    code, _, err = cli(capsys, "tenant", "export-caps", "nosuch", "--rows-per-hour", "1",
                       "--home", home)
    assert code == 2
    assert "nosuch" in err
