"""Building CSV into encrypted Parquet: types, rejected rows, bad input, cancel, no leftovers."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from strongroom.crypto.parquet import ParquetCrypto
from strongroom.datasets.build import (
    MAX_COLUMNS,
    MAX_LISTED_REJECTIONS,
    ChunkReader,
    ColumnType,
    CsvOptions,
    SchemaOverrides,
    build_dataset,
)
from strongroom.datasets.errors import (
    BadCsv,
    BadEncoding,
    BadOverride,
    BuildCancelled,
    DatasetError,
    EmptyFile,
    NoDataRows,
    RowTooLong,
    TooManyColumns,
    WrongDelimiter,
)
from strongroom.errors import InvalidInput

SECRET = "s3cret-value-9f1c"


def chunked(data: bytes, size: int = 7) -> list[bytes]:
    """Small odd-sized chunks, so rows and multi-byte characters straddle chunk edges."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def read(crypto: ParquetCrypto, path: Path) -> pa.Table:
    return pq.read_table(path, decryption_properties=crypto.decryption_properties())


def build(crypto: ParquetCrypto, out: Path, data: bytes, **kwargs: object):  # type: ignore[no-untyped-def]
    options = kwargs.pop("options", CsvOptions())
    return build_dataset(chunked(data, 4096), options, crypto, out, **kwargs)  # type: ignore[arg-type]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


CUSTOMERS = (
    "id,name,score,born,seen,active\n"
    "1,Ann,1.5,1980-01-02,2024-05-06T07:08:09,true\n"
    "2,Bob,,1990-12-31,2024-05-06 10:00:00,false\n"
    "3,Chloë,-3e2,2000-02-29,2024-01-01T00:00:00.250,TRUE\n"
).encode()


def test_infers_types_and_round_trips(crypto: ParquetCrypto, tmp_path: Path) -> None:
    report = build_dataset(chunked(CUSTOMERS), CsvOptions(), crypto, tmp_path / "d.parquet")
    assert [(c.name, c.type) for c in report.columns] == [
        ("id", ColumnType.INTEGER),
        ("name", ColumnType.TEXT),
        ("score", ColumnType.FLOAT),
        ("born", ColumnType.DATE),
        ("seen", ColumnType.TIMESTAMP),
        ("active", ColumnType.BOOLEAN),
    ]
    assert (report.rows_loaded, report.rows_rejected) == (3, 0)
    assert report.bytes_read == len(CUSTOMERS)
    table = read(crypto, tmp_path / "d.parquet")
    assert table.column("id").to_pylist() == [1, 2, 3]
    assert table.column("name").to_pylist() == ["Ann", "Bob", "Chloë"]
    assert table.column("score").to_pylist() == [1.5, None, -300.0]
    assert table.column("born").to_pylist()[2] == dt.date(2000, 2, 29)
    assert table.column("seen").to_pylist()[2] == dt.datetime(2024, 1, 1, 0, 0, 0, 250000)  # noqa: DTZ001
    assert table.column("active").to_pylist() == [True, False, True]
    assert leftovers(tmp_path) == ["d.parquet"]


def test_chunk_reader_never_needs_the_whole_file() -> None:
    pulled: list[int] = []

    def chunks() -> Iterator[bytes]:
        for i in range(100):
            pulled.append(i)
            yield b"x" * 10

    reader = ChunkReader(chunks())
    assert reader.read(25) == b"x" * 10  # one chunk at a time, never more
    assert pulled == [0]
    assert len(reader.read()) == 990
    assert reader.consumed == 1000


def test_overrides_types_key_and_personal(crypto: ParquetCrypto, tmp_path: Path) -> None:
    overrides = SchemaOverrides(
        types={"id": ColumnType.TEXT}, key_column="id", personal=frozenset({"name"})
    )
    report = build(crypto, tmp_path / "d.parquet", CUSTOMERS, overrides=overrides)
    assert report.columns[0].type is ColumnType.TEXT
    assert report.key_column == "id"
    assert [c.name for c in report.columns if c.personal] == ["name"]
    schema = read(crypto, tmp_path / "d.parquet").schema
    assert schema.field("id").type == pa.string()
    assert schema.field("name").metadata[b"strongroom.personal"] == b"true"
    assert schema.field("id").metadata[b"strongroom.key"] == b"true"


def test_override_of_an_unknown_column_is_refused(crypto: ParquetCrypto, tmp_path: Path) -> None:
    overrides = SchemaOverrides(types={"nope": ColumnType.INTEGER})
    with pytest.raises(BadOverride, match="column 'nope'"):
        build(crypto, tmp_path / "d.parquet", CUSTOMERS, overrides=overrides)
    assert leftovers(tmp_path) == []


def test_rejected_rows_have_numbers_and_reasons_and_no_values(
    crypto: ParquetCrypto, tmp_path: Path
) -> None:
    rows = ["id,born,n"]
    for i in range(1, 301):
        if i == 5:
            rows.append(f"{i},{SECRET}")  # ragged: two fields
        elif i == 120:
            rows.append(f"{i},2020-02-30,1")  # not a date
        elif i == 250:
            rows.append(f"{i},2020-01-01,{SECRET}")  # not an integer
        elif i == 251:
            rows.append(f"{i},2020-01-01,1,{SECRET},x")  # ragged: five fields
        else:
            rows.append(f"{i},2020-01-01,{i}")
    data = ("\n".join(rows) + "\n").encode()
    report = build(crypto, tmp_path / "d.parquet", data)
    assert report.rows_loaded == 296
    assert [(r.row, r.reason) for r in report.rejections] == [
        (5, "wrong column count: expected 3, got 2"),
        (120, "bad date in column born"),
        (250, "bad integer in column n"),
        (251, "wrong column count: expected 3, got 5"),
    ]
    assert SECRET not in repr(report)
    ids = read(crypto, tmp_path / "d.parquet").column("id").to_pylist()
    assert ids == [i for i in range(1, 301) if i not in {5, 120, 250, 251}]


def test_row_numbers_hold_across_blocks_and_quoted_newlines(
    crypto: ParquetCrypto, tmp_path: Path
) -> None:
    rows = ["id,note"]
    bad = {3, 70_000, 140_001}
    for i in range(1, 150_001):
        if i in bad:
            rows.append(f"{i}")
        elif i == 2:
            rows.append(f'{i},"two\nlines"')
        else:
            rows.append(f"{i},note {i} padding padding padding")
    data = ("\n".join(rows) + "\n").encode()
    assert len(data) > 4 * 1024 * 1024  # more than one reader block
    report = build(crypto, tmp_path / "d.parquet", data)
    assert [r.row for r in report.rejections] == sorted(bad)
    assert report.rows_loaded == 150_000 - len(bad)


def test_rejections_are_capped_but_all_counted(crypto: ParquetCrypto, tmp_path: Path) -> None:
    rows = ["id,n", "0,0"] + [f"{i},x{i}" for i in range(1, 500)] + ["999,1"]
    overrides = SchemaOverrides(types={"n": ColumnType.INTEGER})
    report = build(crypto, tmp_path / "d.parquet", ("\n".join(rows)).encode(), overrides=overrides)
    assert report.rows_rejected == 499
    assert len(report.rejections) == MAX_LISTED_REJECTIONS
    assert report.rejections_truncated
    assert report.rows_loaded == 2


def test_missing_key_rejects_the_row(crypto: ParquetCrypto, tmp_path: Path) -> None:
    data = b"id,name\n1,a\n,b\n3,c\n"
    report = build(crypto, tmp_path / "d.parquet", data, overrides=SchemaOverrides(key_column="id"))
    assert [(r.row, r.reason) for r in report.rejections] == [(2, "missing key in column id")]


def test_every_row_rejected_is_an_error_with_the_report(
    crypto: ParquetCrypto, tmp_path: Path
) -> None:
    data = b"id,n\n1,x\n2,y\n"
    overrides = SchemaOverrides(types={"n": ColumnType.INTEGER})
    with pytest.raises(NoDataRows, match="every data row was rejected") as caught:
        build(crypto, tmp_path / "d.parquet", data, overrides=overrides)
    assert caught.value.report is not None
    assert caught.value.report.rows_rejected == 2
    assert leftovers(tmp_path) == []


def test_no_header_names_columns(crypto: ParquetCrypto, tmp_path: Path) -> None:
    options = CsvOptions(delimiter=";", header=False)
    report = build(crypto, tmp_path / "d.parquet", b"1;a\n2;b\n", options=options)
    assert [c.name for c in report.columns] == ["f0", "f1"]
    assert report.rows_loaded == 2


def test_latin_1(crypto: ParquetCrypto, tmp_path: Path) -> None:
    data = "id,name\n1,Zoë\n".encode("latin-1")
    build(crypto, tmp_path / "d.parquet", data, options=CsvOptions(encoding="latin-1"))
    assert read(crypto, tmp_path / "d.parquet").column("name").to_pylist() == ["Zoë"]


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"", EmptyFile, "the file is empty"),
        (b"id,name\n", NoDataRows, "no data rows"),
        (b"id,name\n1,\xff\xfe\n", BadEncoding, "not valid UTF-8"),
        (b"id,\xffname\n1,a\n", BadEncoding, "not valid UTF-8"),
        (b"id,id\n1,2\n", BadCsv, "names column 'id' twice"),
        (",".join(f"c{i}" for i in range(10_000)).encode() + b"\n", TooManyColumns, "10000"),
    ],
    ids=["empty", "header-only", "bad-utf8", "bad-utf8-header", "duplicate-name", "10k-columns"],
)
def test_bad_input_is_a_precise_error_and_leaves_nothing(
    crypto: ParquetCrypto, tmp_path: Path, data: bytes, error: type[DatasetError], message: str
) -> None:
    with pytest.raises(error, match=message) as caught:
        build(crypto, tmp_path / "d.parquet", data)
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.status == 422
    assert leftovers(tmp_path) == []


def test_invalid_utf8_late_in_the_file_leaves_nothing(
    crypto: ParquetCrypto, tmp_path: Path
) -> None:
    rows = b"".join(f"{i},name {i} padding padding\n".encode() for i in range(300_000))
    data = b"id,name\n" + rows + b"300000,\xc3\x28\n"
    with pytest.raises(BadEncoding):
        build(crypto, tmp_path / "d.parquet", data)
    assert leftovers(tmp_path) == []


def test_columns_at_the_maximum_build(crypto: ParquetCrypto, tmp_path: Path) -> None:
    header = ",".join(f"c{i}" for i in range(MAX_COLUMNS))
    row = ",".join("1" for _ in range(MAX_COLUMNS))
    report = build(crypto, tmp_path / "d.parquet", f"{header}\n{row}\n".encode())
    assert len(report.columns) == MAX_COLUMNS


def test_a_1_mib_field_rejects_its_row(crypto: ParquetCrypto, tmp_path: Path) -> None:
    big = "y" * (1024 * 1024)
    data = f"id,note\n1,short\n2,{big}\n3,fine\n".encode()
    report = build(crypto, tmp_path / "d.parquet", data)
    assert [(r.row, r.reason) for r in report.rejections] == [
        (2, "field in column note is longer than 65536 bytes")
    ]
    assert read(crypto, tmp_path / "d.parquet").column("id").to_pylist() == [1, 3]


def test_a_row_longer_than_a_block_is_refused(crypto: ParquetCrypto, tmp_path: Path) -> None:
    # An unbalanced quote makes the rest of the file one field.
    data = b"id,note\n1,\"open\n" + b"x" * (9 * 1024 * 1024) + b"\n2,b\n"
    with pytest.raises(RowTooLong, match="longer than 4 MiB"):
        build(crypto, tmp_path / "d.parquet", data)
    assert leftovers(tmp_path) == []


def test_bad_options_are_refused() -> None:
    with pytest.raises(BadCsv):
        CsvOptions(delimiter=",,")
    with pytest.raises(BadCsv):
        CsvOptions(delimiter='"')
    with pytest.raises(BadCsv):
        CsvOptions(encoding="utf-16")  # type: ignore[arg-type]


def test_progress_reports_rows_and_bytes(crypto: ParquetCrypto, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    data = b"id\n" + b"".join(f"{i}\n".encode() for i in range(2_000_000))
    build(crypto, tmp_path / "d.parquet", data, progress=lambda r, b: seen.append((r, b)))
    assert len(seen) > 1
    assert seen == sorted(seen)
    assert seen[-1] == (2_000_000, len(data))


def test_cancel_before_start_leaves_nothing(crypto: ParquetCrypto, tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(BuildCancelled):
        build(crypto, tmp_path / "d.parquet", CUSTOMERS, cancel=cancel)
    assert leftovers(tmp_path) == []


def test_cancel_midway_leaves_nothing(crypto: ParquetCrypto, tmp_path: Path) -> None:
    data = b"id,name\n" + b"".join(f"{i},n{i}\n".encode() for i in range(2_000_000))
    cancel = threading.Event()
    written: list[int] = []

    def progress(rows: int, _bytes: int) -> None:
        written.append(rows)
        if len(written) == 3:
            # A temp file exists by now, holding row groups already written.
            assert any(p.name.endswith(".building") for p in tmp_path.iterdir())
            cancel.set()

    with pytest.raises(BuildCancelled):
        build(crypto, tmp_path / "d.parquet", data, cancel=cancel, progress=progress)
    assert len(written) == 3
    assert leftovers(tmp_path) == []


def test_failure_in_the_source_leaves_nothing(crypto: ParquetCrypto, tmp_path: Path) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"id,name\n" + b"".join(f"{i},n{i}\n".encode() for i in range(1_000_000))
        raise OSError("object store went away")

    with pytest.raises(OSError, match="went away"):
        build_dataset(chunks(), CsvOptions(), crypto, tmp_path / "d.parquet")
    assert leftovers(tmp_path) == []


def test_an_existing_version_is_untouched_by_a_failed_build(
    crypto: ParquetCrypto, tmp_path: Path
) -> None:
    out = tmp_path / "d.parquet"
    build(crypto, out, CUSTOMERS)
    before = out.read_bytes()
    with pytest.raises(EmptyFile):
        build(crypto, out, b"")
    assert out.read_bytes() == before


@pytest.mark.parametrize(
    ("data", "options", "named"),
    [
        (b"id;name;born\n1;Ann;2000-01-01\n2;Bob;2001-02-03\n", CsvOptions(), "';'"),
        (b"id\tname\n1\tAnn\n2\tBob\n", CsvOptions(), "'\\t'"),
        (b"id|name\n1|Ann\n2|Bob\n", CsvOptions(), "'|'"),
        (b"id,name\n1,Ann\n2,Bob\n", CsvOptions(delimiter=";"), "','"),
        (b"1;Ann\n2;Bob\n", CsvOptions(header=False), "';'"),
    ],
    ids=["semicolon", "tab", "pipe", "comma-read-as-semicolon", "no-header"],
)
def test_a_wrong_delimiter_is_refused_naming_the_right_one(
    crypto: ParquetCrypto, tmp_path: Path, data: bytes, options: CsvOptions, named: str
) -> None:
    with pytest.raises(WrongDelimiter) as caught:
        build(crypto, tmp_path / "d.parquet", data, options=options)
    assert caught.value.status == 422
    assert caught.value.hint == f"upload it again with delimiter {named}"
    assert caught.value.delimiter == named.strip("'").replace("\\t", "\t")
    assert "Ann" not in caught.value.one_line()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "data",
    [
        b"name\nAnn; the first\nBob\n",  # a semicolon in one value, not in every line
        b"note\n\"a;b\"\n\"c;d\"\n",  # quoted: the delimiter is inside values
        b"only\n1\n2\n",
    ],
    ids=["uneven", "quoted", "plain-one-column"],
)
def test_a_real_one_column_file_still_builds(
    crypto: ParquetCrypto, tmp_path: Path, data: bytes
) -> None:
    report = build(crypto, tmp_path / "d.parquet", data)
    assert len(report.columns) == 1


def test_ragged_rows_with_the_right_delimiter_stay_rejected_rows(
    crypto: ParquetCrypto, tmp_path: Path
) -> None:
    data = b"id;name\n1;Ann\n2\n3;Cy;extra\n4;Dee\n"
    report = build(crypto, tmp_path / "d.parquet", data, options=CsvOptions(delimiter=";"))
    assert [r.row for r in report.rejections] == [2, 3]
    assert report.rows_loaded == 2


def test_a_huge_field_in_a_one_column_file_is_a_rejected_row_not_a_crash(
    crypto: ParquetCrypto, tmp_path: Path
) -> None:
    # The delimiter sniffer meets a field over the csv module's own limit on the way.
    data = b"note\nshort\n" + b"y" * (1 << 20) + b"\nfine\n"
    report = build(crypto, tmp_path / "d.parquet", data)
    assert [(r.row, r.reason) for r in report.rejections] == [
        (2, "field in column note is longer than 65536 bytes")
    ]
    assert report.rows_loaded == 2


def test_a_header_name_too_long_to_be_a_name_is_refused(
    crypto: ParquetCrypto, tmp_path: Path
) -> None:
    data = b"id," + b"x" * 201 + b"\n1,2\n"
    with pytest.raises(BadCsv, match="name of column 2 in the header is longer than 200"):
        build(crypto, tmp_path / "d.parquet", data)
    assert leftovers(tmp_path) == []
