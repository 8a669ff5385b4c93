"""export create|list|download and quota end to end: the single-use link kept 0600 by the
client, downloads verified against the server's SHA-256 and renamed into place only whole."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import stat
from pathlib import Path

import pytest

from strongroom.cli.client import exports
from strongroom.cli.client.errors import ClientError
from strongroom.cli.client.http import Api
from tests.functional.client.conftest import TENANT, VIEWER
from tests.functional.client.support import Client, assert_refused
from tests.functional.client.test_datasets import customers_csv
from tests.functional.support import assert_ok

SPEC = {
    "dataset": "people", "selection": {"field": "age", "op": "lt", "value": 30},
    "format": "csv",
    "columns": [{"name": "customer_id", "transform": {"kind": "pseudonym"}},
                {"name": "region"},
                {"name": "email", "transform": {"kind": "drop"}}],
}


@pytest.fixture
def exporter(analyst: Client, tmp_path: Path) -> Client:
    """The analyst, with a dataset ``people`` of 100 rows (age 20 + i % 50)."""
    listed = json.loads(assert_ok(analyst.run("dataset", "list", "--json")))
    if "people" not in [d["name"] for d in listed]:
        source = customers_csv(tmp_path / "people.csv", 100)
        assert_ok(analyst.run("dataset", "upload", source, "--dataset", "people", "--key",
                              "customer_id", "--personal", "email", "--build"))
    return analyst


def _spec(tmp_path: Path) -> Path:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(SPEC), encoding="utf-8")
    return path


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


def test_export_list_download_once(exporter: Client, tmp_path: Path) -> None:
    before = json.loads(assert_ok(exporter.run("quota", "--json")))
    created = json.loads(assert_ok(exporter.run("export", "create", _spec(tmp_path), "--json")))
    expected_rows = sum(1 for i in range(1, 101) if 20 + i % 50 < 30)
    assert created["rows"] == expected_rows
    # The link's key is kept for the download, readable by the user alone.
    kept = exporter.config_dir / "downloads.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert created["id"] in json.loads(kept.read_text())

    listed = assert_ok(exporter.run("export", "list"))
    assert created["id"] in listed
    assert listed.splitlines()[0].split()[:2] == ["ID", "STATUS"]

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "people.csv"
    result = json.loads(assert_ok(exporter.run("export", "download", created["id"], "-o", target,
                                               "--json")))
    data = target.read_bytes()
    assert hashlib.sha256(data).hexdigest() == created["sha256"] == result["sha256"]
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    assert rows[0] == ["customer_id", "region"]
    assert len(rows) - 1 == expected_rows
    assert "@" not in data.decode("utf-8")
    # Pseudonyms, not the ids.
    assert not any(row[0].isdigit() for row in rows[1:])
    assert created["id"] not in json.loads(kept.read_text())

    # The link works once: a second download is refused and leaves nothing behind.
    again = out_dir / "again.csv"
    assert_refused(exporter.run("export", "download", created["id"], "-o", again, "--key",
                                "not-the-key"), 1)
    assert_refused(exporter.run("export", "download", created["id"], "-o", again), 1,
                   "no download link kept")
    assert not again.exists()
    assert _leftovers(out_dir) == []

    after = json.loads(assert_ok(exporter.run("quota", "--json")))
    used = after["user"]["hour"]["rows"]["used"] - before["user"]["hour"]["rows"]["used"]
    assert used == expected_rows
    assert "ROWS LEFT" in assert_ok(exporter.run("quota"))


def test_create_with_output_downloads_at_once(exporter: Client, tmp_path: Path) -> None:
    target = tmp_path / "now.csv"
    result = exporter.run("export", "create", _spec(tmp_path), "-o", target)
    out = assert_ok(result)
    assert "sha256" in out
    assert target.exists()
    assert hashlib.sha256(target.read_bytes()).hexdigest() in out
    # An existing file is not replaced unless asked.
    assert_refused(exporter.run("export", "create", _spec(tmp_path), "-o", target), 1,
                   "--overwrite")


def test_a_download_that_does_not_match_the_recorded_sha256_leaves_no_file(
    exporter: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = json.loads(assert_ok(exporter.run("export", "create", _spec(tmp_path), "--json")))
    monkeypatch.setenv("STRONGROOM_CONFIG_DIR", str(exporter.config_dir))
    key = exports.kept_links()[created["id"]]["key"]
    target = tmp_path / "tampered.csv"
    wrong = {**created, "sha256": "0" * 64}
    with Api.from_credentials() as api, pytest.raises(ClientError, match="SHA-256"):
        exports.download_file(api, wrong, key, target, as_json=True)
    assert not target.exists()
    assert _leftovers(tmp_path) == []


def test_a_viewer_cannot_export(client: Client, exporter: Client, tmp_path: Path) -> None:
    assert_ok(client.login(TENANT, VIEWER))
    assert_refused(client.run("export", "create", _spec(tmp_path)), 1, "403")
    assert_refused(client.run("quota"), 1, "403")


def test_unknown_column_is_one_line_exit_1(exporter: Client, tmp_path: Path) -> None:
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({**SPEC, "columns": [{"name": "shoe_size"}]}), encoding="utf-8")
    assert_refused(exporter.run("export", "create", spec), 1, "422")
