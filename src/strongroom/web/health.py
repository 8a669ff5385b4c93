"""Liveness and readiness."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from sqlalchemy.exc import SQLAlchemyError

from strongroom.deployment import Deployment
from strongroom.errors import ServiceUnavailable
from strongroom.identity.permissions import Permission
from strongroom.web.auth import route_options

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers",
            **route_options(Permission.PUBLIC))
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the metadata database answers",
            **route_options(Permission.PUBLIC))
def readyz(request: Request) -> dict[str, str]:
    deployment: Deployment = request.app.state.deployment
    try:
        with deployment.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except SQLAlchemyError:
        raise ServiceUnavailable("the metadata database does not answer") from None
    return {"status": "ready", "environment": deployment.settings.environment.value}
