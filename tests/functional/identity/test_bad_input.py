"""Bad input to the identity routes is a 4xx problem on both databases, never a 500.

PostgreSQL refuses a NUL in a text value with an error, where SQLite stores it; so
every value that could reach a query is sent with a NUL here, on both.
"""

from __future__ import annotations

import pytest

from strongroom.identity.models import Role
from strongroom.identity.permissions import Permission
from tests.functional.identity.support import World, bearer, operations, problem, send
from tests.functional.identity.test_matrix import SAMPLE_QUERIES, body_for

# Sent percent-encoded (httpx will not put a raw NUL in a URL); Starlette decodes them.
NUL_IDS = ["a%00b", "0" * 31 + "%00", "%00", "..%2F..%2Fetc%2Fpasswd", "A" * 5000]


@pytest.mark.parametrize("bad", NUL_IDS)
def test_malformed_path_ids_are_404_problems(world: World, bad: str) -> None:
    admin = world.account("alpha", Role.ADMIN)
    checked = 0
    with world.client() as client:
        for op in operations(world.app):
            if not op.path_params:
                continue
            response = send(client, op, dict.fromkeys(op.path_params, bad), body_for(op),
                            bearer(admin), SAMPLE_QUERIES.get((op.method, op.path)))
            assert response.status_code in {404, 414}, f"{op}: {response.text}"
            problem(response, response.status_code)
            checked += 1
    assert checked >= 3


@pytest.mark.parametrize("field", ["actor", "tag", "outcome", "since", "until"])
def test_a_nul_in_an_audit_filter_is_a_422(world: World, field: str) -> None:
    with world.client() as client:
        response = client.get("/api/v1/audit/events", params={field: "x\x00y"},
                              headers=bearer(world.account("alpha", Role.ADMIN)))
        problem(response, 422)


@pytest.mark.parametrize(
    ("since", "says"),
    [
        ("0001-01-01T00:00:00+01:00", "ISO 8601"),
        ("yesterday", "ISO 8601"),
        ("0.5", "ISO 8601"),
        ("", "query.since"),  # refused by the schema itself (min_length)
    ],
)
def test_an_impossible_audit_time_is_a_422(world: World, since: str, says: str) -> None:
    with world.client() as client:
        response = client.get("/api/v1/audit/events", params={"since": since},
                              headers=bearer(world.account("alpha", Role.ADMIN)))
        assert says in problem(response, 422)["detail"]


def test_an_unknown_audit_filter_is_a_422(world: World) -> None:
    with world.client() as client:
        response = client.get("/api/v1/audit/events", params={"tenant_id": "other"},
                              headers=bearer(world.account("alpha", Role.ADMIN)))
        assert "unknown filter" in problem(response, 422)["detail"]


@pytest.mark.parametrize("body", [
    {"email": "x\x00@alpha.example", "role": "viewer", "password": "long enough words here"},
    {"email": "someone@alpha.example", "role": "viewer\x00", "password": "long enough words"},
    {"email": "someone@alpha.example", "role": "viewer", "password": "words and \x00 nul"},
])
def test_a_nul_in_a_new_user_is_refused_cleanly(world: World, body: dict[str, str]) -> None:
    with world.client() as client:
        response = client.post("/api/v1/users", json=body,
                               headers=bearer(world.account("alpha", Role.ADMIN)))
        assert response.status_code in {201, 422}, response.text
        if response.status_code == 422:
            problem(response, 422)


@pytest.mark.parametrize("name", ["nul\x00name", "\x00", "tab\there"])
def test_a_nul_in_a_token_name_is_a_422(world: World, name: str) -> None:
    from tests.functional.identity.support import csrf_header, login

    with world.client() as client:
        csrf = login(client, world.account("alpha", Role.VIEWER))
        response = client.post("/api/v1/tokens", json={"name": name},
                               headers=csrf_header(csrf))
        assert "printable" in problem(response, 422)["detail"]


@pytest.mark.parametrize("payload", ['{"tenant": ', "[]", "null", '"text"', "\x00"])
def test_malformed_json_is_a_problem_on_every_route_with_a_body(
    world: World, payload: str
) -> None:
    with world.client() as client:
        for op in operations(world.app):
            if op.body_model is None:
                continue
            headers = {"content-type": "application/json"}
            if op.permission is not Permission.PUBLIC:
                headers |= bearer(world.account("alpha", Role.ADMIN))
            response = client.request(op.method, op.url(dict.fromkeys(op.path_params, "0" * 32)),
                                      content=payload.encode(), headers=headers)
            assert 400 <= response.status_code < 500, f"{op}: {response.text}"
            problem(response, response.status_code)


def test_a_nul_in_the_operator_audit_tenant_is_a_4xx(world: World) -> None:
    from strongroom.identity import services as identity
    from tests.functional.identity.support import OPERATOR_PASSWORD, totp_now

    with world.deployment.transaction() as session:
        _made, enrolment, _codes = identity.create_operator(
            session, world.deployment.keys, "nul-ops", OPERATOR_PASSWORD)
    with world.client(operator=True) as client:
        response = client.post("/operator/v1/login", json={
            "name": "nul-ops", "password": OPERATOR_PASSWORD,
            "code": totp_now(enrolment["secret"])})
        assert response.status_code == 200
        for params in ({"tenant": "al\x00pha"}, {"actor": "\x00"}, {"tenant": "nosuch"}):
            found = client.get("/operator/v1/audit/events", params=params)
            assert found.status_code in {404, 422}, found.text
            problem(found, found.status_code)
