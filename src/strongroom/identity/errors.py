"""What authentication and authorisation refuse. Messages never say which part was wrong."""

from strongroom.errors import Conflict, Forbidden, InvalidInput, NotFound, StrongroomError


class NotAuthenticated(StrongroomError):
    status = 401
    slug = "not-authenticated"
    title = "Authentication required"


class BadCredentials(NotAuthenticated):
    """Unknown account or wrong password or code: one answer for all, by design."""

    slug = "bad-credentials"
    title = "Login failed"


class MfaRequired(NotAuthenticated):
    slug = "mfa-required"
    title = "A one-time code is required"


class LoginThrottled(StrongroomError):
    status = 429
    slug = "too-many-attempts"
    title = "Too many attempts"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many failed attempts; try again in {retry_after} seconds",
        )
        self.retry_after = retry_after


class PermissionDenied(Forbidden):
    slug = "permission-denied"


class AddressNotAllowed(Forbidden):
    slug = "address-not-allowed"


class ReauthenticationRequired(Forbidden):
    slug = "reauthentication-required"
    title = "Confirm your password first"


class CsrfFailed(Forbidden):
    slug = "csrf"
    title = "Missing or wrong CSRF token"


class UserNotFound(NotFound):
    pass


class TokenNotFound(NotFound):
    pass


class AccountExists(Conflict):
    pass


class InvalidRole(InvalidInput):
    pass
