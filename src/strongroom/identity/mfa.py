"""Second factors: TOTP (RFC 6238) enrolment and checks, and single-use recovery codes.

Pure functions: no database and no web framework. The caller stores what they
return (the secret, the last used time step, the recovery-code hashes) and
passes it back in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import secrets
import time
from collections.abc import Iterable
from urllib.parse import quote, urlencode

import pyotp
import segno

from strongroom.errors import InvalidInput

# The defaults every authenticator app supports; anything else is silently ignored by some.
TOTP_DIGITS = 6
TOTP_PERIOD_SECONDS = 30
TOTP_ALGORITHM = "SHA1"
# One step either side tolerates a phone clock that is up to 30 s off (RFC 6238 section 5.2).
TOTP_DRIFT_STEPS = 1
TOTP_SECRET_BYTES = 20  # 160 bits, the RFC 4226 recommendation
TOTP_MIN_SECRET_BYTES = 16  # RFC 4226 requires at least 128 bits

_BASE32_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
_DIGITS = frozenset("0123456789")

# Crockford's base32 in lower case: no i, l, o or u, so nothing reads as another symbol.
RECOVERY_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
RECOVERY_GROUPS = 3
RECOVERY_GROUP_LENGTH = 4
RECOVERY_LENGTH = RECOVERY_GROUPS * RECOVERY_GROUP_LENGTH  # 12 symbols of 5 bits: 60 bits
_RECOVERY_SYMBOLS = frozenset(RECOVERY_ALPHABET)
# Letters a reader may type for the digits they resemble; the alphabet never produces them.
_RECOVERY_LOOKALIKES = str.maketrans({"o": "0", "i": "1", "l": "1"})


def _normalise_secret(secret: str) -> str:
    """Return the secret as unpadded upper-case base32, or raise without echoing it."""
    cleaned = secret.replace(" ", "").upper().rstrip("=")
    if not cleaned or not set(cleaned) <= _BASE32_ALPHABET:
        raise InvalidInput("The TOTP secret is not base32.")
    try:
        raw = base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except binascii.Error:
        raise InvalidInput("The TOTP secret is not base32 of a valid length.") from None
    if len(raw) < TOTP_MIN_SECRET_BYTES:
        raise InvalidInput(f"The TOTP secret is shorter than {TOTP_MIN_SECRET_BYTES * 8} bits.")
    return cleaned


def new_totp_secret() -> str:
    """A fresh 160-bit TOTP secret as 32 base32 characters, to store encrypted with the user."""
    return pyotp.random_base32(length=TOTP_SECRET_BYTES * 8 // 5)


def provisioning_uri(secret: str, account: str, issuer: str = "Strongroom") -> str:
    """The ``otpauth://totp/`` URI an authenticator app scans (Key URI Format).

    Algorithm, digits and period are spelt out even though they are the
    defaults, so no app has to guess. Raises :class:`InvalidInput` for a
    malformed secret or an empty account or issuer.
    """
    normalised = _normalise_secret(secret)
    if not account.strip() or not issuer.strip():
        raise InvalidInput("The account name and issuer of a TOTP URI must not be empty.")
    # Quoting ':' keeps the "issuer:account" label unambiguous whatever the names contain.
    label = f"{quote(issuer, safe='@')}:{quote(account, safe='@')}"
    query = urlencode(
        {
            "secret": normalised,
            "issuer": issuer,
            "algorithm": TOTP_ALGORITHM,
            "digits": TOTP_DIGITS,
            "period": TOTP_PERIOD_SECONDS,
        },
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{query}"


def qr_svg(uri: str) -> str:
    """The URI as a QR code in a self-contained SVG document (no external references)."""
    buffer = io.BytesIO()
    segno.make_qr(uri, error="m").save(buffer, kind="svg", xmldecl=False, svgns=True, scale=4)
    return buffer.getvalue().decode("utf-8")


def verify_totp(
    secret: str, code: str, last_used_step: int | None, now: float | None = None
) -> int | None:
    """Check a 6-digit TOTP code and return its time step (``unix_time // 30``), or None.

    A code is accepted for the current step or one step either side. It is
    refused (None) when it is malformed, wrong, or belongs to a step at or
    before ``last_used_step``: each code works once, and an older code stops
    working once a newer one has been used. Store the returned step as the new
    ``last_used_step``. Only a malformed secret raises (:class:`InvalidInput`).
    """
    totp = pyotp.TOTP(_normalise_secret(secret), digits=TOTP_DIGITS, interval=TOTP_PERIOD_SECONDS)
    candidate = "".join(code.split())  # "123 456" as some apps display it, or a pasted newline
    # A set check, not str.isdigit(), which also accepts non-ASCII digits such as "٣".
    if len(candidate) != TOTP_DIGITS or not set(candidate) <= _DIGITS:
        return None
    current = int((time.time() if now is None else now) // TOTP_PERIOD_SECONDS)
    matched: int | None = None
    # Every step in the window is compared, so timing says nothing about which one matched.
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        if step < 0:
            continue
        if secrets.compare_digest(totp.generate_otp(step).encode(), candidate.encode()):
            matched = step
    if matched is None or (last_used_step is not None and matched <= last_used_step):
        return None
    return matched


def new_recovery_codes(count: int = 10) -> list[str]:
    """Fresh, distinct recovery codes shaped ``xxxx-xxxx-xxxx`` (60 random bits each).

    Show them to the user once and store only :func:`hash_recovery_code` of each.
    """
    if count < 1:
        raise InvalidInput("The number of recovery codes must be at least 1.")
    codes: dict[str, None] = {}  # ordered and distinct
    while len(codes) < count:
        symbols = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
        groups = (
            symbols[i : i + RECOVERY_GROUP_LENGTH]
            for i in range(0, len(symbols), RECOVERY_GROUP_LENGTH)
        )
        codes["-".join(groups)] = None
    return list(codes)


def _normalise_recovery_code(code: str) -> str:
    return code.strip().lower().replace("-", "").replace(" ", "").translate(_RECOVERY_LOOKALIKES)


def hash_recovery_code(code: str) -> str:
    """SHA-256 hex of the normalised code (case, hyphens and spaces do not matter).

    A fast hash is right here, unlike for passwords: the codes are 60 random
    bits, so nobody can guess them from the hash in useful time, and a slow
    hash would only make checking a list of ten expensive.
    """
    return hashlib.sha256(_normalise_recovery_code(code).encode("utf-8")).hexdigest()


def match_recovery_code(code: str, hashes: Iterable[str]) -> str | None:
    """The stored hash that ``code`` matches, or None; the caller then marks that hash used.

    Every stored hash is compared in constant time, and a malformed code simply
    matches nothing.
    """
    normalised = _normalise_recovery_code(code)
    if len(normalised) != RECOVERY_LENGTH or not set(normalised) <= _RECOVERY_SYMBOLS:
        return None
    wanted = hash_recovery_code(normalised).encode()
    found: str | None = None
    for stored in hashes:
        if secrets.compare_digest(stored.encode(), wanted):
            found = stored
    return found
