"""The dataset and analysis commands end to end: upload (resuming over cut connections),
build with its report, catalog, count, cube, SQL, preview, saved selections, delete and
restore, locks; refusals are one line with exit code 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.functional.client.conftest import TENANT, VIEWER
from tests.functional.client.support import Client, CuttingProxy, assert_refused
from tests.functional.support import RunningServer, assert_ok

REGIONS = ("north", "south", "east", "west")


def customers_csv(path: Path, rows: int, bad_rows: tuple[int, ...] = ()) -> Path:
    """``rows`` data rows; the data rows numbered in ``bad_rows`` (1-based) have a column
    too few. Region cycles, age is 20 + i % 50, spend i % 1000."""
    lines = ["customer_id,region,age,spend,email"]
    for i in range(1, rows + 1):
        if i in bad_rows:
            lines.append(f"{i},{REGIONS[i % 4]},{20 + i % 50}")
        else:
            lines.append(f"{i},{REGIONS[i % 4]},{20 + i % 50},{i % 1000}.5,"
                         f"person{i}@mail.example")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _json(client: Client, *args: str | Path) -> object:
    return json.loads(assert_ok(client.run(*args, "--json")))


def _write(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_upload_build_and_analyse(analyst: Client, tmp_path: Path) -> None:
    csv = customers_csv(tmp_path / "customers.csv", 400, bad_rows=(7, 250))
    result = analyst.run("dataset", "upload", csv, "--dataset", "customers", "--key",
                         "customer_id", "--personal", "email", "--build")
    out = assert_ok(result)
    # The build report: rows loaded, rows rejected with their row numbers, no values.
    assert "rows loaded    398" in out
    assert "rows rejected  2" in out
    assert "row 7:" in out
    assert "row 250:" in out
    assert "person7@" not in out + result.stderr

    listed = _json(analyst, "dataset", "list")
    assert isinstance(listed, list)
    assert [d["name"] for d in listed] == ["customers"]
    assert listed[0]["latest_version"]["row_count"] == 398
    table = assert_ok(analyst.run("dataset", "list"))
    assert table.splitlines()[0].split()[:3] == ["NAME", "VERSION", "STATUS"]
    assert "customers" in table
    shown = assert_ok(analyst.run("dataset", "show", "customers"))
    assert "customer_id" in shown
    assert "email" in shown

    # count: 398 rows, of which age > 60 are those with i % 50 > 40 minus the rejected
    over_60 = [i for i in range(1, 401) if i not in (7, 250) and 20 + i % 50 > 60]
    selection = _write(tmp_path / "over60.json", {
        "dataset": "customers", "selection": {"field": "age", "op": "gt", "value": 60}})
    counted = _json(analyst, "count", selection)
    assert isinstance(counted, dict)
    assert counted["count"] == len(over_60)
    assert str(len(over_60)) in assert_ok(analyst.run("count", selection))

    spec = _write(tmp_path / "cube.json", {
        "dataset": "customers", "selection": None,
        "dimensions": [{"field": "region"}],
        "measures": [{"fn": "count"}, {"fn": "max", "field": "age"}]})
    cube = _json(analyst, "cube", spec)
    assert isinstance(cube, dict)
    assert sum(cell["values"]["count"] for cell in cube["cells"]) == 398
    cube_table = assert_ok(analyst.run("cube", spec))
    assert all(region in cube_table for region in REGIONS)

    sql = _json(analyst, "sql", "SELECT region, count(*) AS n FROM ds_customers GROUP BY region "
                "ORDER BY region")
    assert isinstance(sql, dict)
    assert [row[0] for row in sql["rows"]] == sorted(REGIONS)
    assert sum(row[1] for row in sql["rows"]) == 398
    assert "west" in assert_ok(analyst.run("sql", "SELECT region FROM ds_customers LIMIT 3"))

    preview = _json(analyst, "preview", "customers", "--limit", "3")
    assert isinstance(preview, dict)
    assert len(preview["rows"]) == 3
    assert "customer_id" in assert_ok(analyst.run("preview", "customers", "--limit", "2"))

    # Saved selections: save, save again (a new version), list, show.
    assert_ok(analyst.run("selection", "save", "over-60", selection))
    assert_ok(analyst.run("selection", "save", "over-60", _write(tmp_path / "o70.json", {
        "dataset": "customers", "selection": {"field": "age", "op": "gt", "value": 65}})))
    assert "over-60" in assert_ok(analyst.run("selection", "list"))
    saved = _json(analyst, "selection", "show", "over-60")
    assert isinstance(saved, dict)
    assert saved["selection"] == {"field": "age", "op": "gt", "value": 65}


def test_upload_resumes_after_the_connection_is_cut(
    client: Client, tmp_path: Path
) -> None:
    csv = customers_csv(tmp_path / "big.csv", 80_000)
    size = csv.stat().st_size
    assert size > 3 * 1024 * 1024
    with CuttingProxy(client.server.port).running() as proxy:
        assert_ok(client.login(TENANT, "ann@acme.example", port=proxy.port))
        # Cut in the middle of the second 1 MiB chunk.
        proxy.arm(int(1.5 * 1024 * 1024))
        result = client.run("dataset", "upload", csv, "--dataset", "resumed", "--chunk-mib",
                            "1", "--build", "--json")
        assert proxy.cuts == 1
        out = json.loads(assert_ok(result))
        assert "resumed" in result.stderr
        assert out["upload"]["received_bytes"] == size
        assert out["version"]["status"] == "ready"
        assert out["version"]["row_count"] == 80_000
        assert out["version"]["rejected_count"] == 0
        # Every row arrived once: the sum over all ids is exact.
        total = _json(client, "sql", "SELECT sum(customer_id) AS s, count(*) AS n "
                      "FROM ds_resumed")
    assert isinstance(total, dict)
    assert total["rows"] == [[80_000 * 80_001 // 2, 80_000]]


def test_delete_needs_the_name_typed_back_and_restores(analyst: Client, tmp_path: Path) -> None:
    csv = customers_csv(tmp_path / "c.csv", 20)
    assert_ok(analyst.run("dataset", "upload", csv, "--dataset", "doomed", "--build"))
    assert_refused(analyst.run("dataset", "delete", "doomed", "--confirm", "dooomed"), 1,
                   "does not match")
    assert_refused(analyst.run("dataset", "delete", "doomed", stdin="wrong\n"), 1,
                   "does not match")
    assert "doomed" in assert_ok(analyst.run("dataset", "list"))
    out = assert_ok(analyst.run("dataset", "delete", "doomed", stdin="doomed\n"))
    assert "restorable until" in out
    assert "doomed" not in assert_ok(analyst.run("dataset", "list"))
    assert "doomed" in assert_ok(analyst.run("dataset", "list", "--deleted"))
    assert_refused(analyst.run("dataset", "show", "doomed"), 1, "no dataset named")
    assert_ok(analyst.run("dataset", "restore", "doomed"))
    assert "doomed" in assert_ok(analyst.run("dataset", "list"))
    assert_ok(analyst.run("dataset", "delete", "doomed", "--confirm", "doomed"))


def test_a_locked_dataset_refuses_builds(analyst: Client, tmp_path: Path) -> None:
    csv = customers_csv(tmp_path / "c.csv", 20)
    upload = json.loads(assert_ok(analyst.run("dataset", "upload", csv, "--dataset",
                                              "locked", "--json")))
    upload_id = upload["upload"]["id"]
    assert_ok(analyst.run("dataset", "lock", "locked"))
    assert_refused(analyst.run("dataset", "build", "locked", "--upload", upload_id), 1, "409")
    assert_ok(analyst.run("dataset", "unlock", "locked"))
    out = json.loads(assert_ok(analyst.run("dataset", "build", "locked", "--upload", upload_id,
                                           "--wait", "--json")))
    assert out["version"]["status"] == "ready"
    assert out["version"]["row_count"] == 20


def test_a_failed_build_prints_its_report_and_exits_1(analyst: Client, tmp_path: Path) -> None:
    empty = tmp_path / "header-only.csv"
    empty.write_text("a,b\n", encoding="utf-8")
    result = analyst.run("dataset", "upload", empty, "--dataset", "hollow", "--build")
    assert_refused(result, 1, "the build failed")
    assert "failed" in result.stdout


def test_bad_input_is_one_line_exit_1(analyst: Client, tmp_path: Path) -> None:
    csv = customers_csv(tmp_path / "c.csv", 20)
    assert_ok(analyst.run("dataset", "upload", csv, "--dataset", "checked", "--build"))
    unknown = _write(tmp_path / "u.json", {"dataset": "checked",
                                           "selection": {"field": "shoe", "op": "eq",
                                                         "value": 1}})
    assert_refused(analyst.run("count", unknown), 1, "422")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    assert_refused(analyst.run("count", broken), 1, "not valid JSON")
    assert_refused(analyst.run("sql", "COPY ds_checked TO '/tmp/x.csv'"), 1)
    assert_refused(analyst.run("sql", "SELECT * FROM read_csv('/etc/passwd')"), 1)
    assert_refused(analyst.run("dataset", "show", "no-such-dataset"), 1, "no dataset named")


@pytest.mark.parametrize("command", [
    ("dataset", "upload", "{csv}", "--dataset", "viewers"),
    ("sql", "SELECT 1"),
])
def test_a_viewer_is_refused_what_needs_an_analyst(
    client: Client, tmp_path: Path, command: tuple[str, ...]
) -> None:
    assert_ok(client.login(TENANT, VIEWER))
    csv = customers_csv(tmp_path / "v.csv", 5)
    args = [part.format(csv=csv) for part in command]
    assert_refused(client.run(*args), 1, "403")


def test_resume_continues_an_upload_begun_elsewhere(analyst: Client, tmp_path: Path) -> None:
    """An upload interrupted for good (the process died) continues with --resume from what
    the server holds; the first MiB is not sent again."""
    source = customers_csv(tmp_path / "half.csv", 30_000)
    size = source.stat().st_size
    first = source.read_bytes()[: 1024 * 1024]
    stored = json.loads(analyst.credentials.read_text())
    headers = {"authorization": f"Bearer {stored['token']}"}
    with analyst.server.client(headers=headers) as http:
        opened = http.post(analyst.server.url("/api/v1/uploads"), json={
            "filename": "half.csv", "format": "csv", "size": size, "csv": None})
        assert opened.status_code == 201, opened.text
        upload_id = opened.json()["id"]
        sent = http.put(analyst.server.url(f"/api/v1/uploads/{upload_id}/chunks"),
                        params={"offset": 0}, content=first,
                        headers={"content-type": "application/octet-stream"})
        assert sent.json()["received_bytes"] == len(first)
    out = json.loads(assert_ok(analyst.run(
        "dataset", "upload", source, "--dataset", "halves", "--resume", upload_id,
        "--chunk-mib", "1", "--build", "--json")))
    assert out["upload"]["id"] == upload_id
    assert out["upload"]["received_bytes"] == size
    assert out["version"]["row_count"] == 30_000


def test_csv_options_reach_the_build(analyst: Client, tmp_path: Path) -> None:
    """--delimiter, --encoding latin-1, --no-header and --type are the server's to apply."""
    source = tmp_path / "semi.csv"
    lines = [f"{i};Zo\u00eb {i};{i * 10}" for i in range(1, 31)]
    source.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    out = json.loads(assert_ok(analyst.run(
        "dataset", "upload", source, "--dataset", "semicolons", "--delimiter", ";",
        "--encoding", "latin-1", "--no-header", "--type", "f2=float", "--build", "--json")))
    assert out["version"]["status"] == "ready"
    assert out["version"]["row_count"] == 30
    columns = {c["name"]: c["type"] for c in out["version"]["columns"]}
    assert columns == {"f0": "integer", "f1": "text", "f2": "float"}
    names = _json(analyst, "sql", "SELECT f1 FROM ds_semicolons WHERE f0 = 3")
    assert isinstance(names, dict)
    assert names["rows"] == [["Zo\u00eb 3"]]


def test_a_viewer_counts_and_sees_small_cells_suppressed(
    analyst: Client, server: RunningServer, tmp_path: Path
) -> None:
    source = customers_csv(tmp_path / "small.csv", 60)
    assert_ok(analyst.run("dataset", "upload", source, "--dataset", "smallcells", "--build"))
    viewer = Client(tmp_path / "viewer", server)
    assert_ok(viewer.login(TENANT, VIEWER))
    everyone = _write(tmp_path / "all.json", {"dataset": "smallcells", "selection": None})
    assert "60" in assert_ok(viewer.run("count", everyone))
    # region x age: 200 cells of at most one or two records each, all below the minimum.
    spec = _write(tmp_path / "fine.json", {
        "dataset": "smallcells", "selection": None,
        "dimensions": [{"field": "region"}, {"field": "age"}], "measures": [{"fn": "count"}]})
    cube = _json(viewer, "cube", spec)
    assert isinstance(cube, dict)
    assert cube["suppressed_cells"] > 0
    assert cube["min_cell_count"] > 1
    assert "suppressed" in assert_ok(viewer.run("cube", spec))
    # Preview with a selection, as the analyst: only the selected records.
    selection = _write(tmp_path / "one.json", {"field": "customer_id", "op": "eq", "value": 9})
    preview = _json(analyst, "preview", "smallcells", "--selection", selection)
    assert isinstance(preview, dict)
    assert len(preview["rows"]) == 1
