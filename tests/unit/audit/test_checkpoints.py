"""Signed checkpoints of the chain head: made every N events, exported only once committed."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from tests.unit.audit.conftest import sql, verify

from strongroom.audit import Actor, EventTag
from strongroom.config import Settings
from strongroom.deployment import Deployment, open_deployment

EVERY = 10


class Abort(Exception):
    """Raised to roll a transaction back."""


@pytest.fixture
def small_checkpoints(make_home: Callable[..., Settings], db_url: str) -> Iterator[Deployment]:
    """A deployment that checkpoints every ten events."""
    opened = open_deployment(make_home(database_url=db_url, audit_checkpoint_every_events=EVERY))
    yield opened
    opened.close()


def exported_seqs(deployment: Deployment) -> list[int]:
    path = deployment.settings.audit_checkpoint_file
    if not path.exists():
        return []
    return [json.loads(line)["seq"] for line in path.read_text().splitlines()]


def stored_seqs(deployment: Deployment) -> list[int]:
    return [r[0] for r in sql(deployment, "SELECT seq FROM audit_checkpoints ORDER BY seq")]


def record_one(deployment: Deployment) -> int:
    with deployment.transaction() as session:
        return deployment.audit.record_event(session, EventTag.AUDIT_READ,
                                             actor=Actor.system()).seq


def record_then_abort(
    deployment: Deployment,
    transaction: AbstractContextManager[object],
    count: int,
    session: Session | None = None,
) -> None:
    with transaction as begun:
        target = session or begun
        assert isinstance(target, Session)
        for _ in range(count):
            deployment.audit.record_event(target, EventTag.AUDIT_READ, actor=Actor.system())
        raise Abort


def test_a_checkpoint_every_n_events_stored_and_exported(small_checkpoints: Deployment) -> None:
    dep = small_checkpoints
    for _ in range(34):  # seq 2..35, each committed on its own
        record_one(dep)

    assert stored_seqs(dep) == [10, 20, 30]
    assert exported_seqs(dep) == [10, 20, 30]
    report = verify(dep, checkpoint_file=dep.settings.audit_checkpoint_file)
    assert report.ok, report.summary()
    assert (report.checkpoints, report.exported_checkpoints) == (3, 3)


def test_several_checkpoints_in_one_transaction_are_exported_at_its_commit(
    small_checkpoints: Deployment,
) -> None:
    dep = small_checkpoints
    with dep.transaction() as session:
        for _ in range(25):
            dep.audit.record_event(session, EventTag.AUDIT_READ, actor=Actor.system())
        assert exported_seqs(dep) == []  # nothing leaves before the commit
    assert exported_seqs(dep) == stored_seqs(dep) == [10, 20]


def test_a_rolled_back_transaction_does_not_append(small_checkpoints: Deployment) -> None:
    dep = small_checkpoints
    with pytest.raises(Abort):
        record_then_abort(dep, dep.transaction(), 15)

    assert exported_seqs(dep) == stored_seqs(dep) == []
    for _ in range(9):
        record_one(dep)
    assert exported_seqs(dep) == stored_seqs(dep) == [10]
    assert verify(dep, checkpoint_file=dep.settings.audit_checkpoint_file).ok


def test_a_reused_session_does_not_export_a_rolled_back_checkpoint_later(
    small_checkpoints: Deployment,
) -> None:
    dep = small_checkpoints
    with dep.sessions() as session:
        with pytest.raises(Abort):
            record_then_abort(dep, session.begin(), 12, session)
        with session.begin():  # seq 2: no checkpoint due
            dep.audit.record_event(session, EventTag.AUDIT_READ, actor=Actor.system())

    assert exported_seqs(dep) == stored_seqs(dep) == []
    assert verify(dep).ok


def test_a_rolled_back_savepoint_does_not_export_its_checkpoint(
    small_checkpoints: Deployment,
) -> None:
    dep = small_checkpoints
    with dep.transaction() as session:
        dep.audit.record_event(session, EventTag.AUDIT_READ, actor=Actor.system())
        savepoint = session.begin_nested()
        for _ in range(12):
            dep.audit.record_event(session, EventTag.AUDIT_READ, actor=Actor.system())
        savepoint.rollback()
        dep.audit.record_event(session, EventTag.AUDIT_READ, actor=Actor.system())

    assert exported_seqs(dep) == stored_seqs(dep) == []
    assert sql(dep, "SELECT max(seq) FROM audit_events") == [(3,)]
    assert verify(dep).ok


def test_a_quiet_hour_triggers_a_checkpoint(deployment: Deployment) -> None:
    """The time rule: an hour after the last checkpoint, the next event checkpoints."""
    record_one(deployment)
    assert stored_seqs(deployment) == []
    sql(deployment, "UPDATE audit_head SET checkpoint_at = :at",
        at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=61))
    restarted = open_deployment(deployment.settings)
    try:
        seq = record_one(restarted)
    finally:
        restarted.close()
    assert stored_seqs(deployment) == [seq]
    assert exported_seqs(deployment) == [seq]


def test_checkpoint_now_does_not_repeat_itself(deployment: Deployment) -> None:
    with deployment.transaction() as session:
        first = deployment.audit.checkpoint_now(session)
    with deployment.transaction() as session:
        again = deployment.audit.checkpoint_now(session)
    assert first is not None
    assert again is not None
    assert (first.seq, first.hash) == (again.seq, again.hash)
    assert stored_seqs(deployment) == [1]
    assert exported_seqs(deployment) == [1]


def test_an_unwritable_export_file_does_not_undo_or_fail_the_committed_events(
    make_home: Callable[..., Settings], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    dep = open_deployment(make_home(audit_checkpoint_every_events=EVERY,
                                    audit_checkpoint_file=str(blocker / "points.jsonl")))
    try:
        with caplog.at_level(logging.ERROR, logger="strongroom.audit"):
            for _ in range(9):
                record_one(dep)
        assert stored_seqs(dep) == [10]
        assert "could not export an audit checkpoint" in caplog.text
        assert verify(dep).ok
    finally:
        dep.close()
