"""Every HTTP answer, error or not, has the security headers; every error is RFC 9457.

422 and 500 need routes the foundation does not have yet, so these tests add
their own to an app made by ``create_app`` and serve it over real TLS with the
uvicorn server built by ``build_server``.
"""

from __future__ import annotations

import dataclasses
import re
import socket
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from strongroom.config import Settings
from strongroom.db import create_db_engine
from strongroom.deployment import Deployment, open_deployment
from strongroom.errors import ConfigurationError, InvalidInput
from tests.functional.support import (
    RunningServer,
    assert_problem,
    assert_security_headers,
    serve_in_thread,
    verifying_context,
)

# Stands in for personal data sent by a client: it must never come back or reach a log.
CANARY = "canary-Jane-Doe-1970-01-01-SW1A-1AA"


class Person(BaseModel):
    name: str
    age: int


def _add_test_routes(app: FastAPI) -> None:
    @app.post("/test/people")
    def add_person(person: Person) -> dict[str, str]:
        return {"name": person.name}

    @app.post("/test/crash")
    def crash(person: Person) -> None:
        raise RuntimeError(f"could not store {person.name}")

    @app.get("/test/misconfigured")
    def misconfigured() -> None:
        raise ConfigurationError(f"database password is {CANARY}")

    @app.get("/test/refused")
    def refused() -> None:
        raise InvalidInput("the export limit must be a positive number")

    @app.get("/test/stream-crash")
    def stream_crash() -> StreamingResponse:
        def rows() -> Iterator[bytes]:
            yield b"id,name\n"
            raise RuntimeError(f"row for {CANARY} could not be read")

        return StreamingResponse(rows(), media_type="text/csv")


@pytest.fixture
def server(deployment: Deployment) -> Iterator[RunningServer]:
    with serve_in_thread(deployment, _add_test_routes) as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client(base_url=server.url("")) as http:
        yield http


# -- health -------------------------------------------------------------------------------------


def test_healthz_and_readyz(client: httpx.Client, deployment: Deployment) -> None:
    live = client.get("/healthz")
    assert live.status_code == 200
    assert live.json() == {"status": "ok"}
    assert_security_headers(live)
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "environment": "development"}
    assert_security_headers(ready)


def test_readyz_answers_503_problem_when_the_database_is_gone(deployment: Deployment) -> None:
    # A real engine pointed at a port where no database listens (not a mock).
    gone = dataclasses.replace(
        deployment, engine=create_db_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    )
    try:
        with serve_in_thread(gone) as server, server.client() as http:
            response = http.get(server.url("/readyz"))
            assert_problem(response, 503)
            assert_security_headers(response)
            assert "psycopg" not in response.text
            assert http.get(server.url("/healthz")).status_code == 200
    finally:
        gone.engine.dispose()


# -- error shapes over real TLS -----------------------------------------------------------------


def test_404_is_a_problem_with_headers(client: httpx.Client) -> None:
    response = client.get("/no/such/thing")
    body = assert_problem(response, 404)
    assert body["instance"] == "/no/such/thing"
    assert_security_headers(response)


def test_405_is_a_problem_with_allow_header(client: httpx.Client) -> None:
    response = client.delete("/healthz")
    assert_problem(response, 405)
    assert "GET" in response.headers["allow"]
    assert_security_headers(response)


def test_422_names_the_field_but_not_the_value(client: httpx.Client) -> None:
    response = client.post("/test/people", json={"name": "x", "age": CANARY})
    body = assert_problem(response, 422)
    assert_security_headers(response)
    assert CANARY not in response.text
    assert any(error["field"] == "body.age" for error in body["errors"])
    assert "body.age" in body["detail"]
    assert client.post("/test/people", json={"name": "x", "age": 3}).status_code == 200


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        ('{"name": "' + CANARY + '", ', {"content-type": "application/json"}),
        ("name=" + CANARY, {"content-type": "application/json"}),
        ("", {"content-type": "application/json"}),
    ],
    ids=["truncated-json", "not-json", "empty"],
)
def test_malformed_bodies_are_422_problems(
    client: httpx.Client, content: str, headers: dict[str, str]
) -> None:
    response = client.post("/test/people", content=content, headers=headers)
    assert_problem(response, 422)
    assert CANARY not in response.text


def test_our_own_4xx_errors_are_problems(client: httpx.Client) -> None:
    response = client.get("/test/refused")
    body = assert_problem(response, 422)
    assert body["detail"] == "the export limit must be a positive number"
    assert body["type"].endswith("/invalid-input")


def test_unexpected_exception_is_a_bare_500_with_an_error_id(
    client: httpx.Client, server: RunningServer
) -> None:
    response = client.post("/test/crash", json={"name": CANARY, "age": 40})
    body = assert_problem(response, 500)
    assert_security_headers(response)
    error_id = body["error_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", error_id)
    assert error_id in body["detail"]
    for leak in (CANARY, "RuntimeError", "could not store", "Traceback", "crash("):
        assert leak not in response.text
    logged = server.log_text()
    assert error_id in logged, "the error id must lead an operator to the log line"
    assert CANARY not in logged
    assert "could not store" not in logged
    assert "Traceback" not in logged


def test_configuration_error_inside_a_request_is_a_bare_500(
    client: httpx.Client, server: RunningServer
) -> None:
    response = client.get("/test/misconfigured")
    body = assert_problem(response, 500)
    assert CANARY not in response.text
    assert "password" not in response.text
    assert body["error_id"] in server.log_text()
    assert CANARY not in server.log_text()


def test_each_500_gets_its_own_error_id(client: httpx.Client) -> None:
    first = client.post("/test/crash", json={"name": "a", "age": 1}).json()["error_id"]
    second = client.post("/test/crash", json={"name": "a", "age": 1}).json()["error_id"]
    assert first != second


def test_a_crash_after_the_answer_started_cuts_the_connection_and_logs_no_traceback(
    client: httpx.Client, server: RunningServer
) -> None:
    """Too late for a 500 problem: the client must see a cut-off answer, not a complete one."""
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/test/stream-crash").read()
    logged = server.log_text()
    assert re.search(r"error [0-9a-f]{32}: unhandled RuntimeError on GET /test/stream-crash",
                     logged), logged
    assert CANARY not in logged
    assert "Traceback" not in logged
    assert client.get("/healthz").status_code == 200


def test_debug_mode_logs_the_traceback_but_never_answers_it(
    make_home: Callable[..., Settings],
) -> None:
    """``debug`` (development only) adds the traceback to the log; clients still get a bare 500."""
    debug_deployment = open_deployment(make_home(debug=True))
    try:
        with serve_in_thread(debug_deployment, _add_test_routes) as server, server.client() as http:
            response = http.post(server.url("/test/crash"), json={"name": CANARY, "age": 1})
            body = assert_problem(response, 500)
            assert CANARY not in response.text
            assert "Traceback" not in response.text
            logged = server.log_text()
    finally:
        debug_deployment.close()
    assert body["error_id"] in logged
    assert "Traceback" in logged
    assert "could not store" in logged


def _raw_exchange(server: RunningServer, request: bytes) -> httpx.Response:
    """Send bytes no HTTP client would send, over TLS; parse the answer into a Response."""
    context = verifying_context(server.ca_file)
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=15) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(request)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(line.split(": ", 1)) for line in header_lines]
    return httpx.Response(int(status_line.split()[1]), headers=headers, content=body)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nno colon here\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
    ],
    ids=["garbage", "bad-header", "oversized-header"],
)
def test_unparseable_requests_get_a_problem_with_headers(
    server: RunningServer, request_bytes: bytes
) -> None:
    """Requests uvicorn rejects before the app sees them still get our error shape."""
    response = _raw_exchange(server, request_bytes)
    assert_problem(response, 400)
    assert_security_headers(response)


# -- every route of the real app keeps the shape ------------------------------------------------

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _concrete(path: str) -> str:
    """A route path with each {parameter} filled in."""
    return re.sub(r"{[^}]+}", "x", path)


def _route_table(app: FastAPI) -> list[tuple[str, set[str]]]:
    """(path, methods) of every HTTP route, routers included with their prefixes.

    FastAPI 0.16x wraps each ``include_router`` in an object that lists its
    effective routes; older versions copy the routes into ``app.routes``. Any
    other kind of entry (a mount, a websocket) fails the test, so that a new
    route family is walked rather than skipped.
    """
    table: list[tuple[str, set[str]]] = []
    for entry in app.routes:
        contexts = getattr(entry, "effective_route_contexts", None)
        found = list(contexts()) if callable(contexts) else [entry]
        for route in found:
            path, methods = getattr(route, "path", None), getattr(route, "methods", None)
            assert isinstance(path, str), f"a route this walk does not know how to check: {route}"
            assert isinstance(methods, set), f"a route without HTTP methods: {route}"
            table.append((path, methods))
    return table


def test_every_route_answers_404_and_405_as_problems(deployment: Deployment) -> None:
    """Walk create_app's route table: wrong methods and unknown subpaths are problems.

    The app is the one ``build_server`` made with ``create_app``, served over TLS.
    Routes behind authentication may refuse an anonymous caller (401/403) before
    routing says 404 or 405: deny by default comes first. Either way the answer is
    a problem with the security headers, and never a success or a 5xx.
    """
    apps: list[FastAPI] = []
    seen: dict[int, int] = {}
    with serve_in_thread(deployment, apps.append) as server, server.client() as client:
        routes = _route_table(apps[0])
        assert {path for path, _ in routes} >= {"/healthz", "/readyz"}
        for route_path, allowed in routes:
            path = _concrete(route_path)
            wrong_methods = [m for m in _METHODS if m not in allowed]
            probes = [(method, path, {405}) for method in wrong_methods]
            # A child path may match a parameterised sibling route with other methods: 405.
            child = path.rstrip("/") + "/no-such-child"
            probes += [(method, child, {404, 405}) for method in sorted(allowed)]
            for method, url_path, expected in probes:
                if method == "HEAD":
                    continue  # no body to carry a problem
                response = client.request(method, server.url(url_path))
                status = response.status_code
                assert status in expected | {401, 403}, f"{method} {url_path}: {status}"
                assert_problem(response, status)
                assert_security_headers(response)
                seen[status] = seen.get(status, 0) + 1
            for method in sorted(allowed - {"HEAD"}):
                answer = client.request(method, server.url(path))
                assert answer.status_code < 500, f"{method} {path}: {answer.status_code}"
                assert_security_headers(answer)
                if answer.status_code >= 400:
                    assert_problem(answer, answer.status_code)
    # The walk really met both kinds of routing error, not only authentication refusals.
    assert seen.get(404, 0) >= 2
    assert seen.get(405, 0) >= 2


def test_405_allow_lists_every_method_routed_for_the_path(deployment: Deployment) -> None:
    from fastapi.testclient import TestClient

    from strongroom.web.app import create_app

    client = TestClient(create_app(deployment), base_url="https://testserver")
    answer = client.delete("/api/v1/users")
    assert answer.status_code == 405
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["allow"] == "GET, POST"
    assert client.post("/healthz").headers["allow"] == "GET"
    assert client.head("/healthz").status_code == 405  # so HEAD is rightly not listed
