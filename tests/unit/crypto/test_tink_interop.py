"""Our streaming format is Tink's AES256_GCM_HKDF_1MB: each side reads the other's output.

This is the one test module that imports Tink itself, to use it as the reference
implementation; everything else goes through strongroom.crypto.
"""

from __future__ import annotations

import io
import os

import pytest

# Tink is the reference implementation here, not a shortcut around strongroom.crypto.
import tink  # noqa: TID251
from tink import secret_key_access, streaming_aead  # noqa: TID251
from tink.proto import aes_gcm_hkdf_streaming_pb2, tink_pb2  # noqa: TID251

from strongroom.config import Environment
from strongroom.crypto.errors import DecryptionFailed
from strongroom.crypto.keyring import DataKey, TenantKeyRing, data_key_context
from strongroom.crypto.streaming import HEADER_BYTES, SEGMENT_BYTES, TAG_BYTES, object_context

FIRST_PLAIN_SEGMENT = SEGMENT_BYTES - TAG_BYTES - HEADER_BYTES
SIZES = [
    0,
    1,
    FIRST_PLAIN_SEGMENT,
    FIRST_PLAIN_SEGMENT + 1,
    SEGMENT_BYTES,
    2 * SEGMENT_BYTES - TAG_BYTES * 2 - HEADER_BYTES,  # two exactly full segments
    3 * SEGMENT_BYTES + 17,
]


class _KeptBytesIO(io.BytesIO):
    """Tink closes the destination when its stream closes; keep what was written."""

    kept = b""

    def close(self) -> None:
        self.kept = self.getvalue()
        super().close()


def tink_seal(key: DataKey, context: bytes, data: bytes) -> bytes:
    primitive = key.handle.primitive(streaming_aead.StreamingAead)
    sink = _KeptBytesIO()
    with primitive.new_encrypting_stream(sink, context) as stream:
        stream.write(data)
    return sink.kept


def tink_open(key: DataKey, context: bytes, blob: bytes) -> bytes:
    primitive = key.handle.primitive(streaming_aead.StreamingAead)
    with primitive.new_decrypting_stream(io.BytesIO(blob), context) as stream:
        return bytes(stream.read())


@pytest.fixture
def context(ring: TenantKeyRing) -> bytes:
    return object_context(Environment.TEST, ring.tenant_id, "obj")


@pytest.mark.parametrize("size", SIZES)
def test_tink_decrypts_what_we_seal(ring: TenantKeyRing, context: bytes, size: int) -> None:
    key, _ = ring.new_data_key("obj")
    data = os.urandom(size)
    sink = io.BytesIO()
    key.seal(context, [data[: size // 3], data[size // 3 :]], sink)
    assert tink_open(key, context, sink.getvalue()) == data


@pytest.mark.parametrize("size", SIZES)
def test_we_decrypt_what_tink_seals(ring: TenantKeyRing, context: bytes, size: int) -> None:
    key, _ = ring.new_data_key("obj")
    data = os.urandom(size)
    blob = tink_seal(key, context, data)
    assert b"".join(key.open(context, io.BytesIO(blob))) == data


def test_tink_ciphertext_in_another_context_is_refused(
    ring: TenantKeyRing, context: bytes
) -> None:
    key, _ = ring.new_data_key("obj")
    blob = tink_seal(key, context, b"x" * 1000)
    elsewhere = object_context(Environment.TEST, ring.tenant_id, "other")
    with pytest.raises(DecryptionFailed):
        b"".join(key.open(elsewhere, io.BytesIO(blob)))


def test_wrapped_data_key_holds_32_bytes_of_key_material(ring: TenantKeyRing) -> None:
    _, wrapped = ring.new_data_key("obj")
    serialized = ring.decrypt(
        wrapped, data_key_context(ring.environment, ring.tenant_id, "obj")
    )
    keyset = tink_pb2.Keyset.FromString(serialized)
    assert len(keyset.key) == 1
    key = aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingKey.FromString(
        keyset.key[0].key_data.value
    )
    assert len(key.key_value) == 32
    assert key.params.derived_key_size == 32
    assert key.params.ciphertext_segment_size == SEGMENT_BYTES


@pytest.mark.parametrize(
    "template",
    [
        streaming_aead.streaming_aead_key_templates.AES128_GCM_HKDF_1MB,
        streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_4KB,
        streaming_aead.streaming_aead_key_templates.AES128_CTR_HMAC_SHA256_1MB,
    ],
    ids=["aes128", "4kb-segments", "ctr-hmac"],
)
def test_data_key_refuses_anything_but_aes256_gcm_hkdf_1mb(template: object) -> None:
    with pytest.raises(DecryptionFailed, match="not an AES256_GCM_HKDF_1MB key"):
        DataKey(tink.new_keyset_handle(template))


def test_data_key_from_a_tink_keyset_reads_our_format(context: bytes) -> None:
    handle = tink.new_keyset_handle(
        streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB
    )
    serialized = tink.proto_keyset_format.serialize(handle, secret_key_access.TOKEN)
    key = DataKey(tink.proto_keyset_format.parse(serialized, secret_key_access.TOKEN))
    data = os.urandom(SEGMENT_BYTES + 5)
    assert b"".join(key.open(context, io.BytesIO(tink_seal(key, context, data)))) == data
