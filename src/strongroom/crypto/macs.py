"""Keyed HMAC-SHA256 tokens, domain-separated, for look-ups that must not reveal values."""

from __future__ import annotations

import hashlib
import hmac


class MacKey:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def mac(self, domain: str, value: bytes) -> str:
        """HMAC-SHA256 of ``value`` in a named domain (so tokens of one use never match another)."""
        return hmac.new(self._key, domain.encode() + b"\x00" + value, hashlib.sha256).hexdigest()

    def matches(self, domain: str, value: bytes, expected: str) -> bool:
        return hmac.compare_digest(self.mac(domain, value), expected)

    def __repr__(self) -> str:
        return "MacKey(**********)"


def sha256_hex(data: bytes) -> str:
    """Plain SHA-256, for values that are already high-entropy secrets (session ids, tokens)."""
    return hashlib.sha256(data).hexdigest()


def constant_time_equal(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())
