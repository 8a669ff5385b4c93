"""Build a Parquet upload: read it in place, a row group at a time, into our encrypted Parquet.

The upload is a seekable view over its encrypted parts
(:func:`~strongroom.datasets.uploads.open_upload_random_access`), so
``pyarrow.parquet.ParquetFile`` reads the footer and the column chunks it
needs and only those segments are decrypted, in memory; no plaintext is ever
written. Column types map onto ours (:func:`column_type`); a column of any
other type refuses the build naming it. Overrides apply as for CSV, and a
value that does not convert rejects its row. The output is written under a
temporary name and renamed into place only when complete
(:func:`~strongroom.datasets.build.write_atomically`).

What is not Parquet is refused by its first and last bytes before pyarrow
sees it, with a precise reason (a ZIP archive, gzip, text...); Parquet
encrypted by someone else (``PARE``) is refused too: we cannot and should not
read it, and the upload is encrypted on arrival anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from strongroom.crypto.parquet import ParquetCrypto
from strongroom.datasets.build import (
    MAX_COLUMNS,
    MAX_NAME_CHARS,
    ROW_GROUP_ROWS,
    BuildReport,
    Cancel,
    Column,
    ColumnType,
    Converter,
    Progress,
    SchemaOverrides,
    cancel_check,
    check_overrides,
    write_atomically,
)
from strongroom.datasets.errors import (
    BadParquet,
    BuildCancelled,
    EncryptedParquet,
    NoDataRows,
    NotParquet,
    TooManyColumns,
    UnsupportedColumnType,
)

MAGIC = b"PAR1"
ENCRYPTED_MAGIC = b"PARE"
BATCH_ROWS = 64 * 1024
READ_BUFFER_BYTES = 1 << 20  # column chunks are streamed through a buffer this size

_SIGNATURES: list[tuple[bytes, str]] = [
    (b"PK\x03\x04", "it starts like a ZIP archive"),
    (b"PK\x05\x06", "it starts like an empty ZIP archive"),
    (b"\x1f\x8b", "it starts like a gzip file"),
    (b"BZh", "it starts like a bzip2 file"),
    (b"\xfd7zXZ\x00", "it starts like an xz file"),
    (b"\x28\xb5\x2f\xfd", "it starts like a zstd file"),
    (b"%PDF", "it starts like a PDF document"),
    (b"SQLite format 3\x00", "it starts like an SQLite database"),
    (b"ARROW1", "it starts like an Arrow IPC file"),
    (b"ORC", "it starts like an ORC file"),
]


class Readable(Protocol):
    """A seekable, readable plaintext view (``io.RawIOBase``-like)."""

    def seek(self, offset: int, whence: int = ..., /) -> int: ...

    def read(self, size: int = ..., /) -> bytes | None: ...


def column_type(arrow_type: pa.DataType) -> ColumnType | None:
    """Our column type for a Parquet column's Arrow type, or None if we cannot hold it."""
    if pa.types.is_dictionary(arrow_type):
        return column_type(arrow_type.value_type)
    checks: list[tuple[Callable[[pa.DataType], bool], ColumnType]] = [
        (pa.types.is_integer, ColumnType.INTEGER),
        (pa.types.is_floating, ColumnType.FLOAT),
        (pa.types.is_decimal, ColumnType.FLOAT),
        (pa.types.is_date, ColumnType.DATE),
        (pa.types.is_timestamp, ColumnType.TIMESTAMP),
        (pa.types.is_boolean, ColumnType.BOOLEAN),
        (pa.types.is_string, ColumnType.TEXT),
        (pa.types.is_large_string, ColumnType.TEXT),
        (pa.types.is_string_view, ColumnType.TEXT),
        (pa.types.is_null, ColumnType.TEXT),
    ]
    return next((kind for check, kind in checks if check(arrow_type)), None)


def _describe(head: bytes) -> str:
    """Why a file is not Parquet, from its first bytes (never quoting them)."""
    if head.startswith(MAGIC):
        return "it starts like Parquet but does not end like it: truncated or damaged"
    for signature, description in _SIGNATURES:
        if head.startswith(signature):
            return description
    if head and all(byte in b"\t\r\n" or 32 <= byte < 127 for byte in head):
        return "it starts like text; upload a CSV with format csv"
    return "it neither starts nor ends with PAR1"


def check_magic(source: Readable, size: int) -> None:
    """Refuse, precisely, what is not an unencrypted Parquet file."""
    if size == 0:
        raise NotParquet("the file is empty")
    source.seek(0)
    head = source.read(16) or b""
    source.seek(max(0, size - 4))
    tail = source.read(4) or b""
    if head.startswith(ENCRYPTED_MAGIC) or tail == ENCRYPTED_MAGIC:
        raise EncryptedParquet(
            "the file is encrypted Parquet, which cannot be read here",
            hint="upload it without Parquet encryption; it is encrypted as it arrives",
        )
    if size < 12 or not head.startswith(MAGIC) or tail != MAGIC:  # magic, footer length, magic
        raise NotParquet(f"the file is not Parquet ({_describe(head)})")


def _pyarrow_error(error: Exception) -> Exception:
    """Our error for pyarrow's; its own text may quote data, so only its gist is used."""
    if "crypt" in str(error).lower():  # encrypted, or "cannot decrypt"
        return EncryptedParquet(
            "the file has encrypted Parquet columns, which cannot be read here",
            hint="upload it without Parquet encryption; it is encrypted as it arrives",
        )
    return BadParquet("the file could not be read as Parquet: it is damaged or unsupported")


def open_parquet(source: Readable, size: int) -> pq.ParquetFile:
    """The Parquet file over a seekable plaintext view, after checking what it is."""
    check_magic(source, size)
    source.seek(0)
    try:
        return pq.ParquetFile(source, buffer_size=READ_BUFFER_BYTES)
    except (pa.ArrowException, OSError) as error:
        raise _pyarrow_error(error) from None


def parquet_columns(schema: pa.Schema, overrides: SchemaOverrides) -> list[Column]:
    """Our columns for a Parquet schema and the tenant's overrides, or a precise refusal."""
    names = list(schema.names)
    if len(names) > MAX_COLUMNS:
        raise TooManyColumns(
            f"the file has {len(names)} columns; at most {MAX_COLUMNS} are allowed"
        )
    seen: set[str] = set()
    for position, name in enumerate(names, 1):
        if not name.strip():
            raise BadParquet("a column in the file has no name")
        if len(name) > MAX_NAME_CHARS:
            raise BadParquet(
                f"the name of column {position} is longer than {MAX_NAME_CHARS} characters"
            )
        if name in seen:
            raise BadParquet(f"the file names column {name!r} twice")
        seen.add(name)
    check_overrides(names, overrides)
    columns = []
    for field in schema:
        kind = column_type(field.type)
        if kind is None:
            raise UnsupportedColumnType(
                f"column {field.name!r} has type {field.type}, which a dataset cannot hold",
                hint="convert it to a number, date, timestamp, boolean or text column",
            )
        chosen = overrides.types.get(field.name, kind)
        columns.append(Column(field.name, ColumnType(chosen), field.name in overrides.personal))
    return columns


def inspect_parquet(source: Readable, size: int, overrides: SchemaOverrides) -> list[Column]:
    """Check a Parquet upload before a build is recorded: what it is, its schema, overrides,
    and that its first row can be read (encrypted columns under a plain footer cannot)."""
    parquet = open_parquet(source, size)
    columns = parquet_columns(parquet.schema_arrow, overrides)
    if parquet.metadata.num_row_groups:
        try:
            next(parquet.iter_batches(batch_size=1, row_groups=[0], use_threads=False), None)
        except (pa.ArrowException, OSError) as error:
            raise _pyarrow_error(error) from None
    return columns


class _RowGroups:
    """Gathers converted batches into row groups of the encrypted output."""

    def __init__(self, writer: pq.ParquetWriter, report: BuildReport) -> None:
        self.writer = writer
        self.report = report
        self.pending: list[pa.RecordBatch] = []
        self.rows = 0

    def add(self, batch: pa.RecordBatch) -> None:
        self.report.rows_loaded += batch.num_rows
        if batch.num_rows:
            self.pending.append(batch)
            self.rows += batch.num_rows
        if self.rows >= ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.Table.from_batches(self.pending),
                                    row_group_size=ROW_GROUP_ROWS)
            self.report.row_groups += 1
        self.pending, self.rows = [], 0


def _numbering(base: int) -> Callable[[int], int]:
    """Row numbers (from 1, in file order) of a batch's positions; the batch starts after
    ``base`` rows."""
    return lambda position: base + position + 1


def _build(
    source: Readable, size: int, crypto: ParquetCrypto, temp: Path,
    overrides: SchemaOverrides, cancelled: Callable[[], bool],
    progress: Callable[[int, int], None] | None,
) -> BuildReport:
    parquet = open_parquet(source, size)
    report = BuildReport(columns=parquet_columns(parquet.schema_arrow, overrides),
                         key_column=overrides.key_column)
    converter = Converter(report.columns, overrides.key_column, report)
    metadata = parquet.metadata
    seen = 0
    writer = pq.ParquetWriter(temp, converter.schema,
                              encryption_properties=crypto.encryption_properties())
    try:
        groups = _RowGroups(writer, report)
        for index in range(metadata.num_row_groups):
            batches = parquet.iter_batches(batch_size=BATCH_ROWS, row_groups=[index],
                                           use_threads=False)
            while not cancelled():
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                except (pa.ArrowException, OSError) as error:
                    raise _pyarrow_error(error) from None
                groups.add(converter.convert(batch, _numbering(seen)))
                seen += batch.num_rows
            if cancelled():
                raise BuildCancelled("the build was cancelled")
            # Bytes in proportion to rows: a column chunk's own sizes are in metadata that
            # pyarrow aborts the process on when it is encrypted, so it is never touched.
            report.bytes_read = size * seen // max(1, metadata.num_rows)
            if progress is not None:
                progress(seen, min(report.bytes_read, size))
        report.bytes_read = size  # the footer too, once every row group is read
        if progress is not None:
            progress(seen, size)
        if report.rows_loaded == 0:
            if report.rows_rejected:
                raise NoDataRows("every data row was rejected", report=report)
            raise NoDataRows("the file has no data rows")
        groups.flush()
        report.rejections.sort(key=lambda rejection: rejection.row)
    finally:
        writer.close()
    return report


def build_parquet_dataset(
    source: Readable,
    size: int,
    crypto: ParquetCrypto,
    out_path: Path,
    *,
    overrides: SchemaOverrides | None = None,
    cancel: Cancel | None = None,
    progress: Progress | None = None,
) -> BuildReport:
    """Build the Parquet file readable at ``source`` (seekable, ``size`` bytes) into one
    encrypted Parquet file at ``out_path``; nothing is left there or beside it on failure."""
    cancelled = cancel_check(cancel)
    return write_atomically(
        out_path,
        lambda temp: _build(
            source, size, crypto, temp, overrides or SchemaOverrides(), cancelled, progress
        ),
    )
