"""resolve_datasets and query_sandbox over datasets built for real in a deployment."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from tests.unit.analysis.built import CUSTOMERS_CSV, build, customers_and_transactions
from tests.unit.datasets.test_uploads import ANALYST

from strongroom.analysis import compile_selection, count_query
from strongroom.analysis.engine import QueryFailed, run_query
from strongroom.analysis.service import (
    MASK,
    query_sandbox,
    ready_dataset_names,
    resolve_datasets,
)
from strongroom.datasets import catalog
from strongroom.datasets.errors import DatasetNotFound, VersionNotFound
from strongroom.deployment import Deployment
from strongroom.storage.errors import ObjectCorrupted
from strongroom.tenancy.models import Tenant

TODAY = dt.date(2024, 10, 1)


@pytest.fixture
def tenant(make_tenant: Callable[[str], Tenant], deployment: Deployment) -> Tenant:
    acme = make_tenant("acme")
    customers_and_transactions(deployment, acme)
    return acme


def test_resolves_the_newest_ready_version_with_schema_key_and_personal_columns(
    deployment: Deployment, tenant: Tenant
) -> None:
    with deployment.transaction() as session:
        resolved = resolve_datasets(session, deployment, tenant)
    assert sorted(resolved.tables) == ["customers", "transactions"]
    assert resolved.columns["customers"] == {
        "id": "integer", "email": "text", "region": "text", "age": "integer",
        "spend": "float", "joined": "date",
    }
    assert resolved.keys == {"customers": "id", "transactions": "tid"}
    assert resolved.personal == {"customers": frozenset({"email"}),
                                 "transactions": frozenset()}
    assert resolved.schema.datasets["customers"].key == "id"
    assert (resolved.versions["customers"].number, resolved.versions["customers"].row_count) == (
        1, 10)
    with query_sandbox(resolved) as conn:
        assert run_query(conn, "SELECT count(*) FROM ds_customers").rows == [(10,)]
        assert run_query(conn, "SELECT count(*) FROM ds_transactions").rows == [(7,)]
        compiled = compile_selection(
            {"linked": {"dataset": "transactions", "on": {"base": "id", "other": "customer_id"},
                        "where": {"field": "amount", "op": "gt", "value": 100}}},
            resolved.schema, "customers", today=TODAY)
        sql, params = count_query(compiled, "customers")
        assert run_query(conn, sql, params).rows == [(3,)]  # customers 1, 4 and 5


def test_a_newer_ready_version_wins_and_a_failed_one_is_ignored(
    deployment: Deployment, tenant: Tenant
) -> None:
    with deployment.transaction() as session:
        dataset_id = resolve_datasets(session, deployment, tenant).versions["customers"].dataset_id
    shorter = "\n".join(CUSTOMERS_CSV.splitlines()[:4]) + "\n"
    build(deployment, tenant, "customers", shorter, key="id", dataset_id=dataset_id)
    with deployment.transaction() as session:
        resolved = resolve_datasets(session, deployment, tenant, ["customers"])
    assert (resolved.versions["customers"].number, resolved.versions["customers"].row_count) == (
        2, 3)
    assert resolved.personal["customers"] == frozenset()  # version 2 declared none
    with query_sandbox(resolved) as conn:
        assert run_query(conn, "SELECT count(*) FROM ds_customers").rows == [(3,)]


def test_named_datasets_only_and_unknown_or_deleted_names_are_not_found(
    deployment: Deployment, tenant: Tenant
) -> None:
    with deployment.transaction() as session:
        only = resolve_datasets(session, deployment, tenant, ["transactions"])
        assert list(only.tables) == ["transactions"]
        for names in (["nope"], ["customers", "nope"], ["Bad Name"], ["ds_customers"]):
            with pytest.raises(DatasetNotFound):
                resolve_datasets(session, deployment, tenant, names)
        dataset_id = only.versions["transactions"].dataset_id
        catalog.delete_dataset(session, deployment, tenant, ANALYST, dataset_id,
                               confirm_name="transactions")
    with deployment.transaction() as session:
        assert list(resolve_datasets(session, deployment, tenant).tables) == ["customers"]
        with pytest.raises(DatasetNotFound):
            resolve_datasets(session, deployment, tenant, ["transactions"])


def test_a_dataset_without_a_ready_version_is_left_out_or_not_found_by_name(
    deployment: Deployment, tenant: Tenant
) -> None:
    with deployment.transaction() as session:
        catalog.create_dataset(session, deployment, tenant, ANALYST, "empty", key_column=None)
    with deployment.transaction() as session:
        assert "empty" not in resolve_datasets(session, deployment, tenant).tables
        with pytest.raises(VersionNotFound):
            resolve_datasets(session, deployment, tenant, ["empty"])


def test_ready_dataset_names_reads_no_file(deployment: Deployment, tenant: Tenant) -> None:
    with deployment.transaction() as session:
        catalog.create_dataset(session, deployment, tenant, ANALYST, "empty", key_column=None)
        catalog.create_dataset(session, deployment, tenant, ANALYST, "Not Queryable")
        assert ready_dataset_names(session, tenant) == {"customers", "transactions"}


def test_another_tenants_datasets_are_invisible(
    deployment: Deployment, tenant: Tenant, make_tenant: Callable[[str], Tenant]
) -> None:
    other = make_tenant("globex")
    with deployment.transaction() as session:
        assert resolve_datasets(session, deployment, other).tables == {}
        with pytest.raises(DatasetNotFound):
            resolve_datasets(session, deployment, other, ["customers"])


def test_masked_sandboxes_never_hold_personal_values(
    deployment: Deployment, tenant: Tenant
) -> None:
    with deployment.transaction() as session:
        resolved = resolve_datasets(session, deployment, tenant)
    with query_sandbox(resolved, mask_personal=True) as conn:
        result = run_query(conn, "SELECT id, email, region FROM ds_customers ORDER BY id")
        assert result.columns == ["id", "email", "region"]
        assert {row[1] for row in result.rows} == {MASK}
        assert run_query(conn, "SELECT count(*) FROM ds_customers WHERE email LIKE '%@%'"
                         ).rows == [(0,)]
        # The registration behind the view has no personal column at all.
        names = [row[0] for row in run_query(
            conn, "SELECT table_name FROM information_schema.tables ORDER BY 1").rows]
        for name in names:
            text = str(run_query(conn, f'SELECT * FROM "{name}"').rows)  # noqa: S608
            assert "@example.org" not in text
        with pytest.raises(QueryFailed):
            run_query(conn, 'SELECT email FROM "__public_ds_customers"')
    with query_sandbox(resolved) as conn:
        emails = run_query(conn, "SELECT email FROM ds_customers ORDER BY id").rows
        assert emails[0] == ("ann@example.org",)


def test_a_tampered_parquet_file_is_refused_before_any_query(
    deployment: Deployment, tenant: Tenant
) -> None:
    with deployment.transaction() as session:
        resolved = resolve_datasets(session, deployment, tenant)
    path = resolved.tables["customers"].path
    path.chmod(0o600)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with deployment.transaction() as session, pytest.raises(ObjectCorrupted):
        resolve_datasets(session, deployment, tenant, ["customers"])
