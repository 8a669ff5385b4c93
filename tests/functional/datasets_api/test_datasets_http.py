"""Datasets, builds and versions over real TLS: the whole flow, progress, delete and
restore, build locks, cancellation (also at shutdown), roles and other tenants' ids."""

from __future__ import annotations

import datetime as dt
import io
import threading
import time
import uuid
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from fastapi import FastAPI

from strongroom.datasets.models import Dataset, DatasetVersion
from strongroom.db import utcnow
from strongroom.identity.models import Role
from tests.functional.datasets_api.conftest import (
    BUILD_DEADLINE_SECONDS,
    Site,
    built_dataset,
    csv_rows,
    hold_workers,
    new_dataset,
    open_upload,
    put_chunk,
    start_build,
    upload_file,
    wait_built,
    workers_held,
)
from tests.functional.identity.support import problem, problem_slug
from tests.functional.support import serve_in_thread


def _name() -> str:
    return f"people-{uuid.uuid4().hex[:8]}"


def test_upload_in_three_chunks_build_and_read_the_version(site: Site) -> None:
    account = site.analyst()
    data = csv_rows(300)
    with site.client(account) as client:
        upload = open_upload(client, size=len(data), csv={"delimiter": ",", "header": True})
        third = len(data) // 3
        for offset, chunk in ((0, data[:third]), (third, data[third:2 * third]),
                              (2 * third, data[2 * third:])):
            answer = put_chunk(client, upload["id"], offset, chunk)
            assert answer.status_code == 200, answer.text
            assert answer.json()["received_bytes"] == offset + len(chunk)
        done = client.post(f"/api/v1/uploads/{upload['id']}/complete")
        assert done.json()["status"] == "complete"
        name = _name()
        dataset_id = new_dataset(client, name)
        before = site.objects(account.tenant_id)
        started = start_build(client, dataset_id, upload["id"],
                              types={"id": "text", "score": "float"}, key_column="id",
                              personal=["name"])
        assert started.status_code == 202, started.text
        assert started.json()["status"] == "building"
        assert started.json()["number"] == 1
        version = wait_built(client, started.json()["id"])
        assert version["status"] == "ready", version
        assert version["row_count"] == 300
        assert version["rejected_count"] == 0
        assert [(c["name"], c["type"], c["personal"]) for c in version["columns"]] == [
            ("id", "text", False), ("name", "text", True), ("joined", "date", False),
            ("score", "float", False)]
        assert version["key_column"] == "id"
        assert version["progress_bytes"] == len(data)
        assert version["percent"] == 100.0
        assert version["mib_per_second"] is None or version["mib_per_second"] >= 0
        assert version["report"]["rows_loaded"] == 300
        assert version["finished_at"] is not None
        # The one new object is the encrypted Parquet file, of the size the version says.
        (parquet,) = site.objects(account.tenant_id) - before
        assert parquet.stat().st_size == version["size"]
        assert parquet.read_bytes()[:4] == b"PARE"  # Parquet with an encrypted footer
        shown = client.get(f"/api/v1/datasets/{dataset_id}").json()
        assert shown["name"] == name
        # Who built what and when.
        assert shown["created_by"] == account.user_id
        assert version["built_by"] == account.user_id
        assert [v["id"] for v in shown["versions"]] == [version["id"]]
        assert shown["latest_version"]["id"] == version["id"]
        listed = {d["id"]: d for d in client.get("/api/v1/datasets").json()}
        assert listed[dataset_id]["latest_version"]["row_count"] == 300


def test_a_second_build_makes_a_second_version(site: Site) -> None:
    with site.client(site.analyst()) as client:
        dataset_id, first = built_dataset(client, _name(), rows=10)
        again = start_build(client, dataset_id, upload_file(client, csv_rows(15), parts=1))
        second = wait_built(client, again.json()["id"])
        assert (first["number"], second["number"]) == (1, 2)
        assert second["row_count"] == 15
        shown = client.get(f"/api/v1/datasets/{dataset_id}").json()
        assert [v["number"] for v in shown["versions"]] == [1, 2]
        assert shown["latest_version"]["number"] == 2


def test_bad_build_requests_get_precise_problems(site: Site) -> None:
    with site.client(site.analyst()) as client:
        dataset_id = new_dataset(client, _name())
        upload_id = upload_file(client, csv_rows(5), parts=1)
        refused = problem(start_build(client, dataset_id, upload_id, types={"id": "bigint"}), 422)
        assert "types.id" in refused["detail"]
        assert problem_slug(start_build(client, dataset_id, uuid.uuid4().hex), 404) == "not-found"
        receiving = open_upload(client)
        assert problem_slug(start_build(client, dataset_id, receiving["id"]),
                            409) == "upload-state"
        shown = client.get(f"/api/v1/datasets/{dataset_id}").json()
        assert shown["versions"] == []
        for body in ({"name": ""}, {"name": "x", "extra": 1}, {"name": "x", "key_column": ""}):
            assert problem_slug(client.post("/api/v1/datasets", json=body),
                                422) == "invalid-input"
        name = _name()
        new_dataset(client, name)
        assert problem_slug(client.post("/api/v1/datasets", json={"name": name}),
                            409) == "dataset-exists"


def test_delete_needs_the_name_typed_back_and_restore_brings_it_back(site: Site) -> None:
    account = site.analyst()
    with site.client(account) as client:
        name = _name()
        dataset_id, version = built_dataset(client, name)
        files = site.objects(account.tenant_id)
        wrong = client.post(f"/api/v1/datasets/{dataset_id}/delete",
                            json={"confirm_name": name.upper()})
        assert problem_slug(wrong, 422) == "dataset-delete-not-confirmed"
        shown = client.get(f"/api/v1/datasets/{dataset_id}").json()
        assert shown["deleted_at"] is None
        assert dataset_id in {d["id"] for d in client.get("/api/v1/datasets").json()}
        assert site.objects(account.tenant_id) == files

        deleted = client.post(f"/api/v1/datasets/{dataset_id}/delete",
                              json={"confirm_name": name})
        assert deleted.status_code == 200, deleted.text
        gone = deleted.json()
        window = (dt.datetime.fromisoformat(gone["purge_after"])
                  - dt.datetime.fromisoformat(gone["deleted_at"]))
        assert window == dt.timedelta(days=14)
        assert dataset_id not in {d["id"] for d in client.get("/api/v1/datasets").json()}
        awaiting = client.get("/api/v1/datasets", params={"deleted": "true"}).json()
        assert dataset_id in {d["id"] for d in awaiting}
        # Soft: the version and its file stay until the purge.
        assert site.objects(account.tenant_id) == files
        assert client.get(f"/api/v1/versions/{version['id']}").json()["status"] == "ready"
        assert problem_slug(client.post(f"/api/v1/datasets/{dataset_id}/delete",
                                        json={"confirm_name": name}), 404) == "not-found"

        restored = client.post(f"/api/v1/datasets/{dataset_id}/restore")
        assert restored.status_code == 200, restored.text
        assert (restored.json()["deleted_at"], restored.json()["purge_after"]) == (None, None)
        assert restored.json()["latest_version"]["id"] == version["id"]
        assert dataset_id in {d["id"] for d in client.get("/api/v1/datasets").json()}
        assert problem_slug(client.post(f"/api/v1/datasets/{dataset_id}/restore"),
                            404) == "not-found"


def test_a_locked_dataset_refuses_builds(site: Site) -> None:
    with site.client(site.analyst()) as client:
        dataset_id, _ = built_dataset(client, _name())
        upload_id = upload_file(client, csv_rows(5), parts=1)
        seq = site.world.last_seq()
        locked = client.post(f"/api/v1/datasets/{dataset_id}/lock")
        assert locked.json()["build_locked"] is True
        assert problem_slug(start_build(client, dataset_id, upload_id), 409) == "dataset-locked"
        denials = site.world.audit_events("user:dataset:build", seq)
        assert [(e.outcome, e.reason) for e in denials] == [("denied", "dataset-locked")]
        assert len(client.get(f"/api/v1/datasets/{dataset_id}").json()["versions"]) == 1
        unlocked = client.post(f"/api/v1/datasets/{dataset_id}/unlock")
        assert unlocked.json()["build_locked"] is False
        again = start_build(client, dataset_id, upload_id)
        assert again.status_code == 202, again.text
        assert wait_built(client, again.json()["id"])["status"] == "ready"


def test_a_running_build_can_be_cancelled_and_leaves_nothing(site: Site) -> None:
    account = site.analyst()
    with site.client(account) as client:
        name = _name()
        dataset_id = new_dataset(client, name)
        upload_id = upload_file(client, csv_rows(50))
        files = site.objects(account.tenant_id)
        with workers_held(site.jobs):
            started = start_build(client, dataset_id, upload_id)
            assert started.status_code == 202, started.text
            version_id = started.json()["id"]
            # One build per dataset at a time.
            assert problem_slug(start_build(client, dataset_id, upload_id),
                                409) == "build-running"
            assert problem_slug(client.post(f"/api/v1/datasets/{dataset_id}/delete",
                                            json={"confirm_name": name}), 409) == "build-running"
            cancelled = client.post(f"/api/v1/versions/{version_id}/cancel")
            assert cancelled.status_code == 200, cancelled.text
        version = wait_built(client, version_id)
        assert version["status"] == "cancelled"
        assert (version["row_count"], version["size"], version["columns"]) == (None, None, [])
        assert site.objects(account.tenant_id) == files
        assert problem_slug(client.post(f"/api/v1/versions/{version_id}/cancel"),
                            409) == "build-not-running"
        # The dataset is free for the next build.
        again = start_build(client, dataset_id, upload_id)
        assert wait_built(client, again.json()["id"])["status"] == "ready"


def test_builds_still_queued_at_shutdown_are_cancelled(site: Site) -> None:
    """A second server on the same deployment stops while its build waits for a worker."""
    account = site.analyst()
    with site.client(account) as client:
        dataset_id = new_dataset(client, _name())
        upload_id = upload_file(client, csv_rows(20), parts=1)
    apps: list[FastAPI] = []
    gate = threading.Event()
    try:
        with serve_in_thread(site.world.deployment, customise=apps.append) as server:
            hold_workers(apps[0].state.build_jobs, gate)
            with Site(site.world, server, apps[0]).client(account) as client:
                started = start_build(client, dataset_id, upload_id)
            assert started.status_code == 202, started.text
            version_id = started.json()["id"]
            released = threading.Thread(
                target=_release_once_cancelled, args=(site, version_id, gate), daemon=True)
            released.start()
            # Leaving this block stops the server: its lifespan cancels, then waits.
    finally:
        gate.set()
    released.join(timeout=BUILD_DEADLINE_SECONDS)
    with site.client(account) as client:
        version = client.get(f"/api/v1/versions/{version_id}").json()
    assert version["status"] == "cancelled"
    cancels = [e for e in site.world.audit_events("user:dataset:build-cancel")
               if e.target == version_id]
    assert [(e.actor_kind, e.actor_id) for e in cancels] == [("system", "strongroom")]


def _release_once_cancelled(site: Site, version_id: str, gate: threading.Event) -> None:
    deadline = time.monotonic() + BUILD_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        with site.world.deployment.transaction() as session:
            flagged = session.scalar(sa.select(DatasetVersion.cancel_requested)
                                     .where(DatasetVersion.id == version_id))
        if flagged:
            break
        time.sleep(0.02)
    gate.set()


def test_viewers_read_the_catalog_but_may_not_build_or_change_it(site: Site) -> None:
    with site.client(site.analyst()) as client:
        dataset_id, version = built_dataset(client, _name())
        upload_id = upload_file(client, csv_rows(5), parts=1)
    viewer = site.world.account("alpha", Role.VIEWER)
    with site.client(viewer) as client:
        assert dataset_id in {d["id"] for d in client.get("/api/v1/datasets").json()}
        assert client.get(f"/api/v1/datasets/{dataset_id}").status_code == 200
        assert client.get(f"/api/v1/versions/{version['id']}").json()["row_count"] == 20
        for method, path, body in (
            ("POST", f"/api/v1/datasets/{dataset_id}/builds", {"upload_id": upload_id}),
            ("POST", "/api/v1/datasets", {"name": _name()}),
            ("POST", f"/api/v1/datasets/{dataset_id}/lock", None),
            ("POST", f"/api/v1/datasets/{dataset_id}/delete", {"confirm_name": "x"}),
            ("POST", f"/api/v1/versions/{version['id']}/cancel", None),
        ):
            refused = client.request(method, path, json=body)
            assert problem_slug(refused, 403) == "permission-denied", (method, path)


def test_another_tenants_datasets_and_versions_are_not_found(site: Site) -> None:
    victim = site.world.account("bravo", Role.ADMIN)
    routes = [
        ("GET", "/api/v1/datasets/{dataset_id}", None),
        ("POST", "/api/v1/datasets/{dataset_id}/delete", {"confirm_name": "matrix"}),
        ("POST", "/api/v1/datasets/{dataset_id}/restore", None),
        ("POST", "/api/v1/datasets/{dataset_id}/lock", None),
        ("POST", "/api/v1/datasets/{dataset_id}/unlock", None),
        ("POST", "/api/v1/datasets/{dataset_id}/builds", {"upload_id": victim.upload_id}),
        ("GET", "/api/v1/versions/{version_id}", None),
        ("POST", "/api/v1/versions/{version_id}/cancel", None),
    ]
    with site.client(site.analyst("alpha")) as client:
        for method, path, body in routes:
            foreign = client.request(method, path.format(dataset_id=victim.dataset_id,
                                                         version_id=victim.version_id), json=body)
            missing = client.request(method, path.format(dataset_id=uuid.uuid4().hex,
                                                         version_id=uuid.uuid4().hex), json=body)
            seen, expected = problem(foreign, 404), problem(missing, 404)
            assert {k: seen[k] for k in ("type", "title", "detail")} == {
                k: expected[k] for k in ("type", "title", "detail")}, (method, path)
        # Alpha's own listing holds none of bravo's.
        assert victim.dataset_id not in {d["id"] for d in client.get("/api/v1/datasets").json()}
        # And alpha cannot build bravo's upload into its own dataset.
        own = new_dataset(client, _name())
        assert problem_slug(start_build(client, own, victim.upload_id), 404) == "not-found"
    with site.client(victim) as client:
        shown = client.get(f"/api/v1/datasets/{victim.dataset_id}").json()
        assert (shown["deleted_at"], shown["build_locked"]) == (None, False)
        assert [v["status"] for v in shown["versions"]] == ["ready"]


def _parquet_bytes(rows: int) -> bytes:
    table = pa.table({"id": list(range(rows)), "city": [f"city-{i % 5}" for i in range(rows)]})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def test_a_parquet_upload_builds_into_a_version(site: Site) -> None:
    data = _parquet_bytes(40)
    with site.client(site.analyst()) as client:
        upload = open_upload(client, size=len(data), filename="cities.parquet", format="parquet")
        half = len(data) // 2
        assert put_chunk(client, upload["id"], 0, data[:half]).status_code == 200
        assert put_chunk(client, upload["id"], half, data[half:]).status_code == 200
        assert client.post(f"/api/v1/uploads/{upload['id']}/complete").status_code == 200
        dataset_id = new_dataset(client, _name())
        started = start_build(client, dataset_id, upload["id"], personal=["city"])
        assert started.status_code == 202, started.text
        version = wait_built(client, started.json()["id"])
        assert version["status"] == "ready", version
        assert version["row_count"] == 40
        assert [(c["name"], c["personal"]) for c in version["columns"]] == [
            ("id", False), ("city", True)]


def test_a_parquet_upload_that_is_really_a_zip_is_refused(site: Site) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("data.csv", "id\n1\n")
    with site.client(site.analyst()) as client:
        upload = open_upload(client, filename="data.parquet", format="parquet")
        assert put_chunk(client, upload["id"], 0, archive.getvalue()).status_code == 200
        assert client.post(f"/api/v1/uploads/{upload['id']}/complete").status_code == 200
        dataset_id = new_dataset(client, _name())
        refused = start_build(client, dataset_id, upload["id"])
        assert problem_slug(refused, 422) == "dataset-not-parquet"
        assert client.get(f"/api/v1/datasets/{dataset_id}").json()["versions"] == []


def test_a_dataset_past_its_recovery_window_is_not_restored(site: Site) -> None:
    with site.client(site.analyst()) as client:
        name = _name()
        dataset_id = new_dataset(client, name)
        deleted = client.post(f"/api/v1/datasets/{dataset_id}/delete",
                              json={"confirm_name": name})
        assert deleted.status_code == 200, deleted.text
        # The window has passed (the purge has not run yet).
        with site.world.deployment.transaction() as session:
            session.execute(sa.update(Dataset).where(Dataset.id == dataset_id).values(
                purge_after=utcnow() - dt.timedelta(seconds=1)))
        refused = client.post(f"/api/v1/datasets/{dataset_id}/restore")
        assert problem_slug(refused, 409) == "dataset-recovery-window"
        assert client.get(f"/api/v1/datasets/{dataset_id}").json()["deleted_at"] is not None
