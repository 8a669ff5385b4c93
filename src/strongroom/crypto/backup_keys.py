"""Keys of backups: a per-backup streaming data key, and the manifest signing key.

Each backup's files are encrypted with a fresh AES256_GCM_HKDF_1MB data key,
wrapped by the environment KEK (so a restore needs the same master key and
environment; the master key itself is never in a backup). Manifests are signed
with a deployment Ed25519 key kept like every other deployment secret, and
additionally sealed under the KEK so that a restore without the live database
can still tell a forged manifest from a real one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import tink
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tink import secret_key_access

from strongroom.config import Environment
from strongroom.crypto.audit_keys import AuditPublicKey
from strongroom.crypto.errors import MasterKeyError
from strongroom.crypto.keyring import DATA_KEY_TEMPLATE, DataKey

if TYPE_CHECKING:
    from strongroom.crypto.keystore import KeyStore

SIGNING_PURPOSE = "backup-signing"


def file_context(environment: Environment, backup_id: str, name: str) -> bytes:
    """Associated data binding a backup file's ciphertext to its backup and name."""
    return f"strongroom/backup/{environment.value}/{backup_id}/{name}".encode()


def _key_purpose(backup_id: str) -> str:
    return f"backup/{backup_id}/data-key"


def _seal_purpose(backup_id: str) -> str:
    return f"backup/{backup_id}/manifest"


def new_backup_key(keys: KeyStore, backup_id: str) -> tuple[DataKey, bytes]:
    """A fresh data key for one backup, and its form wrapped by the environment KEK."""
    handle = tink.new_keyset_handle(DATA_KEY_TEMPLATE)
    serialized = tink.proto_keyset_format.serialize(handle, secret_key_access.TOKEN)
    return DataKey(handle), keys.seal(serialized, _key_purpose(backup_id))


def open_backup_key(keys: KeyStore, wrapped: bytes, backup_id: str) -> DataKey:
    """Unwrap a backup's data key; MasterKeyError if the master key or environment differ."""
    serialized = keys.unseal(wrapped, _key_purpose(backup_id))
    return DataKey(tink.proto_keyset_format.parse(serialized, secret_key_access.TOKEN))


def seal_manifest(keys: KeyStore, body: bytes, backup_id: str) -> bytes:
    """An AEAD ciphertext of ``body``'s digest that only this master key can make."""
    return keys.seal(_digest(body), _seal_purpose(backup_id))


def manifest_seal_matches(keys: KeyStore, body: bytes, backup_id: str, sealed: bytes) -> bool:
    try:
        return keys.unseal(sealed, _seal_purpose(backup_id)) == _digest(body)
    except MasterKeyError:
        return False


def _digest(body: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(body).digest()


class BackupSigningKey:
    """The deployment's Ed25519 key for backup manifests."""

    def __init__(self, seed: bytes) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key = AuditPublicKey(self._key.public_key())

    def sign(self, message: bytes) -> str:
        return self._key.sign(message).hex()

    def __repr__(self) -> str:
        return "BackupSigningKey(**********)"
