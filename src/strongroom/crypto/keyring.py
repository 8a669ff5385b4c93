"""Per-tenant key-encryption keysets (Tink AEAD, AES-256-GCM), versioned and rotatable.

A tenant's keyset is stored encrypted by the environment KEK, with the
environment, tenant id and purpose as associated data, so a keyset row copied to
another tenant or environment does not open. Rotation adds a new primary key;
older keys stay in the keyset so everything they wrapped stays readable.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import tink
from tink import aead, secret_key_access, streaming_aead
from tink.proto import aes_gcm_hkdf_streaming_pb2, common_pb2, tink_pb2

from strongroom.config import Environment
from strongroom.crypto import streaming
from strongroom.crypto._tink import TinkError
from strongroom.crypto.errors import DecryptionFailed, MasterKeyError

KEK_TEMPLATE = aead.aead_key_templates.AES256_GCM
DATA_KEY_TEMPLATE = streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB
_TINK_PREFIX = 5  # one version byte and a four-byte key id on every TINK-prefixed ciphertext


def keyset_context(environment: Environment, owner: str, purpose: str) -> bytes:
    return f"strongroom/keyset/{environment.value}/{owner}/{purpose}".encode()


def data_key_context(environment: Environment, tenant_id: str, object_id: str) -> bytes:
    return f"strongroom/data-key/{environment.value}/{tenant_id}/{object_id}".encode()


class TenantKeyRing:
    """The unwrapped KEK keyset of one tenant in one environment."""

    def __init__(self, handle: tink.KeysetHandle, environment: Environment, tenant_id: str) -> None:
        self._handle = handle
        self._aead = handle.primitive(aead.Aead)
        self.environment = environment
        self.tenant_id = tenant_id

    # -- creation, storage, rotation ---------------------------------------------------------

    @classmethod
    def generate(cls, environment: Environment, tenant_id: str) -> TenantKeyRing:
        return cls(tink.new_keyset_handle(KEK_TEMPLATE), environment, tenant_id)

    @classmethod
    def unwrap(
        cls, wrapped: bytes, env_kek: aead.Aead, environment: Environment, tenant_id: str
    ) -> TenantKeyRing:
        context = keyset_context(environment, tenant_id, "kek")
        try:
            handle = tink.proto_keyset_format.parse_encrypted(wrapped, env_kek, context)
        except TinkError:
            raise MasterKeyError(
                "the tenant keyset does not open: wrong master key, or the keyset belongs to "
                "another tenant or environment",
                hint="check the master key; keys of another tenant or environment never open",
            ) from None
        return cls(handle, environment, tenant_id)

    def wrap(self, env_kek: aead.Aead) -> bytes:
        context = keyset_context(self.environment, self.tenant_id, "kek")
        return bytes(tink.proto_keyset_format.serialize_encrypted(self._handle, env_kek, context))

    def rotated(self) -> TenantKeyRing:
        """A new ring whose primary is a fresh key; every older key is kept for decryption."""
        keyset = tink_pb2.Keyset.FromString(
            tink.proto_keyset_format.serialize(self._handle, secret_key_access.TOKEN)
        )
        fresh = tink_pb2.Keyset.FromString(
            tink.proto_keyset_format.serialize(
                tink.new_keyset_handle(KEK_TEMPLATE), secret_key_access.TOKEN
            )
        )
        new_key = fresh.key[0]
        taken = {key.key_id for key in keyset.key}
        while new_key.key_id in taken:  # vanishingly rare; key ids must stay unique
            fresh = tink_pb2.Keyset.FromString(
                tink.proto_keyset_format.serialize(
                    tink.new_keyset_handle(KEK_TEMPLATE), secret_key_access.TOKEN
                )
            )
            new_key = fresh.key[0]
        keyset.key.append(new_key)
        keyset.primary_key_id = new_key.key_id
        handle = tink.proto_keyset_format.parse(keyset.SerializeToString(), secret_key_access.TOKEN)
        return TenantKeyRing(handle, self.environment, self.tenant_id)

    @property
    def primary_key_id(self) -> int:
        return int(self._handle.keyset_info().primary_key_id)

    @property
    def version(self) -> int:
        """Number of key versions; the newest is the primary."""
        return len(self._handle.keyset_info().key_info)

    # -- use ---------------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes:
        return bytes(self._aead.encrypt(plaintext, associated_data))

    def decrypt(self, ciphertext: bytes, associated_data: bytes) -> bytes:
        try:
            return bytes(self._aead.decrypt(ciphertext, associated_data))
        except TinkError:
            raise DecryptionFailed(
                "a wrapped key failed authentication "
                "(tampered, or moved to another tenant or object)"
            ) from None

    @staticmethod
    def key_id_of(ciphertext: bytes) -> int:
        """Which key version wrapped ``ciphertext`` (from Tink's output prefix)."""
        return int(struct.unpack(">I", ciphertext[1:_TINK_PREFIX])[0])

    def new_data_key(self, object_id: str) -> tuple[DataKey, bytes]:
        """A fresh streaming-AEAD data key for one object, and its wrapped form to store."""
        handle = tink.new_keyset_handle(DATA_KEY_TEMPLATE)
        serialized = tink.proto_keyset_format.serialize(handle, secret_key_access.TOKEN)
        wrapped = self.encrypt(
            serialized, data_key_context(self.environment, self.tenant_id, object_id)
        )
        return DataKey(handle), wrapped

    def open_data_key(self, wrapped: bytes, object_id: str) -> DataKey:
        serialized = self.decrypt(
            wrapped, data_key_context(self.environment, self.tenant_id, object_id)
        )
        return DataKey(tink.proto_keyset_format.parse(serialized, secret_key_access.TOKEN))

    def rewrap(self, wrapped: bytes, associated_data: bytes) -> bytes | None:
        """Re-encrypt ``wrapped`` under the primary key; None when it already is."""
        if self.key_id_of(wrapped) == self.primary_key_id:
            return None
        return self.encrypt(self.decrypt(wrapped, associated_data), associated_data)


class DataKey:
    """A per-object streaming AEAD key: a one-key Tink AES256_GCM_HKDF_1MB keyset."""

    def __init__(self, handle: tink.KeysetHandle) -> None:
        keyset = tink_pb2.Keyset.FromString(
            tink.proto_keyset_format.serialize(handle, secret_key_access.TOKEN)
        )
        primary = next(k for k in keyset.key if k.key_id == keyset.primary_key_id)
        key = aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingKey.FromString(primary.key_data.value)
        params = key.params
        if (
            len(key.key_value) != streaming.KEY_BYTES
            or params.derived_key_size != streaming.KEY_BYTES
            or params.ciphertext_segment_size != streaming.SEGMENT_BYTES
            or params.hkdf_hash_type != common_pb2.SHA256
        ):
            raise DecryptionFailed("data key is not an AES256_GCM_HKDF_1MB key")
        self.handle = handle
        self._ikm = bytes(key.key_value)

    @property
    def bits(self) -> int:
        return len(self._ikm) * 8

    def sealing_writer(self, associated_data: bytes, sink: BinaryIO) -> streaming.SealingWriter:
        return streaming.SealingWriter(self._ikm, associated_data, sink)

    def seal(self, associated_data: bytes, chunks: Iterable[bytes], sink: BinaryIO) -> int:
        return streaming.seal_stream(self._ikm, associated_data, chunks, sink)

    def open(self, associated_data: bytes, source: BinaryIO) -> Iterator[bytes]:
        return streaming.open_stream(self._ikm, associated_data, source)

    def open_random_access(
        self, associated_data: bytes, source: BinaryIO, ciphertext_size: int
    ) -> streaming.RandomAccessOpener:
        """A seekable plaintext view of a seekable ciphertext, decrypting segments on demand."""
        return streaming.RandomAccessOpener(self._ikm, associated_data, source, ciphertext_size)

    def __repr__(self) -> str:
        return "DataKey(**********)"
