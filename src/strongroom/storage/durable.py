"""Small pieces of crash-safe writing shared by the object store and the backup repository."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO


class HashingWriter:
    """Counts and hashes what passes through to the real file."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self._handle.write(data)

    def flush(self) -> None:
        # Writers handed a BinaryIO may flush it (io wrappers, archive writers do).
        self._handle.flush()


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
