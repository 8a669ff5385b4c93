"""Deny by default: every route of both planes declares a permission and enforces it.

The walk covers the applications as built (``create_app``, ``create_operator_app``),
so a route added anywhere without ``route_options(...)`` fails here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from strongroom.config import Settings
from strongroom.deployment import Deployment, open_deployment
from strongroom.identity.permissions import Permission
from strongroom.web.app import create_app, create_operator_app
from strongroom.web.auth import PERMISSION_KEY
from tests.functional.identity.support import operations

PUBLIC_TENANT = {("GET", "/healthz"), ("GET", "/readyz"), ("POST", "/api/v1/login")}
PUBLIC_OPERATOR = {("GET", "/healthz"), ("GET", "/readyz"), ("POST", "/operator/v1/login")}
# Served by FastAPI itself, not by us: the schema document, which is public by design.
FRAMEWORK_PATHS = {"/openapi.json"}


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FastAPI]]:
    from strongroom.config import Environment, load_settings
    from strongroom.deployment import initialise

    home = tmp_path_factory.mktemp("routes") / "home"
    initialise(home, Environment.DEVELOPMENT)
    deployment = open_deployment(load_settings(home))
    yield {"tenant": create_app(deployment), "operator": create_operator_app(deployment)}
    deployment.close()


@pytest.mark.parametrize("plane", ["tenant", "operator"])
def test_every_route_declares_a_permission_and_has_the_guard(
    apps: dict[str, FastAPI], plane: str
) -> None:
    ops = operations(apps[plane])
    assert len(ops) >= 5, "the walk found no routes: it would prove nothing"
    missing = [f"{o.method} {o.path}" for o in ops if o.permission is None]
    assert not missing, f"routes without openapi_extra[{PERMISSION_KEY!r}]: {missing}"
    unguarded = [f"{o.method} {o.path}" for o in ops if not o.guard_permissions]
    assert not unguarded, f"routes without the guard() dependency: {unguarded}"
    mismatched = [f"{o.method} {o.path}" for o in ops
                  if o.guard_permissions != (o.permission,)]
    assert not mismatched, f"routes whose guard enforces another permission: {mismatched}"


@pytest.mark.parametrize("plane", ["tenant", "operator"])
def test_nothing_is_routed_outside_the_walk(apps: dict[str, FastAPI], plane: str) -> None:
    """Mounts, plain Starlette routes and the like would escape the guard check above."""
    walked = {o.path for o in operations(apps[plane])}
    others = {str(c.path) for c in iter_route_contexts(apps[plane].routes)} - walked
    assert others <= FRAMEWORK_PATHS, f"routes the walk cannot check: {others - FRAMEWORK_PATHS}"


@pytest.mark.parametrize(
    ("plane", "public"), [("tenant", PUBLIC_TENANT), ("operator", PUBLIC_OPERATOR)]
)
def test_only_login_and_health_are_public(
    apps: dict[str, FastAPI], plane: str, public: set[tuple[str, str]]
) -> None:
    found = {(o.method, o.path) for o in operations(apps[plane])
             if o.permission is Permission.PUBLIC}
    assert found == public


def test_planes_use_their_own_permissions(apps: dict[str, FastAPI]) -> None:
    tenant = {o.permission for o in operations(apps["tenant"])}
    operator = {o.permission for o in operations(apps["operator"])}
    assert Permission.OPERATOR not in tenant
    assert operator == {Permission.PUBLIC, Permission.OPERATOR}


@pytest.mark.parametrize("plane", ["tenant", "operator"])
def test_the_openapi_schema_states_each_permission_and_error_shape(
    apps: dict[str, FastAPI], plane: str
) -> None:
    schema = apps[plane].openapi()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            label = f"{method.upper()} {path}"
            assert operation.get(PERMISSION_KEY) in {p.value for p in Permission}, label
            errors = operation["responses"].get("4XX", {}).get("content", {})
            assert "application/problem+json" in errors, f"{label} documents no problem shape"
            public = operation[PERMISSION_KEY] == Permission.PUBLIC.value
            assert bool(operation.get("security")) is not public, (
                f"{label}: security requirements must be listed exactly when not public"
            )


def test_a_route_without_options_would_be_caught(
    make_home: Callable[..., Settings],
) -> None:
    """The check above can fail: an app with one bare route does not pass it."""
    deployment: Deployment = open_deployment(make_home())
    try:
        app = create_app(deployment)

        @app.get("/api/v1/forgotten")
        def forgotten() -> dict[str, str]:
            return {}

        bare = [o for o in operations(app) if o.path == "/api/v1/forgotten"]
        assert len(bare) == 1
        assert bare[0].permission is None
        assert bare[0].guard_permissions == ()
    finally:
        deployment.close()
