"""The cross-tenant and role matrix, walked over the route table as built.

For every route: an unauthenticated client gets 401 (login and health excepted); a
role without the route's permission gets 403; and for every route with a path
parameter, tenant A naming tenant B's ids gets exactly the 404 of an id that does
not exist, and B's objects are untouched afterwards. Both ways of authenticating
(API token, session cookie with its CSRF header) are walked.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from strongroom.identity.models import Role
from strongroom.identity.permissions import Permission, role_allows
from tests.functional.identity.support import (
    MATRIX_CSV,
    PASSWORD,
    ROLES,
    Account,
    Operation,
    World,
    bearer,
    csrf_header,
    login,
    operations,
    problem,
    problem_slug,
    send,
)

# A body that validates for every route that takes one; the test below checks they do.
SAMPLE_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/login"): {"tenant": "nosuch", "email": "x@example.org", "password": "x"},
    ("POST", "/api/v1/me/password"): {"current_password": "wrong", "new_password": PASSWORD},
    ("POST", "/api/v1/me/email"): {"current_password": "wrong", "email": "new@example.org"},
    ("POST", "/api/v1/me/mfa"): {"current_password": "wrong"},
    ("POST", "/api/v1/me/mfa/confirm"): {"code": "000000"},
    ("POST", "/api/v1/me/mfa/disable"): {"current_password": "wrong"},
    ("POST", "/api/v1/users"): {"email": "n@alpha.example", "role": "viewer",
                                "password": PASSWORD},
    ("PATCH", "/api/v1/users/{user_id}"): {"role": "viewer"},
    ("POST", "/api/v1/tokens"): {"name": "matrix", "days": 1},
    ("PUT", "/api/v1/policy"): {"require_mfa": False},
    ("PUT", "/api/v1/me/telemetry"): {"insider": False},
    ("POST", "/api/v1/count"): {"dataset": "customers", "selection": None},
    ("POST", "/api/v1/cubes"): {"dataset": "customers", "dimensions": [{"field": "id"}]},
    ("POST", "/api/v1/preview"): {"dataset": "customers", "limit": 5},
    ("POST", "/api/v1/sql"): {"sql": "SELECT 1"},
    ("POST", "/api/v1/selections"): {"name": "matrix-2", "dataset": "customers",
                                     "selection": {"field": "id", "op": "gt", "value": 1}},
    ("PUT", "/api/v1/selections/{selection_id}"): {
        "selection": {"field": "id", "op": "gt", "value": 2}},
    ("POST", "/api/v1/uploads"): {"filename": "matrix.csv", "format": "csv", "size": 10,
                                  "csv": {"delimiter": ";"}},
    ("POST", "/api/v1/datasets"): {"name": "matrix-2", "key_column": None},
    ("POST", "/api/v1/datasets/{dataset_id}/delete"): {"confirm_name": "matrix"},
    ("POST", "/api/v1/datasets/{dataset_id}/builds"): {
        "upload_id": uuid.uuid4().hex, "types": {"amount": "float"}, "personal": ["id"]},
    ("POST", "/api/v1/exports"): {"dataset": "matrix", "columns": [{"name": "id"}]},
    ("PUT", "/api/v1/export-limits"): {"tenant": {"rows_per_hour": None}},
    ("POST", "/api/v1/privacy/reverse"): {"tokens": ["t1_AAAAAAAAAAAAAAAAAAAAAA"]},
    ("POST", "/operator/v1/login"): {"name": "nobody", "password": "x", "code": "000000"},
}
# Required query parameters, for the routes that have any.
SAMPLE_QUERIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/api/v1/uploads/{upload_id}/chunks"): {"offset": 0},
    ("GET", "/api/v1/exports/{export_id}/download"): {"key": "matrix"},
}
# Which object of an account each path parameter names.
ID_OF: dict[str, Callable[[Account], str]] = {
    "user_id": lambda account: account.user_id,
    "token_id": lambda account: account.token_id,
    "selection_id": lambda account: account.selection_id,
    "upload_id": lambda account: account.upload_id,
    "dataset_id": lambda account: account.dataset_id,
    "version_id": lambda account: account.version_id,
    "export_id": lambda account: account.export_id,
}


def body_for(op: Operation) -> dict[str, Any] | None:
    return SAMPLE_BODIES[(op.method, op.path)] if op.body_model is not None else None


def missing_ids(op: Operation) -> dict[str, str]:
    return {name: uuid.uuid4().hex for name in op.path_params}


class Caller:
    """One account, authenticated one way: by API token, or by session cookie + CSRF."""

    def __init__(self, world: World, account: Account, how: str) -> None:
        self.account = account
        self.how = how
        self.client = world.client()
        self.headers = bearer(account) if how == "token" else csrf_header(
            login(self.client, account))

    def send(self, op: Operation, ids: dict[str, str]) -> httpx.Response:
        return send(self.client, op, ids, body_for(op), self.headers,
                    SAMPLE_QUERIES.get((op.method, op.path)))

    def __repr__(self) -> str:
        return f"{self.account.role.value}@{self.account.tenant} by {self.how}"


@pytest.fixture(scope="module")
def callers(world: World) -> Iterator[dict[tuple[Role, str], Caller]]:
    """Tenant alpha's accounts, each by token and by session, logged in once per module."""
    made = {(role, how): Caller(world, world.account("alpha", role), how)
            for role in ROLES for how in ("token", "session")}
    yield made
    for caller in made.values():
        caller.client.close()


def tenant_ops(world: World) -> list[Operation]:
    return operations(world.app)


def test_every_route_with_a_body_has_a_sample_that_validates(world: World) -> None:
    for app in (world.app, world.operator_app):
        for op in operations(app):
            if op.body_model is None:
                continue
            assert (op.method, op.path) in SAMPLE_BODIES, f"add a sample body for {op}"
            TypeAdapter(op.body_model).validate_python(SAMPLE_BODIES[(op.method, op.path)])


def test_every_path_parameter_is_walked(world: World) -> None:
    params = {p for op in tenant_ops(world) for p in op.path_params}
    assert params, "no route has a path parameter: the cross-tenant walk would prove nothing"
    assert params <= set(ID_OF), f"say which object these name in ID_OF: {params - set(ID_OF)}"


# Each refusal names what it saw, which proves the credentials reached the server.
EXPECTED_DETAIL = {"none": "log in first", "unknown token": "unknown, expired or revoked",
                   "unknown cookie": "session has ended"}


@pytest.mark.parametrize("credentials", sorted(EXPECTED_DETAIL))
def test_unauthenticated_requests_get_401_everywhere_but_login_and_health(
    world: World, credentials: str
) -> None:
    checked = 0
    for app_is_operator in (False, True):
        with world.client(operator=app_is_operator) as client:
            headers: dict[str, str] = {}
            if credentials == "unknown token":
                headers = {"authorization": f"Bearer sr_{uuid.uuid4().hex}_{'A' * 43}"}
            elif credentials == "unknown cookie":
                for name in ("__Host-strongroom", "__Host-strongroom-operator"):
                    client.cookies.set(name, "forged-session-id")
            for op in operations(world.operator_app if app_is_operator else world.app):
                if op.permission is Permission.PUBLIC:
                    continue
                response = send(client, op, missing_ids(op), body_for(op), headers)
                assert problem_slug(response, 401) == "not-authenticated", f"{op}"
                expected = EXPECTED_DETAIL[credentials]
                if app_is_operator and credentials == "unknown token":
                    expected = "takes no API tokens"
                assert expected in response.json()["detail"], f"{op}"
                assert response.headers["www-authenticate"].startswith("Bearer")
                checked += 1
    assert checked >= 15


def test_public_routes_answer_without_credentials(world: World) -> None:
    with world.client() as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        # Login itself is reachable: a wrong login is 401 bad-credentials, not "log in first".
        response = client.post("/api/v1/login", json=SAMPLE_BODIES[("POST", "/api/v1/login")])
        assert problem_slug(response, 401) == "bad-credentials"


def test_roles_without_the_permission_get_403_on_every_route(
    world: World, callers: dict[tuple[Role, str], Caller]
) -> None:
    refused = allowed_reads = 0
    for op in tenant_ops(world):
        if op.permission is Permission.PUBLIC:
            continue
        assert op.permission is not None
        for (role, _how), caller in callers.items():
            if role_allows(role, op.permission):
                if op.method == "GET" and not op.path_params:
                    response = caller.send(op, {})
                    assert response.status_code == 200, f"{caller} {op}: {response.text}"
                    allowed_reads += 1
                continue
            response = caller.send(op, missing_ids(op))
            assert problem_slug(response, 403) == "permission-denied", f"{caller} {op}"
            refused += 1
    # viewer: users, policy and audit routes; analyst: the same minus nothing it may do.
    assert refused >= 2 * 2 * 7
    assert allowed_reads >= 2 * 3


def test_viewers_are_refused_on_analyst_and_admin_permissions() -> None:
    """The role table itself: a viewer counts; it never analyses, exports or administers."""
    for permission in (Permission.ANALYSE, Permission.EXPORT, Permission.USERS_MANAGE,
                       Permission.POLICY_MANAGE, Permission.AUDIT_READ, Permission.OPERATOR):
        assert not role_allows(Role.VIEWER, permission)
    for permission in (Permission.USERS_MANAGE, Permission.POLICY_MANAGE, Permission.AUDIT_READ):
        assert not role_allows(Role.ANALYST, permission)


def test_ids_of_another_tenant_get_the_same_404_as_ids_that_do_not_exist(
    world: World, callers: dict[tuple[Role, str], Caller]
) -> None:
    victims = [world.account("bravo", role) for role in ROLES]
    compared = 0
    for op in tenant_ops(world):
        if not op.path_params:
            continue
        assert op.permission is not None
        for (role, _how), caller in callers.items():
            if not role_allows(role, op.permission):
                continue
            for victim in victims:
                foreign = caller.send(op, {p: ID_OF[p](victim) for p in op.path_params})
                absent = caller.send(op, missing_ids(op))
                seen, expected = problem(foreign, 404), problem(absent, 404)
                for field in ("status", "type", "title", "detail"):
                    assert seen[field] == expected[field], f"{caller} {op} {field}"
                assert foreign.headers.keys() == absent.headers.keys()
                compared += 1
    assert compared >= 3 * (2 + 2 * 3)
    assert_bravo_untouched(world)


def assert_bravo_untouched(world: World) -> None:
    """Nothing tenant alpha sent changed tenant bravo: roles, status, tokens."""
    with world.client() as client:
        for role in ROLES:
            account = world.account("bravo", role)
            user = world.user(account.user_id)
            assert (user.role, user.disabled) == (role.value, False)
            me = client.get("/api/v1/me", headers=bearer(account))
            assert me.status_code == 200, me.text
            assert me.json()["user"]["role"] == role.value
        # Bravo's dataset objects: the upload still receiving, the dataset live, unlocked,
        # with its one ready version and nothing building.
        admin = world.account("bravo", Role.ADMIN)
        upload = client.get(f"/api/v1/uploads/{admin.upload_id}", headers=bearer(admin)).json()
        assert (upload["status"], upload["received_bytes"]) == ("receiving", len(MATRIX_CSV))
        dataset = client.get(f"/api/v1/datasets/{admin.dataset_id}",
                             headers=bearer(admin)).json()
        assert (dataset["deleted_at"], dataset["build_locked"]) == (None, False)
        assert [(v["id"], v["status"]) for v in dataset["versions"]] == [
            (admin.version_id, "ready")]
        # Bravo's exports: still there, each still waiting for its one download.
        for role in (Role.ADMIN, Role.ANALYST):  # a viewer may not look (nor export)
            account = world.account("bravo", role)
            export = client.get(f"/api/v1/exports/{account.export_id}",
                                headers=bearer(account)).json()
            assert (export["status"], export["downloaded_at"]) == ("ready", None)
        # Bravo's saved selection: still there, still at its first version.
        selection = client.get(f"/api/v1/selections/{admin.selection_id}",
                               headers=bearer(admin)).json()
        assert (selection["name"], selection["latest_version"]) == ("matrix", 1)


def test_the_same_routes_work_with_ids_of_ones_own_tenant(
    world: World, callers: dict[tuple[Role, str], Caller]
) -> None:
    """The positive control: the 404s above come from the tenant check, not from the route."""
    admin = callers[(Role.ADMIN, "session")]
    viewer = world.account("alpha", Role.VIEWER)
    ops = {(op.method, op.path): op for op in tenant_ops(world)}
    got = admin.send(ops[("GET", "/api/v1/users/{user_id}")], {"user_id": viewer.user_id})
    assert got.status_code == 200
    assert got.json()["email"] == viewer.email
    patched = admin.send(ops[("PATCH", "/api/v1/users/{user_id}")], {"user_id": viewer.user_id})
    assert patched.status_code == 200
    assert patched.json()["role"] == "viewer"
    spare = world.add_user("alpha", Role.VIEWER)
    revoked = admin.send(ops[("DELETE", "/api/v1/tokens/{token_id}")],
                         {"token_id": spare.token_id})
    assert revoked.status_code == 204
    with world.client() as client:
        assert client.get("/api/v1/me", headers=bearer(spare)).status_code == 401


def test_listings_hold_only_ones_own_tenant(
    world: World, callers: dict[tuple[Role, str], Caller]
) -> None:
    bravo_ids = {world.account("bravo", r).user_id for r in ROLES}
    bravo_ids |= {world.account("bravo", r).token_id for r in ROLES}
    bravo_tenant = world.account("bravo", Role.ADMIN).tenant_id
    for how in ("token", "session"):
        admin = callers[(Role.ADMIN, how)]
        users = admin.client.get("/api/v1/users", headers=admin.headers).json()
        assert {u["id"] for u in users} >= {world.account("alpha", r).user_id for r in ROLES}
        assert not {u["id"] for u in users} & bravo_ids
        listed = admin.client.get("/api/v1/tokens", headers=admin.headers).json()
        assert listed
        assert not {t["id"] for t in listed} & bravo_ids
        assert not {t["user_id"] for t in listed} & bravo_ids
        selections = admin.client.get("/api/v1/selections", headers=admin.headers).json()
        assert {s["id"] for s in selections} >= {world.account("alpha", Role.ADMIN).selection_id}
        assert world.account("bravo", Role.ADMIN).selection_id not in str(selections)
        events = admin.client.get("/api/v1/audit/events", params={"limit": 10000},
                                  headers=admin.headers).json()["events"]
        assert events
        assert {e["tenant_id"] for e in events} == {world.account("alpha", Role.ADMIN).tenant_id}
        assert bravo_tenant not in str(events)


def test_operator_routes_are_unreachable_on_the_tenant_plane(
    world: World, callers: dict[tuple[Role, str], Caller]
) -> None:
    admin = callers[(Role.ADMIN, "session")]
    checked = 0
    for op in operations(world.operator_app):
        if not op.path.startswith("/operator/"):
            continue
        response = send(admin.client, op, missing_ids(op), body_for(op), admin.headers)
        assert problem_slug(response, 404) == "404", f"{op}"
        checked += 1
    assert checked >= 4


def test_tenant_sessions_and_tokens_are_refused_on_the_operator_plane(world: World) -> None:
    admin = world.account("alpha", Role.ADMIN)
    with world.client() as tenant_client:
        login(tenant_client, admin)
        session_id = tenant_client.cookies.get("__Host-strongroom")
    assert session_id
    for credentials in ("token", "tenant cookie", "tenant session as operator cookie"):
        with world.client(operator=True) as client:
            headers: dict[str, str] = {}
            if credentials == "token":
                headers = bearer(admin)
            elif credentials == "tenant cookie":
                client.cookies.set("__Host-strongroom", session_id)
            else:
                client.cookies.set("__Host-strongroom-operator", session_id)
            for op in operations(world.operator_app):
                if op.permission is Permission.PUBLIC:
                    continue
                response = send(client, op, missing_ids(op), body_for(op), headers)
                assert problem_slug(response, 401) == "not-authenticated", f"{credentials} {op}"


