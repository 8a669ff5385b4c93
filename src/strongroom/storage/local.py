"""Objects in a local directory: ``ROOT/tenants/PREFIX/ab/abcdef…`` named by SHA-256.

A write goes to ``ROOT/.incoming/`` under a random name, is fsynced, then
renamed into place and the directory fsynced; a crash at any point leaves
at most an orphan in ``.incoming`` (cleared at start-up), never a partial object
under a real name. Objects are made read-only once published.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from strongroom.errors import InvalidInput
from strongroom.storage.durable import HashingWriter, fsync_dir
from strongroom.storage.errors import ObjectCorrupted, ObjectMissing
from strongroom.storage.interfaces import BlobRef

# fullmatch, not match: "$" would also accept a trailing newline.
_PREFIX = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_INCOMING = ".incoming"


class VerifyingReader:
    """File-like reader that hashes as it goes and refuses a mismatch at end of file."""

    def __init__(self, handle: io.BufferedReader, ref: BlobRef) -> None:
        self._handle = handle
        self._ref = ref
        self._hash = hashlib.sha256()
        self._size = 0
        self._checked = False

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self._account(chunk)
        return chunk

    def readinto(self, buffer: bytearray | memoryview) -> int:
        count = self._handle.readinto(buffer)
        self._account(memoryview(buffer)[:count])
        return count

    def _account(self, chunk: bytes | memoryview) -> None:
        self._hash.update(chunk)
        self._size += len(chunk)
        if (not chunk or self._size >= self._ref.size) and not self._checked:
            self._check()

    def _check(self) -> None:
        self._checked = True
        rest = self._handle.read(1)
        if rest or self._size != self._ref.size or self._hash.hexdigest() != self._ref.digest:
            raise ObjectCorrupted(
                f"object {self._ref.digest[:12]}... does not match its recorded digest"
            )

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> VerifyingReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _make_dirs(directory: Path) -> None:
    """Create ``directory`` and missing parents, fsyncing each new entry into its parent.

    Without that, a power loss after a write was acknowledged could lose the new
    directory entries, and with them the object.
    """
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for new in reversed(missing):
        new.mkdir(mode=0o700, exist_ok=True)
        fsync_dir(new.parent)


def _identity(path: Path) -> tuple[int, ...]:
    """What changes whenever a file's bytes could have changed: ctime moves on every write
    and every metadata change, and cannot be set back from user space."""
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class LocalObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._incoming = root / _INCOMING
        self._incoming.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Objects this process has hashed in full, with the file identity they had then.
        self._verified: dict[BlobRef, tuple[int, ...]] = {}
        self._verified_lock = threading.Lock()

    def _path(self, ref: BlobRef) -> Path:
        if not _PREFIX.fullmatch(ref.prefix) or not _DIGEST.fullmatch(ref.digest):
            raise InvalidInput("object reference is malformed")
        return self.root / "tenants" / ref.prefix / ref.digest[:2] / ref.digest

    def clear_incoming(self) -> int:
        """Remove leftovers of writes that never finished (a crash mid-write).

        A write in progress holds an exclusive lock on its temporary file until it is
        published; the kernel drops the lock when the writer dies. Locked files belong
        to a live writer (another process on this deployment) and are left alone.
        """
        removed = 0
        for leftover in self._incoming.iterdir():
            try:
                fd = os.open(leftover, os.O_RDONLY)
            except FileNotFoundError:
                continue  # published or removed meanwhile
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            else:
                leftover.unlink(missing_ok=True)
                removed += 1
            finally:
                os.close(fd)
        return removed

    def _locked_temp(self) -> tuple[Path, int]:
        """A new temporary file in ``.incoming``, open for writing and locked as live."""
        while True:
            temp = self._incoming / secrets.token_hex(16)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                ours = temp.stat().st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                ours = False
            if ours:
                return temp, fd
            # A concurrent clear_incoming removed it before we held the lock: start over.
            os.close(fd)

    def put(self, prefix: str, write: Callable[[BinaryIO], None]) -> BlobRef:
        """Run ``write`` against a hidden temporary file and publish it only once complete."""
        if not _PREFIX.fullmatch(prefix):
            raise InvalidInput("object prefix is malformed")
        temp, fd = self._locked_temp()
        try:
            # The file stays open, and so locked, until it is published under its real name.
            with os.fdopen(fd, "wb") as handle:
                hashing = HashingWriter(handle)
                write(hashing)  # type: ignore[arg-type]
                handle.flush()
                os.fsync(handle.fileno())
                ref = BlobRef(prefix, hashing.hash.hexdigest(), hashing.size)
                final = self._path(ref)
                _make_dirs(final.parent)
                temp.chmod(0o400)
                temp.replace(final)
                fsync_dir(final.parent)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return ref

    def open(self, ref: BlobRef) -> VerifyingReader:
        """A reader over the object that raises ObjectCorrupted at the end if its digest differs."""
        try:
            handle = self._path(ref).open("rb")
        except FileNotFoundError:
            raise ObjectMissing("a stored object is missing") from None
        return VerifyingReader(handle, ref)

    def read(self, ref: BlobRef, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        with self.open(ref) as reader:
            while chunk := reader.read(chunk_size):
                yield chunk

    def verified_path(self, ref: BlobRef) -> Path:
        """The file of an object, after checking every byte against its digest: for readers
        that need a seekable path (Parquet). The bytes are the stored ciphertext.

        Objects are immutable, so a file this process has already hashed in full is not
        hashed again while its identity (inode, size, mtime, ctime) is unchanged: a query
        must not re-read a whole dataset before it starts. Any write to the file moves its
        ctime and brings the full check back; the ciphertext is authenticated page by page
        when read in any case.
        """
        path = self._path(ref)
        try:
            before = _identity(path)
        except FileNotFoundError:
            raise ObjectMissing("a stored object is missing") from None
        with self._verified_lock:
            known = self._verified.get(ref)
        if known == before:
            return path
        self.verify(ref)
        if _identity(path) == before:
            with self._verified_lock:
                self._verified[ref] = before
        return path

    def verify(self, ref: BlobRef) -> None:
        for _ in self.read(ref):
            pass

    def delete(self, ref: BlobRef) -> None:
        path = self._path(ref)
        with self._verified_lock:
            self._verified.pop(ref, None)
        with contextlib.suppress(FileNotFoundError):
            path.chmod(0o600)
            path.unlink()
