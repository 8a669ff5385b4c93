"""What can go wrong with an export. Messages name fields and limits, never values."""

from __future__ import annotations

from typing import Any

from strongroom.errors import InvalidInput, NotFound, StrongroomError


class ExportNotFound(NotFound):
    """No such export for this user: another user's export is simply not found."""

    slug = "export-not-found"


class BadExportRequest(InvalidInput):
    """An export specification that cannot be run (format, columns, anonymity options)."""

    slug = "export-invalid"
    title = "Export request not valid"


class LinkGone(StrongroomError):
    """The download link was used already, or has expired (and its file may be purged)."""

    status = 410
    slug = "export-link-gone"
    title = "Download link no longer valid"


class LinkUsed(LinkGone):
    slug = "export-link-used"


class LinkExpired(LinkGone):
    slug = "export-link-expired"


class LimitAboveCap(InvalidInput):
    """A tenant admin asked for an export limit above the operator's cap."""

    slug = "export-limit-above-cap"
    title = "Export limit above the operator's cap"


class ExportQuotaExceeded(StrongroomError):
    """The export would take the user or tenant over a velocity limit: retry later.

    The problem document carries ``exceeded`` (each limit passed: scope, window,
    measure, limit, used, requested) and ``remaining`` ({scope: {window: {measure:
    {limit, used, remaining}}}}); the Retry-After header says when it would fit.
    """

    status = 429
    slug = "export-quota-exceeded"
    title = "Export velocity limit reached"

    def __init__(
        self, detail: str, *, retry_after: int, exceeded: list[dict[str, Any]],
        remaining: dict[str, Any], hint: str | None = None,
    ) -> None:
        super().__init__(detail, hint=hint)
        self.retry_after = retry_after
        self.exceeded = exceeded
        self.remaining = remaining


class ExportTooLarge(InvalidInput):
    """The export alone is larger than a limit: waiting would not help, narrowing would."""

    slug = "export-too-large"
    title = "Export larger than a velocity limit"

    def __init__(
        self, detail: str, *, exceeded: list[dict[str, Any]], remaining: dict[str, Any],
        hint: str | None = None,
    ) -> None:
        super().__init__(detail, hint=hint)
        self.exceeded = exceeded
        self.remaining = remaining
