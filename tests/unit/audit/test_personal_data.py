"""No personal data in audit storage: sensitive values and addresses are kept only as HMACs."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from tests.unit.audit.conftest import is_postgres, sql

from strongroom.audit import Actor, EventTag, Outcome, Sensitive
from strongroom.audit.models import AuditEvent
from strongroom.config import Settings
from strongroom.deployment import Deployment, open_deployment


def canaries() -> dict[str, str]:
    tag = uuid.uuid4().hex[:10]
    return {
        "email": f"jane.doe.{tag}@example.com",
        "file": f"customers-of-{tag}.csv",
        "filter": f"surname = Canary{tag}",
        "ipv4": "198.51.100.173",
        "ipv6": "2001:db8:85a3::8a2e:370:7334",
    }


def record_canaries(deployment: Deployment, values: dict[str, str], control: str) -> None:
    with deployment.transaction() as session:
        audit = deployment.audit
        audit.record_event(
            session, EventTag.SESSION_LOGIN_FAILED, outcome=Outcome.DENIED, reason="bad-password",
            actor=Actor(kind="anonymous", address=values["ipv4"], user_agent="curl/8"),
            details={"email": Sensitive(values["email"]), "marker": control},
        )
        audit.record_event(
            session, EventTag.DATASET_UPLOAD,
            actor=Actor(kind="user", id="u-1", role="analyst", address=values["ipv6"]),
            details={"file_name": Sensitive(values["file"]),
                     "filters": [Sensitive(values["filter"]),
                                 {"deep": Sensitive(values["email"])}]},
        )
    for _ in range(20):  # enough writes that pages are rewritten and the WAL grows
        with deployment.transaction() as session:
            audit.record_event(session, EventTag.DATASET_READ, actor=Actor.system())


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_no_canary_in_any_file_of_a_sqlite_home(make_home: Callable[..., Settings]) -> None:
    settings = make_home()
    deployment = open_deployment(settings)
    values = canaries()
    control = f"control-{uuid.uuid4().hex}"
    try:
        record_canaries(deployment, values, control)
        wal = settings.home / "strongroom.db-wal"
        assert wal.exists()
        # The scan must see what was written: the non-sensitive control value is there.
        scanned = b"".join(p.read_bytes() for p in files_under(settings.home))
        assert control.encode() in scanned
        for name, value in values.items():
            for encoded in {value.encode(), value.encode("utf-16-le"), value.upper().encode()}:
                assert encoded not in scanned, f"{name} found in the deployment home"
        # Fully checkpointed into the main file too, then scanned again.
        with deployment.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        database = (settings.home / "strongroom.db").read_bytes()
        assert control.encode() in database
        for value in values.values():
            assert value.encode() not in database
    finally:
        deployment.close()


def test_no_canary_in_any_audit_column(deployment: Deployment) -> None:
    """The same check through SQL, so that it also covers PostgreSQL."""
    values = canaries()
    control = f"control-{uuid.uuid4().hex}"
    record_canaries(deployment, values, control)
    cast = "t::text" if is_postgres(deployment) else " || ".join(
        f"coalesce(CAST({c.name} AS TEXT), '')" for c in AuditEvent.__table__.columns
    )
    rows = [row[0] for row in sql(deployment, f"SELECT {cast} FROM audit_events t")]  # noqa: S608
    text = "\n".join(rows)
    assert control in text
    for name, value in values.items():
        assert value not in text, f"{name} stored in clear"


def test_a_known_value_finds_its_events_through_the_stored_hmac(deployment: Deployment) -> None:
    values = canaries()
    record_canaries(deployment, values, "x")
    token = deployment.audit.hash_value(values["email"])

    with deployment.transaction() as session:
        found = session.scalars(
            sa.select(AuditEvent.tag).where(AuditEvent.details.contains(token))
            .order_by(AuditEvent.seq)
        ).all()
        other = session.scalars(
            sa.select(AuditEvent.seq).where(
                AuditEvent.details.contains(deployment.audit.hash_value("someone@else.org"))
            )
        ).all()

    assert found == [EventTag.SESSION_LOGIN_FAILED.value, EventTag.DATASET_UPLOAD.value]
    assert other == []


def test_addresses_keep_only_their_network_and_an_hmac(deployment: Deployment) -> None:
    values = canaries()
    record_canaries(deployment, values, "x")
    rows = sql(deployment, "SELECT actor_address, actor_network FROM audit_events "
                           "WHERE actor_network IS NOT NULL ORDER BY seq")
    assert [r.actor_network for r in rows] == ["198.51.100.0/24", "2001:db8:85a3::/48"]
    assert rows[0].actor_address == deployment.audit.keys.mac(
        "audit-address", values["ipv4"].encode()
    )
    assert len({r.actor_address for r in rows}) == 2


def test_two_deployments_hash_the_same_value_differently(
    make_home: Callable[..., Settings],
) -> None:
    """Tokens are keyed per deployment: a list of hashed emails from one is useless in another."""
    one, two = open_deployment(make_home()), open_deployment(make_home())
    try:
        assert one.audit.hash_value("jane@example.com") != two.audit.hash_value("jane@example.com")
    finally:
        one.close()
        two.close()


def test_cli_hash_prints_the_stored_token(
    deployment: Deployment, cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    result = cli("audit", "hash", "jane@example.com", "--home", deployment.settings.home)
    assert result.returncode == 0
    assert result.stdout.strip() == deployment.audit.hash_value("jane@example.com")
