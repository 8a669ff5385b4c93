"""Privacy errors: each names the column, transform or parameter, never a value."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.errors import Conflict, Forbidden, InvalidInput

if TYPE_CHECKING:
    from strongroom.privacy.anonymity import AnonymityReport


class TransformInvalid(InvalidInput):
    """A column transform that cannot apply: unknown column, kind or parameter, or wrong type."""

    slug = "transform-invalid"
    title = "Invalid column transform"

    def __init__(
        self, detail: str, *, column: str | None = None, transform: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(detail, hint=hint)
        self.column = column
        self.transform = transform


class TokenInvalid(InvalidInput):
    """A token that is malformed, tampered, of an unknown key version, or another tenant's."""

    slug = "token-invalid"
    title = "Invalid privacy token"


class ReversalForbidden(Forbidden):
    """Only a tenant admin may turn tokens back into values."""

    slug = "token-reversal-forbidden"
    title = "Token reversal not allowed"


class RotationConflict(Conflict):
    slug = "privacy-key-rotation"
    title = "Key rotation already in progress"


class AnonymityInvalid(InvalidInput):
    """Anonymity parameters that cannot be used: k below 2, unknown columns, bad bounds."""

    slug = "anonymity-invalid"
    title = "Invalid anonymity parameters"


class AnonymityRefused(InvalidInput):
    """Meeting k (and l) would suppress more rows than the bound allows."""

    slug = "anonymity-refused"
    title = "Too many rows would be suppressed"

    def __init__(
        self, detail: str, *, report: AnonymityReport, hint: str | None = None
    ) -> None:
        super().__init__(detail, hint=hint)
        self.report = report
