"""Product-usage telemetry, kept in the deployment and pseudonymous by default.

Routes call :func:`record_usage` (in their own transaction) or wrap work in
:func:`measured` (timed, recorded afterwards, best effort). Users are keyed
pseudonyms unless they joined the insider programme themselves
(:func:`set_insider`); ``strongroom telemetry export`` gives the operator a file.
"""

from strongroom.telemetry.models import InsiderConsent, UsageEvent, UsageFeature
from strongroom.telemetry.services import (
    Subject,
    Usage,
    UsageSubject,
    measured,
    record_soon,
    record_usage,
    set_insider,
)

__all__ = [
    "InsiderConsent",
    "Subject",
    "Usage",
    "UsageEvent",
    "UsageFeature",
    "UsageSubject",
    "measured",
    "record_soon",
    "record_usage",
    "set_insider",
]
