"""The HTTPS API as the client sees it: verified TLS, a Bearer token, errors as one line.

Every non-2xx answer becomes an :class:`ApiError` whose message is the
problem's detail with its status and type (RFC 9457), exit code 1 for 4xx and
2 for 5xx. A server that cannot be reached, or whose certificate does not
verify, is a :class:`ClientError` with exit code 2; a connection lost mid-way
is :class:`ConnectionLost`, so that uploads can resume after it.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

from strongroom import __version__
from strongroom.cli.client import config
from strongroom.cli.client.errors import REFUSED, ApiError, ClientError

API = "/api/v1"
# Connecting is quick or not at all; answers (a cube, a chunk of an upload) may take a while.
TIMEOUT = httpx.Timeout(300.0, connect=15.0)
_CA_HINT = "pass --ca FILE with the CA certificate your operator gave you to strongroom login"


class ConnectionLost(ClientError):
    """The server could not be reached, or the connection dropped (worth a retry)."""


def check_server_url(server: str) -> str:
    """``https://host[:port]`` without a trailing slash; anything else is refused."""
    parts = urlsplit(server.strip())
    if parts.scheme != "https":
        raise ClientError(f"the server address must start with https:// (got {server!r})",
                          exit_code=REFUSED)
    try:
        port_ok = not parts.netloc.endswith(":") and (parts.port is None or parts.port > 0)
    except ValueError:
        port_ok = False
    if (not parts.hostname or not port_ok or parts.username or parts.password
            or parts.path not in ("", "/") or parts.query or parts.fragment):
        raise ClientError(f"the server address must be https://HOST[:PORT] (got {server!r})",
                          exit_code=REFUSED)
    return f"https://{parts.netloc}"


def tls_context(ca_pem: str | None) -> ssl.SSLContext:
    """Verify the server against ``ca_pem`` only, or the system's CAs when it is None."""
    try:
        if ca_pem is None:
            return ssl.create_default_context()
        return ssl.create_default_context(cadata=ca_pem)
    except ssl.SSLError as exc:
        raise ClientError(f"the CA certificate is not usable: {exc.reason or exc}") from None


def problem_line(response: httpx.Response, *, with_token: bool) -> str:
    """One line for an error answer: the problem's detail, status and type."""
    status = response.status_code
    problem: dict[str, Any] = {}
    if "json" in response.headers.get("content-type", ""):
        try:
            decoded = response.json()
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            problem = decoded
    detail = str(problem.get("detail") or problem.get("title") or response.reason_phrase)
    kind = problem.get("type")
    slug = kind.rsplit("/", 1)[-1] if isinstance(kind, str) else ""
    label = f"HTTP {status}" + (f" {slug}" if slug and slug != str(status) else "")
    line = f"{detail} ({label})"
    retry_after = response.headers.get("retry-after")
    if retry_after:
        line += f"; retry after {retry_after} s"
    if status == 401 and with_token:
        line += "; the token may have expired or been revoked: log in again"
    return line


# A 429 asking for a longer wait than this is reported, not waited out.
MAX_RATE_LIMIT_WAIT = 60.0
RATE_LIMIT_ATTEMPTS = 5


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds, when the server sent it as a number."""
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        decoded = response.json()
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


class Api:
    """A connection to one Strongroom server, optionally with a Bearer token."""

    def __init__(self, server: str, ca_pem: str | None, token: str | None = None) -> None:
        self.server = check_server_url(server)
        self.token = token
        self.rate_limit_waits = 0  # how often a 429 was waited out (here or by the caller)
        headers = {"user-agent": f"strongroom-cli/{__version__}", "accept": "application/json"}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        self.http = httpx.Client(
            base_url=self.server, verify=tls_context(ca_pem), timeout=TIMEOUT, headers=headers,
            follow_redirects=False,
        )

    @classmethod
    def from_credentials(cls) -> Api:
        stored = config.load()
        return cls(stored.server, stored.ca, stored.token)

    def __enter__(self) -> Api:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.http.close()

    # -- requests ---------------------------------------------------------------------------

    def _failure(self, exc: httpx.TransportError) -> ClientError:
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ssl.SSLCertVerificationError):
                reason = cause.verify_message or cause.reason or "verification failed"
                return ClientError(
                    f"cannot verify the certificate of {self.server} ({reason}): {_CA_HINT}"
                )
            cause = cause.__cause__ or cause.__context__
        if isinstance(exc, httpx.ConnectError):
            return ConnectionLost(f"cannot connect to {self.server}: {exc}")
        if isinstance(exc, httpx.TimeoutException):
            return ConnectionLost(f"{self.server} did not answer in time")
        return ConnectionLost(f"lost the connection to {self.server}: {exc or type(exc).__name__}")

    def send(
        self, method: str, path: str, *, json_body: Any = None,
        params: Mapping[str, str | int] | None = None, content: Iterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send a request; a non-2xx answer raises :class:`ApiError`.

        A request without a streamed body that is rate-limited (429) is sent again after
        the server's Retry-After, a few times, when that is at most
        :data:`MAX_RATE_LIMIT_WAIT` seconds; a streamed body is the caller's to resend.
        """
        for attempt in range(1, RATE_LIMIT_ATTEMPTS + 1):
            try:
                response = self.http.request(
                    method, API + path, json=json_body, params=params, content=content,
                    headers=headers,
                )
            except httpx.TransportError as exc:
                raise self._failure(exc) from None
            wait = _retry_after(response)
            if (response.status_code != 429 or content is not None or wait is None
                    or wait > MAX_RATE_LIMIT_WAIT or attempt == RATE_LIMIT_ATTEMPTS):
                break
            self.rate_limit_waits += 1
            time.sleep(wait)
        self.raise_for_problem(response)
        return response

    def raise_for_problem(self, response: httpx.Response) -> None:
        if response.is_success:
            return
        if response.is_redirect:
            raise ClientError(f"{self.server} answered with a redirect; is it a Strongroom "
                              "server?")
        raise ApiError(response.status_code, _problem(response),
                       problem_line(response, with_token=self.token is not None),
                       _retry_after(response))

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON answer (None for 204)."""
        response = self.send(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except json.JSONDecodeError:
            raise ClientError(f"{self.server} answered {method} {path} with something that is "
                              "not JSON; is it a Strongroom server?") from None

    def get(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        return self.call("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("POST", path, json_body=body)

    def put(self, path: str, body: Any = None) -> Any:
        return self.call("PUT", path, json_body=body)

    def delete(self, path: str) -> Any:
        return self.call("DELETE", path)

    @contextmanager
    def stream(self, path: str, params: Mapping[str, str] | None = None
               ) -> Iterator[httpx.Response]:
        """A GET whose body is read in pieces (downloads)."""
        try:
            with self.http.stream("GET", API + path, params=params) as response:
                if not response.is_success:
                    response.read()
                self.raise_for_problem(response)
                yield response
        except httpx.TransportError as exc:
            raise self._failure(exc) from None
