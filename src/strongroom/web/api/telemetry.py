"""Your own place in the insider programme, and the helper routes use to record usage.

``GET /api/v1/me/telemetry`` says whether you are an insider; ``PUT`` with
``{"insider": true|false}`` is your own choice, for yourself only: there is no
route by which an admin or an operator could make it for you. Joining needs an
interactive session (consent is given by the person, not by a script's token);
leaving works however you are signed in, because withdrawing must be as easy as
consenting.

Routes record usage with :func:`track`::

    with track(request, UsageFeature.ANALYSIS_COUNT) as usage:
        ...             # the work
        usage.rows = n  # optional: coarse sizes, never values

It is recorded only if the block ends without an exception, in its own
transaction, and never fails the request.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import APIRouter, Request
from pydantic import BaseModel, StrictBool

from strongroom.audit import EventTag, Outcome
from strongroom.identity.errors import PermissionDenied
from strongroom.identity.models import User
from strongroom.identity.permissions import Permission
from strongroom.telemetry import services as telemetry
from strongroom.telemetry.models import UsageFeature
from strongroom.web.api.schemas import Strict
from strongroom.web.auth import current, deployment_of, route_options

router = APIRouter(prefix="/api/v1/me/telemetry", tags=["telemetry"])


class InsiderChoice(Strict):
    insider: StrictBool


class TelemetryOut(BaseModel):
    insider: bool
    changed_at: dt.datetime | None
    recording: bool


def _out(state: telemetry.ConsentState) -> TelemetryOut:
    return TelemetryOut(insider=state.insider, changed_at=state.changed_at,
                        recording=state.recording)


@router.get("", response_model=TelemetryOut, **route_options(Permission.AUTHENTICATED))
def get_telemetry(request: Request) -> TelemetryOut:
    """Whether you are in the insider programme (usage recorded under your user id)."""
    principal = current(request)
    dep = deployment_of(request)
    with dep.transaction() as session:
        return _out(telemetry.consent_state(session, dep, principal.principal_id))


@router.put("", response_model=TelemetryOut, **route_options(Permission.AUTHENTICATED))
def set_telemetry(body: InsiderChoice, request: Request) -> TelemetryOut:
    """Join or leave the insider programme. Leaving re-pseudonymises your past events."""
    principal = current(request)
    dep = deployment_of(request)
    if body.insider and principal.session_id is None:
        refusal = PermissionDenied(
            "join the insider programme in an interactive session, not with a token"
        )
        with dep.transaction() as session:
            dep.audit.record_event(
                session, EventTag.TELEMETRY_INSIDER_JOIN, actor=principal.actor(),
                tenant=principal.tenant_id, target=f"user:{principal.principal_id}",
                outcome=Outcome.DENIED, reason=refusal.slug,
            )
        raise refusal
    with dep.transaction() as session:
        user = session.get(User, principal.principal_id)
        if user is None or user.tenant_id != principal.tenant_id:
            raise PermissionDenied("the account no longer exists")
        return _out(telemetry.set_insider(session, dep, principal.actor(), user, body.insider))


@contextmanager
def track(request: Request, feature: UsageFeature) -> Iterator[telemetry.Usage]:
    """Time the block and record its use by the signed-in user (see the module docstring)."""
    principal = current(request)
    with telemetry.measured(deployment_of(request), principal, feature) as usage:
        yield usage
