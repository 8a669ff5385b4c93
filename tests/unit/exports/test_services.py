"""Exports end to end: content and transforms, downloads once, bad input, purge, audit."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from collections.abc import Callable
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from tests.unit.exports.conftest import NOW

from strongroom.analysis.errors import InvalidSelection, PersonalDataRefused
from strongroom.audit import Actor, EventTag
from strongroom.audit.models import AuditEvent
from strongroom.datasets.errors import DatasetNotFound
from strongroom.deployment import Deployment
from strongroom.exports.download import start_download
from strongroom.exports.errors import BadExportRequest, ExportNotFound, LinkExpired, LinkUsed
from strongroom.exports.models import Export, ExportFormat, ExportUsage
from strongroom.exports.services import AnonymousSpec, CreatedExport, purge_exports
from strongroom.identity import services as identity
from strongroom.privacy.errors import AnonymityRefused, TransformInvalid
from strongroom.storage.models import StoredObject
from strongroom.tenancy.models import Tenant

TRANSFORMED = [
    {"name": "id", "transform": {"kind": "pseudonym"}},
    {"name": "email", "transform": {"kind": "generalise", "to": "email_domain"}},
    {"name": "region", "transform": {"kind": "mask", "keep_first": 1, "keep_last": 0}},
    {"name": "age", "transform": {"kind": "generalise", "band": 10}},
    {"name": "spend", "transform": {"kind": "drop"}},
    {"name": "joined", "transform": {"kind": "generalise", "to": "year"}},
]


def download(deployment: Deployment, tenant: Tenant, created: CreatedExport,
             user: str = "analyst-1", now: dt.datetime = NOW) -> bytes:
    started = start_download(deployment, tenant.id, user, Actor(kind="user", id=user),
                             created.export.id, created.download_key, now=now)
    return b"".join(started.chunks)


def rows_of(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def counts(deployment: Deployment) -> tuple[int, int, int, int]:
    """Objects in the store (rows and files), export rows and usage rows."""
    files = sum(1 for p in (deployment.settings.objects_dir / "tenants").rglob("*") if p.is_file())
    with deployment.transaction() as session:
        def n(model: type[Any]) -> int:
            return int(session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)
        return n(StoredObject), files, n(Export), n(ExportUsage)


def events(deployment: Deployment, tag: EventTag) -> list[dict[str, Any]]:
    with deployment.transaction() as session:
        return [json.loads(e.details) | {"_target": e.target, "_outcome": e.outcome}
                for e in session.scalars(sa.select(AuditEvent).where(AuditEvent.tag == tag.value)
                                         .order_by(AuditEvent.seq))]


def test_a_csv_export_holds_the_selected_rows_and_columns(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    created = export(columns=[{"name": "id"}, {"name": "region"}],
                     selection={"field": "region", "op": "eq", "value": "north"})
    data = download(deployment, tenant, created)
    assert rows_of(data) == [{"id": str(i), "region": "north"} for i in (1, 2, 6, 7, 8)]
    assert created.export.rows == 5
    assert created.export.size == len(data)
    assert created.export.sha256 == hashlib.sha256(data).hexdigest()
    assert created.download_url == (
        f"/api/v1/exports/{created.export.id}/download?key={created.download_key}")
    assert len(created.download_key) >= 43  # 256 bits, URL-safe base64


def test_transforms_are_applied_and_pseudonyms_are_stable_within_the_tenant(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    first = rows_of(download(deployment, tenant, export(columns=TRANSFORMED)))
    again = rows_of(download(deployment, tenant, export(columns=TRANSFORMED)))
    assert first == again
    assert list(first[0]) == ["id", "email", "region", "age", "joined"]
    row = next(r for r in first if r["age"] == "30-39" and r["joined"] == "2024")
    assert row["id"].startswith("p1_")
    assert row["email"] == "example.org"
    assert row["region"] in {"n****", "s****"}
    assert len({r["id"] for r in first}) == 10
    for value in ("ann@example.org", "north", "120.5"):
        assert all(value not in r.values() for r in first)


def test_a_parquet_export_round_trips(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    created = export(fmt=ExportFormat.PARQUET, columns=[{"name": "id"}, {"name": "spend"}])
    data = download(deployment, tenant, created)
    table = pq.read_table(io.BytesIO(data))
    assert table.column_names == ["id", "spend"]
    assert sorted(table.column("id").to_pylist()) == list(range(1, 11))
    assert created.export.sha256 == hashlib.sha256(data).hexdigest()


def test_a_saved_selection_can_be_exported(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    from strongroom.analysis import saved
    from strongroom.analysis.service import resolve_datasets

    with deployment.transaction() as session:
        resolved = resolve_datasets(session, deployment, tenant)
        selection_id = saved.create_selection(
            session, deployment, tenant, Actor.system(), name="south", dataset="customers",
            selection={"field": "region", "op": "eq", "value": "south"},
            schema=resolved.schema, today=NOW.date()).id
    created = export(selection_id=selection_id, columns=[{"name": "id"}])
    assert [r["id"] for r in rows_of(download(deployment, tenant, created))] == ["3", "4", "9"]
    [event] = events(deployment, EventTag.EXPORT_CREATE)
    assert (event["selection_id"], event["selection_version"]) == (selection_id, 1)
    with pytest.raises(BadExportRequest):
        export(selection_id=selection_id, selection={"field": "id", "op": "eq", "value": 1})


def test_the_audit_event_holds_sha256_rows_and_transforms_but_no_values(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    created = export(columns=TRANSFORMED,
                     selection={"field": "email", "op": "eq", "value": "ann@example.org"})
    data = download(deployment, tenant, created)
    [event] = events(deployment, EventTag.EXPORT_CREATE)
    assert event["sha256"] == hashlib.sha256(data).hexdigest()
    assert (event["rows"], event["bytes"]) == (1, len(data))
    assert {t["column"]: t["kind"] for t in event["transforms"]} == {
        "id": "pseudonym", "email": "generalise", "region": "mask", "age": "generalise",
        "spend": "drop", "joined": "generalise"}
    assert event["_target"] == f"export:{created.export.id}"
    assert "ann@example.org" not in json.dumps(event)
    assert set(event["selection"]) == {"hmac"}
    [fetched] = events(deployment, EventTag.EXPORT_DOWNLOAD)
    assert fetched["sha256"] == event["sha256"]


def test_an_anonymous_export_suppresses_small_classes_and_reports_it(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    with deployment.transaction() as session:
        identity.tenant_policy(session, tenant.id).min_cell_count = 3
    columns = [{"name": "region"}, {"name": "spend", "transform": {"kind": "drop"}}]
    # north has 5 rows and south 3: classes of at least k = 3 (the tenant minimum).
    created = export(columns=columns, anonymous=AnonymousSpec(["region"]),
                     selection={"field": "region", "op": "in", "value": ["north", "south"]})
    report = json.loads(created.export.anonymity or "{}")
    assert (report["k"], report["rows_in"], report["rows_suppressed"]) == (3, 8, 0)
    # With east (1 row) and the row without a region, 2 of 10 would go: over the 5% bound.
    with pytest.raises(AnonymityRefused):
        export(columns=columns, anonymous=AnonymousSpec(["region"], k=3))
    with pytest.raises(BadExportRequest, match="at least 2"):
        export(columns=columns, anonymous=AnonymousSpec(["region"], k=1))
    with pytest.raises(BadExportRequest, match="minimum of 3"):
        export(columns=columns, anonymous=AnonymousSpec(["region"], k=2))
    [event] = events(deployment, EventTag.EXPORT_CREATE)
    assert event["anonymity"] == report


def test_a_download_works_once(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    created = export()
    assert download(deployment, tenant, created)
    with pytest.raises(LinkUsed) as used:
        download(deployment, tenant, created)
    assert used.value.status == 410
    with deployment.transaction() as session:
        assert session.get_one(Export, created.export.id).status_at(NOW).value == "downloaded"


def test_a_download_by_another_user_or_with_a_wrong_key_is_not_found(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    created = export()
    with pytest.raises(ExportNotFound) as other:
        download(deployment, tenant, created, user="analyst-2")
    assert other.value.status == 404
    wrong = CreatedExport(created.export, created.download_key[:-2] + "xx")
    with pytest.raises(ExportNotFound):
        download(deployment, tenant, wrong)
    assert download(deployment, tenant, created)  # neither used the link


def test_an_expired_link_is_gone(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    created = export()
    hours = deployment.settings.export_link_hours
    assert created.export.expires_at == NOW + dt.timedelta(hours=hours)
    with pytest.raises(LinkExpired) as expired:
        download(deployment, tenant, created, now=NOW + dt.timedelta(hours=hours))
    assert expired.value.status == 410


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"columns": [{"name": "nosuch"}]}, TransformInvalid),
        ({"columns": [{"name": "id", "transform": {"kind": "shred"}}]}, TransformInvalid),
        ({"columns": [{"name": "age", "transform": {"kind": "mask", "keep_first": 1}}]},
         TransformInvalid),
        ({"columns": [{"name": "joined", "transform": {"kind": "generalise", "band": 5}}]},
         TransformInvalid),
        ({"columns": []}, BadExportRequest),
        ({"anonymous": AnonymousSpec(["region"], k=1)}, BadExportRequest),
        ({"anonymous": AnonymousSpec(["nosuch"])}, BadExportRequest),
        ({"selection": {"field": "nosuch", "op": "eq", "value": 1}}, InvalidSelection),
        ({"selection": {"field": "joined", "op": "gt", "value": 5}}, InvalidSelection),
        ({"dataset": "nosuch"}, DatasetNotFound),
    ],
    ids=["unknown-column", "unknown-transform", "mask-on-integer", "band-on-date",
         "no-columns", "k-below-2", "unknown-quasi", "unknown-field", "date-vs-number",
         "unknown-dataset"],
)
def test_bad_input_is_a_clear_4xx_and_leaves_nothing_behind(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport],
    arguments: dict[str, Any], error: type[Exception],
) -> None:
    before = counts(deployment)
    with pytest.raises(error) as refused:
        export(**arguments)
    assert 400 <= refused.value.status < 500  # type: ignore[attr-defined]
    assert counts(deployment) == before


def test_without_personal_access_personal_columns_leave_only_transformed(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    before = counts(deployment)
    with pytest.raises(PersonalDataRefused):
        export(personal=False, columns=[{"name": "id"}, {"name": "email"}])
    with pytest.raises(PersonalDataRefused):
        export(personal=False, columns=[{"name": "id"}],
               selection={"field": "email", "op": "eq", "value": "ann@example.org"})
    assert counts(deployment) == before
    created = export(personal=False, columns=[{"name": "id"},
                                              {"name": "email", "transform": {"kind": "token"}}])
    tokens = [r["email"] for r in rows_of(download(deployment, tenant, created))]
    assert all(t.startswith("t1_") for t in tokens)


@pytest.mark.parametrize("mask", [{"keep_first": 10}, {"keep_last": 10},
                                  {"keep_first": 3, "keep_last": 2}, {"keep_first": 999}])
def test_a_mask_may_not_show_a_personal_column_in_instalments(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport],
    mask: dict[str, int],
) -> None:
    """keep_first=10 in one export and keep_last=10 in the next would give the value back
    whole: a role without personal access sees at most 4 characters of a personal column."""
    before = counts(deployment)
    with pytest.raises(PersonalDataRefused, match="at most 4 characters"):
        export(personal=False, columns=[{"name": "id"},
                                        {"name": "email", "transform": {"kind": "mask", **mask}}])
    assert counts(deployment) == before
    created = export(personal=False, columns=[
        {"name": "id"}, {"name": "email", "transform": {"kind": "mask", "keep_first": 2,
                                                        "keep_last": 2}}])
    assert all(sum(ch != "*" for ch in r["email"]) <= 4
               for r in rows_of(download(deployment, tenant, created)))
    # Whoever may see personal data may mask as they like.
    export(personal=True, columns=[{"name": "id"},
                                   {"name": "email", "transform": {"kind": "mask",
                                                                   "keep_first": 10}}])


def test_purge_removes_downloaded_and_expired_files_and_keeps_the_record(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    objects, files, _, _ = counts(deployment)
    fetched, waiting = export(), export()
    download(deployment, tenant, fetched)
    assert counts(deployment)[:2] == (objects + 2, files + 2)
    assert purge_exports(deployment, now=NOW) == 1
    assert counts(deployment)[:2] == (objects + 1, files + 1)
    expiry = waiting.export.expires_at
    assert purge_exports(deployment, now=expiry - dt.timedelta(seconds=1)) == 0
    assert purge_exports(deployment, now=expiry) == 1
    assert counts(deployment)[:3] == (objects, files, 2)
    with pytest.raises(LinkExpired):
        download(deployment, tenant, waiting, now=NOW)
    purged = events(deployment, EventTag.EXPORT_PURGE)
    assert [(e["_target"], e["downloaded"]) for e in purged] == [
        (f"export:{fetched.export.id}", True), (f"export:{waiting.export.id}", False)]


def test_a_download_in_progress_survives_a_purge(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    created = export()
    started = start_download(deployment, tenant.id, "analyst-1",
                             Actor(kind="user", id="analyst-1"), created.export.id,
                             created.download_key, now=NOW)
    assert purge_exports(deployment, now=NOW) == 1
    data = b"".join(started.chunks)
    assert rows_of(data)[0]["email"] == "ann@example.org"


def test_the_migration_matches_the_models(deployment: Deployment) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    import strongroom.models  # noqa: F401 - the whole schema

    ours = {"exports", "export_caps", "export_limits", "export_quota_state", "export_usage",
            "export_refusals"}
    with deployment.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Export.metadata)
    assert [d for d in diff if any(f"'{name}'" in repr(d) or f"{name}." in repr(d)
                                   for name in ours)] == []


def test_a_purged_tenant_takes_its_exports_and_ledger_with_it(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    from strongroom.tenancy.deletion import purge_tenant

    export()
    with deployment.transaction() as session:
        purge_tenant(session, session.get_one(Tenant, tenant.id))
    _, _, exports, usage = counts(deployment)
    assert (exports, usage) == (0, 0)


def test_the_servers_maintenance_run_purges_spent_export_files(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport]
) -> None:
    from strongroom.datasets.maintenance import run_maintenance

    objects = counts(deployment)[0]
    download(deployment, tenant, export())
    run = run_maintenance(deployment, now=NOW)
    assert run.purged_exports == 1
    assert counts(deployment)[0] == objects


@pytest.mark.parametrize("fmt", list(ExportFormat))
def test_a_selection_of_nobody_exports_an_empty_file_of_the_right_shape(
    deployment: Deployment, tenant: Tenant, export: Callable[..., CreatedExport],
    fmt: ExportFormat,
) -> None:
    created = export(fmt=fmt, columns=[{"name": "id"}, {"name": "region"}],
                     selection={"field": "id", "op": "gt", "value": 1000})
    data = download(deployment, tenant, created)
    assert created.export.rows == 0
    if fmt is ExportFormat.CSV:
        assert data == b'"id","region"\n'
    else:
        assert pq.read_table(io.BytesIO(data)).column_names == ["id", "region"]
