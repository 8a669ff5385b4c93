"""Streaming AEAD: round trips, and every kind of tampering refused with a clear error."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable

import pytest

from strongroom.config import Environment
from strongroom.crypto.errors import DecryptionFailed
from strongroom.crypto.keyring import DataKey, TenantKeyRing
from strongroom.crypto.streaming import HEADER_BYTES, SEGMENT_BYTES, TAG_BYTES, object_context

PLAIN_SEGMENT = SEGMENT_BYTES - TAG_BYTES
FIRST_PLAIN_SEGMENT = PLAIN_SEGMENT - HEADER_BYTES
SIZES = [
    0,
    1,
    FIRST_PLAIN_SEGMENT - 1,
    FIRST_PLAIN_SEGMENT,  # exactly fills the first segment: still one segment
    FIRST_PLAIN_SEGMENT + 1,
    SEGMENT_BYTES,
    FIRST_PLAIN_SEGMENT + PLAIN_SEGMENT,  # exactly two full segments
    3 * SEGMENT_BYTES + 17,
]


def _pieces(data: bytes, piece: int) -> Iterable[bytes]:
    return (data[i : i + piece] for i in range(0, len(data), piece))


def seal(key: DataKey, context: bytes, data: bytes, piece: int = 65536) -> bytes:
    sink = io.BytesIO()
    assert key.seal(context, _pieces(data, piece), sink) == len(data)
    return sink.getvalue()


def unseal(key: DataKey, context: bytes, blob: bytes) -> bytes:
    return b"".join(key.open(context, io.BytesIO(blob)))


def segments_of(plaintext_size: int) -> int:
    if plaintext_size <= FIRST_PLAIN_SEGMENT:
        return 1
    return 1 + -(-(plaintext_size - FIRST_PLAIN_SEGMENT) // PLAIN_SEGMENT)


@pytest.fixture
def key(ring: TenantKeyRing) -> DataKey:
    return ring.new_data_key("obj")[0]


@pytest.fixture
def context(ring: TenantKeyRing) -> bytes:
    return object_context(Environment.TEST, ring.tenant_id, "obj")


@pytest.fixture(scope="module")
def four_segments() -> bytes:
    """Plaintext of three full segments and a short last one."""
    return os.urandom(FIRST_PLAIN_SEGMENT + 2 * PLAIN_SEGMENT + 1000)


@pytest.fixture
def sealed(key: DataKey, context: bytes, four_segments: bytes) -> bytes:
    return seal(key, context, four_segments)


# -- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_round_trip(key: DataKey, context: bytes, size: int) -> None:
    data = os.urandom(size)
    blob = seal(key, context, data)
    assert len(blob) == HEADER_BYTES + size + TAG_BYTES * segments_of(size)
    assert unseal(key, context, blob) == data


@pytest.mark.parametrize(
    "writes",
    [
        [1] * 100,
        [FIRST_PLAIN_SEGMENT],  # one full segment is the last: no empty segment after it
        [FIRST_PLAIN_SEGMENT, PLAIN_SEGMENT],
        [FIRST_PLAIN_SEGMENT, 0, 1],
        [FIRST_PLAIN_SEGMENT - 1, 1, PLAIN_SEGMENT, 1],
        [7, SEGMENT_BYTES * 2 + 3, 5, PLAIN_SEGMENT - 9, 0],
        [SEGMENT_BYTES * 3],
        [0],
    ],
    ids=["tiny", "one-full", "two-full", "fill-first", "fill-exactly", "straddle", "one-big",
         "empty"],
)
def test_round_trip_whatever_the_write_sizes(
    key: DataKey, context: bytes, writes: list[int]
) -> None:
    data = os.urandom(sum(writes))
    sink = io.BytesIO()
    writer = key.sealing_writer(context, sink)
    offset = 0
    for size in writes:
        assert writer.write(memoryview(data)[offset : offset + size]) == size
        offset += size
    writer.close()
    assert writer.plaintext_bytes == len(data)
    blob = sink.getvalue()
    assert len(blob) == HEADER_BYTES + len(data) + TAG_BYTES * segments_of(len(data))
    assert unseal(key, context, blob) == data


def test_writer_refuses_writes_after_close(key: DataKey, context: bytes) -> None:
    writer = key.sealing_writer(context, io.BytesIO())
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"late")


def test_unclosed_writer_leaves_an_unreadable_ciphertext(key: DataKey, context: bytes) -> None:
    sink = io.BytesIO()
    writer = key.sealing_writer(context, sink)
    writer.write(os.urandom(3 * SEGMENT_BYTES))
    with pytest.raises(DecryptionFailed):
        unseal(key, context, sink.getvalue())


def test_same_plaintext_never_gives_the_same_ciphertext(key: DataKey, context: bytes) -> None:
    data = b"same bytes" * 1000
    first, second = seal(key, context, data), seal(key, context, data)
    assert first[1:HEADER_BYTES] != second[1:HEADER_BYTES]  # fresh salt and nonce prefix
    assert first[HEADER_BYTES:] != second[HEADER_BYTES:]


def test_plaintext_does_not_appear_in_ciphertext(key: DataKey, context: bytes) -> None:
    canary = b"canary-7f3a9c@example.org"
    blob = seal(key, context, canary * 100_000)
    assert canary not in blob


def test_data_keys_are_256_bits(ring: TenantKeyRing) -> None:
    key, _ = ring.new_data_key("obj")
    assert key.bits == 256
    assert "*" in repr(key)


# -- tampering ------------------------------------------------------------------------------


def flip(blob: bytes, position: int) -> bytes:
    changed = bytearray(blob)
    changed[position] ^= 0x01
    return bytes(changed)


@pytest.mark.parametrize(
    ("position", "segment"),
    [
        (1, 0),  # HKDF salt: every segment key changes
        (HEADER_BYTES - 1, 0),  # nonce prefix
        (HEADER_BYTES, 0),  # first ciphertext byte
        (SEGMENT_BYTES - 1, 0),  # tag of the first segment
        (SEGMENT_BYTES + 12345, 1),
        (3 * SEGMENT_BYTES + 10, 3),  # inside the short last segment
        (-1, 3),  # last byte: tag of the last segment
    ],
)
def test_flipped_byte_is_refused(
    key: DataKey, context: bytes, sealed: bytes, position: int, segment: int
) -> None:
    with pytest.raises(DecryptionFailed, match=f"failed authentication at segment {segment}"):
        unseal(key, context, flip(sealed, position))


def test_flipped_header_length_is_refused(key: DataKey, context: bytes, sealed: bytes) -> None:
    with pytest.raises(DecryptionFailed, match="header is missing or malformed"):
        unseal(key, context, flip(sealed, 0))


@pytest.mark.parametrize(
    ("length", "segment"),
    [
        (SEGMENT_BYTES, 0),  # at a segment boundary: segment 0 now looks like the last
        (2 * SEGMENT_BYTES, 1),
        (3 * SEGMENT_BYTES, 2),  # only the short last segment is gone
        (SEGMENT_BYTES + SEGMENT_BYTES // 2, 1),  # in the middle of a segment
        (SEGMENT_BYTES // 2, 0),
        (-1, 3),  # one byte short
        (HEADER_BYTES + 5, 0),  # less than a tag left
        (HEADER_BYTES, 0),  # the header alone
    ],
)
def test_truncated_stream_is_refused(
    key: DataKey, context: bytes, sealed: bytes, length: int, segment: int
) -> None:
    with pytest.raises(DecryptionFailed, match=f"at segment {segment}"):
        unseal(key, context, sealed[:length])


@pytest.mark.parametrize("length", [0, 1, HEADER_BYTES - 1])
def test_stream_shorter_than_header_is_refused(
    key: DataKey, context: bytes, sealed: bytes, length: int
) -> None:
    with pytest.raises(DecryptionFailed, match="header is missing or malformed"):
        unseal(key, context, sealed[:length])


def test_swapped_segments_are_refused(key: DataKey, context: bytes, sealed: bytes) -> None:
    one = sealed[SEGMENT_BYTES : 2 * SEGMENT_BYTES]
    two = sealed[2 * SEGMENT_BYTES : 3 * SEGMENT_BYTES]
    assert len(one) == len(two) == SEGMENT_BYTES
    swapped = sealed[:SEGMENT_BYTES] + two + one + sealed[3 * SEGMENT_BYTES :]
    with pytest.raises(DecryptionFailed, match="at segment 1"):
        unseal(key, context, swapped)


def test_dropped_middle_segment_is_refused(key: DataKey, context: bytes, sealed: bytes) -> None:
    dropped = sealed[:SEGMENT_BYTES] + sealed[2 * SEGMENT_BYTES :]
    with pytest.raises(DecryptionFailed, match="at segment 1"):
        unseal(key, context, dropped)


def test_duplicated_segment_is_refused(key: DataKey, context: bytes, sealed: bytes) -> None:
    one = sealed[SEGMENT_BYTES : 2 * SEGMENT_BYTES]
    doubled = sealed[: 2 * SEGMENT_BYTES] + one + sealed[2 * SEGMENT_BYTES :]
    with pytest.raises(DecryptionFailed, match="at segment 2"):
        unseal(key, context, doubled)


@pytest.mark.parametrize("extra", [b"\x00", os.urandom(SEGMENT_BYTES)])
def test_appended_bytes_are_refused(
    key: DataKey, context: bytes, sealed: bytes, extra: bytes
) -> None:
    with pytest.raises(DecryptionFailed, match="failed authentication"):
        unseal(key, context, sealed + extra)


def test_segment_spliced_from_another_stream_is_refused(
    key: DataKey, context: bytes, sealed: bytes, four_segments: bytes
) -> None:
    # Same key, same plaintext, same position: only the per-stream salt and prefix differ.
    twin = seal(key, context, four_segments)
    spliced = sealed[: 2 * SEGMENT_BYTES] + twin[2 * SEGMENT_BYTES : 3 * SEGMENT_BYTES]
    spliced += sealed[3 * SEGMENT_BYTES :]
    with pytest.raises(DecryptionFailed, match="at segment 2"):
        unseal(key, context, spliced)


# -- wrong key or context -------------------------------------------------------------------


@pytest.mark.parametrize(
    "moved_to",
    [
        (Environment.TEST, "another-tenant", "obj"),
        (Environment.TEST, None, "another-object"),
        (Environment.DEVELOPMENT, None, "obj"),
        (Environment.PRODUCTION, None, "obj"),
    ],
    ids=["other-tenant", "other-object", "development", "production"],
)
def test_ciphertext_moved_elsewhere_is_refused(
    ring: TenantKeyRing,
    key: DataKey,
    context: bytes,
    moved_to: tuple[Environment, str | None, str],
) -> None:
    environment, tenant_id, object_id = moved_to
    blob = seal(key, context, b"personal data" * 10)
    elsewhere = object_context(environment, tenant_id or ring.tenant_id, object_id)
    assert elsewhere != context
    with pytest.raises(DecryptionFailed, match="opened as another tenant, object or environment"):
        unseal(key, elsewhere, blob)


def test_another_data_key_is_refused(
    ring: TenantKeyRing, key: DataKey, context: bytes, sealed: bytes
) -> None:
    other_key, _ = ring.new_data_key("obj")
    with pytest.raises(DecryptionFailed, match="at segment 0"):
        unseal(other_key, context, sealed)
