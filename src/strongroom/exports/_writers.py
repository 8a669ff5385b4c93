"""Record batches to CSV or Parquet bytes, produced as a stream of chunks.

pyarrow's writers push bytes into a file; the object store pulls chunks from an
iterator (so they go straight into streaming AEAD). :class:`_Collector` is the
file they write into, drained after every batch: at most one batch's encoded
bytes are held at a time, and none of it ever touches a disk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from strongroom.exports.models import ExportFormat

MEDIA_TYPES = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
}


class _Collector:
    """A write-only, in-memory file that hands over what was written when drained."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        chunk = bytes(data)  # the writer may reuse its buffer once this returns
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True

    def drain(self) -> bytes:
        chunk = b"".join(self._parts)
        self._parts.clear()
        return chunk


class Encoded:
    """The encoded file as chunks, with the SHA-256, size and row count of what was yielded."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.size = 0
        self.rows = 0

    @property
    def sha256(self) -> str:
        return self.hash.hexdigest()

    def _emit(self, chunk: bytes) -> Iterator[bytes]:
        if chunk:
            self.hash.update(chunk)
            self.size += len(chunk)
            yield chunk

    def chunks(
        self, batches: Iterable[pa.RecordBatch], schema: pa.Schema, fmt: ExportFormat
    ) -> Iterator[bytes]:
        """Write every batch in ``fmt`` and yield the bytes as they are produced."""
        sink = _Collector()
        writer: pa_csv.CSVWriter | pq.ParquetWriter
        if fmt is ExportFormat.CSV:
            writer = pa_csv.CSVWriter(sink, schema)
        else:
            writer = pq.ParquetWriter(sink, schema, compression="zstd")
        try:
            for batch in batches:
                if batch.num_rows:
                    writer.write_batch(batch)
                    self.rows += batch.num_rows
                yield from self._emit(sink.drain())
        finally:
            writer.close()
        yield from self._emit(sink.drain())


def encode_sample(batch: pa.RecordBatch, schema: pa.Schema, fmt: ExportFormat) -> int:
    """How many bytes ``batch`` takes written on its own in ``fmt`` (for estimates)."""
    encoded = Encoded()
    for _ in encoded.chunks([batch], schema, fmt):
        pass
    return encoded.size
