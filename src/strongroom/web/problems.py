"""RFC 9457 problem details: the one error shape of every HTTP answer.

Handlers turn our errors, Starlette's HTTP errors and validation errors into
``application/problem+json``. Unexpected exceptions are caught by
:class:`ProblemMiddleware`, logged with an error id (never the request body),
and answered with a bare 500 problem that carries only that id.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strongroom.errors import StrongroomError

PROBLEM_TYPE = "application/problem+json"
TYPE_BASE = "https://strongroom.invalid/problems/"
logger = logging.getLogger("strongroom.web")
# Extension members (RFC 9457 section 3.2) an error may carry beside its detail, for clients
# to act on: a resumable upload's WrongOffset says where to continue; an export over a
# velocity limit says which limits it passed and what remains.
EXTENSION_MEMBERS = ("expected_offset", "exceeded", "remaining")

_TITLES = {
    400: "Bad request", 401: "Unauthorised", 403: "Forbidden", 404: "Not found",
    405: "Method not allowed", 406: "Not acceptable", 409: "Conflict", 413: "Content too large",
    415: "Unsupported media type", 422: "Invalid input", 429: "Too many requests",
    500: "Internal server error", 503: "Service unavailable",
}


def problem(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {
        "type": TYPE_BASE + (slug or str(status)),
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return Response(
        json.dumps(body), status_code=status, media_type=PROBLEM_TYPE, headers=headers
    )


def _describe_validation(errors: Sequence[Any]) -> list[dict[str, str]]:
    """Where and what is wrong, never the rejected value (it may be personal data)."""
    described = []
    for error in errors:
        location = ".".join(str(part) for part in error.get("loc", ()))
        described.append({"field": location, "problem": str(error.get("msg", "invalid"))})
    return described


async def _strongroom_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StrongroomError):  # registered for this type only
        raise TypeError(type(exc).__name__)
    status = exc.status if 400 <= exc.status < 600 else 500
    if status >= 500 and exc.status != 503:
        error_id = uuid.uuid4().hex
        logger.error("error %s: %s on %s %s", error_id, type(exc).__name__,
                     request.method, request.url.path)
        return problem(status, f"internal error {error_id}", error_id=error_id)
    detail = exc.one_line()
    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    if status == 401:
        headers["www-authenticate"] = 'Bearer realm="strongroom"'
    members = {name: getattr(exc, name) for name in EXTENSION_MEMBERS if hasattr(exc, name)}
    return problem(status, detail, slug=exc.slug, title=exc.title, instance=request.url.path,
                   headers=headers or None, **members)


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):  # registered for this type only
        raise TypeError(type(exc).__name__)
    detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"nothing at {request.url.path}"
    headers = {name.lower(): value for name, value in (exc.headers or {}).items()}
    if exc.status_code == 405:
        if detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {request.url.path}"
        # Starlette names only the first matching route's methods; list every route's.
        headers["allow"] = ", ".join(_allowed_methods(request))
    return problem(exc.status_code, detail, instance=request.url.path, headers=headers)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route fully matches for this path (probed, since included
    routers do not expose their routes' methods directly)."""
    return [
        method for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL
               for route in request.app.routes)
    ]


async def _validation_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, RequestValidationError):  # registered for this type only
        raise TypeError(type(exc).__name__)
    errors = _describe_validation(exc.errors())
    summary = "; ".join(f"{e['field']}: {e['problem']}" for e in errors[:5])
    return problem(422, f"the request is not valid: {summary}", slug="invalid-input",
                   instance=request.url.path, errors=errors)


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StrongroomError, _strongroom_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)


class ProblemMiddleware:
    """Outermost of our middleware: unexpected exceptions become a bare 500 problem.

    ``debug`` (refused in production) adds the traceback to the log line.
    """

    def __init__(self, app: ASGIApp, debug: bool = False) -> None:
        self.app = app
        self.debug = debug

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            error_id = uuid.uuid4().hex
            # Type and route only, no traceback: exception messages may quote request data.
            logger.error(
                "error %s: unhandled %s on %s %s", error_id, type(exc).__name__,
                scope.get("method"), scope.get("path"), exc_info=exc if self.debug else None,
            )
            if started:
                # Too late for a problem answer. Returning leaves the response unfinished, so
                # uvicorn closes the connection and the client sees it cut off; re-raising
                # would make uvicorn log the traceback, request data and all.
                return
            response = problem(500, f"internal error {error_id}", error_id=error_id)
            await response(scope, receive, send)
