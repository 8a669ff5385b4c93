"""Helpers for audit tests: real deployments, raw SQL tampering, the real CLI.

Tampering goes through ``deployment.engine`` with plain SQL, as an attacker with
database access would; nothing of the audit code is mocked or bypassed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from strongroom.audit import Actor, EventTag, Outcome, Sensitive
from strongroom.audit.services import RecordedEvent
from strongroom.audit.verify import VerifyReport, read_exported_checkpoints, verify_log
from strongroom.deployment import Deployment

STRONGROOM = Path(sys.executable).with_name("strongroom")

USER = Actor(kind="user", id="u-7f3a", role="analyst", session="s-91c2",
             address="192.0.2.10", user_agent="pytest-agent/1.0")
ADMIN = Actor(kind="user", id="u-admin", role="tenant-admin", session="s-admin")

# A mix of classes, outcomes and tenants, so that every column varies along the chain.
_MIX: tuple[tuple[EventTag, Outcome, str | None], ...] = (
    (EventTag.DATASET_READ, Outcome.SUCCESS, "t-alpha"),
    (EventTag.SESSION_LOGIN, Outcome.SUCCESS, "t-alpha"),
    (EventTag.SESSION_LOGIN_FAILED, Outcome.DENIED, "t-beta"),
    (EventTag.EXPORT_CREATE, Outcome.SUCCESS, "t-beta"),
    (EventTag.DATASET_BUILD, Outcome.FAILURE, "t-alpha"),
    (EventTag.TENANT_CREATE, Outcome.SUCCESS, None),
)


def record_events(
    deployment: Deployment, count: int, per_transaction: int = 25
) -> list[RecordedEvent]:
    """Record ``count`` varied events, ``per_transaction`` to a committed transaction."""
    recorded: list[RecordedEvent] = []
    while len(recorded) < count:
        with deployment.transaction() as session:
            for _ in range(min(per_transaction, count - len(recorded))):
                i = len(recorded)
                tag, outcome, tenant = _MIX[i % len(_MIX)]
                recorded.append(deployment.audit.record_event(
                    session, tag, actor=USER if i % 2 else ADMIN, tenant=tenant,
                    target=f"dataset:ds-{i % 7}", outcome=outcome,
                    reason=None if outcome is Outcome.SUCCESS else "policy-says-no",
                    details={"n": i, "who": Sensitive(f"person{i}@example.org")},
                ))
    return recorded


def verify(deployment: Deployment, checkpoint_file: Path | None = None) -> VerifyReport:
    exported = None
    if checkpoint_file is not None:
        exported = read_exported_checkpoints(
            checkpoint_file.read_text(encoding="utf-8").splitlines()
        )
    with deployment.transaction() as session:
        return verify_log(session, deployment.audit.keys, exported)


def sql(deployment: Deployment, statement: str, **params: Any) -> list[Any]:
    """Run raw SQL in its own committed transaction; return the rows, if any."""
    with deployment.engine.begin() as conn:
        result = conn.execute(sa.text(statement), params)
        return list(result) if result.returns_rows else []


def event_row(deployment: Deployment, seq: int) -> dict[str, Any]:
    rows = sql(deployment, "SELECT * FROM audit_events WHERE seq = :seq", seq=seq)
    assert rows, f"no event {seq}"
    return dict(rows[0]._mapping)


def last_seq(deployment: Deployment) -> int:
    return int(sql(deployment, "SELECT max(seq) FROM audit_events")[0][0])


def is_postgres(deployment: Deployment) -> bool:
    return deployment.engine.dialect.name == "postgresql"


def break_audit_writes(deployment: Deployment) -> None:
    """Make every INSERT into audit_events fail inside the database."""
    if is_postgres(deployment):
        sql(deployment, "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS "
                        "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$")
        sql(deployment, "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events "
                        "FOR EACH ROW EXECUTE FUNCTION refuse_audit()")
    else:
        sql(deployment, "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events "
                        "BEGIN SELECT RAISE(ABORT, 'disk full'); END")


def repair_audit_writes(deployment: Deployment) -> None:
    sql(deployment, "DROP TRIGGER refuse_audit" + (
        " ON audit_events" if is_postgres(deployment) else ""))


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The real ``strongroom`` command from the virtualenv."""
    return subprocess.run(
        [str(STRONGROOM), *map(str, args)],
        capture_output=True, text=True, env=cli_env(), timeout=120, check=False,
    )


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_cli
