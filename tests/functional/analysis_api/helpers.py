"""Requests as a tenant user over the running HTTPS server."""

from __future__ import annotations

from typing import Any

import httpx

from strongroom.identity.models import Role
from tests.functional.identity.support import World, bearer
from tests.functional.support import RunningServer

PROBLEM_BASE = "https://strongroom.invalid/problems/"


class As:
    """One tenant user's API token, over real TLS."""

    def __init__(self, world: World, server: RunningServer, tenant: str, role: Role) -> None:
        self.account = world.account(tenant, role)
        self.server = server

    def request(self, method: str, path: str, body: Any = None, **params: Any) -> httpx.Response:
        with self.server.client() as client:
            return client.request(method, self.server.url(path), json=body,
                                  params=params or None, headers=bearer(self.account))

    def post(self, path: str, body: Any) -> httpx.Response:
        return self.request("POST", path, body)

    def ok(self, method: str, path: str, body: Any = None, status: int = 200,
           **params: Any) -> Any:
        response = self.request(method, path, body, **params)
        assert response.status_code == status, response.text
        return response.json() if response.content else None


def refused(response: httpx.Response, status: int, slug: str) -> str:
    """The detail of a problem answer with this status and type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == PROBLEM_BASE + slug, body
    assert body["status"] == status
    return str(body["detail"])
