"""Edge checks before any route runs: who the client is, how often it asks, how much it sends."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strongroom.firewall.addresses import Network, client_address
from strongroom.firewall.ratelimit import RateLimited, RateLimiter
from strongroom.web.problems import problem


class FirewallMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        proxies: Sequence[Network],
        limiter: RateLimiter,
        max_body: int,
        large_body_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.proxies = list(proxies)
        self.limiter = limiter
        self.max_body = max_body
        self.large_body_prefixes = large_body_prefixes

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
        if str(scope.get("path", "")).startswith(self.large_body_prefixes or ("\0",)):
            await self.app(scope, receive, send)
            return
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._too_large(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    # An HTTPException passes through FastAPI's body parsing untouched.
                    raise HTTPException(
                        413, f"the request body is larger than {self.max_body} bytes"
                    )
            return message

        await self.app(scope, counting_receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, f"the request body is larger than {self.max_body} bytes",
                           slug="too-large", title="Content too large")
        await response(scope, receive, send)
