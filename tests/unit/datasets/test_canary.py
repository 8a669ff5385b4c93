"""Invariant 1 for builds and queries: canary rows never reach a disk in clear text.

An encrypted upload is built into a dataset and queried through the sandbox
(lazily and loaded into memory); then every byte of the test's directory and of
every file created or changed in the system temp directory is scanned.
"""

from __future__ import annotations

import base64
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.crypto.test_parquet import algorithm, key_materials

from strongroom.analysis.engine import EncryptedTable, open_sandbox, run_query
from strongroom.crypto.keyring import TenantKeyRing
from strongroom.crypto.parquet import FOOTER_KEY_ID, ParquetCrypto, TenantParquetKms
from strongroom.datasets.build import ColumnType, CsvOptions, SchemaOverrides, build_dataset

CANARY = "canary-7d3e91@example.org"
ROWS = 20_000


def canary_csv() -> bytes:
    lines = ["id,email,city,joined"]
    lines += [f"{i},{CANARY}-{i},Town {CANARY}-{i},2024-01-{i % 28 + 1:02d}" for i in range(ROWS)]
    return ("\n".join(lines) + "\n").encode()


def files_under(root: Path, since: float | None = None) -> Iterator[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            try:
                if path.is_symlink() or not path.is_file():
                    continue
                if since is not None and path.stat().st_mtime < since:
                    continue
            except OSError:
                continue
            yield path


def hits(paths: Iterator[Path]) -> list[Path]:
    needle = CANARY.encode()
    found = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if needle in data or base64.b64encode(needle) in data:
            found.append(path)
    return found


def test_control_the_scan_finds_a_plaintext_canary(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    plain = tmp_path / "sub" / "plain.csv"
    plain.write_bytes(canary_csv())
    try:
        assert hits(files_under(tmp_path)) == [plain]
    finally:
        plain.unlink()  # tmp_path sits in the temp directory the other tests scan


def test_build_and_queries_leave_no_plaintext(ring: TenantKeyRing, tmp_path: Path) -> None:
    started = time.time() - 1
    # The upload, as the object store holds it: streaming AEAD under a data key.
    data_key, _wrapped = ring.new_data_key("upload-1")
    upload = tmp_path / "upload.bin"
    with upload.open("wb") as sink:
        data = canary_csv()
        data_key.seal(b"upload-1", (data[i : i + 65536] for i in range(0, len(data), 65536)), sink)
    del data

    crypto = ParquetCrypto(ring)
    out = tmp_path / "datasets" / "customers.parquet"
    out.parent.mkdir()
    with upload.open("rb") as source:
        report = build_dataset(data_key.open(b"upload-1", source), CsvOptions(), crypto, out)
    assert report.rows_loaded == ROWS

    for materialise in (False, True):
        conn = open_sandbox(
            {"customers": EncryptedTable(out, crypto)}, materialise=materialise
        )
        try:
            [(count,)] = run_query(
                conn, "SELECT count(*) FROM ds_customers WHERE email LIKE ?", [f"{CANARY}%"]
            ).rows
            assert count == ROWS
            cube = run_query(
                conn, "SELECT city, count(*) FROM ds_customers GROUP BY city", row_cap=ROWS
            )
            assert len(cube.rows) == ROWS
            rows = run_query(conn, "SELECT * FROM ds_customers ORDER BY email", row_cap=5).rows
            assert rows[0][1].startswith(CANARY)
        finally:
            conn.close()

    assert hits(files_under(tmp_path)) == []
    assert hits(files_under(Path(tempfile.gettempdir()), since=started)) == []
    assert hits(files_under(Path.cwd() / ".tmp", since=started)) == []  # DuckDB's default

    assert algorithm(out) == "AES_GCM_V1"
    materials = key_materials(out)
    assert materials
    kms = TenantParquetKms(ring)
    for material in materials:
        assert len(kms.unwrap_key(str(material["wrappedDEK"]), FOOTER_KEY_ID)) * 8 == 256


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_rejected_rows_leave_no_plaintext_in_the_report(
    ring: TenantKeyRing, tmp_path: Path, encoding: str
) -> None:
    data = f"id,n\n1,1\n2,{CANARY}\n3,{CANARY},extra\n4,4\n".encode()
    options = CsvOptions(encoding=encoding)  # type: ignore[arg-type]
    overrides = SchemaOverrides(types={"n": ColumnType.INTEGER})
    report = build_dataset(
        [data], options, ParquetCrypto(ring), tmp_path / "d.parquet", overrides=overrides
    )
    assert report.rows_rejected == 2
    assert CANARY not in repr(report)
    assert hits(files_under(tmp_path)) == []
