"""Whatever Python's csv module writes, a build reads back exactly (by property)."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strongroom.crypto.parquet import ParquetCrypto
from strongroom.datasets.build import ColumnType, CsvOptions, SchemaOverrides, build_dataset

TEXT = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00\r"),
    min_size=1,
    max_size=30,
)
ROW = st.tuples(st.integers(-(2**62), 2**62), TEXT, st.booleans())


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(ROW, min_size=1, max_size=60),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    chunk=st.integers(1, 64),
)
def test_round_trip(
    crypto: ParquetCrypto, rows: list[tuple[int, str, bool]], delimiter: str, chunk: int
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["n", "note", "flag"])
    writer.writerows((n, note, "true" if flag else "false") for n, note, flag in rows)
    data = buffer.getvalue().encode()
    overrides = SchemaOverrides(types={"note": ColumnType.TEXT})
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "d.parquet"
        report = build_dataset(
            [data[i : i + chunk] for i in range(0, len(data), chunk)],
            CsvOptions(delimiter=delimiter),
            crypto,
            out,
            overrides=overrides,
        )
        table = pq.read_table(out, decryption_properties=crypto.decryption_properties())
    assert report.rows_rejected == 0
    assert [c.type for c in report.columns] == [
        ColumnType.INTEGER, ColumnType.TEXT, ColumnType.BOOLEAN
    ]
    assert list(zip(*table.to_pydict().values(), strict=True)) == rows
