"""Preview and read-only SQL over HTTPS: masking, caps, time limits, and every refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strongroom.analysis.service import MASK, resolve_datasets
from strongroom.identity.models import Role
from strongroom.tenancy.services import get_tenant
from tests.functional.analysis_api.expected import CUSTOMERS, count
from tests.functional.analysis_api.helpers import As, refused
from tests.functional.identity.support import World
from tests.functional.support import RunningServer


def test_preview_masks_personal_columns_unless_the_role_may_see_them(
    world: World, server: RunningServer
) -> None:
    body = {"dataset": "customers", "selection": {"field": "age", "op": "gt", "value": 40},
            "limit": 3}
    analyst = As(world, server, "alpha", Role.ANALYST).ok("POST", "/api/v1/preview", body)
    assert analyst["columns"] == ["id", "email", "region", "age", "spend", "joined"]
    assert analyst["masked"] == ["email"]
    expected = sorted((r for r in CUSTOMERS if r["age"] > 40), key=lambda r: r["id"])[:3]
    assert [row[0] for row in analyst["rows"]] == [r["id"] for r in expected]
    assert {row[1] for row in analyst["rows"]} == {MASK}
    assert [row[5] for row in analyst["rows"]] == [r["joined"].isoformat() for r in expected]
    assert "@example.org" not in json.dumps(analyst)

    admin = As(world, server, "alpha", Role.ADMIN).ok("POST", "/api/v1/preview", body)
    assert admin["masked"] == []
    assert [row[1] for row in admin["rows"]] == [r["email"] for r in expected]


def test_preview_limits_and_viewers(world: World, server: RunningServer) -> None:
    analyst = As(world, server, "alpha", Role.ANALYST)
    refused(analyst.post("/api/v1/preview", {"dataset": "customers", "limit": 101}), 422,
            "invalid-input")
    refused(As(world, server, "alpha", Role.VIEWER).post(
        "/api/v1/preview", {"dataset": "customers"}), 403, "permission-denied")


def test_selections_and_cubes_on_personal_columns_need_the_permission(
    world: World, server: RunningServer
) -> None:
    probe = {"field": "email", "op": "eq", "value": "ann@example.org"}
    after = world.last_seq()
    for role in (Role.VIEWER, Role.ANALYST):
        caller = As(world, server, "alpha", role)
        detail = refused(caller.post("/api/v1/count", {"dataset": "customers",
                                                       "selection": probe}),
                         403, "personal-data")
        assert 'selection (field "email")' in detail
        assert "ann@" not in detail
        refused(caller.post("/api/v1/cubes", {"dataset": "customers",
                                              "dimensions": [{"field": "email"}]}),
                403, "personal-data")
    denials = world.audit_events("user:analysis:count", after)
    assert [(e.outcome, e.reason) for e in denials] == [("denied", "personal-data")] * 2
    admin = As(world, server, "alpha", Role.ADMIN)
    assert admin.ok("POST", "/api/v1/count", {"dataset": "customers", "selection": probe})[
        "count"] == 1
    # Nor a join on one: with a dataset of guesses it would say which guesses are customers.
    join = {"dataset": "customers", "selection": {"linked": {
        "dataset": "customers", "on": {"base": "email", "other": "email"},
        "where": {"field": "age", "op": "lt", "value": 30}}}}
    detail = refused(As(world, server, "alpha", Role.ANALYST).post("/api/v1/count", join), 403,
                     "personal-data")
    assert detail.startswith('selection.linked.on.base (field "email")')
    assert admin.ok("POST", "/api/v1/count", join)["count"] == count(lambda r: r["age"] < 30)


def test_sql_reads_the_tenants_views_with_personal_columns_masked(
    world: World, server: RunningServer
) -> None:
    sql = ("SELECT c.id, c.email, sum(t.amount) AS total FROM ds_customers c "
           "JOIN ds_transactions t ON t.customer_id = c.id GROUP BY ALL ORDER BY c.id")
    analyst = As(world, server, "alpha", Role.ANALYST).ok("POST", "/api/v1/sql", {"sql": sql})
    assert analyst["columns"] == ["id", "email", "total"]
    assert {row[1] for row in analyst["rows"]} == {MASK}
    assert analyst["rows"][0] == [1, MASK, pytest.approx(170.0)]
    assert analyst["truncated"] is False
    admin = As(world, server, "alpha", Role.ADMIN).ok("POST", "/api/v1/sql", {"sql": sql})
    assert admin["rows"][0][1] == "ann@example.org"
    # Masked means absent from the sandbox: no filter can find a value either.
    probe = "SELECT count(*) FROM ds_customers WHERE email LIKE '%ann%'"
    assert As(world, server, "alpha", Role.ANALYST).ok(
        "POST", "/api/v1/sql", {"sql": probe})["rows"] == [[0]]


def test_sql_values_come_back_as_json(world: World, server: RunningServer) -> None:
    sql = ("SELECT 12.50::DECIMAL(10,2) AS d, DATE '2024-02-29' AS day, "
           "TIMESTAMP '2024-02-29 13:45:00' AS ts, 'x' AS s, NULL AS n, 3 AS i")
    answer = As(world, server, "alpha", Role.ANALYST).ok("POST", "/api/v1/sql", {"sql": sql})
    assert answer["rows"] == [[12.5, "2024-02-29", "2024-02-29T13:45:00", "x", None, 3]]


def test_sql_row_limit_and_cap(world: World, server: RunningServer) -> None:
    analyst = As(world, server, "alpha", Role.ANALYST)
    answer = analyst.ok("POST", "/api/v1/sql", {"sql": "SELECT id FROM ds_customers ORDER BY id",
                                                 "row_limit": 4})
    assert (answer["rows"], answer["truncated"]) == ([[1], [2], [3], [4]], True)
    capped = analyst.ok("POST", "/api/v1/sql", {"sql": "SELECT * FROM range(1000)"})
    assert (len(capped["rows"]), capped["truncated"]) == (100, True)  # sql_row_cap
    refused(analyst.post("/api/v1/sql", {"sql": "SELECT 1", "row_limit": 101}), 422,
            "invalid-input")


def test_sql_past_its_time_limit_is_stopped(world: World, server: RunningServer) -> None:
    analyst = As(world, server, "alpha", Role.ANALYST)
    slow = "SELECT count(*) FROM range(1000000000000) t(i) WHERE hash(i) = 42"
    refused(analyst.post("/api/v1/sql", {"sql": slow}), 422, "query-timed-out")
    # The server is fine afterwards.
    assert analyst.ok("POST", "/api/v1/sql", {"sql": "SELECT 1"})["rows"] == [[1]]


def _bravo_parquet(world: World) -> str:
    with world.deployment.transaction() as session:
        bravo = get_tenant(session, "bravo")
        resolved = resolve_datasets(session, world.deployment, bravo)
    return str(resolved.tables["customers"].path)


REFUSED_SQL = {
    "read a file": "SELECT * FROM read_csv('/etc/passwd')",
    "attach": "ATTACH '/tmp/x.duckdb' AS x",
    "copy to": "COPY (SELECT 1) TO '/tmp/strongroom-out.csv'",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "set": "SET enable_external_access = true",
    "pragma": "PRAGMA database_list",
    "second statement": "SELECT 1; SELECT 2",
    "create": "CREATE TABLE t AS SELECT 1",
    "reset lock": "SELECT current_setting('threads'); SET lock_configuration = false",
}
# Statements smuggled into the query() table function: DuckDB's own parser refuses them.
SMUGGLED_SQL = {
    "attach": "SELECT * FROM query('ATTACH ''/tmp/strongroom-smuggled.duckdb'' AS x')",
    "copy to": "SELECT * FROM query('COPY (SELECT 1) TO ''/tmp/strongroom-smuggled.csv''')",
    "set": "SELECT * FROM query('SET enable_external_access = true')",
}


@pytest.mark.parametrize("name", sorted(REFUSED_SQL))
def test_sql_that_is_not_a_plain_select_of_own_data_is_refused(
    world: World, server: RunningServer, name: str
) -> None:
    analyst = As(world, server, "alpha", Role.ANALYST)
    after = world.last_seq()
    refused(analyst.post("/api/v1/sql", {"sql": REFUSED_SQL[name]}), 422, "sql-refused")
    [denial] = world.audit_events("user:analysis:sql", after)
    assert (denial.outcome, denial.reason) == ("denied", "sql-refused")


@pytest.mark.parametrize("name", sorted(SMUGGLED_SQL))
def test_statements_inside_query_are_refused(
    world: World, server: RunningServer, name: str
) -> None:
    analyst = As(world, server, "alpha", Role.ANALYST)
    detail = refused(analyst.post("/api/v1/sql", {"sql": SMUGGLED_SQL[name]}), 422,
                     "query-failed")
    assert "single SELECT" in detail
    assert not list(Path("/tmp").glob("strongroom-smuggled*"))  # noqa: S108 (the path tried)


def test_sql_naming_a_file_is_refused_and_reveals_nothing(
    world: World, server: RunningServer
) -> None:
    """Another tenant's file, or any file: refused without reading it, and the answer
    is the same as for a path that does not exist (no oracle for which files exist)."""
    analyst = As(world, server, "alpha", Role.ANALYST)
    path = _bravo_parquet(world)
    absent = "/nonexistent/" + "0" * (len(path) - len("/nonexistent/"))
    for template, slug in (("SELECT * FROM read_parquet('{}')", "sql-refused"),
                           ("SELECT * FROM parquet_metadata('{}')", "sql-refused"),
                           ("SELECT * FROM read_text('{}')", "sql-refused"),
                           # A bare file name is no table: external access is off, so
                           # DuckDB does not even try it as a file.
                           ("SELECT * FROM '{}'", "query-failed")):
        real = refused(analyst.post("/api/v1/sql", {"sql": template.format(path)}), 422, slug)
        fake = refused(analyst.post("/api/v1/sql", {"sql": template.format(absent)}), 422, slug)
        assert real.replace(path, absent) == fake
        assert "zed@bravo.example" not in real


def test_sql_events_hold_an_hmac_of_the_sql_never_its_text(
    world: World, server: RunningServer
) -> None:
    after = world.last_seq()
    sql = "SELECT count(*) FROM ds_customers WHERE region = 'north'"
    As(world, server, "alpha", Role.ANALYST).ok("POST", "/api/v1/sql", {"sql": sql})
    [event] = world.audit_events("user:analysis:sql", after)
    details = json.loads(event.details)
    assert "north" not in event.details
    assert details["sql"] != sql
    assert isinstance(details["sql"], str | dict)
    assert (details["rows"], details["truncated"], details["masked"]) == (1, False, True)
    assert details["versions"]
