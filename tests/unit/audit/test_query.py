"""Reading the log: validated filters (422 on bad input), listing, JSON Lines export."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from tests.unit.audit.conftest import STRONGROOM, cli_env, record_events, sql

from strongroom.audit import Actor, EventTag, Outcome, Sensitive
from strongroom.audit import query as audit_query
from strongroom.audit.errors import InvalidAuditFilter
from strongroom.audit.verify import verify_log
from strongroom.deployment import Deployment
from strongroom.tenancy.models import Tenant

ALICE = Actor(kind="user", id="u-alice", role="analyst")
BOB = Actor(kind="user", id="u-bob", role="tenant-admin")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"colour": "red"}, "unknown filter 'colour'"),
        ({"since": "yesterday"}, "since is not an ISO 8601"),
        ({"until": "2026-13-40"}, "until is not an ISO 8601"),
        # Valid ISO 8601, but its UTC form is before year 1: an overflow, not a 500.
        ({"since": "0001-01-01T00:00:00+01:00"}, "since is not an ISO 8601"),
        ({"since": "2026-11-27", "until": "2026-11-26"}, "since is after until"),
        ({"tag": "operator:tenant:explode"}, "tag is not a known event tag"),
        ({"outcome": "maybe"}, "outcome must be success, denied or failure"),
        ({"limit": 0}, "limit must be between 1 and 10000"),
        ({"limit": 10_001}, "limit must be between 1 and 10000"),
        ({"limit": "ten"}, "limit must be a whole number"),
        ({"after_seq": -1}, "after_seq must be between"),
    ],
)
def test_bad_filters_are_refused_with_a_422(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidAuditFilter) as refused:
        audit_query.parse_filter(raw)
    assert refused.value.status == 422
    assert message in refused.value.detail


def test_a_raw_tenant_is_a_programming_error_not_a_silently_dropped_filter() -> None:
    with pytest.raises(TypeError, match="tenant_id"):
        audit_query.parse_filter({"tenant": "acme-retail"})


def test_good_filters_are_parsed() -> None:
    flt = audit_query.parse_filter({
        "since": "2026-11-26T10:00:00Z", "until": "2026-11-26T12:00:00+01:00",
        "tag": "user:dataset:read", "outcome": "denied", "actor": "u-1", "limit": "50",
        "after_seq": "7",
    }, tenant_id="t-1")
    assert flt.since == dt.datetime(2026, 11, 26, 10, tzinfo=dt.UTC)
    assert flt.until == dt.datetime(2026, 11, 26, 11, tzinfo=dt.UTC)
    assert (flt.tag, flt.outcome, flt.actor, flt.limit, flt.after_seq, flt.tenant_id) == (
        EventTag.DATASET_READ, Outcome.DENIED, "u-1", 50, 7, "t-1"
    )


@pytest.fixture
def populated(deployment: Deployment) -> tuple[Deployment, dt.datetime]:
    """Ten events before a moment and five after it, across tenants, actors and outcomes."""
    audit = deployment.audit
    with deployment.transaction() as session:
        for i in range(10):
            audit.record_event(
                session, EventTag.DATASET_READ if i % 2 else EventTag.EXPORT_CREATE,
                actor=ALICE if i < 6 else BOB, tenant="t-one" if i % 3 else "t-two",
                outcome=Outcome.DENIED if i == 4 else Outcome.SUCCESS,
                details={"i": i, "value": Sensitive(f"v{i}")},
            )
    moment = dt.datetime.now(dt.UTC)
    with deployment.transaction() as session:
        for i in range(5):
            audit.record_event(session, EventTag.SESSION_LOGIN, actor=BOB, tenant="t-two",
                               details={"i": 10 + i})
    return deployment, moment


def listed(deployment: Deployment, raw: dict[str, Any], tenant_id: str | None = None) -> list[int]:
    with deployment.transaction() as session:
        flt = audit_query.parse_filter(raw, tenant_id)
        return [e.seq for e in audit_query.list_events(session, flt)]


def test_list_filters_select_the_right_events(
    populated: tuple[Deployment, dt.datetime],
) -> None:
    dep, moment = populated
    # seq 1 is init; recorded events i = 0..14 are seq i + 2.
    assert listed(dep, {}) == list(range(1, 17))
    assert listed(dep, {"since": moment.isoformat()}) == list(range(12, 17))
    assert listed(dep, {"until": moment.isoformat()}) == list(range(1, 12))
    assert listed(dep, {}, tenant_id="t-one") == [i + 2 for i in range(10) if i % 3]
    assert listed(dep, {"actor": "u-alice"}) == [i + 2 for i in range(6)]
    assert listed(dep, {"tag": "user:export:create"}) == [i + 2 for i in range(0, 10, 2)]
    assert listed(dep, {"outcome": "denied"}) == [6]
    assert listed(dep, {"after_seq": 13, "limit": 2}) == [14, 15]
    assert listed(dep, {"actor": "u-bob", "since": moment.isoformat()}, "t-two") == list(
        range(12, 17)
    )
    assert listed(dep, {"actor": "nobody"}) == []


def test_jsonl_records_carry_hash_mac_and_cleaned_details(
    populated: tuple[Deployment, dt.datetime],
) -> None:
    dep, _moment = populated
    with dep.transaction() as session:
        lines = [audit_query.to_jsonl(e) for e in audit_query.iter_events(
            session, audit_query.parse_filter({"tag": "user:dataset:read"}))]
    records = [json.loads(line) for line in lines]
    assert [r["details"]["i"] for r in records] == [1, 3, 5, 7, 9]
    for record in records:
        assert len(record["hash"]) == 64
        assert len(record["mac"]) == 64
        assert set(record["details"]["value"]) == {"hmac"}
        assert record["tag"] == "user:dataset:read"
        assert record["occurred_at"].endswith("Z")


def test_iter_events_can_stop_early_without_leaving_a_cursor(
    populated: tuple[Deployment, dt.datetime],
) -> None:
    dep, _moment = populated
    with dep.transaction() as session:
        events = audit_query.iter_events(session, audit_query.parse_filter({}))
        assert next(events).seq == 1
        events.close()
        assert verify_log(session, dep.audit.keys).ok


@pytest.fixture
def tenant_events(
    deployment: Deployment, make_tenant: Callable[[str], Tenant]
) -> tuple[Deployment, Tenant]:
    tenant = make_tenant("acme-retail")
    with deployment.transaction() as session:
        for i in range(3):
            deployment.audit.record_event(session, EventTag.DATASET_BUILD, actor=ALICE,
                                          tenant=tenant.id, details={"i": i})
        deployment.audit.record_event(session, EventTag.DATASET_BUILD, actor=ALICE,
                                      tenant="someone-else")
    return deployment, tenant


def test_cli_export_jsonl_lines_parse_and_carry_hash_and_mac(
    tenant_events: tuple[Deployment, Tenant],
    cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    dep, tenant = tenant_events
    result = cli("audit", "export", "--format", "jsonl", "--tenant", "acme-retail",
                 "--home", dep.settings.home)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["details"]["i"] for r in records] == [0, 1, 2]
    assert all(r["tenant_id"] == tenant.id and len(r["hash"]) == len(r["mac"]) == 64
               for r in records)
    # The export itself is on the record, and the log still verifies.
    with dep.transaction() as session:
        last = audit_query.list_events(session, audit_query.parse_filter({"after_seq": 5}))
        assert [e.tag for e in last] == [EventTag.AUDIT_EXPORT.value]
        assert verify_log(session, dep.audit.keys).ok


def test_cli_export_to_a_file(
    tenant_events: tuple[Deployment, Tenant],
    cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    dep, _tenant = tenant_events
    out = dep.settings.home / "export.jsonl"
    result = cli("audit", "export", "-o", out, "--tag", "user:dataset:build",
                 "--home", dep.settings.home)
    assert result.returncode == 0, result.stderr
    assert len([json.loads(line) for line in out.read_text().splitlines()]) == 4


def test_cli_list_json_and_table(
    tenant_events: tuple[Deployment, Tenant],
    cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    dep, _tenant = tenant_events
    as_json = cli("audit", "list", "--json", "--tenant", "acme-retail", "--limit", "2",
                  "--home", dep.settings.home)
    assert as_json.returncode == 0, as_json.stderr
    assert [json.loads(line)["details"]["i"] for line in as_json.stdout.splitlines()] == [0, 1]
    table = cli("audit", "list", "--outcome", "success", "--home", dep.settings.home)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split()[:4] == ["SEQ", "TIME", "TAG", "OUTCOME"]
    assert "user:dataset:build" in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "yesterday"), "not an ISO 8601"),
        (("--tag", "user:dataset:explode"), "not a known event tag"),
        (("--outcome", "maybe"), "success, denied or failure"),
        (("--limit", "0"), "between 1 and 10000"),
    ],
)
def test_cli_list_refuses_bad_filters_plainly(
    deployment: Deployment,
    cli: Callable[..., subprocess.CompletedProcess[str]],
    args: tuple[str, ...],
    message: str,
) -> None:
    result = cli("audit", "list", *args, "--home", deployment.settings.home)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_export_is_on_the_record_before_any_event_leaves(deployment: Deployment) -> None:
    """A reader that takes one line and hangs up still left a committed export event."""
    record_events(deployment, 400)  # far more than a pipe buffer holds
    process = subprocess.Popen(
        [str(STRONGROOM), "audit", "export", "--home", str(deployment.settings.home)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=cli_env(),
    )
    assert process.stdout is not None
    first = json.loads(process.stdout.readline())
    process.stdout.close()
    assert process.wait(timeout=120) != 0  # it could not finish: the reader went away
    assert first["seq"] == 1
    exports = sql(deployment, "SELECT count(*) FROM audit_events WHERE tag = :tag",
                  tag=EventTag.AUDIT_EXPORT.value)
    assert exports == [(1,)]
