"""The application factories: the tenant plane, the operator plane, and the dispatcher.

Both planes are served by one uvicorn server on two listeners; the dispatcher
sends each connection to the plane of the listener it arrived on, so the
tenant listener has no route to any operator endpoint at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio.to_thread
from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from strongroom import __version__
from strongroom.deployment import Deployment
from strongroom.firewall.addresses import parse_networks
from strongroom.firewall.ratelimit import RateLimiter
from strongroom.web import health, operator
from strongroom.web.api import (
    analysis,
    audit,
    datasets,
    exports,
    policy,
    privacy,
    session,
    telemetry,
    tokens,
    uploads,
    users,
)
from strongroom.web.firewall import FirewallMiddleware, body_limits
from strongroom.web.headers import SecurityHeadersMiddleware
from strongroom.web.problems import ProblemMiddleware, install_handlers

TENANT_ROUTERS: tuple[APIRouter, ...] = (
    health.router, session.router, users.router, tokens.router, policy.router, audit.router,
    telemetry.router, uploads.router, datasets.router, analysis.router, exports.router,
    privacy.router,
)
OPERATOR_ROUTERS: tuple[APIRouter, ...] = (health.router, operator.router)


def make_limiter(deployment: Deployment) -> RateLimiter:
    settings = deployment.settings
    return RateLimiter(settings.redis_url.reveal(), settings.rate_limit_default,
                       settings.rate_limit_login)


@asynccontextmanager
async def _tenant_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Builds still running when the app stops are cancelled, and waited for."""
    try:
        yield
    finally:
        jobs: datasets.BuildJobs = app.state.build_jobs
        await anyio.to_thread.run_sync(jobs.shutdown)


def _build(
    deployment: Deployment, title: str, routers: Iterable[APIRouter], limiter: RateLimiter,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    settings = deployment.settings
    app = FastAPI(
        title=title,
        version=__version__,
        debug=False,  # never render tracebacks to clients, even when debugging
        docs_url="/docs" if settings.debug else None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.deployment = deployment
    app.state.limiter = limiter
    install_handlers(app)
    for router in routers:
        app.include_router(router)
    app.add_middleware(
        FirewallMiddleware,
        proxies=parse_networks(settings.trusted_proxies, "trusted_proxies"),
        limiter=limiter,
        max_body=settings.max_request_bytes,
        route_limits=lambda: body_limits(app.routes, settings),
    )
    # Added last = outermost: headers go on every answer, including the bare 500.
    app.add_middleware(ProblemMiddleware, debug=settings.debug)
    app.add_middleware(SecurityHeadersMiddleware)
    return app


def create_app(deployment: Deployment, limiter: RateLimiter | None = None) -> FastAPI:
    """The tenant plane, with the runner of its background builds."""
    app = _build(deployment, "Strongroom", TENANT_ROUTERS, limiter or make_limiter(deployment),
                 lifespan=_tenant_lifespan)
    app.state.build_jobs = datasets.BuildJobs(deployment)
    return app


def create_operator_app(deployment: Deployment, limiter: RateLimiter | None = None) -> FastAPI:
    """The operator plane."""
    return _build(deployment, "Strongroom operator API", OPERATOR_ROUTERS,
                  limiter or make_limiter(deployment))


class PlaneDispatcher:
    """Send each request to the plane of the listener (local port) it arrived on."""

    def __init__(self, tenant: ASGIApp, operator_app: ASGIApp, operator_ports: set[int]) -> None:
        self.tenant = tenant
        self.operator = operator_app
        self.operator_ports = operator_ports

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if scope["type"] in ("http", "websocket") and server and server[1] in self.operator_ports:
            await self.operator(scope, receive, send)
        else:
            await self.tenant(scope, receive, send)


def create_dispatcher(deployment: Deployment, operator_ports: set[int]) -> PlaneDispatcher:
    limiter = make_limiter(deployment)
    return PlaneDispatcher(create_app(deployment, limiter),
                           create_operator_app(deployment, limiter), operator_ports)
