"""Streaming AEAD for objects: Tink's AES256_GCM_HKDF_1MB wire format.

Keys are Tink keysets (made and wrapped by :mod:`strongroom.crypto.keyring`);
the segment cipher runs on ``cryptography``'s AES-GCM because Tink's Python
stream wrapper moves every byte through Python file objects and runs at a
fraction of the cipher's speed. The format is Tink's exactly, so either side
can read the other's output (tests check both directions):

* header: length byte (40), 32-byte HKDF salt, 7-byte nonce prefix;
* segment key = HKDF-SHA256(key, salt, info=associated data);
* ciphertext segments of 1 MiB (the first shortened by the header), each
  AES-GCM with nonce = prefix || segment index (4 bytes) || last-segment flag.

The associated data names the environment, tenant and object, so a ciphertext
moved to another tenant, object or environment derives the wrong key and fails.
Reordered, dropped or truncated segments fail on their nonce or last flag.
"""

from __future__ import annotations

import io
import secrets
import struct
import threading
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from strongroom.config import Environment
from strongroom.crypto.errors import DecryptionFailed

KEY_BYTES = 32
SEGMENT_BYTES = 1 << 20
TAG_BYTES = 16
_PREFIX_BYTES = 7
HEADER_BYTES = 1 + KEY_BYTES + _PREFIX_BYTES
_PLAIN_SEGMENT = SEGMENT_BYTES - TAG_BYTES
_FIRST_PLAIN_SEGMENT = _PLAIN_SEGMENT - HEADER_BYTES


def object_context(environment: Environment, tenant_id: str, object_id: str) -> bytes:
    """Associated data binding an object's ciphertext to where it belongs."""
    return f"strongroom/object/{environment.value}/{tenant_id}/{object_id}".encode()


def _segment_cipher(ikm: bytes, salt: bytes, associated_data: bytes) -> AESGCM:
    key = HKDF(hashes.SHA256(), KEY_BYTES, salt, associated_data).derive(ikm)
    return AESGCM(key)


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


class SealingWriter:
    """Encrypts what is written to it into ``sink``; :meth:`close` writes the last segment.

    Not closing it leaves a ciphertext without a last segment, which no reader accepts.
    Plaintext is gathered in one preallocated segment buffer (a fresh allocation per
    segment costs more than the cipher); writes longer than a segment are encrypted
    straight from the caller's buffer without copying.
    """

    def __init__(self, ikm: bytes, associated_data: bytes, sink: BinaryIO) -> None:
        salt = secrets.token_bytes(KEY_BYTES)
        self._prefix = secrets.token_bytes(_PREFIX_BYTES)
        self._cipher = _segment_cipher(ikm, salt, associated_data)
        self._sink = sink
        self._segment = memoryview(bytearray(_PLAIN_SEGMENT))
        self._filled = 0
        self._index = 0
        self._closed = False
        self.plaintext_bytes = 0
        sink.write(bytes([HEADER_BYTES]) + salt + self._prefix)

    def _segment_size(self) -> int:
        return _FIRST_PLAIN_SEGMENT if self._index == 0 else _PLAIN_SEGMENT

    def _emit(self, plaintext: memoryview, last: bool) -> None:
        self._sink.write(
            self._cipher.encrypt(_nonce(self._prefix, self._index, last), plaintext, None)
        )
        self._index += 1

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Encrypt every full segment that is known not to be the last; buffer the rest."""
        if self._closed:
            raise ValueError("write to a closed sealing stream")
        view = memoryview(data).cast("B")
        written = len(view)
        self.plaintext_bytes += written
        # A segment is only known not to be the last once more data follows it, so a
        # full buffer waits for the next write (or close) and one byte is always kept back.
        if self._filled:
            take = min(self._segment_size() - self._filled, len(view))
            self._segment[self._filled : self._filled + take] = view[:take]
            self._filled += take
            view = view[take:]
            if not view:
                return written
            self._emit(self._segment[: self._filled], last=False)
            self._filled = 0
        while len(view) > (size := self._segment_size()):
            self._emit(view[:size], last=False)
            view = view[size:]
        self._segment[: len(view)] = view
        self._filled = len(view)
        return written

    def close(self) -> None:
        """Encrypt the buffered rest as the last segment. The sink is left open."""
        if not self._closed:
            self._emit(self._segment[: self._filled], last=True)
            self._filled = 0
            self._closed = True


def seal_stream(
    ikm: bytes, associated_data: bytes, chunks: Iterable[bytes], sink: BinaryIO
) -> int:
    """Encrypt ``chunks`` into ``sink``; return the plaintext byte count."""
    writer = SealingWriter(ikm, associated_data, sink)
    for chunk in chunks:
        writer.write(chunk)
    writer.close()
    return writer.plaintext_bytes


def _read_into(source: BinaryIO, buffer: memoryview) -> int:
    """Fill ``buffer`` from ``source`` as far as it goes; the byte count (short only at EOF)."""
    readinto = getattr(source, "readinto", None)
    filled = 0
    while filled < len(buffer):
        if readinto is not None:
            count = readinto(buffer[filled:])
        else:
            part = source.read(len(buffer) - filled)
            count = len(part)
            buffer[filled : filled + count] = part
        if not count:
            break
        filled += count
    return filled


def open_stream(ikm: bytes, associated_data: bytes, source: BinaryIO) -> Iterator[bytes]:
    """Decrypt and authenticate ``source`` segment by segment.

    Raises :class:`DecryptionFailed` on the first segment that does not authenticate;
    plaintext of earlier segments has been yielded by then, so callers that must not
    release unverified data write to a temporary place first.
    """
    header = memoryview(bytearray(HEADER_BYTES))
    if _read_into(source, header) != HEADER_BYTES or header[0] != HEADER_BYTES:
        raise DecryptionFailed("object header is missing or malformed (not one of our ciphertexts)")
    cipher = _segment_cipher(ikm, bytes(header[1 : 1 + KEY_BYTES]), associated_data)
    prefix = bytes(header[1 + KEY_BYTES :])
    # Two reused buffers: the segment being decrypted, and the one after it, read ahead
    # because only the absence of a following segment says that this one is the last.
    current = memoryview(bytearray(SEGMENT_BYTES))
    following = memoryview(bytearray(SEGMENT_BYTES))
    size = SEGMENT_BYTES - HEADER_BYTES
    filled = _read_into(source, current[:size])
    index = 0
    while True:
        following_filled = _read_into(source, following) if filled == size else 0
        last = following_filled == 0
        try:
            plaintext = cipher.decrypt(_nonce(prefix, index, last), current[:filled], None)
        except InvalidTag:
            raise DecryptionFailed(
                f"object failed authentication at segment {index}: tampered, truncated, "
                "reordered, or opened as another tenant, object or environment"
            ) from None
        yield plaintext
        if last:
            return
        current, following = following, current
        filled = following_filled
        size = SEGMENT_BYTES
        index += 1


def _segment_span(index: int) -> tuple[int, int]:
    """Ciphertext start and nominal end of segment ``index`` (the header precedes segment 0)."""
    return (HEADER_BYTES if index == 0 else index * SEGMENT_BYTES), (index + 1) * SEGMENT_BYTES


class SeekableView(io.RawIOBase):
    """A read-only, seekable stream of ``length`` bytes; subclasses supply ``readinto``."""

    length: int
    _position: int = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.length}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position


class RandomAccessOpener(SeekableView):
    """A read-only, seekable plaintext view of one ciphertext: decrypts only the segments read.

    Tink's segmented format allows random access: a segment's nonce holds its
    index and whether it is the last, so each segment authenticates on its own
    and one moved, dropped or truncated fails. The last segment is decrypted
    (and so authenticated with its last flag) when the view opens, so a
    ciphertext cut at a segment boundary is refused before anything is read.
    A few decrypted segments are cached for readers that go back and forth
    (Parquet reads its footer, then column chunks); the plaintext is never
    written anywhere.
    """

    CACHED_SEGMENTS = 4

    def __init__(
        self, ikm: bytes, associated_data: bytes, source: BinaryIO, ciphertext_size: int
    ) -> None:
        super().__init__()
        if ciphertext_size < HEADER_BYTES + TAG_BYTES:
            raise DecryptionFailed("object is too short to be one of our ciphertexts")
        source.seek(0)
        header = source.read(HEADER_BYTES)
        if len(header) != HEADER_BYTES or header[0] != HEADER_BYTES:
            raise DecryptionFailed(
                "object header is missing or malformed (not one of our ciphertexts)"
            )
        self._cipher = _segment_cipher(ikm, header[1 : 1 + KEY_BYTES], associated_data)
        self._prefix = header[1 + KEY_BYTES :]
        self._source = source
        self._size = ciphertext_size
        self._segments = -(-ciphertext_size // SEGMENT_BYTES)
        last_start, _ = _segment_span(self._segments - 1)
        if ciphertext_size - last_start < TAG_BYTES:
            raise DecryptionFailed("object is truncated inside its last segment")
        self.length = ciphertext_size - HEADER_BYTES - self._segments * TAG_BYTES
        self._cache: dict[int, bytes] = {}
        self._lock = threading.Lock()
        self._position = 0
        self._segment(self._segments - 1)

    def _segment(self, index: int) -> bytes:
        cached = self._cache.pop(index, None)
        if cached is None:
            start, end = _segment_span(index)
            end = min(end, self._size)
            self._source.seek(start)
            ciphertext = self._source.read(end - start)
            last = index == self._segments - 1
            failed = DecryptionFailed(
                f"object failed authentication at segment {index}: tampered, truncated, "
                "reordered, or opened as another tenant, object or environment"
            )
            if len(ciphertext) != end - start:
                raise failed
            try:
                cached = self._cipher.decrypt(_nonce(self._prefix, index, last), ciphertext, None)
            except InvalidTag:
                raise failed from None
        self._cache[index] = cached  # most recently used last
        while len(self._cache) > self.CACHED_SEGMENTS:
            del self._cache[next(iter(self._cache))]
        return cached

    @staticmethod
    def _locate(position: int) -> tuple[int, int]:
        """The segment holding plaintext byte ``position``, and the offset inside it."""
        if position < _FIRST_PLAIN_SEGMENT:
            return 0, position
        rest = position - _FIRST_PLAIN_SEGMENT
        return 1 + rest // _PLAIN_SEGMENT, rest % _PLAIN_SEGMENT

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        with self._lock:
            filled = 0
            while filled < len(view) and self._position < self.length:
                index, inside = self._locate(self._position)
                plaintext = self._segment(index)
                take = min(len(plaintext) - inside, len(view) - filled)
                view[filled : filled + take] = plaintext[inside : inside + take]
                filled += take
                self._position += take
            return filled
