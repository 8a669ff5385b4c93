"""The one error root.

Every error we raise on purpose is a :class:`StrongroomError`. The web edge turns
it into an RFC 9457 ``application/problem+json`` answer and the CLI edge into
one line on stderr with exit code 2. Messages must never contain personal data:
name the field or the setting, never echo the value.
"""

from __future__ import annotations


class StrongroomError(Exception):
    """Base of all deliberate errors. Subclasses set the HTTP status and a type slug."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str, *, hint: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.hint = hint

    def one_line(self) -> str:
        """The message as the CLI prints it: what is wrong, then how to fix it."""
        return f"{self.detail} ({self.hint})" if self.hint else self.detail


class ConfigurationError(StrongroomError):
    """Settings, files or keys that stop the deployment from starting."""

    status = 500
    slug = "configuration"
    title = "Configuration error"


class NotFound(StrongroomError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(StrongroomError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class InvalidInput(StrongroomError):
    status = 422
    slug = "invalid-input"
    title = "Invalid input"


class Forbidden(StrongroomError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class ServiceUnavailable(StrongroomError):
    status = 503
    slug = "unavailable"
    title = "Service unavailable"
