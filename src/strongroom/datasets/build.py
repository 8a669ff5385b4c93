"""Build: decrypted CSV chunks → streaming CSV reader → encrypted Parquet, one pass.

The input arrives as an iterable of plaintext chunks (``storage.services.read_object``
decrypts them segment by segment); a file-like adapter hands them to
``pyarrow.csv.open_csv`` so the whole file is never in memory. Every column is
read as text, so a value that does not fit its column rejects only its own row,
with a reason and a row number, never the value. Rows are written to a
``ParquetWriter`` with the tenant's encryption properties under a temporary name
in the output directory, which is renamed into place only when the build
succeeds and removed on any failure or cancellation: there is never a
half-written dataset version.

Row numbers count data rows from 1 after the header; a quoted field spanning
several lines counts once.
"""

from __future__ import annotations

import contextlib
import csv
import enum
import io
import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from strongroom.crypto.parquet import ParquetCrypto
from strongroom.datasets.errors import (
    BadCsv,
    BadEncoding,
    BadOverride,
    BuildCancelled,
    EmptyFile,
    NoDataRows,
    RowTooLong,
    TooManyColumns,
    WrongDelimiter,
)
from strongroom.storage.durable import fsync_dir

MAX_COLUMNS = 2_000
MAX_FIELD_BYTES = 64 * 1024
MAX_NAME_CHARS = 200  # a column name, as a dataset's key column name
BLOCK_BYTES = 4 * 1024 * 1024  # also the longest row the reader accepts
MAX_LISTED_REJECTIONS = 100
INFER_SHARE = 0.99  # share of sampled values a type must fit
SNIFF_LINES = 20  # lines a suspected wrong delimiter must split consistently
DELIMITER_NAMES = {",": "comma ','", ";": "semicolon ';'", "\t": "tab", "|": "pipe '|'"}
ROW_GROUP_ROWS = 512 * 1024
ROW_GROUP_BYTES = 128 * 1024 * 1024
QUEUED_BATCHES = 4  # parsed blocks waiting for the converter: bounds memory
TEMP_SUFFIX = ".building"  # a killed build leaves this; crash recovery removes it
PERSONAL_METADATA_KEY = b"strongroom.personal"
KEY_METADATA_KEY = b"strongroom.key"

Cancel = Callable[[], bool] | threading.Event
Progress = Callable[[int, int], None]


class ColumnType(enum.StrEnum):
    INTEGER = "integer"
    FLOAT = "float"
    DATE = "date"
    TIMESTAMP = "timestamp"
    BOOLEAN = "boolean"
    TEXT = "text"


ARROW_TYPES: dict[ColumnType, pa.DataType] = {
    ColumnType.INTEGER: pa.int64(),
    ColumnType.FLOAT: pa.float64(),
    ColumnType.DATE: pa.date32(),
    ColumnType.TIMESTAMP: pa.timestamp("us"),
    ColumnType.BOOLEAN: pa.bool_(),
    ColumnType.TEXT: pa.string(),
}


@dataclass(frozen=True)
class CsvOptions:
    delimiter: str = ","
    quote: str = '"'
    header: bool = True
    encoding: Literal["utf-8", "latin-1"] = "utf-8"

    def __post_init__(self) -> None:
        if len(self.delimiter) != 1 or len(self.quote) != 1:
            raise BadCsv("delimiter and quote must each be one character")
        if self.delimiter == self.quote or self.delimiter in "\r\n" or self.quote in "\r\n":
            raise BadCsv("delimiter and quote must differ and not be a line break")
        if self.encoding not in ("utf-8", "latin-1"):
            raise BadCsv("encoding must be utf-8 or latin-1")


@dataclass(frozen=True)
class SchemaOverrides:
    """What the tenant says about the columns, over what inference finds."""

    types: dict[str, ColumnType] = field(default_factory=dict)
    key_column: str | None = None
    personal: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    personal: bool = False


@dataclass(frozen=True)
class Rejection:
    row: int
    reason: str


@dataclass
class BuildReport:
    columns: list[Column] = field(default_factory=list)
    key_column: str | None = None
    rows_loaded: int = 0
    rows_rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    bytes_read: int = 0
    output_bytes: int = 0
    row_groups: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def rejections_truncated(self) -> bool:
        return self.rows_rejected > len(self.rejections)

    def reject(self, row: int, reason: str) -> None:
        """Count a rejected row; list it if it is among the lowest-numbered MAX_LISTED."""
        # The parser (ragged rows) and the converter (bad values) report from two threads.
        with self._lock:
            self.rows_rejected += 1
            rejection = Rejection(row, reason)
            if len(self.rejections) < MAX_LISTED_REJECTIONS:
                self.rejections.append(rejection)
                return
            highest = max(range(len(self.rejections)), key=lambda i: self.rejections[i].row)
            if row < self.rejections[highest].row:
                self.rejections[highest] = rejection


class ChunkReader(io.RawIOBase):
    """A read-only file over an iterable of byte chunks, holding at most one chunk."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = memoryview(b"")
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def read_up_to(self, size: int) -> bytes:
        """Up to ``size`` bytes, fewer only at the end of the stream."""
        parts: list[bytes] = []
        wanted = size
        while wanted:
            part = self.read(wanted)
            if not part:
                break
            parts.append(part)
            wanted -= len(part)
        return b"".join(parts)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        self.consumed += size
        return size


class _PrefixedReader(io.RawIOBase):
    """Replays a buffered prefix, then continues with the rest of the stream."""

    def __init__(self, prefix: bytes, rest: ChunkReader) -> None:
        super().__init__()
        self._prefix = memoryview(prefix)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._prefix:
            size = min(len(buffer), len(self._prefix))
            buffer[:size] = self._prefix[:size]
            self._prefix = self._prefix[size:]
            return size
        return self._rest.readinto(buffer)


def cancel_check(cancel: Cancel | None) -> Callable[[], bool]:
    if cancel is None:
        return lambda: False
    if isinstance(cancel, threading.Event):
        return cancel.is_set
    return cancel


def _read_options(options: CsvOptions, names: list[str] | None) -> pacsv.ReadOptions:
    return pacsv.ReadOptions(
        use_threads=False,  # row numbers of ragged rows need sequential parsing
        block_size=BLOCK_BYTES,
        encoding="utf8" if options.encoding == "utf-8" else "latin-1",
        column_names=names,
        skip_rows=1 if names is not None and options.header else 0,
        autogenerate_column_names=names is None and not options.header,
    )


def _parse_options(
    options: CsvOptions, handler: Callable[[pacsv.InvalidRow], str]
) -> pacsv.ParseOptions:
    return pacsv.ParseOptions(
        delimiter=options.delimiter,
        quote_char=options.quote,
        newlines_in_values=True,
        invalid_row_handler=handler,
    )


def _arrow_error(error: pa.ArrowInvalid) -> Exception:
    """Our error for a pyarrow parse failure; pyarrow's own text may quote data, so drop it."""
    text = str(error)
    if "Empty CSV file" in text:
        return EmptyFile("the file is empty")
    if "invalid UTF8" in text or "UnicodeDecodeError" in text:
        return BadEncoding(
            "the file is not valid UTF-8", hint="upload it again with encoding latin-1"
        )
    if "straddling" in text or "block size" in text:
        return RowTooLong(
            f"a row is longer than {BLOCK_BYTES // (1024 * 1024)} MiB",
            hint="check the quote character; an unbalanced quote makes one huge row",
        )
    return BadCsv("the file could not be read as CSV with these options")


def _column_names(prefix: bytes, options: CsvOptions) -> list[str]:
    """Column names from the first block only (the header, or the first row's width)."""

    def skip(_row: pacsv.InvalidRow) -> str:
        return "skip"

    # Parse only up to the first line break: the header row, or the first data row.
    end = prefix.find(b"\n")
    if end < 0 and len(prefix) == BLOCK_BYTES:
        raise RowTooLong(f"the first row is longer than {BLOCK_BYTES // (1024 * 1024)} MiB")
    head = prefix if end < 0 else prefix[: end + 1]
    try:
        reader = pacsv.open_csv(
            io.BytesIO(head),
            read_options=_read_options(options, None),
            parse_options=_parse_options(options, skip),
        )
    except pa.ArrowInvalid as error:
        raise _arrow_error(error) from None
    try:
        names = list(reader.schema.names)
    except UnicodeDecodeError:
        raise BadEncoding(
            "the header is not valid UTF-8", hint="upload it again with encoding latin-1"
        ) from None
    if len(names) > MAX_COLUMNS:
        raise TooManyColumns(
            f"the file has {len(names)} columns; at most {MAX_COLUMNS} are allowed"
        )
    if len(names) == 1:
        _refuse_wrong_delimiter(prefix, options)
    if options.header:
        if any(not name.strip() for name in names):
            raise BadCsv("a column in the header has no name")
        longest = max(range(len(names)), key=lambda i: len(names[i]))
        if len(names[longest]) > MAX_NAME_CHARS:
            # Not quoted: a "name" this long is more likely data than a column name.
            raise BadCsv(
                f"the name of column {longest + 1} in the header is longer than "
                f"{MAX_NAME_CHARS} characters",
                hint="check the header option; the first line may be data",
            )
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise BadCsv(f"the header names column {name!r} twice")
            seen.add(name)
    return names


def _refuse_wrong_delimiter(prefix: bytes, options: CsvOptions) -> None:
    """Refuse a one-column file that another common delimiter splits consistently.

    A semicolon file read with commas parses "fine" as one wide text column;
    building it would only hide the mistake. Only complete lines of the first
    block are looked at (quoted line breaks respected), at most SNIFF_LINES.
    """
    end = prefix.rfind(b"\n")
    text = prefix[: end + 1 if end >= 0 else len(prefix)].decode(
        "utf-8" if options.encoding == "utf-8" else "latin-1", errors="replace"
    )
    for candidate, name in DELIMITER_NAMES.items():
        if candidate in (options.delimiter, options.quote):
            continue
        rows = csv.reader(io.StringIO(text), delimiter=candidate, quotechar=options.quote)
        try:
            widths = {len(row) for _, row in zip(range(SNIFF_LINES), rows, strict=False) if row}
        except csv.Error:  # a field over the csv module's limit: not a sniffable table
            continue
        if len(widths) == 1 and (width := widths.pop()) > 1:
            raise WrongDelimiter(
                f"the file reads as one column with delimiter {options.delimiter!r}, but its "
                f"first lines split evenly into {width} columns at the {name}",
                hint=f"upload it again with delimiter {candidate!r}",
                delimiter=candidate,
            )


def cast(array: pa.Array, target: pa.DataType) -> pa.Array:
    """``array`` as ``target``, safely, except that timestamps may drop sub-microseconds."""
    return pc.cast(array, options=pc.CastOptions(target, allow_time_truncate=True))


def _casts(array: pa.Array, target: pa.DataType) -> bool:
    try:
        cast(array, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


_PATTERNS: list[tuple[ColumnType, str]] = [
    (ColumnType.INTEGER, r"^[+-]?\d{1,19}$"),
    (ColumnType.FLOAT, r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"),
    (ColumnType.BOOLEAN, r"^(?i:true|false)$"),
    (ColumnType.DATE, r"^\d{4}-\d{2}-\d{2}$"),
    (ColumnType.TIMESTAMP, r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?$"),
]


def _infer(array: pa.Array) -> ColumnType:
    """The first type that fits at least INFER_SHARE of the sample's values, else text.

    A few dirty values do not turn a column into text: they are rejected with
    their rows instead, and the report says so.
    """
    values = pc.drop_null(array)
    if len(values) == 0:
        return ColumnType.TEXT
    for kind, pattern in _PATTERNS:
        candidates = values.filter(pc.match_substring_regex(values, pattern))
        if len(candidates) < INFER_SHARE * len(values):
            continue
        if kind is ColumnType.BOOLEAN:
            return kind
        fitting = len(candidates) - len(_bad_positions(candidates, ARROW_TYPES[kind]))
        if fitting >= INFER_SHARE * len(values):
            return kind
    return ColumnType.TEXT


def _bad_positions(array: pa.Array, target: pa.DataType, offset: int = 0) -> list[int]:
    """Positions whose value does not cast, found by halving (cheap when they are few)."""
    if _casts(array, target):
        return []
    if len(array) <= 32:
        return [
            offset + i for i in range(len(array)) if not _casts(array.slice(i, 1), target)
        ]
    half = len(array) // 2
    return _bad_positions(array.slice(0, half), target, offset) + _bad_positions(
        array.slice(half), target, offset + half
    )


def _to_boolean(array: pa.Array) -> tuple[pa.Array, list[int]]:
    lowered = pc.utf8_lower(pc.utf8_trim_whitespace(array))
    ok = pc.or_kleene(pc.is_null(array), pc.is_in(lowered, pa.array(["true", "false"])))
    bad = [i for i, good in enumerate(ok.to_pylist()) if not good] if not pc.all(ok).as_py() else []
    return pc.equal(lowered, "true"), bad


def _schema(columns: list[Column], key_column: str | None) -> pa.Schema:
    fields = []
    for column in columns:
        metadata = {PERSONAL_METADATA_KEY: b"true" if column.personal else b"false"}
        if column.name == key_column:
            metadata[KEY_METADATA_KEY] = b"true"
        fields.append(pa.field(column.name, ARROW_TYPES[column.type], metadata=metadata))
    return pa.schema(fields)


def check_overrides(names: list[str], overrides: SchemaOverrides) -> None:
    """Refuse overrides that name a column the file does not have."""
    known = set(names)
    for name in [*overrides.types, *overrides.personal, *filter(None, [overrides.key_column])]:
        if name not in known:
            raise BadOverride(f"the overrides name column {name!r}, which the file does not have")


def check_csv_head(prefix: bytes, options: CsvOptions, overrides: SchemaOverrides) -> list[str]:
    """What can be known from a file's first block before a build starts: the column names.

    Raises the same errors a build would for an empty file, a bad header, too
    many columns, a wrong delimiter or overrides naming unknown columns.
    """
    if not prefix:
        raise EmptyFile("the file is empty")
    names = _column_names(prefix, options)
    check_overrides(names, overrides)
    return names


def _resolve_columns(
    names: list[str], sample: pa.RecordBatch, overrides: SchemaOverrides
) -> list[Column]:
    check_overrides(names, overrides)
    columns = []
    for index, name in enumerate(names):
        kind = overrides.types.get(name) or _infer(sample.column(index))
        columns.append(Column(name, ColumnType(kind), personal=name in overrides.personal))
    return columns


def _plain(array: pa.Array) -> pa.Array:
    """Dictionary-encoded and large or view strings as plain arrays (Parquet input)."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_large_string(array.type) or pa.types.is_string_view(array.type):
        array = pc.cast(array, pa.string())
    return array


def _to_column(array: pa.Array, kind: ColumnType) -> tuple[pa.Array, list[int]]:
    """``array`` converted to ``kind``, and the positions whose values did not convert."""
    target = ARROW_TYPES[kind]
    if array.type == target:
        return array, []
    if kind is ColumnType.BOOLEAN and pa.types.is_string(array.type):
        return _to_boolean(array)
    try:
        return cast(array, target), []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        bad = _bad_positions(array, target)
    mask = pc.is_in(pa.array(range(len(array))), pa.array(bad))
    return cast(pc.if_else(mask, pa.scalar(None, array.type), array), target), bad


class Converter:
    """Converts batches to the dataset schema, rejecting rows that do not fit.

    Columns arrive as text (CSV) or typed (Parquet); either way a value that
    does not convert rejects its row, with a reason that never quotes it.
    """

    def __init__(self, columns: list[Column], key_column: str | None, report: BuildReport) -> None:
        self.columns = columns
        self.key_index = next(
            (i for i, column in enumerate(columns) if column.name == key_column), None
        )
        self.schema = _schema(columns, key_column)
        self.report = report

    def convert(self, batch: pa.RecordBatch, row_number: Callable[[int], int]) -> pa.RecordBatch:
        reasons: dict[int, str] = {}
        arrays: list[pa.Array] = []
        for index, column in enumerate(self.columns):
            array = _plain(batch.column(index))
            if pa.types.is_string(array.type):
                too_long = pc.greater(pc.binary_length(array), MAX_FIELD_BYTES)
                if pc.any(too_long).as_py():
                    for position in pc.indices_nonzero(pc.fill_null(too_long, False)).to_pylist():
                        reasons.setdefault(
                            position,
                            f"field in column {column.name} is longer than {MAX_FIELD_BYTES} bytes",
                        )
                    array = pc.if_else(too_long, pa.scalar(None, pa.string()), array)
            if index == self.key_index and array.null_count:
                for position in pc.indices_nonzero(pc.is_null(array)).to_pylist():
                    reasons.setdefault(position, f"missing key in column {column.name}")
            converted, bad = _to_column(array, column.type)
            for position in bad:
                reasons.setdefault(position, f"bad {column.type} in column {column.name}")
            arrays.append(converted)
        table = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        if not reasons:
            return table
        for position in sorted(reasons):
            self.report.reject(row_number(position), reasons[position])
        keep = pc.invert(pc.is_in(pa.array(range(batch.num_rows)), pa.array(sorted(reasons))))
        return table.filter(keep)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def build_dataset(
    chunks: Iterable[bytes],
    options: CsvOptions,
    crypto: ParquetCrypto,
    out_path: Path,
    *,
    overrides: SchemaOverrides | None = None,
    cancel: Cancel | None = None,
    progress: Progress | None = None,
) -> BuildReport:
    """Build decrypted CSV ``chunks`` into one encrypted Parquet file at ``out_path``.

    Returns the report (columns, rows loaded, rejected rows with numbers and
    reasons). Raises a :class:`~strongroom.datasets.errors.DatasetError` for
    input that cannot be built and :class:`BuildCancelled` when ``cancel``
    fires; either way nothing is left at ``out_path`` or beside it.
    """
    cancelled = cancel_check(cancel)
    return write_atomically(
        out_path,
        lambda temp: _build(
            chunks, options, crypto, temp, overrides or SchemaOverrides(), cancelled, progress
        ),
    )


def write_atomically(out_path: Path, produce: Callable[[Path], BuildReport]) -> BuildReport:
    """Run ``produce`` on a temporary name beside ``out_path``; rename it into place only
    if it returns, remove it if it raises (or the process is killed: see TEMP_SUFFIX)."""
    temp = out_path.parent / f".{out_path.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}"
    try:
        report = produce(temp)
        temp.replace(out_path)
        fsync_dir(out_path.parent)
    except BaseException:
        _remove(temp)
        raise
    report.output_bytes = out_path.stat().st_size
    return report


class _Builder:
    """One build: the CSV reader on the calling thread, conversion and writing on another.

    Parsing (pyarrow, sequential so that ragged rows keep their numbers) runs on
    the caller's thread; converting and encoding and encrypting row groups run
    on a worker thread, fed through a short queue, so the two overlap. Both
    spend their time in pyarrow, off the GIL.
    """

    def __init__(self, options: CsvOptions, crypto: ParquetCrypto, temp: Path) -> None:
        self.options = options
        self.crypto = crypto
        self.temp = temp
        self.report = BuildReport()
        self.ragged: list[int] = []  # data row numbers of rows with the wrong column count
        self.attributed = 0  # ragged rows already placed in an earlier batch
        self.seen = 0  # data rows read, loaded or rejected
        self.converter: Converter | None = None
        self.writer: pq.ParquetWriter | None = None
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.pending_bytes = 0
        self.queue: queue.Queue[tuple[pa.RecordBatch, Callable[[int], int]] | None] = (
            queue.Queue(maxsize=QUEUED_BATCHES)
        )
        self.worker: threading.Thread | None = None
        self.error: BaseException | None = None
        self.stopping = False

    def on_invalid_row(self, row: pacsv.InvalidRow) -> str:
        number = (row.number or 0) - (1 if self.options.header else 0)
        self.ragged.append(number)
        self.report.reject(
            number, f"wrong column count: expected {row.expected_columns}, got {row.actual_columns}"
        )
        return "skip"

    def open(self, source: ChunkReader) -> pacsv.CSVStreamingReader:
        prefix = source.read_up_to(BLOCK_BYTES)
        if not prefix:
            raise EmptyFile("the file is empty")
        self.names = _column_names(prefix, self.options)
        try:
            return pacsv.open_csv(
                _PrefixedReader(prefix, source),
                read_options=_read_options(self.options, self.names),
                parse_options=_parse_options(self.options, self.on_invalid_row),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(self.names, pa.string()),
                    strings_can_be_null=True,
                    null_values=[""],
                    quoted_strings_can_be_null=True,
                ),
            )
        except pa.ArrowInvalid as error:
            raise _arrow_error(error) from None

    def row_numbers(self, batch: pa.RecordBatch) -> Callable[[int], int]:
        """Maps a position in ``batch`` to its data row number, counting skipped ragged rows."""
        fresh = sorted(self.ragged[self.attributed :])
        self.attributed = len(self.ragged)
        base = self.seen
        self.seen += batch.num_rows + len(fresh)

        def row_number(position: int) -> int:
            number = base + position + 1
            for skipped in fresh:
                if skipped <= number:
                    number += 1
            return number

        return row_number

    def start(self, batch: pa.RecordBatch, overrides: SchemaOverrides) -> None:
        self.report.columns = _resolve_columns(self.names, batch, overrides)
        self.report.key_column = overrides.key_column
        self.converter = Converter(self.report.columns, overrides.key_column, self.report)
        self.writer = pq.ParquetWriter(
            self.temp,
            self.converter.schema,
            encryption_properties=self.crypto.encryption_properties(),
        )
        self.worker = threading.Thread(target=self._work, name="dataset-build", daemon=True)
        self.worker.start()

    def submit(self, batch: pa.RecordBatch, row_number: Callable[[int], int]) -> None:
        self.raise_worker_error()
        self.queue.put((batch, row_number))

    def raise_worker_error(self) -> None:
        if self.error is not None:
            raise self.error

    def _work(self) -> None:
        converter = self.converter
        if converter is None:
            raise RuntimeError("the converter is set before the worker starts")
        while (item := self.queue.get()) is not None:
            if self.stopping or self.error is not None:
                continue  # drain, so a producer blocked on put() can finish
            batch, row_number = item
            try:
                self._add(converter.convert(batch, row_number))
            except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
                self.error = error

    def _add(self, converted: pa.RecordBatch) -> None:
        self.report.rows_loaded += converted.num_rows
        if converted.num_rows:
            self.pending.append(converted)
            self.pending_rows += converted.num_rows
            self.pending_bytes += converted.nbytes
        if self.pending_rows >= ROW_GROUP_ROWS or self.pending_bytes >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self.pending and self.writer is not None:
            table = pa.Table.from_batches(self.pending)
            self.writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            self.report.row_groups += 1
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0

    def drain(self) -> None:
        """Wait until every submitted batch is converted; raises the worker's error."""
        if self.worker is not None:
            self.queue.put(None)
            self.worker.join()
            self.worker = None
        self.raise_worker_error()

    def finish(self) -> None:
        """Write the last row group and close the file (after :meth:`drain`)."""
        self._flush()
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()

    def close(self) -> None:
        """Stop the worker and release the file after a failure; the caller removes it."""
        self.stopping = True
        if self.worker is not None:
            self.queue.put(None)
            self.worker.join()
            self.worker = None
        if self.writer is not None:
            writer, self.writer = self.writer, None
            with contextlib.suppress(Exception):
                writer.close()


def _build(
    chunks: Iterable[bytes],
    options: CsvOptions,
    crypto: ParquetCrypto,
    temp: Path,
    overrides: SchemaOverrides,
    cancelled: Callable[[], bool],
    progress: Progress | None,
) -> BuildReport:
    source = ChunkReader(chunks)
    builder = _Builder(options, crypto, temp)
    report = builder.report
    reader = builder.open(source)
    try:
        while not cancelled():
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as error:
                raise _arrow_error(error) from None
            row_number = builder.row_numbers(batch)
            if builder.converter is None:
                if batch.num_rows == 0:
                    continue
                builder.start(batch, overrides)
            builder.submit(batch, row_number)
            report.bytes_read = source.consumed
            if progress is not None:
                progress(builder.seen, report.bytes_read)
        builder.drain()
        if cancelled():
            raise BuildCancelled("the build was cancelled")
        report.bytes_read = source.consumed
        if report.rows_loaded == 0:
            if report.rows_rejected:
                raise NoDataRows("every data row was rejected", report=report)
            raise NoDataRows("the file has no data rows", hint="a header alone is not a dataset")
        builder.finish()
        report.rejections.sort(key=lambda rejection: rejection.row)
    finally:
        builder.close()
    with temp.open("rb+") as handle:
        os.fsync(handle.fileno())
    return report
