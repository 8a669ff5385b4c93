"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from strongroom import __version__
from strongroom.deployment import Deployment
from strongroom.web import health
from strongroom.web.headers import SecurityHeadersMiddleware
from strongroom.web.problems import ProblemMiddleware, install_handlers


def create_app(deployment: Deployment) -> FastAPI:
    debug = deployment.settings.debug
    app = FastAPI(
        title="Strongroom",
        version=__version__,
        debug=False,  # never render tracebacks to clients, even when debugging
        docs_url="/docs" if debug else None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.deployment = deployment
    install_handlers(app)
    app.include_router(health.router)
    # Added last = outermost: headers go on every answer, including the bare 500.
    app.add_middleware(ProblemMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    return app
