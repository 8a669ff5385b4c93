"""Random access into a streaming-AEAD ciphertext: only the segments read are decrypted,
and tampering, truncation and the wrong context are refused as with the sequential reader."""

from __future__ import annotations

import io
import os
import random

import pytest
from tests.unit.crypto.test_streaming import SIZES, seal

from strongroom.config import Environment
from strongroom.crypto.errors import DecryptionFailed
from strongroom.crypto.keyring import DataKey, TenantKeyRing
from strongroom.crypto.streaming import SEGMENT_BYTES, RandomAccessOpener, object_context


@pytest.fixture
def key(ring: TenantKeyRing) -> DataKey:
    return ring.new_data_key("obj")[0]


@pytest.fixture
def context(ring: TenantKeyRing) -> bytes:
    return object_context(Environment.TEST, ring.tenant_id, "obj")


def opener(key: DataKey, context: bytes, blob: bytes) -> RandomAccessOpener:
    return key.open_random_access(context, io.BytesIO(blob), len(blob))


@pytest.mark.parametrize("size", SIZES)
def test_any_range_reads_back_the_plaintext(key: DataKey, context: bytes, size: int) -> None:
    data = os.urandom(size)
    view = opener(key, context, seal(key, context, data))
    assert view.length == size
    assert view.seek(0, io.SEEK_END) == size
    assert view.read(10) == b""
    chooser = random.Random(size)  # noqa: S311 - test positions, not secrets
    for _ in range(30):
        start = chooser.randrange(size + 1)
        count = chooser.randrange(2 * SEGMENT_BYTES)
        view.seek(start)
        assert view.read(count) == data[start : start + count]
        assert view.tell() == min(start + count, size)
    view.seek(0)
    assert view.read() == data


def test_only_touched_segments_are_decrypted(key: DataKey, context: bytes) -> None:
    data = os.urandom(6 * SEGMENT_BYTES)
    blob = bytearray(seal(key, context, data))
    blob[3 * SEGMENT_BYTES + 100] ^= 1  # segment 3 is damaged
    view = opener(key, context, bytes(blob))
    view.seek(len(data) - 50)
    assert view.read() == data[-50:]
    view.seek(10)
    assert view.read(100) == data[10:110]
    view.seek(3 * SEGMENT_BYTES)
    with pytest.raises(DecryptionFailed, match="segment 3"):
        view.read(10)


def test_a_ciphertext_cut_at_a_segment_boundary_is_refused_on_open(
    key: DataKey, context: bytes
) -> None:
    blob = seal(key, context, os.urandom(3 * SEGMENT_BYTES))
    with pytest.raises(DecryptionFailed):
        opener(key, context, blob[: 2 * SEGMENT_BYTES])
    with pytest.raises(DecryptionFailed):
        opener(key, context, blob[: 2 * SEGMENT_BYTES + 5])  # shorter than a tag


def test_swapped_segments_and_the_wrong_context_are_refused(
    key: DataKey, context: bytes, ring: TenantKeyRing
) -> None:
    blob = seal(key, context, os.urandom(4 * SEGMENT_BYTES))
    one, two = blob[SEGMENT_BYTES : 2 * SEGMENT_BYTES], blob[2 * SEGMENT_BYTES : 3 * SEGMENT_BYTES]
    swapped = blob[:SEGMENT_BYTES] + two + one + blob[3 * SEGMENT_BYTES :]
    view = opener(key, context, swapped)
    view.seek(SEGMENT_BYTES + 10)
    with pytest.raises(DecryptionFailed):
        view.read(10)
    other = object_context(Environment.TEST, ring.tenant_id, "another-object")
    with pytest.raises(DecryptionFailed):
        opener(key, other, blob)
    with pytest.raises(DecryptionFailed, match="header"):
        opener(key, context, b"PAR1" + blob[4:])
