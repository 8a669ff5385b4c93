"""Edge checks before any route runs: who the client is, how often it asks, how much it sends.

Every request body is capped at ``max_body`` (the max_request_bytes setting),
except on the few routes that declare a larger cap of their own with
:func:`body_limit`: the middleware matches those routes exactly as the router
will (method and path template), so no other route can borrow their cap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strongroom.firewall.addresses import Network, client_address
from strongroom.firewall.ratelimit import RateLimited, RateLimiter
from strongroom.web.problems import problem

BODY_LIMIT_ATTRIBUTE = "__strongroom_body_limit__"
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def body_limit(setting: str) -> Callable[[Endpoint], Endpoint]:
    """Mark a route's endpoint as taking bodies up to the named setting, not max_request_bytes."""

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, BODY_LIMIT_ATTRIBUTE, setting)
        return endpoint

    return mark


@dataclasses.dataclass(frozen=True)
class RouteBodyLimit:
    """A route's own body cap: its methods and path template, as the router matches them."""

    methods: frozenset[str]
    path: re.Pattern[str]
    cap: int

    def applies(self, scope: Scope) -> bool:
        return scope.get("method") in self.methods and bool(
            self.path.match(str(scope.get("path", ""))))


def body_limits(routes: Sequence[BaseRoute], settings: object) -> tuple[RouteBodyLimit, ...]:
    """Each route whose endpoint is marked with :func:`body_limit`, with its cap from
    ``settings``; routes of included routers are seen with their full path."""
    found = []
    for context in iter_route_contexts(routes):
        name = getattr(context.endpoint, BODY_LIMIT_ATTRIBUTE, None)
        if isinstance(name, str) and context.path and context.methods:
            regex, _format, _convertors = compile_path(context.path)
            found.append(RouteBodyLimit(frozenset(context.methods), regex,
                                        int(getattr(settings, name))))
    return tuple(found)


class FirewallMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        proxies: Sequence[Network],
        limiter: RateLimiter,
        max_body: int,
        route_limits: Callable[[], Sequence[RouteBodyLimit]] | None = None,
    ) -> None:
        self.app = app
        self.proxies = list(proxies)
        self.limiter = limiter
        self.max_body = max_body
        # Looked up on first use: the app's routes are complete only once it serves.
        self._route_limits = route_limits
        self._limits: Sequence[RouteBodyLimit] | None = None

    def body_cap(self, scope: Scope) -> int:
        """The largest body this request may carry: its route's own cap, else max_body."""
        if self._limits is None:
            self._limits = self._route_limits() if self._route_limits else ()
        for limit in self._limits:
            if limit.applies(scope):
                return limit.cap
        return self.max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        peer = scope["client"][0] if scope.get("client") else "unknown"
        raw_headers = scope.get("headers") or []
        headers = dict(raw_headers)
        # Several X-Forwarded-For lines are one list (RFC 9110 section 5.3); keeping only
        # the last would let a client's own line stand in for the proxy's.
        forwarded = b",".join(v for k, v in raw_headers if k == b"x-forwarded-for")
        address = client_address(peer, forwarded.decode("latin-1") if forwarded else None,
                                 self.proxies)
        scope.setdefault("state", {})["client_address"] = address
        try:
            await asyncio.to_thread(self.limiter.hit, self.limiter.default, "all", address)
        except RateLimited as exc:
            response = problem(429, exc.detail, slug=exc.slug, title=exc.title,
                               headers={"retry-after": str(exc.retry_after)})
            await response(scope, receive, send)
            return
        cap = self.body_cap(scope)
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > cap):
            await self._too_large(cap, scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    # An HTTPException passes through FastAPI's body parsing untouched.
                    raise HTTPException(413, f"the request body is larger than {cap} bytes")
            return message

        await self.app(scope, counting_receive, send)

    async def _too_large(self, cap: int, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, f"the request body is larger than {cap} bytes",
                           slug="too-large", title="Content too large")
        await response(scope, receive, send)
