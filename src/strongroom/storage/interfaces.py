"""What an object store must do; the local directory is one implementation, S3 another later."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import BinaryIO, Protocol


@dataclasses.dataclass(frozen=True)
class BlobRef:
    """Where an object is, and the SHA-256 (hex) and size of its stored bytes."""

    prefix: str
    digest: str
    size: int


class ObjectStore(Protocol):
    def put(self, prefix: str, write: Callable[[BinaryIO], None]) -> BlobRef:
        """Run ``write`` against a hidden temporary file and publish it only once complete."""

    def read(self, ref: BlobRef, chunk_size: int = ...) -> Iterator[bytes]:
        """Stream an object's bytes, raising ObjectCorrupted at the end if the digest differs."""

    def verify(self, ref: BlobRef) -> None:
        """Re-read every byte and check the digest and size."""

    def delete(self, ref: BlobRef) -> None:
        """Remove an object (only retention and purges do this)."""
