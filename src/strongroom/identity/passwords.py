"""Password hashing and the password policy (NIST SP 800-63B rev 4, OWASP ASVS 5.0 level 2).

Hashing is Argon2id through argon2-cffi with at least the OWASP minimum (m=19 MiB, t=2,
p=1). The parameters are the constants below: raise them and :func:`needs_rehash` tells
the login path to store a new hash the next time the user's password is at hand.

The policy has no composition rules and no rotation. :func:`check_password` refuses, with
a reason and never the password itself:

- fewer than 15 characters when the password is the only factor, 8 with MFA;
- more than 256 characters (SP 800-63B asks that at least 64 be accepted);
- a single character or short pattern repeated, or a simple sequence (``1234…``, ``cba…``);
- one of the most commonly used passwords (``data/common-passwords.txt.gz``, see
  ``data/NOTICE.md`` for its sources and licences);
- a password containing a context word: words of four or more characters from the
  tenant's and the user's names and email address, and always "strongroom".

Passwords are NFKC-normalised before they are checked, hashed or verified, so the same
password typed on another keyboard or input method (fullwidth letters, composed or
decomposed accents) still matches. Length is counted in code points after normalising.
Any character is allowed, spaces and emoji included.
"""

from __future__ import annotations

import functools
import gzip
import itertools
import re
import secrets
import unicodedata
from collections.abc import Iterable
from enum import StrEnum
from importlib import resources

from argon2 import Parameters, PasswordHasher, Type, extract_parameters
from argon2.exceptions import VerificationError
from argon2.low_level import ARGON2_VERSION

from strongroom.errors import InvalidInput

# OWASP Password Storage Cheat Sheet minimum for Argon2id. Raise these as hardware
# allows (``benchmarks/auth_bench.py`` reports login latency); never lower them.
ARGON2_TIME_COST = 2
ARGON2_MEMORY_COST_KIB = 19_456
ARGON2_PARALLELISM = 1
ARGON2_HASH_LEN = 32
ARGON2_SALT_LEN = 16

# A stored hash asking for far more than we ever set is corrupt or planted: verifying it
# would let one login allocate gigabytes or spin for minutes, so it is treated as malformed.
_MAX_MEMORY_COST_KIB = 1 << 20  # 1 GiB
_MAX_TIME_COST = 64
_MAX_PARALLELISM = 64

MIN_LENGTH_SINGLE_FACTOR = 15
MIN_LENGTH_WITH_MFA = 8
MAX_LENGTH = 256
# NFKC composes at most four code points into one (e.g. U+1F82), so longer raw input can
# never normalise to MAX_LENGTH or fewer; refusing it first bounds the work per request.
_MAX_RAW_LENGTH = 4 * MAX_LENGTH

MIN_CONTEXT_WORD_LENGTH = 4
ALWAYS_CONTEXT_WORDS = ("strongroom",)
# Patterns of up to this many characters are refused even when repeated only twice.
_SHORT_PATTERN = 4

COMMON_PASSWORDS_FILE = "common-passwords.txt.gz"

_HASHER = PasswordHasher(
    time_cost=ARGON2_TIME_COST,
    memory_cost=ARGON2_MEMORY_COST_KIB,
    parallelism=ARGON2_PARALLELISM,
    hash_len=ARGON2_HASH_LEN,
    salt_len=ARGON2_SALT_LEN,
    type=Type.ID,
)

_HINT = ("long passphrases of several unrelated words are easy to remember and hard to "
         "guess; any characters are allowed, including spaces and emoji")


class WeakPasswordReason(StrEnum):
    """Which rule refused a password; audit records carry this, never the password."""

    TOO_SHORT = "too-short"
    TOO_LONG = "too-long"
    REPETITIVE = "repetitive"
    COMMON = "common"
    CONTEXT = "context"


class WeakPassword(InvalidInput):
    """A password the policy refuses. ``reason`` names the rule; the message says why."""

    slug = "weak-password"
    title = "Password not accepted"

    def __init__(self, reason: WeakPasswordReason, detail: str) -> None:
        super().__init__(detail, hint=_HINT)
        self.reason = reason


def _too_long() -> WeakPassword:
    return WeakPassword(
        WeakPasswordReason.TOO_LONG,
        f"the password is too long: at most {MAX_LENGTH} characters are accepted",
    )


# -- hashing ------------------------------------------------------------------------------------


def normalise_password(password: str) -> str:
    """The form that is checked, hashed and verified: Unicode NFKC."""
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    """Argon2id hash (PHC string, with its parameters and a random salt) of the normalised password.

    Call :func:`check_password` first when the password is new; this only refuses input too
    long to ever pass it.
    """
    if len(password) > _MAX_RAW_LENGTH:
        raise _too_long()
    return _HASHER.hash(normalise_password(password))


def _within_limits(params: Parameters) -> bool:
    return (params.memory_cost <= _MAX_MEMORY_COST_KIB
            and params.time_cost <= _MAX_TIME_COST
            and params.parallelism <= _MAX_PARALLELISM)


def verify_password(stored_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash``.

    False, never an exception, for a wrong password and for a malformed, foreign or
    absurdly expensive hash. For an unknown account call :func:`burn_time` instead, so
    that the answer takes as long as for a known one.
    """
    if len(password) > _MAX_RAW_LENGTH:
        return False
    try:
        if not _within_limits(extract_parameters(stored_hash)):
            return False
        return _HASHER.verify(stored_hash, normalise_password(password))
    # VerificationError covers a mismatch; ValueError covers InvalidHashError, parameters
    # argon2 refuses and a hash that is not ASCII.
    except (VerificationError, ValueError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Whether a hash that just verified should be replaced by one with today's parameters.

    True when it is not Argon2id of the current version or any parameter is below the
    current constants; a hash made with stronger parameters is kept, never downgraded.
    An unparseable hash is reported as needing a rehash.
    """
    try:
        params = extract_parameters(stored_hash)
    except ValueError:
        return True
    return (params.type is not Type.ID
            or params.version != ARGON2_VERSION
            or params.time_cost < ARGON2_TIME_COST
            or params.memory_cost < ARGON2_MEMORY_COST_KIB
            or params.parallelism < ARGON2_PARALLELISM
            or params.hash_len < ARGON2_HASH_LEN
            or params.salt_len < ARGON2_SALT_LEN)


@functools.cache
def _dummy_hash() -> str:
    # A random password nobody knows, hashed with the current parameters on first use.
    return _HASHER.hash(secrets.token_urlsafe(32))


def burn_time(password: str) -> None:
    """Spend the time of one real verification, for a login naming an unknown account.

    Without it "no such user" answers faster than "wrong password" and tells an attacker
    which accounts exist. The first call also builds the dummy hash: call it once at
    start-up to keep that cost off the first failed login.
    """
    verify_password(_dummy_hash(), password)


# -- policy -------------------------------------------------------------------------------------


@functools.cache
def common_passwords() -> frozenset[str]:
    """The block list: NFKC-normalised, lowercased common passwords, loaded once on first use."""
    packed = (resources.files("strongroom.identity") / "data" / COMMON_PASSWORDS_FILE).read_bytes()
    # split("\n"), not splitlines(): entries may hold characters splitlines() breaks on.
    return frozenset(line for line in gzip.decompress(packed).decode("utf-8").split("\n") if line)


_SEPARATORS = re.compile(r"[\W_]+")


def context_words(context: Iterable[str]) -> frozenset[str]:
    """Casefolded words a password must not contain, from names, slugs and email addresses.

    Each item is kept whole and split at anything that is not a letter or digit; pieces
    shorter than four characters are dropped. An email address contributes its local part
    and its domain labels except the last ("alice.smith@acme.example" gives alice, smith,
    acme, example). "strongroom" is always included.
    """
    words = set(ALWAYS_CONTEXT_WORDS)
    for item in context:
        text = normalise_password(item).casefold().strip()
        local, at, domain = text.rpartition("@")
        parts = [local, *domain.split(".")[:-1]] if at else [text]
        for part in parts:
            words.add(part)
            words.update(_SEPARATORS.split(part))
    return frozenset(w for w in words if len(w) >= MIN_CONTEXT_WORD_LENGTH)


def _step(a: str, b: str) -> int | None:
    """+1 or -1 when ``b`` follows or precedes ``a`` (digits and ASCII letters wrap)."""
    if a in "0123456789" and b in "0123456789":
        return {1: 1, 9: -1}.get((int(b) - int(a)) % 10)
    if a.isascii() and b.isascii() and a.isalpha() and b.isalpha():
        return {1: 1, 25: -1}.get((ord(b) - ord(a)) % 26)
    difference = ord(b) - ord(a)
    return difference if difference in {1, -1} else None


def is_repetitive_or_sequential(password: str) -> bool:
    """Whether the password is one character or a pattern repeated, or a simple sequence.

    Repeated: a pattern of up to four characters filling the whole password ("aaaa…",
    "abab…", "12341234"), or any pattern filling it at least three times. Sequence: every
    character one up, or every one down, from the one before ("1234567890123456",
    "zyxwvu…"). Case is ignored.
    """
    text = password.casefold()
    length = len(text)
    if length < 2:
        return False
    for period in range(1, length // 2 + 1):
        if ((period <= _SHORT_PATTERN or 3 * period <= length)
                and all(text[i] == text[i - period] for i in range(period, length))):
            return True
    steps = {_step(a, b) for a, b in itertools.pairwise(text)}
    return len(steps) == 1 and None not in steps


def check_password(password: str, *, has_mfa: bool, context: Iterable[str]) -> str:
    """Apply the password policy; return the normalised password or raise :class:`WeakPassword`.

    ``has_mfa`` lowers the minimum from 15 to 8 characters. ``context`` holds the tenant's
    slug and name and the user's name and email address; see :func:`context_words`.
    The error names the rule broken, never the password or the part of it that matched.
    """
    if len(password) > _MAX_RAW_LENGTH:
        raise _too_long()
    normalised = normalise_password(password)
    minimum = MIN_LENGTH_WITH_MFA if has_mfa else MIN_LENGTH_SINGLE_FACTOR
    if len(normalised) < minimum:
        detail = f"the password is too short: use at least {minimum} characters"
        if not has_mfa:
            detail += f" ({MIN_LENGTH_WITH_MFA} once two-factor authentication is on)"
        raise WeakPassword(WeakPasswordReason.TOO_SHORT, detail)
    if len(normalised) > MAX_LENGTH:
        raise _too_long()
    if is_repetitive_or_sequential(normalised):
        raise WeakPassword(
            WeakPasswordReason.REPETITIVE,
            "the password is one character or a short pattern repeated, or a simple sequence",
        )
    lowered = normalised.lower()
    blocked = common_passwords()
    if lowered in blocked or lowered.strip() in blocked:
        raise WeakPassword(
            WeakPasswordReason.COMMON,
            "the password is one of the most commonly used passwords",
        )
    folded = normalised.casefold()
    if any(word in folded for word in context_words(context)):
        raise WeakPassword(
            WeakPasswordReason.CONTEXT,
            "the password contains a word from the tenant's or the account's name or email "
            "address, or the name of this service",
        )
    return normalised
