"""Deployment keys of the audit trail: an HMAC-SHA256 key and an Ed25519 signing key.

Both are 32 random bytes kept in the ``keysets`` table, encrypted by the
environment KEK like every other key. The HMAC key seals each event and turns
personal values into searchable, non-reversible tokens; the signing key signs
checkpoints and purge records so they can be checked with the public key alone.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

MAC_PURPOSE = "audit-mac"
SIGNING_PURPOSE = "audit-signing"
SECRET_BYTES = 32


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


class AuditKeys:
    def __init__(self, mac_key: bytes, signing_seed: bytes) -> None:
        self._mac_key = mac_key
        self._signing = Ed25519PrivateKey.from_private_bytes(signing_seed)
        self.public_key = AuditPublicKey(self._signing.public_key())

    def mac(self, domain: str, value: bytes) -> str:
        """HMAC-SHA256 of ``value`` in a named domain (so tokens of one use never match another)."""
        # hmac.digest: the one-shot C implementation, several times faster than hmac.new.
        return hmac.digest(self._mac_key, domain.encode() + b"\x00" + value, "sha256").hex()

    def mac_matches(self, domain: str, value: bytes, expected: str) -> bool:
        return hmac.compare_digest(self.mac(domain, value), expected)

    def sign(self, message: bytes) -> str:
        return self._signing.sign(message).hex()

    def __repr__(self) -> str:
        return "AuditKeys(**********)"


class AuditPublicKey:
    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key

    @classmethod
    def from_hex(cls, raw: str) -> AuditPublicKey:
        return cls(Ed25519PublicKey.from_public_bytes(bytes.fromhex(raw)))

    def hex(self) -> str:
        return self._key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        ).hex()

    def verify(self, signature: str, message: bytes) -> bool:
        try:
            self._key.verify(bytes.fromhex(signature), message)
        except (InvalidSignature, ValueError, TypeError):
            # TypeError: a signature that is not even a string (a hand-edited export file).
            return False
        return True


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
