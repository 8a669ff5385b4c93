"""Test environments from production: tenants' datasets cloned through privacy transforms.

``strongroom tenant clone --from PROD_HOME --to TEST_HOME --anonymise PROFILE.json``
copies, for each tenant (or the one named), the newest ready version of each dataset
the profile names into a deployment of *another, non-production* environment:

1. The source is opened without changing anything but its audit trail (no
   migration, no clean-up of its object store), decrypted with its own keys.
2. The profile is checked against every source schema before the target is
   touched: an unknown dataset or column, an unknown transform, a transform on
   the wrong type, a reversible ``token`` (a test environment's admin could turn
   it back into production values) or ``keep`` on a column the tenant marked as
   personal is refused, and nothing is created in the target.
3. The clone is recorded in the source's audit trail, committed, before any row
   leaves (as ``audit export`` does).
4. Each version is streamed: decrypted batches → the profile's transforms
   (``privacy.transforms``), keyed pseudonyms under the *target* tenant's
   privacy keys → encrypted Parquet under the target tenant's keyset → a new
   ready version in the target. Columns the profile does not name are dropped.
   Plaintext exists only in memory.
5. Tenants, datasets and versions appear in the target in one transaction with
   its audit event; on any failure none of it does and the written objects are
   removed.

Users, API tokens, sessions, policies, saved selections, exports and the audit trail
are not cloned: the target tenant starts with no users (create them there with
``strongroom user create``).

A profile::

    {"datasets": {"customers": {"columns": [
        {"name": "id"},
        {"name": "email", "transform": {"kind": "pseudonym"}},
        {"name": "postcode", "transform": {"kind": "generalise", "to": "postcode_outward"}}
    ]}}}
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.orm import Session

from strongroom import db
from strongroom.audit import Actor, AuditTrail, EventTag, Sensitive
from strongroom.audit.policy import checkpoint_policy
from strongroom.config import Environment, Settings
from strongroom.crypto import master
from strongroom.crypto.keystore import KeyStore
from strongroom.crypto.parquet import ParquetCrypto
from strongroom.datasets.build import (
    ARROW_TYPES,
    KEY_METADATA_KEY,
    PERSONAL_METADATA_KEY,
    ColumnType,
)
from strongroom.datasets.catalog import version_blob, version_report
from strongroom.datasets.errors import DatasetLocked
from strongroom.datasets.models import Dataset, DatasetVersion, VersionStatus
from strongroom.db import utcnow
from strongroom.deployment import Deployment
from strongroom.errors import Forbidden, InvalidInput
from strongroom.privacy.errors import TransformInvalid
from strongroom.privacy.keys import PrivacyKeys, privacy_keys
from strongroom.privacy.transforms import (
    MAX_PERSONAL_MASK_SHOWN,
    ColumnPlan,
    compile_transforms,
    mask_shows,
)
from strongroom.storage.interfaces import BlobRef
from strongroom.storage.local import LocalObjectStore
from strongroom.tenancy.models import Tenant
from strongroom.tenancy.services import create_tenant, get_tenant, require_active

INCOMING = ".incoming"
PROFILE_MAX_BYTES = 1 << 20
# Deterministic and one-to-one: a key column pseudonymised stays a key (joins still work).
_KEY_PRESERVING = frozenset({"keep", "pseudonym"})
_REFUSED_KINDS = {
    # A transform's name, not a secret.
    "token": "tokens are reversible by the target tenant's admin, so production values "  # nosec B105
             "could be recovered in the test environment",
}


class CloneRefused(Forbidden):
    """A clone that must not happen: into production, unanonymised, or within one environment."""

    slug = "clone-refused"
    title = "Clone refused"


class CloneProfileInvalid(InvalidInput):
    """A profile that does not fit the source: unknown dataset, column or transform."""

    slug = "clone-profile-invalid"
    title = "Invalid anonymisation profile"


@dataclasses.dataclass(frozen=True)
class ClonedColumn:
    name: str
    type: ColumnType
    personal: bool


@dataclasses.dataclass(frozen=True)
class CloneItem:
    """One source dataset version and how it is rewritten."""

    tenant_id: str
    tenant_slug: str
    tenant_name: str
    dataset: str
    version_number: int
    blob: BlobRef
    plan: ColumnPlan
    columns: tuple[ClonedColumn, ...]
    key_column: str | None

    def target_schema(self) -> pa.Schema:
        fields = []
        for column in self.columns:
            metadata = {PERSONAL_METADATA_KEY: b"true" if column.personal else b"false"}
            if column.name == self.key_column:
                metadata[KEY_METADATA_KEY] = b"true"
            fields.append(pa.field(column.name, ARROW_TYPES[column.type], metadata=metadata))
        return pa.schema(fields)


@dataclasses.dataclass(frozen=True)
class ClonedVersion:
    tenant: str
    dataset: str
    version: int
    rows: int


@dataclasses.dataclass(frozen=True)
class CloneResult:
    versions: tuple[ClonedVersion, ...]
    skipped: tuple[str, ...]  # "tenant/dataset" of datasets the profile leaves out


# -- environments --------------------------------------------------------------------------


def check_environments(source: Environment, target: Environment, anonymised: bool) -> None:
    """Refuse a clone into production, within one environment, or without anonymisation."""
    if target is Environment.PRODUCTION:
        raise CloneRefused(
            "a clone into a production deployment is refused",
            hint="clone into a test or development home",
        )
    if target is source:
        raise CloneRefused(
            f"source and target are both {source.value} deployments",
            hint="a clone goes from one environment into another, non-production one",
        )
    if not anonymised:
        raise CloneRefused(
            f"a clone into a {target.value} deployment must be anonymised",
            hint="pass --anonymise PROFILE.json naming each dataset's columns and transforms",
        )


# -- the profile ---------------------------------------------------------------------------


def read_profile(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The profile file's datasets → column specs, checked for shape (not yet for columns)."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(PROFILE_MAX_BYTES + 1)
    except OSError as exc:
        raise CloneProfileInvalid(
            f"cannot read the profile {path}: {exc.__class__.__name__}"
        ) from None
    if len(raw) > PROFILE_MAX_BYTES:
        raise CloneProfileInvalid(f"the profile is larger than {PROFILE_MAX_BYTES} bytes")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CloneProfileInvalid(
            "the profile is not valid JSON",
            hint='it looks like {"datasets": {"NAME": {"columns": [{"name": ...}]}}}',
        ) from None
    return parse_profile(document)


def parse_profile(document: object) -> dict[str, list[dict[str, Any]]]:
    if not isinstance(document, dict) or set(document) != {"datasets"}:
        raise CloneProfileInvalid(
            'the profile must be an object with one member, "datasets"',
            hint='{"datasets": {"NAME": {"columns": [{"name": ..., "transform": {...}}]}}}',
        )
    datasets = document["datasets"]
    if not isinstance(datasets, dict) or not datasets:
        raise CloneProfileInvalid('"datasets" must name at least one dataset')
    profile: dict[str, list[dict[str, Any]]] = {}
    for name, entry in datasets.items():
        if not isinstance(entry, dict) or set(entry) != {"columns"}:
            raise CloneProfileInvalid(
                f"dataset {name[:100]!r}: the entry must be an object with one member, "
                '"columns"'
            )
        columns = entry["columns"]
        if not isinstance(columns, list) or not columns:
            raise CloneProfileInvalid(f"dataset {name[:100]!r}: list at least one column")
        profile[name] = columns
    return profile


def _mask_shows(transform: Mapping[str, Any]) -> int:
    """Characters a mask spec leaves visible; malformed numbers count as showing much
    (compile_transforms refuses them with a precise message afterwards)."""
    try:
        return mask_shows(transform)
    except (TypeError, ValueError):
        return MAX_PERSONAL_MASK_SHOWN + 1


def _refuse_unsafe(dataset: str, specs: list[Any], personal: frozenset[str]) -> None:
    for spec in specs:
        if not isinstance(spec, Mapping):
            continue  # compile_transforms says what is wrong with it
        transform = spec.get("transform") or {"kind": "keep"}
        kind = transform.get("kind") if isinstance(transform, Mapping) else None
        name = str(spec.get("name"))[:100]
        if isinstance(kind, str) and kind in _REFUSED_KINDS:
            raise CloneProfileInvalid(
                f"dataset {dataset[:100]!r}, column {name!r}: transform {kind} is refused in "
                f"a clone: {_REFUSED_KINDS[kind]}",
                hint="use pseudonym, mask, generalise or drop",
            )
        if kind == "keep" and spec.get("name") in personal:
            raise CloneProfileInvalid(
                f"dataset {dataset[:100]!r}, column {name!r} holds personal data and cannot "
                "be kept as it is in a clone",
                hint="use pseudonym, mask, generalise or drop",
            )
        if (kind == "mask" and spec.get("name") in personal and isinstance(transform, Mapping)
                and _mask_shows(transform) > MAX_PERSONAL_MASK_SHOWN):
            raise CloneProfileInvalid(
                f"dataset {dataset[:100]!r}, column {name!r} holds personal data: a mask in "
                f"a clone may show at most {MAX_PERSONAL_MASK_SHOWN} characters of it",
                hint="lower keep_first + keep_last, or pseudonymise, generalise or drop it",
            )


def _column_type(arrow_type: pa.DataType) -> ColumnType:
    for kind, known in ARROW_TYPES.items():
        if arrow_type.equals(known):
            return kind
    if pa.types.is_integer(arrow_type):
        return ColumnType.INTEGER
    if pa.types.is_floating(arrow_type):
        return ColumnType.FLOAT
    return ColumnType.TEXT


def plan_item(
    tenant: Tenant, dataset: Dataset, version: DatasetVersion, specs: list[dict[str, Any]]
) -> CloneItem:
    """Check the profile's specs against the version's schema; the item to clone."""
    recorded = json.loads(version.schema_json or "[]")
    types = {str(c["name"]): str(c["type"]) for c in recorded}
    personal = frozenset(str(c["name"]) for c in recorded if c.get("personal"))
    _refuse_unsafe(dataset.name, specs, personal)
    try:
        plan = compile_transforms(specs, types)
    except TransformInvalid as error:
        raise CloneProfileInvalid(
            f"dataset {dataset.name[:100]!r}: {error.detail}", hint=error.hint
        ) from None
    output_types = {f.name: f.type for f in plan.output_schema}
    columns = tuple(
        ClonedColumn(c.name, _column_type(output_types[c.name]), c.name in personal)
        for c in plan.columns
    )
    source_key = version_report(version).get("key_column") or dataset.key_column
    key_column = next(
        (c.name for c in plan.columns if c.name == source_key and c.kind in _KEY_PRESERVING),
        None,
    )
    blob = version_blob(version)
    if blob is None:
        raise CloneProfileInvalid(f"dataset {dataset.name[:100]!r} has no ready file")
    return CloneItem(tenant.id, tenant.slug, tenant.name, dataset.name, version.number, blob,
                     plan, columns, key_column)


def _latest_ready(session: Session, dataset: Dataset) -> DatasetVersion | None:
    return session.scalar(
        sa.select(DatasetVersion)
        .where(DatasetVersion.dataset_id == dataset.id,
               DatasetVersion.status == VersionStatus.READY.value)
        .order_by(DatasetVersion.number.desc())
        .limit(1)
    )


def plan_clone(
    session: Session, profile: dict[str, list[dict[str, Any]]], tenant_slug: str | None
) -> tuple[list[CloneItem], list[str]]:
    """Every (tenant, dataset) to clone, with its checked plan; and those left out."""
    tenants = (
        [get_tenant(session, tenant_slug)] if tenant_slug is not None
        else list(session.scalars(sa.select(Tenant).order_by(Tenant.slug)))
    )
    items: list[CloneItem] = []
    skipped: list[str] = []
    found: set[str] = set()
    for tenant in tenants:
        require_active(tenant)
        datasets = session.scalars(
            sa.select(Dataset).where(Dataset.tenant_id == tenant.id, Dataset.deleted_at.is_(None))
            .order_by(Dataset.name)
        )
        for dataset in datasets:
            specs = profile.get(dataset.name)
            if specs is None:
                skipped.append(f"{tenant.slug}/{dataset.name}")
                continue
            found.add(dataset.name)
            version = _latest_ready(session, dataset)
            if version is None:
                raise CloneProfileInvalid(
                    f"dataset {dataset.name[:100]!r} of tenant {tenant.slug} has no ready "
                    "version to clone"
                )
            items.append(plan_item(tenant, dataset, version, specs))
    missing = sorted(set(profile) - found)
    if missing:
        raise CloneProfileInvalid(
            f"the profile names dataset {missing[0][:100]!r}, which the source "
            + (f"tenant {tenant_slug} " if tenant_slug else "")
            + "does not have",
            hint="name only live datasets of the tenants being cloned",
        )
    return items, skipped


# -- the source, opened for reading --------------------------------------------------------


def open_source(settings: Settings) -> Deployment:
    """Open a deployment for reading: its key and schema are checked, nothing is migrated or
    cleaned (a running server there is not disturbed); only audit events are written."""
    key = master.load_master_key(settings)
    engine = db.create_db_engine(settings.sqlalchemy_url)
    try:
        db.check_schema_current(engine)
        keys = KeyStore(key.environment_aead(settings.environment), settings.environment)
        sessions = db.session_factory(engine)
        with db.transaction(sessions) as session:
            keys.check(session)
            audit = AuditTrail(keys.audit_keys(session), checkpoint_policy(settings))
        store = LocalObjectStore(settings.objects_dir)
    except BaseException:
        engine.dispose()
        raise
    return Deployment(settings, engine, sessions, keys, store, audit)


# -- the clone -----------------------------------------------------------------------------


def _source_batches(
    source: Deployment, item: CloneItem
) -> Iterator[pa.RecordBatch]:
    with source.transaction() as session:
        ring = source.keys.tenant_ring(session, item.tenant_id)
    path = source.store.verified_path(item.blob)
    dataset = ds.dataset(path, format=ParquetCrypto(ring).dataset_format())
    yield from dataset.to_batches(columns=item.plan.input_columns)


def _write_version(
    source: Deployment, target: Deployment, item: CloneItem, target_tenant_id: str,
    crypto: ParquetCrypto, keys: PrivacyKeys,
) -> tuple[BlobRef, int, int, int]:
    """Transform and encrypt one version into a new target object: (blob, rows, groups, size)."""
    schema = item.target_schema()
    temp = target.store.root / INCOMING / f"clone-{uuid.uuid4().hex}.parquet"
    rows = groups = 0
    try:
        with pq.ParquetWriter(temp, schema,
                              encryption_properties=crypto.encryption_properties()) as writer:
            for batch in _source_batches(source, item):
                out = item.plan.apply(batch, keys)
                arrays = [out.column(f.name).cast(f.type) for f in schema]
                writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
                rows += batch.num_rows
                groups += 1
        size = temp.stat().st_size

        def copy(sink: BinaryIO) -> None:
            with temp.open("rb") as handle:
                shutil.copyfileobj(handle, sink, 1 << 20)

        blob = target.store.put(target_tenant_id, copy)
    finally:
        temp.unlink(missing_ok=True)
    return blob, rows, groups, size


def _target_tenant(session: Session, target: Deployment, item: CloneItem) -> Tenant:
    tenant = session.scalar(sa.select(Tenant).where(Tenant.slug == item.tenant_slug))
    if tenant is None:
        tenant = create_tenant(session, target.keys, item.tenant_slug, item.tenant_name)
    require_active(tenant)
    return tenant


def _target_dataset(session: Session, tenant: Tenant, item: CloneItem) -> Dataset:
    dataset = session.scalar(
        sa.select(Dataset).where(Dataset.tenant_id == tenant.id, Dataset.name == item.dataset,
                                 Dataset.deleted_at.is_(None)).with_for_update()
    )
    if dataset is None:
        dataset = Dataset(id=uuid.uuid4().hex, tenant_id=tenant.id, name=item.dataset,
                          key_column=item.key_column, build_locked=False, created_by=None)
        session.add(dataset)
        session.flush()
    elif dataset.build_locked:
        raise DatasetLocked(
            f"dataset {item.dataset[:100]!r} of tenant {tenant.slug} is locked against builds "
            "in the target", hint="unlock it there first",
        )
    return dataset


def _add_version(
    session: Session, dataset: Dataset, item: CloneItem, blob: BlobRef, rows: int, groups: int,
    size: int, source_environment: Environment,
) -> DatasetVersion:
    last = session.scalar(
        sa.select(sa.func.max(DatasetVersion.number)).where(DatasetVersion.dataset_id == dataset.id)
    )
    columns = [dataclasses.asdict(c) for c in item.columns]
    for column in columns:
        column["type"] = str(column["type"])
    report = {
        "columns": columns, "key_column": item.key_column, "rows_loaded": rows,
        "rows_rejected": 0, "rejections": [], "rejections_truncated": False, "bytes_read": 0,
        "output_bytes": size, "row_groups": groups,
        "cloned": {"from_environment": source_environment.value,
                   "source_version": item.version_number, "transforms": item.plan.describe()},
    }
    now = utcnow()
    version = DatasetVersion(
        id=uuid.uuid4().hex, tenant_id=dataset.tenant_id, dataset_id=dataset.id,
        number=int(last or 0) + 1, status=VersionStatus.READY.value, upload_id=None,
        parquet_digest=blob.digest, parquet_size=blob.size, schema_json=json.dumps(columns),
        row_count=rows, rejected_count=0, report=json.dumps(report, sort_keys=True),
        built_by=None, started_at=now, finished_at=now, progress_rows=rows, progress_bytes=0,
        cancel_requested=False,
    )
    session.add(version)
    return version


def _describe(items: list[CloneItem]) -> list[dict[str, Any]]:
    return [{"dataset": Sensitive(i.dataset), "version": i.version_number,
             "columns": i.plan.describe()} for i in items]


def _by_tenant(items: list[CloneItem]) -> dict[str, list[CloneItem]]:
    grouped: dict[str, list[CloneItem]] = {}
    for item in items:
        grouped.setdefault(item.tenant_slug, []).append(item)
    return grouped


def record_clone_out(source: Deployment, target_env: Environment, items: list[CloneItem],
                     actor: Actor) -> None:
    """The source's record of what leaves, committed before any of it does."""
    with source.transaction() as session:
        for group in _by_tenant(items).values():
            source.audit.record_event(
                session, EventTag.TENANT_CLONE_OUT, actor=actor, tenant=group[0].tenant_id,
                target=f"tenant:{group[0].tenant_id}",
                details={"to_environment": target_env.value, "datasets": _describe(group)},
            )


def clone(
    source: Deployment, target: Deployment, profile: dict[str, list[dict[str, Any]]],
    *, tenant_slug: str | None = None, actor: Actor | None = None,
    on_version: Callable[[ClonedVersion], None] | None = None,
) -> CloneResult:
    """Clone the profiled datasets of ``source`` into ``target`` (see the module docstring)."""
    actor = actor or Actor.cli()
    source_env, target_env = source.settings.environment, target.settings.environment
    check_environments(source_env, target_env, anonymised=True)
    with source.transaction() as session:
        items, skipped = plan_clone(session, profile, tenant_slug)
    if not items:
        raise CloneProfileInvalid("nothing to clone: the source has none of the profile's "
                                  "datasets with a ready version")
    record_clone_out(source, target_env, items, actor)
    written: list[BlobRef] = []
    done: list[ClonedVersion] = []
    try:
        with target.transaction() as session:
            for slug, group in _by_tenant(items).items():
                tenant = _target_tenant(session, target, group[0])
                ring = target.keys.tenant_ring(session, tenant.id)
                crypto = ParquetCrypto(ring)
                keys = privacy_keys(session, target, tenant.id)
                for item in group:
                    dataset = _target_dataset(session, tenant, item)
                    blob, rows, groups, size = _write_version(
                        source, target, item, tenant.id, crypto, keys)
                    written.append(blob)
                    version = _add_version(session, dataset, item, blob, rows, groups, size,
                                           source_env)
                    cloned = ClonedVersion(slug, item.dataset, version.number, rows)
                    done.append(cloned)
                    if on_version is not None:
                        on_version(cloned)
                target.audit.record_event(
                    session, EventTag.TENANT_CLONE_IN, actor=actor, tenant=tenant.id,
                    target=f"tenant:{tenant.id}",
                    details={"from_environment": source_env.value, "datasets": _describe(group),
                             "rows": sum(c.rows for c in done if c.tenant == slug)},
                )
    except BaseException:
        for blob in written:
            with suppress(Exception):
                target.store.delete(blob)
        raise
    return CloneResult(tuple(done), tuple(skipped))
