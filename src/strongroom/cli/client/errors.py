"""The client's one error type: a line for the user and the exit code to leave with."""

from __future__ import annotations

from typing import Any

# 1: the server refused the request (4xx) or the user asked for something impossible.
# 2: the server failed (5xx), could not be reached, or the local set-up is unusable.
REFUSED = 1
FAILED = 2


class ClientError(Exception):
    """What went wrong, in one line, and the exit code the command ends with."""

    def __init__(self, message: str, *, exit_code: int = FAILED) -> None:
        super().__init__(" ".join(message.split()))
        self.message = " ".join(message.split())
        self.exit_code = exit_code


class ApiError(ClientError):
    """A problem+json answer (RFC 9457), or another non-2xx answer, from the server."""

    def __init__(
        self, status: int, problem: dict[str, Any], message: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, exit_code=REFUSED if 400 <= status < 500 else FAILED)
        self.status = status
        self.problem = problem
        self.retry_after = retry_after  # seconds, from a 429's or 503's Retry-After

    @property
    def slug(self) -> str:
        kind = self.problem.get("type")
        return kind.rsplit("/", 1)[-1] if isinstance(kind, str) else str(self.status)
