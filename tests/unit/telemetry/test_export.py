"""The operator's export: no identifier of a user who has not opted in, in it or at rest."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.unit.telemetry.conftest import People

from strongroom.audit import Actor
from strongroom.deployment import Deployment
from strongroom.errors import InvalidInput
from strongroom.identity.models import User
from strongroom.telemetry import Subject, UsageFeature, record_usage, set_insider
from strongroom.telemetry.export import (
    FIELDS,
    ExportFormat,
    iter_records,
    parse_since,
    render,
    summarise,
)
from strongroom.telemetry.models import UsageEvent


def _use(deployment: Deployment, user: User, feature: UsageFeature) -> None:
    with deployment.transaction() as session:
        record_usage(session, deployment, Subject(user.id, user.tenant_id), feature,
                     duration_ms=87, rows=31_415, bytes=2_718_281)


def _exported(deployment: Deployment, export_format: ExportFormat = ExportFormat.JSONL,
              since: dt.datetime | None = None) -> str:
    with deployment.transaction() as session:
        key = deployment.keys.telemetry_key(session)
        return "".join(render(iter_records(session, key, since), export_format))


def _scenario(deployment: Deployment, people: People) -> None:
    _use(deployment, people.alice, UsageFeature.LOGIN)
    _use(deployment, people.bob, UsageFeature.LOGIN)
    with deployment.transaction() as session:
        bob = session.get_one(User, people.bob.id)
        set_insider(session, deployment, Actor("user", bob.id, "analyst"), bob, True)
    _use(deployment, people.alice, UsageFeature.ANALYSIS_CUBE)
    _use(deployment, people.bob, UsageFeature.EXPORT_CREATE)


def test_the_export_names_insiders_by_id_and_no_one_else(
    deployment: Deployment, people: People
) -> None:
    _scenario(deployment, people)
    text = _exported(deployment)
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["feature"] for line in lines] == [
        "login", "login", "analysis.cube", "export.create"]
    assert set(lines[0]) == set(FIELDS)
    # Alice never opted in: no id, email, tenant id or slug of hers anywhere in the file.
    for canary in (people.alice.id, people.alice_email, people.tenant.id, people.tenant.slug,
                   people.bob_email, "acme.example"):
        assert canary not in text
    alice = [line for line in lines if line["feature"] in ("analysis.cube",)]
    assert alice[0]["insider"] is False
    assert lines[0]["user"] == alice[0]["user"]  # stable pseudonym
    # Bob opted in after his login: the login stays pseudonymous, the export names him.
    assert lines[1]["insider"] is False
    assert lines[1]["user"] != people.bob.id
    assert (lines[3]["user"], lines[3]["insider"]) == (people.bob.id, True)
    # An insider's line carries the id instead of the pseudonym, never both, so the
    # file cannot link his earlier pseudonymous events to him.
    assert lines[1]["user"] not in text.splitlines()[3]
    assert lines[0]["tenant"] == lines[3]["tenant"] != people.tenant.id
    assert (lines[0]["rows"], lines[0]["bytes"], lines[0]["duration_ms"]) == (
        31_000, 2_700_000, 87)
    assert lines[0]["hour"].endswith(":00:00Z")


def test_the_csv_export_has_a_header_and_the_same_records(
    deployment: Deployment, people: People
) -> None:
    _scenario(deployment, people)
    rows = list(csv.DictReader(io.StringIO(_exported(deployment, ExportFormat.CSV))))
    assert len(rows) == 4
    assert tuple(rows[0]) == FIELDS
    assert rows[3]["user"] == people.bob.id
    assert people.alice.id not in {row["user"] for row in rows}


def test_an_empty_export_is_empty(deployment: Deployment) -> None:
    assert _exported(deployment) == ""
    assert _exported(deployment, ExportFormat.CSV) == ",".join(FIELDS) + "\n"


def test_since_keeps_later_events_only(deployment: Deployment, people: People) -> None:
    _scenario(deployment, people)
    with deployment.transaction() as session:
        session.execute(sa.update(UsageEvent).where(UsageEvent.feature == "login").values(
            occurred_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))
    later = [json.loads(line) for line in _exported(
        deployment, since=parse_since("2021-01-01")).splitlines()]
    assert [line["feature"] for line in later] == ["analysis.cube", "export.create"]
    with deployment.transaction() as session:
        summary = summarise(session)
        recent = summarise(session, parse_since("2021-01-01"))
    assert summary.events == 4
    assert summary.users == 2
    assert summary.insiders == 1
    assert summary.by_feature == {"analysis.cube": 1, "export.create": 1, "login": 2}
    assert recent.events == 2
    assert summary.first == dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def test_stored_events_hold_no_identifier_of_a_user_not_opted_in(
    deployment: Deployment, people: People
) -> None:
    _scenario(deployment, people)
    with deployment.engine.connect() as conn:
        stored = repr(conn.execute(sa.text("SELECT * FROM telemetry_events")).all())
    assert people.alice.id not in stored
    assert people.alice_email not in stored
    assert people.bob.id in stored  # the insider, after joining
    if deployment.settings.database_url:
        return  # PostgreSQL: its files are not ours to scan; the rows above are the check
    # SQLite: not one byte of the database (or its journal) holds either email in clear.
    deployment.close()
    home = deployment.settings.home
    for path in Path(home).glob("strongroom.db*"):
        data = path.read_bytes()
        for email in (people.alice_email, people.bob_email):
            assert email.encode() not in data, path


@pytest.mark.parametrize("raw", ["yesterday", "2026-13-01", "", "1 Nov 2026"])
def test_a_bad_since_is_refused_clearly(raw: str) -> None:
    with pytest.raises(InvalidInput, match="--since must be a date"):
        parse_since(raw)


def test_since_accepts_dates_and_times() -> None:
    assert parse_since(None) is None
    assert parse_since("2026-11-01") == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert parse_since("2026-11-01T09:30:00+01:00") == dt.datetime(
        2026, 11, 1, 8, 30, tzinfo=dt.UTC)
