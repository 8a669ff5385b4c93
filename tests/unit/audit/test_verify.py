"""`verify`: what it says about intact, tampered, empty and foreign logs, in process and CLI."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from tests.unit.audit.conftest import record_events, sql, verify

from strongroom.audit.errors import InvalidAuditFilter
from strongroom.audit.verify import NotAnAuditLog, read_exported_checkpoints, verify_log
from strongroom.config import Settings
from strongroom.crypto.audit_keys import AuditKeys, new_secret
from strongroom.db import create_db_engine
from strongroom.deployment import Deployment, open_deployment

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def any_keys() -> AuditKeys:
    return AuditKeys(new_secret(), new_secret())


@pytest.fixture
def sqlite_session(tmp_path: Path) -> Iterator[Callable[[Path], Session]]:
    engines: list[sa.Engine] = []

    def open_session(path: Path) -> Session:
        engine = create_db_engine(f"sqlite:///{path}")
        engines.append(engine)
        return Session(engine)

    yield open_session
    for engine in engines:
        engine.dispose()


def test_verify_on_an_empty_sqlite_file_says_so(
    tmp_path: Path, any_keys: AuditKeys, sqlite_session: Callable[[Path], Session]
) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with sqlite_session(path) as session, pytest.raises(NotAnAuditLog) as refused:
        verify_log(session, any_keys)
    assert "holds no Strongroom audit log" in refused.value.detail
    assert refused.value.status == 422


def test_verify_on_a_foreign_database_says_so(
    tmp_path: Path, any_keys: AuditKeys, sqlite_session: Callable[[Path], Session]
) -> None:
    path = tmp_path / "shop.db"
    with sqlite_session(path) as session:
        session.execute(sa.text("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)"))
        session.execute(sa.text("INSERT INTO customers (name) VALUES ('someone')"))
        session.commit()
        with pytest.raises(NotAnAuditLog, match="holds no Strongroom audit log"):
            verify_log(session, any_keys)


def test_verify_without_a_head_record_says_so(deployment: Deployment) -> None:
    sql(deployment, "DELETE FROM audit_head")
    with pytest.raises(NotAnAuditLog, match="no head record"):
        verify(deployment)


def test_verify_reports_what_it_checked(deployment: Deployment) -> None:
    record_events(deployment, 40)
    with deployment.transaction() as session:
        deployment.audit.checkpoint_now(session)

    report = verify(deployment, checkpoint_file=deployment.settings.audit_checkpoint_file)

    assert report.ok
    assert (report.events, report.first_seq, report.last_seq) == (41, 1, 41)
    assert (report.checkpoints, report.exported_checkpoints, report.purged) == (1, 1, 0)
    assert report.summary().startswith("audit log intact: 41 events (sequence 1..41)")


def test_verify_refuses_to_trust_another_deployments_keys(
    deployment: Deployment, any_keys: AuditKeys
) -> None:
    """With the wrong key every seal fails: a log cannot be passed off as another's."""
    with deployment.transaction() as session:
        report = verify_log(session, any_keys)
    assert (report.ok, report.seq) == (False, 1)
    assert "seal" in (report.problem or "")


def test_exported_checkpoints_signed_by_another_deployment_are_refused(
    deployment: Deployment, make_home: Callable[..., Settings]
) -> None:
    other = open_deployment(make_home())
    try:
        with other.transaction() as session:
            other.audit.checkpoint_now(session)
        foreign_file = other.settings.audit_checkpoint_file
        assert foreign_file.exists()
    finally:
        other.close()

    report = verify(deployment, checkpoint_file=foreign_file)

    assert (report.ok, report.seq) == (False, 1)
    assert "another deployment's key" in (report.problem or "")


def test_a_forged_line_in_the_exported_file_is_detected(deployment: Deployment) -> None:
    record_events(deployment, 10)
    with deployment.transaction() as session:
        deployment.audit.checkpoint_now(session)
    path = deployment.settings.audit_checkpoint_file
    point = json.loads(path.read_text().splitlines()[-1])
    point["hash"] = "0" * 64
    path.write_text(json.dumps(point) + "\n")

    report = verify(deployment, checkpoint_file=path)

    assert (report.ok, report.seq) == (False, point["seq"])
    assert "exported checkpoint" in (report.problem or "")


GOOD_POINT = {"seq": 1, "hash": "a", "created_at": "x", "signature": "b", "public_key": "c"}


@pytest.mark.parametrize(
    "bad_line",
    [
        "not json",
        json.dumps([1, 2]),
        json.dumps({k: v for k, v in GOOD_POINT.items() if k != "signature"}),
        json.dumps(GOOD_POINT | {"seq": "10"}),
        json.dumps(GOOD_POINT | {"seq": True}),
        json.dumps(GOOD_POINT | {"signature": 5}),
    ],
)
def test_an_unreadable_checkpoint_file_is_refused_with_its_line_number(bad_line: str) -> None:
    assert read_exported_checkpoints([json.dumps(GOOD_POINT)]) == [GOOD_POINT]
    with pytest.raises(InvalidAuditFilter, match="line 3 is not a checkpoint"):
        read_exported_checkpoints([json.dumps(GOOD_POINT), "", bad_line])


# -- the CLI -------------------------------------------------------------------------------------


def test_cli_verify_exits_0_when_intact_and_1_with_the_sequence_when_tampered(
    deployment: Deployment, cli: CliRunner
) -> None:
    record_events(deployment, 60)
    home = deployment.settings.home

    intact = cli("audit", "verify", "--home", home)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert intact.stdout.startswith("audit log intact: 61 events")

    sql(deployment, "UPDATE audit_events SET reason = 'nothing-to-see' WHERE seq = 37")
    tampered = cli("audit", "verify", "--home", home)

    assert tampered.returncode == 1
    assert "NOT intact at sequence 37:" in tampered.stdout
    assert "modified" in tampered.stdout
    assert "Traceback" not in tampered.stderr


def test_cli_verify_reads_the_exported_checkpoint_file(
    deployment: Deployment, cli: CliRunner
) -> None:
    record_events(deployment, 30)
    home = deployment.settings.home
    assert cli("audit", "checkpoint", "--home", home).returncode == 0
    keep = 20
    sql(deployment, "DELETE FROM audit_events WHERE seq > :keep", keep=keep)
    sql(deployment, "DELETE FROM audit_checkpoints")
    sql(deployment, "UPDATE audit_head SET seq = :keep, hash = (SELECT hash FROM audit_events "
                    "WHERE seq = :keep) WHERE id = 1", keep=keep)

    result = cli("audit", "verify", "--home", home)

    assert result.returncode == 1
    assert f"NOT intact at sequence {keep + 1}:" in result.stdout
    assert "exported checkpoint" in result.stdout


def test_cli_checkpoint_export_writes_every_checkpoint(
    deployment: Deployment, cli: CliRunner, tmp_path: Path
) -> None:
    home = deployment.settings.home
    out = tmp_path / "elsewhere" / "points.jsonl"
    out.parent.mkdir()
    assert cli("audit", "checkpoint", "--home", home).returncode == 0
    record_events(deployment, 5)
    result = cli("audit", "checkpoint", "--export", out, "--home", home)
    assert result.returncode == 0, result.stderr
    assert len(out.read_text().splitlines()) == 2
    assert cli("audit", "verify", "--checkpoints", out, "--home", home).returncode == 0


def test_cli_verify_with_a_missing_checkpoint_file_says_so(
    deployment: Deployment, cli: CliRunner, tmp_path: Path
) -> None:
    result = cli("audit", "verify", "--checkpoints", tmp_path / "nope.jsonl",
                 "--home", deployment.settings.home)
    assert result.returncode == 2
    assert "does not exist" in result.stderr


@pytest.mark.parametrize("content", ["", "foreign"])
def test_cli_verify_on_an_empty_or_foreign_database_says_so(
    make_home: Callable[..., Settings], cli: CliRunner, content: str
) -> None:
    settings = make_home()
    database = settings.home / "strongroom.db"
    for path in settings.home.glob("strongroom.db*"):
        path.unlink()
    database.touch()
    if content == "foreign":
        engine = create_db_engine(f"sqlite:///{database}")
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE orders (id INTEGER PRIMARY KEY)"))
        engine.dispose()

    result = cli("audit", "verify", "--home", settings.home)

    assert result.returncode == 2
    assert "holds no Strongroom audit log" in result.stderr
    assert "Traceback" not in result.stderr
