"""Chunked, resumable uploads over real TLS: offsets, limits, aborts, and what is kept.

Every refusal is a problem document, and a refused chunk leaves no file behind in the
object store (the set of the tenant's object files is compared before and after).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from strongroom.identity.models import Role
from strongroom.tenancy import limits
from strongroom.tenancy.services import get_tenant
from tests.functional.datasets_api.conftest import (
    CHUNK_CAP,
    MAX_REQUEST,
    OCTETS,
    Site,
    csv_rows,
    open_upload,
    put_chunk,
)
from tests.functional.identity.support import problem, problem_slug
from tests.functional.support import verifying_context


def pieces(data: bytes, size: int = 1000) -> Iterator[bytes]:
    """A body with no Content-Length: sent chunked, so only the server's count can stop it."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


def test_a_chunk_at_the_wrong_offset_is_refused_with_where_to_resume(site: Site) -> None:
    account = site.analyst()
    data = csv_rows(200)
    with site.client(account) as client:
        upload = open_upload(client, size=len(data))
        first = put_chunk(client, upload["id"], 0, data[:1000])
        assert first.status_code == 200, first.text
        assert first.json()["received_bytes"] == 1000
        files = site.objects(account.tenant_id)
        for wrong in (0, 999, 1001, 5000):
            body = problem(put_chunk(client, upload["id"], wrong, data[1000:2000]), 409)
            assert body["type"].endswith("/upload-offset")
            assert body["expected_offset"] == 1000
        assert site.objects(account.tenant_id) == files
        # The client asks where the upload stands and resumes from there.
        status = client.get(f"/api/v1/uploads/{upload['id']}").json()
        assert status["received_bytes"] == 1000
        rest = put_chunk(client, upload["id"], status["received_bytes"], data[1000:])
        assert rest.status_code == 200, rest.text
        assert rest.json()["received_bytes"] == len(data)
        assert len(site.objects(account.tenant_id) - files) == 1
        done = client.post(f"/api/v1/uploads/{upload['id']}/complete")
        assert done.json()["status"] == "complete"
        # A complete upload takes no more chunks.
        assert problem_slug(put_chunk(client, upload["id"], len(data), b"x"),
                            409) == "upload-state"


def test_the_chunk_route_takes_bodies_over_max_request_bytes_and_no_other_route_does(
    site: Site,
) -> None:
    account = site.analyst()
    big = csv_rows(2000)[: CHUNK_CAP]
    assert MAX_REQUEST < len(big) <= CHUNK_CAP
    with site.client(account) as client:
        upload = open_upload(client)
        accepted = put_chunk(client, upload["id"], 0, big)
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["received_bytes"] == len(big)
        # The same body anywhere else is over max_request_bytes, even on look-alike paths.
        for method, path in (
            ("POST", f"/api/v1/uploads/{upload['id']}/complete"),
            ("PUT", f"/api/v1/uploads/{upload['id']}/chunks/more"),
            ("PUT", f"/api/v1/uploads/{upload['id']}/chunkss"),
            ("POST", f"/api/v1/uploads/{upload['id']}/chunks"),
            ("POST", "/api/v1/datasets"),
        ):
            refused = client.request(method, path, content=big, headers=OCTETS)
            assert problem_slug(refused, 413) == "too-large", (method, path)
        assert client.get(f"/api/v1/uploads/{upload['id']}").json()["status"] == "receiving"


def test_a_chunk_over_the_chunk_cap_is_refused_and_nothing_is_kept(site: Site) -> None:
    account = site.analyst()
    with site.client(account) as client:
        upload = open_upload(client)
        files = site.objects(account.tenant_id)
        too_big = b"x" * (CHUNK_CAP + 1)
        # Declared too long: refused on the Content-Length alone.
        assert problem_slug(put_chunk(client, upload["id"], 0, too_big), 413) == "too-large"
        # Sent chunked, with no length: refused as the count passes the cap.
        refused = put_chunk(client, upload["id"], 0, pieces(too_big, 4096))
        assert problem(refused, 413)["detail"].endswith(f"larger than {CHUNK_CAP} bytes")
        assert site.objects(account.tenant_id) == files
        assert client.get(f"/api/v1/uploads/{upload['id']}").json()["received_bytes"] == 0


def test_an_oversized_content_length_is_answered_before_any_body_is_sent(site: Site) -> None:
    """The client sends only the headers: the 413 arrives without a byte of body read."""
    account = site.analyst()
    with site.client(account) as client:
        upload = open_upload(client)
    request = (
        f"PUT /api/v1/uploads/{upload['id']}/chunks?offset=0 HTTP/1.1\r\n"
        f"Host: localhost:{site.server.port}\r\n"
        f"Authorization: Bearer {account.token}\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Length: {10 * 1024**3}\r\n\r\n"
    ).encode()
    context = verifying_context(site.server.ca_file)
    with (
        socket.create_connection(("127.0.0.1", site.server.port), timeout=15) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            piece = tls.recv(65536)
            if not piece:
                break
            answer += piece
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"application/problem+json" in answer


def test_uploads_over_the_tenants_limit_are_refused(site: Site) -> None:
    owner = site.world.add_tenant("limited")
    with site.world.deployment.transaction() as session:
        limits.set_upload_max_bytes(session, get_tenant(session, "limited"), 1000)
    with site.client(owner) as client:
        declared = client.post("/api/v1/uploads", json={"filename": "big.csv", "format": "csv",
                                                        "size": 1001})
        assert problem_slug(declared, 413) == "upload-too-large"
        upload = open_upload(client)
        assert upload["max_bytes"] == 1000
        assert put_chunk(client, upload["id"], 0, b"a" * 800).status_code == 200
        files = site.objects(owner.tenant_id)
        # With a Content-Length over what is left: refused before reading.
        assert problem_slug(put_chunk(client, upload["id"], 800, b"b" * 201),
                            413) == "upload-too-large"
        # Sent chunked: refused as the stream passes the limit.
        assert problem_slug(put_chunk(client, upload["id"], 800, pieces(b"b" * 201, 50)),
                            413) == "upload-too-large"
        assert site.objects(owner.tenant_id) == files
        exact = put_chunk(client, upload["id"], 800, b"c" * 200)
        assert exact.status_code == 200, exact.text
        assert exact.json()["received_bytes"] == 1000
    # Other tenants keep the deployment's default.
    with site.client(site.analyst()) as client:
        assert open_upload(client)["max_bytes"] == site.world.deployment.settings.upload_max_bytes


def test_an_aborted_upload_leaves_no_parts(site: Site) -> None:
    account = site.analyst()
    with site.client(account) as client:
        upload = open_upload(client)
        files = site.objects(account.tenant_id)
        assert put_chunk(client, upload["id"], 0, b"id\n1\n").status_code == 200
        assert put_chunk(client, upload["id"], 5, b"2\n").status_code == 200
        assert len(site.objects(account.tenant_id) - files) == 2
        aborted = client.delete(f"/api/v1/uploads/{upload['id']}")
        assert aborted.status_code == 204
        assert site.objects(account.tenant_id) == files
        status = client.get(f"/api/v1/uploads/{upload['id']}").json()
        assert (status["status"], status["received_bytes"]) == ("aborted", 0)
        assert problem_slug(put_chunk(client, upload["id"], 0, b"x"), 409) == "upload-state"
        assert problem_slug(client.delete(f"/api/v1/uploads/{upload['id']}"),
                            409) == "upload-state"


@pytest.mark.parametrize("content_type", ["text/csv", "application/json"])
def test_a_chunk_must_be_octets(site: Site, content_type: str) -> None:
    with site.client(site.analyst()) as client:
        upload = open_upload(client)
        refused = put_chunk(client, upload["id"], 0, b"id\n1\n",
                            headers={"content-type": content_type})
        assert problem_slug(refused, 415) == "unsupported-media-type"


def test_an_empty_chunk_is_refused_and_stores_nothing(site: Site) -> None:
    account = site.analyst()
    with site.client(account) as client:
        upload = open_upload(client)
        files = site.objects(account.tenant_id)
        for empty in (b"", pieces(b"")):
            assert problem_slug(put_chunk(client, upload["id"], 0, empty), 422) == "upload-invalid"
        assert site.objects(account.tenant_id) == files


def test_bad_upload_requests_get_precise_problems(site: Site) -> None:
    with site.client(site.analyst()) as client:
        for body, field in (
            ({"filename": "a.csv", "format": "xlsx"}, "format"),
            ({"filename": "", "format": "csv"}, "filename"),
            ({"filename": "a.csv", "format": "csv", "size": 0}, "size"),
            ({"filename": "a.csv", "format": "csv", "csv": {"delimiter": ";;"}}, "delimiter"),
            ({"filename": "a.csv", "format": "csv", "csv": {"encoding": "utf-16"}}, "encoding"),
            ({"filename": "a.csv", "format": "csv", "path": "/etc/passwd"}, "path"),
        ):
            refused = problem(client.post("/api/v1/uploads", json=body), 422)
            assert field in refused["detail"], refused
        # The file name is metadata only: a path in it is neither used nor refused.
        upload = open_upload(client, filename="../../etc/passwd")
        assert upload["status"] == "receiving"
        # Parquet takes no CSV options.
        refused = client.post("/api/v1/uploads", json={"filename": "a.parquet",
                                                       "format": "parquet",
                                                       "csv": {"delimiter": ";"}})
        assert problem_slug(refused, 422) == "upload-invalid"


def test_viewers_may_not_upload(site: Site) -> None:
    viewer = site.world.account("alpha", Role.VIEWER)
    with site.client(site.analyst()) as client:
        upload = open_upload(client)
    with site.client(viewer) as client:
        assert problem_slug(client.post("/api/v1/uploads", json={"filename": "a.csv",
                                                                 "format": "csv"}),
                            403) == "permission-denied"
        assert problem_slug(put_chunk(client, upload["id"], 0, b"x"), 403) == "permission-denied"
        assert problem_slug(client.get(f"/api/v1/uploads/{upload['id']}"),
                            403) == "permission-denied"


def test_another_tenants_upload_is_not_found(site: Site) -> None:
    victim = site.world.account("bravo", Role.ADMIN)
    with site.client(site.analyst("alpha")) as client:
        files = site.objects(victim.tenant_id)
        for method, suffix, body in (("GET", "", None), ("PUT", "/chunks", b"x"),
                                     ("POST", "/complete", None), ("DELETE", "", None)):
            answers = [
                client.request(method, f"/api/v1/uploads/{upload_id}{suffix}",
                               params={"offset": 0} if body else None, content=body,
                               headers=OCTETS if body else None)
                for upload_id in (victim.upload_id, "f" * 32)
            ]
            foreign, missing = (problem(a, 404) for a in answers)
            assert foreign == missing | {"instance": foreign["instance"]}, (method, suffix)
        assert site.objects(victim.tenant_id) == files
    with site.client(victim) as client:
        status = client.get(f"/api/v1/uploads/{victim.upload_id}").json()
        assert status["status"] == "receiving"



def test_a_chunk_cut_off_by_a_dropped_connection_is_not_kept_and_the_upload_resumes(
    site: Site,
) -> None:
    account = site.analyst()
    data = csv_rows(3000)[:50_000]
    with site.client(account) as client:
        upload = open_upload(client, size=len(data))
        files = site.objects(account.tenant_id)
    # Half the promised body, then the connection drops.
    head = (
        f"PUT /api/v1/uploads/{upload['id']}/chunks?offset=0 HTTP/1.1\r\n"
        f"Host: localhost:{site.server.port}\r\n"
        f"Authorization: Bearer {account.token}\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()
    context = verifying_context(site.server.ca_file)
    with (
        socket.create_connection(("127.0.0.1", site.server.port), timeout=15) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(head + data[:20_000])
    with site.client(account) as client:
        # The whole chunk again from offset 0: the cut-off one left nothing to skip.
        resumed = put_chunk(client, upload["id"], 0, data)
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["received_bytes"] == len(data)
        assert client.post(f"/api/v1/uploads/{upload['id']}/complete").status_code == 200
    assert len(site.objects(account.tenant_id) - files) == 1
