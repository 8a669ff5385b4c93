"""A small world for identity tests: two tenants, each with an admin, analyst and viewer
who each hold an API token, built once per module through the identity services.

Requests go through the real application (``create_app`` / ``create_operator_app``) in
process, over Starlette's TestClient with an https base URL (so ``Secure`` cookies are
sent) and a chosen client address. Argon2id, the database and the audit trail are real.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pyotp
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from strongroom.analysis import saved
from strongroom.analysis.selections import DatasetSchema, Schema
from strongroom.audit import Actor
from strongroom.audit.models import AuditEvent
from strongroom.config import Environment, load_settings
from strongroom.datasets import catalog, jobs, uploads
from strongroom.deployment import Deployment, initialise, open_deployment
from strongroom.identity import services as identity
from strongroom.identity import tokens
from strongroom.identity.models import Role, User
from strongroom.identity.permissions import Permission
from strongroom.tenancy.models import Tenant
from strongroom.tenancy.services import create_tenant, get_tenant
from strongroom.web.app import create_app, create_operator_app
from strongroom.web.auth import CSRF_HEADER, PERMISSION_KEY

# Long, unrelated words: passes the policy, and holds no tenant, email or service word.
PASSWORD = "violet kettle orbit lantern 42"
OPERATOR_PASSWORD = "quiet harbour granite meadow 7"
TENANTS = ("alpha", "bravo")
ROLES = (Role.ADMIN, Role.ANALYST, Role.VIEWER)
# No test waits on these: raised so that only the tests about them meet them.
GENEROUS_LIMITS = {"rate_limit_default": "100000/minute", "rate_limit_login": "100000/minute"}
PROBLEM_BASE = "https://strongroom.invalid/problems/"


@dataclasses.dataclass(frozen=True)
class Account:
    tenant: str
    tenant_id: str
    role: Role
    user_id: str
    email: str
    password: str
    token: str
    token_id: str
    selection_id: str = ""  # a saved selection of the account's tenant
    # The tenant's dataset objects: an upload still receiving, a dataset and its version.
    upload_id: str = ""
    dataset_id: str = ""
    version_id: str = ""
    export_id: str = ""  # an export made by this account's user (exports are per user)


@dataclasses.dataclass
class World:
    deployment: Deployment
    accounts: dict[tuple[str, Role], Account]
    _addresses: Iterator[int] = dataclasses.field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.app: FastAPI = create_app(self.deployment)
        self.operator_app: FastAPI = create_operator_app(self.deployment)

    def account(self, tenant: str, role: Role) -> Account:
        return self.accounts[(tenant, role)]

    def fresh_address(self) -> str:
        """A client address no other test used, so per-address throttles stay apart."""
        n = next(self._addresses)
        return f"198.51.{100 + n // 250}.{n % 250 + 1}"

    def client(self, address: str | None = None, *, operator: bool = False) -> TestClient:
        return TestClient(
            self.operator_app if operator else self.app,
            base_url="https://testserver",
            client=(address or self.fresh_address(), 50000),
        )

    def add_user(self, tenant: str, role: Role, password: str = PASSWORD) -> Account:
        """One more user (with a token) of ``tenant``, for tests that change or disable it."""
        email = f"{role.value}-{uuid.uuid4().hex[:8]}@{tenant}.example"
        with self.deployment.transaction() as session:
            found = get_tenant(session, tenant)
            user = identity.create_user(session, self.deployment.keys, found, email, role,
                                        password)
            secret, token = tokens.create_token(session, user, "script", role, 30, 90)
            return Account(tenant, found.id, role, user.id, email, password, secret, token.id)

    def add_tenant(self, slug: str) -> Account:
        """A tenant of its own (for tests that change its policy), with an admin."""
        with self.deployment.transaction() as session:
            create_tenant(session, self.deployment.keys, slug)
        return self.add_user(slug, Role.ADMIN)

    def audit_events(self, tag: str, after_seq: int = 0) -> list[AuditEvent]:
        with self.deployment.transaction() as session:
            return list(session.scalars(
                sa.select(AuditEvent).where(AuditEvent.tag == tag, AuditEvent.seq > after_seq)
                .order_by(AuditEvent.seq)
            ))

    def last_seq(self) -> int:
        with self.deployment.transaction() as session:
            return int(session.scalar(sa.select(sa.func.max(AuditEvent.seq))) or 0)

    def user(self, user_id: str) -> User:
        with self.deployment.transaction() as session:
            found = session.get(User, user_id)
            assert found is not None
            return found


def build_world(home: Path, database_url: str, **settings: object) -> World:
    initialise(home, Environment.DEVELOPMENT, database_url,
               extra_settings={**GENEROUS_LIMITS, **settings})
    deployment = open_deployment(load_settings(home))
    accounts: dict[tuple[str, Role], Account] = {}
    with deployment.transaction() as session:
        for slug in TENANTS:
            tenant = create_tenant(session, deployment.keys, slug)
            for role in ROLES:
                email = f"{role.value}@{slug}.example"
                user = identity.create_user(session, deployment.keys, tenant, email, role,
                                            PASSWORD)
                secret, token = tokens.create_token(session, user, "script", role, 30, 90)
                accounts[(slug, role)] = Account(slug, tenant.id, role, user.id, email,
                                                 PASSWORD, secret, token.id,
                                                 _saved_selection(deployment, session, tenant))
    data = {slug: _dataset_objects(deployment, slug) for slug in TENANTS}
    accounts = {key: dataclasses.replace(account, **data[account.tenant])
                for key, account in accounts.items()}
    accounts = {key: dataclasses.replace(account, export_id=_export_id(deployment, account))
                for key, account in accounts.items()}
    return World(deployment, accounts)


MATRIX_CSV = b"id,amount\n1,10\n2,20\n"


def _dataset_objects(deployment: Deployment, slug: str) -> dict[str, str]:
    """A dataset with one built version, and an upload left receiving, made through the
    services: what the cross-tenant walk names by upload_id, dataset_id and version_id."""
    actor = Actor.system()
    made: dict[str, str] = {}

    def run(step: Callable[[Session, Tenant], Any]) -> Any:
        with deployment.transaction() as session:
            result = step(session, get_tenant(session, slug))
            session.flush()
            return result

    for name in ("built", "receiving"):
        made[name] = run(lambda session, tenant: uploads.create_upload(
            session, deployment, tenant, actor, filename="matrix.csv", fmt="csv",
            max_bytes=1 << 20).id)
        run(lambda session, tenant, upload_id=made[name]: uploads.append_chunk(
            session, deployment, tenant, actor, upload_id, 0, [MATRIX_CSV]))
    run(lambda session, tenant: uploads.complete_upload(session, deployment, tenant, actor,
                                                        made["built"]))
    dataset_id = run(lambda session, tenant: catalog.create_dataset(
        session, deployment, tenant, actor, "matrix").id)
    tenant_id = run(lambda _session, tenant: tenant.id)
    version = jobs.run_build(deployment, tenant_id, dataset_id, made["built"], actor)
    return {"upload_id": made["receiving"], "dataset_id": dataset_id, "version_id": version.id}


def _export_id(deployment: Deployment, account: Account) -> str:
    """An export of the tenant's "matrix" dataset made by the account's own user."""
    from strongroom.exports.services import ExportSpec, Requester, create_export

    actor = Actor(kind="user", id=account.user_id, role=account.role.value)
    spec = ExportSpec(dataset="matrix", columns=[{"name": "id"}, {"name": "amount"}])
    return create_export(deployment, Requester(account.tenant_id, account.user_id, actor, True),
                         spec).export.id


# The schema a saved selection of the world is checked against; no dataset needs to exist.
_SELECTION_SCHEMA = Schema({"customers": DatasetSchema({"id": "integer"}, "id")})


def _saved_selection(deployment: Deployment, session: Session, tenant: Tenant) -> str:
    """The id of the tenant's saved selection "matrix", made on first use."""
    for found in saved.list_selections(session, tenant):
        return found.id
    return saved.create_selection(
        session, deployment, tenant, Actor.system(), name="matrix", dataset="customers",
        selection={"field": "id", "op": "gt", "value": 0}, schema=_SELECTION_SCHEMA,
        today=dt.date(2026, 1, 1)).id


# -- requests -----------------------------------------------------------------------------------


def login(client: TestClient, account: Account, code: str | None = None) -> str:
    """Log in (the session cookie lands in the client's jar); return the CSRF token."""
    body: dict[str, Any] = {"tenant": account.tenant, "email": account.email,
                            "password": account.password}
    if code is not None:
        body["code"] = code
    response = client.post("/api/v1/login", json=body)
    assert response.status_code == 200, response.text
    csrf = response.json()["csrf_token"]
    assert isinstance(csrf, str)
    return csrf


def bearer(account: Account) -> dict[str, str]:
    return {"authorization": f"Bearer {account.token}"}


def csrf_header(token: str) -> dict[str, str]:
    return {CSRF_HEADER: token}


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The RFC 9457 body of a refusal with ``status``."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith(PROBLEM_BASE)
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return dict(body)


def problem_slug(response: httpx.Response, status: int) -> str:
    return str(problem(response, status)["type"]).removeprefix(PROBLEM_BASE)


def totp_now(secret: str, steps_ahead: int = 0) -> str:
    """The code for now, or for a later step (the server accepts one step of clock drift)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


# -- the route table ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Operation:
    method: str
    path: str
    permission: Permission | None
    guard_permissions: tuple[Permission, ...]
    path_params: tuple[str, ...]
    body_model: Any

    def url(self, ids: dict[str, str]) -> str:
        return self.path.format(**{name: ids[name] for name in self.path_params})


def operations(app: FastAPI) -> list[Operation]:
    """Every (method, path) the app routes to an endpoint, with what it declares."""
    found = []
    for context in iter_route_contexts(app.routes):
        dependant = getattr(context, "dependant", None)
        if dependant is None:
            continue
        extra = getattr(context, "openapi_extra", None) or {}
        declared = extra.get(PERMISSION_KEY)
        guards = tuple(
            d.call.permission for d in dependant.dependencies
            if isinstance(getattr(d.call, "permission", None), Permission)
        )
        body_field = getattr(context, "body_field", None)
        for method in sorted(context.methods or ()):
            found.append(Operation(
                method=method,
                path=str(context.path),
                permission=Permission(declared) if declared else None,
                guard_permissions=guards,
                path_params=tuple(p.name for p in dependant.path_params),
                body_model=body_field.field_info.annotation if body_field else None,
            ))
    return found


def send(
    client: TestClient, op: Operation, ids: dict[str, str], body: dict[str, Any] | None,
    headers: dict[str, str] | None = None, params: dict[str, Any] | None = None,
) -> httpx.Response:
    return client.request(op.method, op.url(ids), json=body, headers=headers or {},
                          params=params)


SampleBodies = dict[tuple[str, str], dict[str, Any]]
IdFactory = Callable[[Account], str]
