"""Small datasets built for real: encrypted upload, build job, ready version."""

from __future__ import annotations

from tests.unit.datasets.test_uploads import ANALYST, upload_bytes

from strongroom.datasets import catalog, jobs
from strongroom.datasets.build import ColumnType, SchemaOverrides
from strongroom.datasets.models import DatasetVersion
from strongroom.deployment import Deployment
from strongroom.tenancy.models import Tenant

CUSTOMERS_CSV = (
    "id,email,region,age,spend,joined\n"
    "1,ann@example.org,north,34,120.50,2024-01-15\n"
    "2,bob@example.org,north,45,80.00,2024-02-20\n"
    "3,cat@example.org,south,29,,2024-03-05\n"
    "4,dan@example.org,south,61,300.25,2023-11-30\n"
    "5,eve@example.org,east,52,45.10,2024-06-01\n"
    "6,fay@example.org,north,38,99.99,2024-07-12\n"
    "7,gus@example.org,north,41,10.00,2022-05-09\n"
    "8,hal@example.org,north,23,75.00,2024-08-18\n"
    "9,ivy@example.org,south,70,5.00,2021-12-01\n"
    "10,jon@example.org,,33,60.00,2024-09-09\n"
)
TRANSACTIONS_CSV = (
    "tid,customer_id,amount,day\n"
    "1,1,150.00,2024-03-01\n"
    "2,1,20.00,2024-04-01\n"
    "3,2,99.00,2024-05-01\n"
    "4,4,500.00,2023-12-24\n"
    "5,5,101.00,2024-06-02\n"
    "6,5,300.00,2024-06-03\n"
    "7,9,15.00,2022-01-01\n"
)


def build(
    deployment: Deployment, tenant: Tenant, name: str, data: str, *, key: str,
    personal: frozenset[str] = frozenset(), types: dict[str, ColumnType] | None = None,
    dataset_id: str | None = None,
) -> DatasetVersion:
    """Build ``data`` as a new ready version of dataset ``name`` (created unless given)."""
    if dataset_id is None:
        with deployment.transaction() as session:
            dataset_id = catalog.create_dataset(
                session, deployment, tenant, ANALYST, name, key_column=key
            ).id
    upload_id = upload_bytes(deployment, tenant, data.encode(), parts=1)
    overrides = SchemaOverrides(types=types or {}, key_column=key, personal=personal)
    version = jobs.run_build(deployment, tenant.id, dataset_id, upload_id, ANALYST,
                             overrides=overrides)
    assert version.status == "ready", version.report
    return version


def customers_and_transactions(deployment: Deployment, tenant: Tenant) -> None:
    build(deployment, tenant, "customers", CUSTOMERS_CSV, key="id",
          personal=frozenset({"email"}))
    build(deployment, tenant, "transactions", TRANSACTIONS_CSV, key="tid")
