"""Exports over HTTPS: create, download once, limits and quota, refusals as problems."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from typing import Any

import pyarrow.parquet as pq
import pytest

from strongroom.identity.models import Role
from tests.functional.analysis_api.helpers import As, refused
from tests.functional.identity.support import World
from tests.functional.support import RunningServer

COLUMNS = [{"name": "id"}, {"name": "region"},
           {"name": "email", "transform": {"kind": "pseudonym"}}]


def object_files(world: World) -> int:
    root = world.deployment.settings.objects_dir / "tenants"
    return sum(1 for path in root.rglob("*") if path.is_file())


@pytest.fixture
def analyst(world: World, server: RunningServer) -> As:
    """A fresh analyst of alpha: nothing exported yet, so user limits start from zero."""
    account = world.add_user("alpha", Role.ANALYST)
    user = As(world, server, "alpha", Role.ANALYST)
    user.account = account
    return user


@pytest.fixture
def admin(world: World, server: RunningServer) -> Iterator[As]:
    user = As(world, server, "alpha", Role.ADMIN)
    yield user
    user.ok("PUT", "/api/v1/export-limits", {})  # back to the caps for the next test


def create(user: As, **body: Any) -> dict[str, Any]:
    return dict(user.ok("POST", "/api/v1/exports",
                        {"dataset": "customers", "columns": COLUMNS} | body, status=201))


def test_an_export_is_created_and_downloaded_once(analyst: As, world: World) -> None:
    made = create(analyst, selection={"field": "region", "op": "eq", "value": "south"})
    assert (made["status"], made["rows"], made["format"]) == ("ready", 3, "csv")
    assert made["download_url"].startswith(f"/api/v1/exports/{made['id']}/download?key=")
    response = analyst.request("GET", made["download_url"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == (
        f'attachment; filename="export-{made["id"]}.csv"')
    assert hashlib.sha256(response.content).hexdigest() == made["sha256"]
    assert len(response.content) == made["bytes"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["id"] for r in rows] == ["3", "4", "9"]
    assert all(r["email"].startswith("p1_") for r in rows)
    again = analyst.request("GET", made["download_url"])
    assert "used" in refused(again, 410, "export-link-used")
    shown = analyst.ok("GET", f"/api/v1/exports/{made['id']}")
    assert (shown["status"], shown["download_url"]) == ("downloaded", None)
    assert shown["downloaded_at"] is not None
    assert made["id"] in [e["id"] for e in analyst.ok("GET", "/api/v1/exports")]


def test_a_parquet_export_downloads_as_parquet(analyst: As) -> None:
    made = create(analyst, format="parquet")
    response = analyst.request("GET", made["download_url"])
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    assert pq.read_table(io.BytesIO(response.content)).num_rows == 10


def test_another_users_export_is_the_same_404_as_a_missing_one(
    analyst: As, world: World, server: RunningServer
) -> None:
    made = create(analyst)
    other = As(world, server, "alpha", Role.ADMIN)
    key = made["download_url"].split("key=")[1]
    foreign = other.request("GET", f"/api/v1/exports/{made['id']}/download", key=key)
    missing = other.request("GET", f"/api/v1/exports/{'0' * 32}/download", key=key)
    assert refused(foreign, 404, "export-not-found") == refused(missing, 404, "export-not-found")
    assert refused(other.request("GET", f"/api/v1/exports/{made['id']}"), 404,
                   "export-not-found")
    # The owner's link still works: the attempts above did not use it.
    assert analyst.request("GET", made["download_url"]).status_code == 200


def test_bad_requests_are_problems_and_leave_no_file(analyst: As, world: World) -> None:
    before = object_files(world)
    cases = [
        ({"columns": [{"name": "nosuch"}]}, 422, "transform-invalid"),
        ({"columns": [{"name": "id", "transform": {"kind": "shred"}}]}, 422, "invalid-input"),
        ({"columns": [{"name": "age", "transform": {"kind": "mask"}}]}, 422,
         "transform-invalid"),
        ({"anonymous": {"quasi_identifiers": ["region"], "k": 1}}, 422, "export-invalid"),
        ({"columns": [{"name": "email"}]}, 403, "personal-data"),
        ({"selection": {"field": "joined", "op": "gt", "value": 3}}, 422, "invalid-selection"),
        ({"dataset": "nosuch"}, 404, "not-found"),
    ]
    for change, status, slug in cases:
        body = {"dataset": "customers", "columns": COLUMNS} | change
        response = analyst.post("/api/v1/exports", body)
        assert response.status_code == status, (change, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/" + slug), (change, response.text)
    assert object_files(world) == before


def test_limits_above_the_cap_are_refused_and_within_apply(admin: As, analyst: As) -> None:
    limits = admin.ok("GET", "/api/v1/export-limits")
    cap = limits["caps"]["rows_per_hour"]
    too_high = admin.request("PUT", "/api/v1/export-limits",
                             {"user": {"rows_per_hour": cap + 1}})
    assert "cap" in refused(too_high, 422, "export-limit-above-cap")
    changed = admin.ok("PUT", "/api/v1/export-limits",
                       {"tenant": {"rows_per_day": 5000}, "user": {"rows_per_hour": 12}})
    assert changed["user"]["rows_per_hour"] == 12
    assert changed["effective"]["user"]["rows_per_day"] == 5000
    quota = analyst.ok("GET", "/api/v1/quota")
    assert quota["user"]["hour"]["rows"] == {"limit": 12, "used": 0, "remaining": 12}
    refused(analyst.request("PUT", "/api/v1/export-limits", {}), 403, "permission-denied")


def test_over_a_limit_is_429_with_retry_after_and_what_remains(
    admin: As, analyst: As
) -> None:
    admin.ok("PUT", "/api/v1/export-limits", {"user": {"rows_per_hour": 12}})
    create(analyst)  # 10 rows
    response = analyst.post("/api/v1/exports", {"dataset": "customers", "columns": COLUMNS})
    refused(response, 429, "export-quota-exceeded")
    retry = int(response.headers["retry-after"])
    assert 3500 < retry <= 3600
    body = response.json()
    assert body["exceeded"] == [{"scope": "user", "window": "hour", "measure": "rows",
                                 "limit": 12, "used": 10, "requested": 10}]
    assert body["remaining"]["user"]["hour"]["rows"]["remaining"] == 2
    assert analyst.ok("GET", "/api/v1/quota")["refusals_last_hour"] == 1
    # Two of them fit; a second refusal raises the alert (export_refusal_alert_count = 2).
    assert create(analyst, selection={"field": "id", "op": "in", "value": [1, 2]})["rows"] == 2
    refused(analyst.post("/api/v1/exports", {"dataset": "customers", "columns": COLUMNS}),
            429, "export-quota-exceeded")
    events = admin.ok("GET", "/api/v1/audit/events", limit=1000)["events"]
    alerts = [e for e in events if e["tag"] == "system:alert:raise"
              and e["target"] == f"user:{analyst.account.user_id}"]
    assert [a["reason"] for a in alerts] == ["export-velocity-refusals"]


def test_viewers_may_not_export_nor_see_a_quota(world: World, server: RunningServer) -> None:
    viewer = As(world, server, "alpha", Role.VIEWER)
    refused(viewer.post("/api/v1/exports", {"dataset": "customers", "columns": COLUMNS}),
            403, "permission-denied")
    refused(viewer.request("GET", "/api/v1/quota"), 403, "permission-denied")


def test_an_export_and_its_download_are_recorded_as_usage_without_content(
    analyst: As, world: World
) -> None:
    import sqlalchemy as sa

    from strongroom.telemetry.models import UsageEvent
    from strongroom.telemetry.services import user_pseudonym

    made = create(analyst, selection={"field": "region", "op": "eq", "value": "south"})
    assert analyst.request("GET", made["download_url"]).status_code == 200
    dep = world.deployment
    with dep.transaction() as session:
        subject = user_pseudonym(dep.keys.telemetry_key(session), analyst.account.user_id)
        events = {e.feature: e for e in session.scalars(
            sa.select(UsageEvent).where(UsageEvent.subject == subject))}
    assert set(events) == {"export.create", "export.download"}
    assert events["export.create"].rows == made["rows"]
    assert events["export.download"].user_id is None  # not an insider: pseudonym only
