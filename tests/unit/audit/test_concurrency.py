"""Several writers, one chain: sequence numbers stay gapless and the chain verifies.

A trail moves the head from the one it wrote last; when another writer (another
process, or another thread) moved it in between, that guess fails and the head is
claimed afresh. These tests make both happen for real.
"""

from __future__ import annotations

import threading

from tests.unit.audit.conftest import record_events, sql, verify

from strongroom.audit import Actor, EventTag
from strongroom.deployment import Deployment, open_deployment


def test_each_call_appends_exactly_one_event(deployment: Deployment) -> None:
    """Whichever way the head moves (guessed or claimed), one call writes one row."""
    seqs = []
    for _ in range(5):
        with deployment.transaction() as session:
            for _ in range(3):
                seqs.append(deployment.audit.record_event(
                    session, EventTag.AUDIT_READ, actor=Actor.system()).seq)
    assert seqs == list(range(2, 17))
    assert sql(deployment, "SELECT count(*), max(seq) FROM audit_events") == [(16, 16)]


def test_two_processes_worth_of_trails_interleave_into_one_chain(deployment: Deployment) -> None:
    other = open_deployment(deployment.settings)  # its own engine and trail, as another process
    try:
        for round_ in range(10):
            for dep in (deployment, other, other, deployment):
                with dep.transaction() as session:
                    dep.audit.record_event(session, EventTag.DATASET_READ, actor=Actor.system(),
                                           details={"round": round_})
    finally:
        other.close()

    assert [r[0] for r in sql(deployment, "SELECT seq FROM audit_events ORDER BY seq")] == list(
        range(1, 42)
    )
    report = verify(deployment)
    assert report.ok, report.summary()


def test_a_trail_recovers_after_its_own_rolled_back_event(deployment: Deployment) -> None:
    class Abort(Exception):
        pass

    record_events(deployment, 3)
    try:
        with deployment.transaction() as session:
            deployment.audit.record_event(session, EventTag.AUDIT_READ, actor=Actor.system())
            raise Abort  # noqa: TRY301
    except Abort:
        pass
    record_events(deployment, 3)

    report = verify(deployment)
    assert report.ok, report.summary()
    assert report.last_seq == 7


def test_threads_sharing_one_trail_keep_the_chain_whole(deployment: Deployment) -> None:
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            for i in range(25):
                with deployment.transaction() as session:
                    deployment.audit.record_event(
                        session, EventTag.DATASET_READ, actor=Actor.system(),
                        details={"writer": number, "i": i},
                    )
        except BaseException as exc:  # noqa: BLE001 - reported below, with the thread's number
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    report = verify(deployment)
    assert report.ok, report.summary()
    assert report.events == 101
