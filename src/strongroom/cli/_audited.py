"""Run an operator action with its audit event, and record refusals too."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from strongroom.audit import Actor, EventTag, Outcome
from strongroom.audit.errors import AuditUnavailable
from strongroom.deployment import Deployment
from strongroom.errors import StrongroomError


@contextmanager
def audited_failure(dep: Deployment, tag: EventTag, target: str | None = None) -> Iterator[None]:
    """If the block fails with one of our errors, record the failure and its reason.

    The failed change was rolled back with its own transaction; the failure event
    goes in a fresh one. If even that cannot be written, the original error stands.
    """
    try:
        yield
    except AuditUnavailable:
        raise
    except StrongroomError as exc:
        try:
            with dep.transaction() as session:
                dep.audit.record_event(
                    session, tag, actor=Actor.cli(), target=target,
                    outcome=Outcome.FAILURE, reason=exc.slug,
                )
        except StrongroomError:
            pass
        raise


def record(
    dep: Deployment,
    session: Session,
    tag: EventTag,
    *,
    tenant: str | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    dep.audit.record_event(
        session, tag, actor=Actor.cli(), tenant=tenant, target=target, details=details
    )
