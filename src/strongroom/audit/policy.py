"""Audit policies read from settings."""

from __future__ import annotations

from strongroom.audit.retention import RetentionPolicy
from strongroom.audit.services import CheckpointPolicy
from strongroom.audit.tags import EventClass
from strongroom.config import Settings


def checkpoint_policy(settings: Settings) -> CheckpointPolicy:
    return CheckpointPolicy(
        every_events=settings.audit_checkpoint_every_events,
        every_minutes=settings.audit_checkpoint_every_minutes,
        export_file=settings.audit_checkpoint_file,
    )


def retention_policy(settings: Settings) -> RetentionPolicy:
    return RetentionPolicy({
        EventClass.SECURITY: settings.audit_retention_days_security,
        EventClass.ADMINISTRATION: settings.audit_retention_days_administration,
        EventClass.ROUTINE: settings.audit_retention_days_routine,
    })
