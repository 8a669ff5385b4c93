"""From a tenant's catalog to a query sandbox: which versions, which schema, which files.

:func:`resolve_datasets` reads the catalog (no DuckDB, no decryption yet): the
newest ready version of each of the tenant's live datasets, its columns and
types from the build's recorded schema, its key column, which columns are
personal data, and the verified path of its encrypted Parquet file with the
tenant's Parquet crypto. :func:`query_sandbox` opens the locked DuckDB sandbox
over what was resolved. Every caller (routes, exports) goes through these two,
so how a sandbox is made (fresh, or a cached per-tenant connection) can change
in one place.

Personal columns can be *masked*: the dataset is then registered through a
``pyarrow.dataset`` whose schema leaves the personal columns out, so they are
never read from the file at all, and ``ds_<name>`` is a view putting
:data:`MASK` in their place. SQL can reach the unmasked registration's name, but
that registration holds no personal column to reach.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import sqlalchemy as sa
from sqlalchemy.orm import Session

from strongroom.analysis._values import COLUMN_TYPES, ColumnType
from strongroom.analysis.cache import MASK, QueryCache, deployment_query_cache
from strongroom.analysis.engine import EncryptedTable, open_sandbox
from strongroom.analysis.selections import DatasetSchema, Schema, quote_identifier, table_name
from strongroom.crypto.parquet import ParquetCrypto
from strongroom.datasets.catalog import version_blob, version_report
from strongroom.datasets.errors import DatasetNotFound, VersionNotFound
from strongroom.datasets.models import Dataset, DatasetVersion, VersionStatus
from strongroom.deployment import Deployment
from strongroom.errors import InvalidInput
from strongroom.tenancy.models import Tenant

__all__ = [
    "MASK",
    "Resolved",
    "VersionInfo",
    "query_sandbox",
    "queryable_name",
    "ready_dataset_names",
    "resolve_datasets",
]


@dataclass(frozen=True)
class VersionInfo:
    """The dataset version a query reads (plain values; outlives the transaction)."""

    id: str
    number: int
    row_count: int
    dataset_id: str


@dataclass(frozen=True)
class Resolved:
    """What the tenant's queries may see: per dataset name, its newest ready version."""

    tenant_id: str
    schema: Schema
    tables: dict[str, EncryptedTable]
    versions: dict[str, VersionInfo]
    personal: dict[str, frozenset[str]]
    columns: dict[str, dict[str, ColumnType]]
    keys: dict[str, str]
    # The deployment's cache of loaded tenant databases (None: off); see query_sandbox.
    cache: QueryCache | None = field(default=None, repr=False, compare=False)

    def has_personal(self) -> bool:
        return any(self.personal.values())


def queryable_name(name: str) -> bool:
    """Whether a dataset name can be a sandbox table (``ds_<name>``): a-z, 0-9, _."""
    try:
        table_name(name)
    except InvalidInput:
        return False
    return True


def _latest_ready(session: Session, dataset_ids: list[str]) -> dict[str, DatasetVersion]:
    if not dataset_ids:
        return {}
    newest = (
        sa.select(DatasetVersion.dataset_id, sa.func.max(DatasetVersion.number).label("number"))
        .where(DatasetVersion.dataset_id.in_(dataset_ids),
               DatasetVersion.status == VersionStatus.READY.value)
        .group_by(DatasetVersion.dataset_id)
        .subquery()
    )
    stmt = sa.select(DatasetVersion).join(
        newest,
        sa.and_(DatasetVersion.dataset_id == newest.c.dataset_id,
                DatasetVersion.number == newest.c.number),
    )
    return {version.dataset_id: version for version in session.scalars(stmt)}


def _columns(version: DatasetVersion) -> list[dict[str, Any]]:
    columns = json.loads(version.schema_json or "[]")
    if not isinstance(columns, list) or not columns:
        raise VersionNotFound("the dataset version has no recorded schema")
    for column in columns:
        if column.get("type") not in COLUMN_TYPES:
            raise VersionNotFound("the dataset version's schema has an unknown column type")
    return cast("list[dict[str, Any]]", columns)


def _key_column(version: DatasetVersion, dataset: Dataset, names: list[str]) -> str:
    # The key the build used, else the dataset's, else (no key declared) the first column:
    # linked conditions then name their "on" columns explicitly.
    for candidate in (version_report(version).get("key_column"), dataset.key_column):
        if isinstance(candidate, str) and candidate in names:
            return candidate
    return names[0]


def resolve_datasets(
    session: Session,
    deployment: Deployment,
    tenant: Tenant,
    names: Iterable[str] | None = None,
) -> Resolved:
    """The newest ready version of each named live dataset of ``tenant`` (all when ``None``).

    With ``names``, a dataset that does not exist (or is deleted, or another
    tenant's) is :class:`DatasetNotFound`, and one with no ready version is
    :class:`VersionNotFound`; without, such datasets (and those whose names are
    not a-z, 0-9 and _) are simply left out. Each version's encrypted Parquet
    file is checked against its digest before its path is handed out.
    """
    wanted = None if names is None else sorted(set(names))
    stmt = sa.select(Dataset).where(Dataset.tenant_id == tenant.id, Dataset.deleted_at.is_(None))
    if wanted is not None:
        for name in wanted:
            if not queryable_name(name):
                raise DatasetNotFound("no such dataset")
        stmt = stmt.where(Dataset.name.in_(wanted))
    datasets = {d.name: d for d in session.scalars(stmt) if queryable_name(d.name)}
    if wanted is not None and set(wanted) - set(datasets):
        raise DatasetNotFound("no such dataset")
    ready = _latest_ready(session, [d.id for d in datasets.values()])
    if wanted is not None and len(ready) < len(datasets):
        raise VersionNotFound("the dataset has no ready version yet")
    ring = deployment.keys.tenant_ring(session, tenant.id) if ready else None
    schemas: dict[str, DatasetSchema] = {}
    tables: dict[str, EncryptedTable] = {}
    versions: dict[str, VersionInfo] = {}
    personal: dict[str, frozenset[str]] = {}
    columns: dict[str, dict[str, ColumnType]] = {}
    keys: dict[str, str] = {}
    for name in sorted(datasets):
        dataset = datasets[name]
        version = ready.get(dataset.id)
        blob = version_blob(version) if version is not None else None
        if version is None or blob is None or ring is None:
            continue
        recorded = _columns(version)
        types = {str(c["name"]): cast("ColumnType", c["type"]) for c in recorded}
        keys[name] = _key_column(version, dataset, list(types))
        columns[name] = types
        personal[name] = frozenset(str(c["name"]) for c in recorded if c.get("personal"))
        schemas[name] = DatasetSchema(types, keys[name])
        tables[name] = EncryptedTable(deployment.store.verified_path(blob), ParquetCrypto(ring))
        versions[name] = VersionInfo(version.id, version.number, int(version.row_count or 0),
                                     dataset.id)
    return Resolved(tenant.id, Schema(schemas), tables, versions, personal, columns, keys,
                    cache=deployment_query_cache(deployment))


def ready_dataset_names(session: Session, tenant: Tenant) -> set[str]:
    """Names of the tenant's live, queryable datasets with a ready version (no file is read)."""
    stmt = (
        sa.select(Dataset.name)
        .join(DatasetVersion, DatasetVersion.dataset_id == Dataset.id)
        .where(Dataset.tenant_id == tenant.id, Dataset.deleted_at.is_(None),
               DatasetVersion.status == VersionStatus.READY.value)
        .distinct()
    )
    return {name for name in session.scalars(stmt) if queryable_name(name)}


def personal_columns(session: Session, tenant: Tenant) -> dict[str, frozenset[str]]:
    """The personal columns of each live dataset's newest ready version (no file is read)."""
    datasets = {d.id: d for d in session.scalars(
        sa.select(Dataset).where(Dataset.tenant_id == tenant.id, Dataset.deleted_at.is_(None)))}
    return {
        datasets[dataset_id].name: frozenset(
            str(c.get("name")) for c in json.loads(version.schema_json or "[]")
            if isinstance(c, dict) and c.get("personal"))
        for dataset_id, version in _latest_ready(session, list(datasets)).items()
    }


def _register_masked(
    conn: duckdb.DuckDBPyConnection, name: str, table: EncryptedTable, personal: frozenset[str]
) -> None:
    fmt = table.crypto.dataset_format()
    full = ds.dataset(table.path, format=fmt)
    kept = pa.schema([f for f in full.schema if f.name not in personal])
    # A dataset whose schema leaves the personal columns out never reads them.
    source = "__public_" + table_name(name)
    conn.register(source, ds.dataset(table.path, format=fmt, schema=kept))
    select = ", ".join(
        f"'{MASK}' AS {quote_identifier(f.name)}"
        if f.name in personal
        else quote_identifier(f.name)
        for f in full.schema
    )
    view, origin = quote_identifier(table_name(name)), quote_identifier(source)
    # Names come from the recorded schema and are quoted; MASK is our own constant.
    conn.execute(f"CREATE VIEW {view} AS SELECT {select} FROM {origin}")  # noqa: S608  # nosec B608


@contextmanager
def query_sandbox(
    resolved: Resolved, *, mask_personal: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A locked DuckDB sandbox seeing ``resolved``'s tables as ``ds_<name>``.

    With ``mask_personal``, personal columns read as :data:`MASK` and their
    values never enter the sandbox. Use the connection only inside the block,
    through :func:`strongroom.analysis.engine.run_query` or ``cursor()``.
    """
    masked = {n: cols for n, cols in resolved.personal.items() if cols} if mask_personal else {}
    if resolved.cache is not None:
        # A cursor of the tenant's loaded database for exactly these versions and masking
        # (a masked one never holds the personal columns), or, until it has loaded, the lazy
        # sandbox.
        versions = {name: info.id for name, info in resolved.versions.items()}
        with resolved.cache.connection(
            resolved.tenant_id, resolved.tables, versions, masked=masked,
            lazy=lambda: _lazy_sandbox(resolved, masked),
        ) as cached:
            yield cached
        return
    with _lazy_sandbox(resolved, masked) as conn:
        yield conn


@contextmanager
def _lazy_sandbox(
    resolved: Resolved, masked: dict[str, frozenset[str]]
) -> Iterator[duckdb.DuckDBPyConnection]:
    plain = {n: t for n, t in resolved.tables.items() if n not in masked}
    conn = open_sandbox(plain)
    try:
        for name, personal in masked.items():
            _register_masked(conn, name, resolved.tables[name], personal)
        yield conn
    finally:
        conn.close()
