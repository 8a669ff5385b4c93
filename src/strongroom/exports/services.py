"""Export jobs: check, produce, encrypt, record; list them; purge their files.

:func:`create_export` runs an export in the caller's thread, in five steps:

1. **Validate** (one transaction, nothing written but first-use keys): the
   dataset and selection resolve through :mod:`strongroom.analysis.service`,
   the selection compiles, the column transforms compile
   (:func:`~strongroom.privacy.transforms.compile_transforms`), the anonymity
   options fit the exported columns. Any mistake is a 4xx before anything runs.
2. **Measure** (sandbox): the rows and the distinct key values in one scan, and
   the bytes estimated from a sample of up to 1,000 rows run through the same
   transforms and writer.
3. **Reserve** (:func:`strongroom.exports.velocity.reserve`): every velocity
   limit is checked and the export's usage reserved under the tenant's lock, or
   the export is refused (429 or 422), audited and counted. Subjects are checked
   by their upper bound (every key value new) and, only if that does not fit,
   exactly, by the key values' ledger HMACs; otherwise the HMACs are made on a
   worker thread while the export is produced and recorded when it is settled.
4. **Produce** (sandbox): record batches stream from DuckDB through
   ``ColumnPlan.apply`` (and, for an anonymous export, ``anonymise`` over the
   whole result) into the CSV or Parquet writer and straight into a streaming
   AEAD object (:func:`~strongroom.storage.services.put_object`). The SHA-256 of
   the plaintext bytes is computed as they pass.
5. **Record** (same transaction as the object's row): the export row with its
   hashed single-use download key, the usage settled with the real byte count,
   and the audit event with SHA-256, rows, bytes and the transforms.

A failure after step 3 releases the reservation and removes any object written,
so a refused or failed export leaves no file behind.

The export runs synchronously in the request: it is bounded by the velocity
limits (rows per hour and per day, bytes per hour), which is what keeps a
request's time and memory in check (an anonymous export holds its result in
memory to group it; the others stream batch by batch).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import secrets
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.orm import Session

from strongroom.analysis import personal as personal_check
from strongroom.analysis.engine import QueryFailed, check_read_only_sql, run_query
from strongroom.analysis.errors import PersonalDataRefused
from strongroom.analysis.queries import referenced_datasets
from strongroom.analysis.saved import get_selection, read_version
from strongroom.analysis.selections import (
    CompiledSelection,
    compile_selection,
    count_query,
    quote_identifier,
)
from strongroom.analysis.selections import table_name as sandbox_table
from strongroom.analysis.service import Resolved, query_sandbox, resolve_datasets
from strongroom.audit import Actor, EventTag, Sensitive
from strongroom.crypto.macs import MacKey, constant_time_equal, sha256_hex
from strongroom.datasets.catalog import version_report
from strongroom.datasets.models import Dataset, DatasetVersion
from strongroom.db import utcnow
from strongroom.deployment import Deployment
from strongroom.exports import velocity
from strongroom.exports._writers import Encoded, encode_sample
from strongroom.exports.errors import BadExportRequest, ExportNotFound
from strongroom.exports.models import Export, ExportFormat, Metric
from strongroom.identity.models import TenantPolicy
from strongroom.privacy.anonymity import anonymise
from strongroom.privacy.keys import PrivacyKeys, privacy_keys
from strongroom.privacy.transforms import (
    MAX_PERSONAL_MASK_SHOWN,
    ColumnPlan,
    compile_transforms,
    mask_shows,
)
from strongroom.storage.interfaces import BlobRef
from strongroom.storage.models import StoredObject
from strongroom.storage.services import put_object
from strongroom.tenancy.models import Tenant
from strongroom.tenancy.services import require_active

OBJECT_KIND = "export"
BATCH_ROWS = 65_536
SAMPLE_ROWS = 1_000
DEFAULT_MIN_K = 5
QUERY_TIMEOUT_SECONDS = 600.0
_ID_CHARS = frozenset("0123456789abcdef")


@dataclasses.dataclass(frozen=True)
class AnonymousSpec:
    quasi_identifiers: list[str]
    k: int | None = None
    sensitive: str | None = None
    l: int | None = None  # noqa: E741 (the l of l-diversity)


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    """What to export: a dataset, a selection (inline or saved), columns with transforms."""

    dataset: str
    columns: list[dict[str, Any]]
    format: ExportFormat = ExportFormat.CSV
    selection: Any = None
    selection_id: str | None = None
    anonymous: AnonymousSpec | None = None


@dataclasses.dataclass(frozen=True)
class Requester:
    """Who exports: plain values, so the requester outlives any transaction."""

    tenant_id: str
    user_id: str
    actor: Actor
    personal: bool  # may export personal columns untransformed and select on them


@dataclasses.dataclass(frozen=True)
class CreatedExport:
    export: Export
    download_key: str

    @property
    def download_url(self) -> str:
        return f"/api/v1/exports/{self.export.id}/download?key={self.download_key}"


@dataclasses.dataclass(frozen=True)
class _Prepared:
    resolved: Resolved
    base: str
    where_sql: str
    params: list[object]
    plan: ColumnPlan
    keys: PrivacyKeys | None
    ledger: MacKey
    subject_column: str | None
    dataset_id: str
    version_id: str
    selection_id: str | None
    selection_version: int | None
    k: int | None


def _tenant_min_k(session: Session, tenant_id: str) -> int:
    policy = session.get(TenantPolicy, tenant_id)
    value = getattr(policy, "min_cell_count", None) if policy is not None else None
    return int(value) if isinstance(value, int) and value >= 2 else DEFAULT_MIN_K


def _declared_key(session: Session, version_id: str, columns: Mapping[str, object]) -> str | None:
    """The dataset's declared key column, or None (then every row counts as a subject)."""
    version = session.get_one(DatasetVersion, version_id)
    dataset = session.get_one(Dataset, version.dataset_id)
    for candidate in (version_report(version).get("key_column"), dataset.key_column):
        if isinstance(candidate, str) and candidate in columns:
            return candidate
    return None


def _selection(
    session: Session, deployment: Deployment, tenant: Tenant, spec: ExportSpec
) -> tuple[Any, str | None, int | None]:
    if spec.selection is not None and spec.selection_id is not None:
        raise BadExportRequest("give a selection or a selection_id, not both")
    if spec.selection_id is None:
        return spec.selection, None, None
    saved = read_version(session, deployment, get_selection(session, tenant, spec.selection_id))
    if saved.dataset != spec.dataset:
        raise BadExportRequest("the saved selection is for another dataset")
    return saved.selection, saved.id, saved.version


def _check_personal(plan: ColumnPlan, personal: frozenset[str]) -> None:
    kept = [c.name for c in plan.columns if c.kind == "keep" and c.name in personal]
    if kept:
        raise PersonalDataRefused(
            f'column "{kept[0]}" is personal data, which your role may not export as it is',
            hint="export it pseudonymised, tokenised, masked or generalised, or drop it",
        )
    # A mask that shows much is the value in instalments: keep_first=10 in one export and
    # keep_last=10 in the next, joined on the pseudonymous key, give it back whole.
    shown = [c.name for c in plan.columns if c.kind == "mask" and c.name in personal
             and mask_shows(c.params) > MAX_PERSONAL_MASK_SHOWN]
    if shown:
        raise PersonalDataRefused(
            f'column "{shown[0]}" is personal data: a mask may show at most '
            f"{MAX_PERSONAL_MASK_SHOWN} characters of it (keep_first + keep_last) to your role",
            hint="show fewer characters, or pseudonymise, generalise or drop it",
        )


def _check_anonymous(
    session: Session, tenant_id: str, anonymous: AnonymousSpec | None, plan: ColumnPlan
) -> int | None:
    if anonymous is None:
        return None
    minimum = _tenant_min_k(session, tenant_id)
    k = minimum if anonymous.k is None else anonymous.k
    if k < 2:
        raise BadExportRequest("k must be at least 2")
    if k < minimum:
        raise BadExportRequest(f"k must be at least this tenant's minimum of {minimum}")
    outputs = set(plan.output_columns)
    if not anonymous.quasi_identifiers:
        raise BadExportRequest("an anonymous export needs at least one quasi-identifier")
    for name in [*anonymous.quasi_identifiers, *filter(None, [anonymous.sensitive])]:
        if name not in outputs:
            raise BadExportRequest(
                f'anonymity column "{name[:100]}" is not one of the exported columns'
            )
    if anonymous.l is not None and (anonymous.sensitive is None or anonymous.l < 2):
        raise BadExportRequest("l-diversity needs a sensitive column and l of at least 2")
    return k


def _prepare(
    deployment: Deployment, requester: Requester, spec: ExportSpec, now: dt.datetime
) -> _Prepared:
    if not isinstance(spec.columns, list) or not spec.columns:
        raise BadExportRequest("choose at least one column to export")
    with deployment.transaction() as session:
        tenant = session.get_one(Tenant, requester.tenant_id)
        require_active(tenant)
        selection, selection_id, selection_version = _selection(session, deployment, tenant, spec)
        sandbox_table(spec.dataset)  # a malformed name is refused before any look-up
        names = {spec.dataset} | referenced_datasets(selection)
        resolved = resolve_datasets(session, deployment, tenant, names)
        base = spec.dataset
        where_sql, params = "true", []
        if selection is not None:
            compiled = compile_selection(selection, resolved.schema, base, today=now.date())
            where_sql, params = compiled.where_sql, list(compiled.params)
            if not requester.personal:
                personal_check.check_selection(selection, base, resolved.personal, resolved.keys)
        plan = compile_transforms(spec.columns, resolved.columns[base])
        if not requester.personal:
            _check_personal(plan, resolved.personal[base])
        k = _check_anonymous(session, tenant.id, spec.anonymous, plan)
        keys = privacy_keys(session, deployment, tenant.id) if plan.needs_keys else None
        version = resolved.versions[base]
        subject_column = _declared_key(session, version.id, resolved.columns[base])
    with deployment.transaction() as session:
        ledger = velocity.ledger_key(session, deployment.keys, requester.tenant_id)
    return _Prepared(resolved, base, where_sql, params, plan, keys, ledger, subject_column,
                     version.dataset_id, version.id, selection_id, selection_version, k)


def _select_sql(prepared: _Prepared, limit: int | None = None) -> tuple[str, list[object]]:
    columns = ", ".join(f"base.{quote_identifier(c)}" for c in prepared.plan.input_columns)
    table = quote_identifier(sandbox_table(prepared.base))
    # Names are checked against the schema and quoted; values travel as parameters.
    sql = f"SELECT {columns} FROM {table} AS base WHERE {prepared.where_sql}"  # noqa: S608  # nosec B608
    params = list(prepared.params)
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return check_read_only_sql(sql), params


def _batches(
    conn: duckdb.DuckDBPyConnection, sql: str, params: list[object]
) -> Iterator[pa.RecordBatch]:
    try:
        reader = conn.sql(sql, params=params).to_arrow_reader(BATCH_ROWS)
        if reader is not None:
            yield from reader
    except duckdb.Error as error:
        raise QueryFailed(f"the export query failed ({type(error).__name__})") from None


def _measure(
    prepared: _Prepared, fmt: ExportFormat
) -> tuple[velocity.Planned, list[str] | None]:
    """Rows, distinct key values and an estimate of bytes, before producing.

    Returns the plan (subjects as an upper bound, every key value new) and the key
    values (None without a key column), which become ledger HMACs when needed.
    """
    count_sql, count_params = count_query(
        CompiledSelection(prepared.where_sql, list(prepared.params)), prepared.base
    )
    values: list[str] | None = None
    with query_sandbox(prepared.resolved) as conn:
        if prepared.subject_column is None:
            [(rows,)] = run_query(conn, count_sql, count_params, row_cap=1,
                                  timeout_seconds=QUERY_TIMEOUT_SECONDS).rows
        else:
            # One scan gives both: the rows per key value (NULL keys are rows, not subjects).
            key = quote_identifier(prepared.subject_column)
            table = quote_identifier(sandbox_table(prepared.base))
            per_key = (
                f"SELECT CAST(base.{key} AS VARCHAR), count(*) FROM {table} AS base "  # noqa: S608  # nosec B608
                f"WHERE {prepared.where_sql} GROUP BY 1"
            )
            rows, values = 0, []
            for batch in _batches(conn, check_read_only_sql(per_key), list(prepared.params)):
                rows += int(pc.sum(batch.column(1)).as_py() or 0)
                values += pc.drop_null(batch.column(0)).to_pylist()
        sample_sql, sample_params = _select_sql(prepared, SAMPLE_ROWS)
        sample = [prepared.plan.apply(b, prepared.keys)
                  for b in _batches(conn, sample_sql, sample_params)]
    table = pa.Table.from_batches(sample, schema=prepared.plan.output_schema)
    size = encode_sample(_one_batch(table), table.schema, fmt)
    sampled = table.num_rows
    estimate = size if sampled == 0 else max(size, math.ceil(size / sampled * int(rows)))
    subjects = int(rows) if values is None else len(values)
    return velocity.Planned(int(rows), estimate, subjects), values


def _reserve(
    deployment: Deployment, requester: Requester, prepared: _Prepared,
    planned: velocity.Planned, values: list[str] | None, now: dt.datetime,
) -> tuple[str, bytes | None]:
    """Reserve the export's usage; returns the usage id and, if computed, the subject HMACs.

    Subjects are checked first by their upper bound (every key value new), which needs
    no HMAC; only when that would not fit are the key values turned into ledger HMACs,
    so that people already exported in the window count once, and checked again.
    A refusal is audited and counted, and raised.
    """
    settings, tenant_id, user_id = deployment.settings, requester.tenant_id, requester.user_id
    with deployment.transaction() as session:
        outcome = velocity.reserve(session, settings, tenant_id, user_id, planned, now)
    macs = None
    if isinstance(outcome, velocity.Refusal) and values is not None and any(
        e.metric is Metric.SUBJECTS for e in outcome.excesses
    ):
        macs = velocity.subject_digests(prepared.ledger, values)
        exact = dataclasses.replace(planned, subject_macs=macs)
        with deployment.transaction() as session:
            outcome = velocity.reserve(session, settings, tenant_id, user_id, exact, now)
    if isinstance(outcome, str):
        return outcome, macs
    with deployment.transaction() as session:
        error = velocity.refuse(session, settings, deployment.audit, tenant_id, user_id,
                                requester.actor, outcome, now)
    raise error


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    batches = table.combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)


def _produce(
    prepared: _Prepared, anonymous: AnonymousSpec | None, fmt: ExportFormat, encoded: Encoded,
) -> tuple[Iterator[bytes], dict[str, Any] | None]:
    """The export's bytes as chunks (lazily, for streaming AEAD), and the anonymity report.

    An anonymous export is grouped whole first, so a refusal by ``anonymise``
    comes before any object exists.
    """
    schema = prepared.plan.output_schema
    sql, params = _select_sql(prepared)
    if anonymous is None:

        def stream() -> Iterator[bytes]:
            with query_sandbox(prepared.resolved) as conn:
                batches = (prepared.plan.apply(b, prepared.keys)
                           for b in _batches(conn, sql, params))
                yield from encoded.chunks(batches, schema, fmt)

        return stream(), None
    with query_sandbox(prepared.resolved) as conn:
        transformed = [prepared.plan.apply(b, prepared.keys) for b in _batches(conn, sql, params)]
    table = pa.Table.from_batches(transformed, schema=schema)
    del transformed
    if prepared.k is None:  # _check_anonymous always sets k for anonymous exports
        raise BadExportRequest("an anonymous export needs k")
    kept, report = anonymise(table, list(anonymous.quasi_identifiers), prepared.k,
                             anonymous.sensitive, anonymous.l)
    del table
    return encoded.chunks(kept.to_batches(max_chunksize=BATCH_ROWS), schema, fmt), report.as_dict()


def create_export(
    deployment: Deployment, requester: Requester, spec: ExportSpec, *,
    now: dt.datetime | None = None,
) -> CreatedExport:
    """Run one export end to end (see the module docstring); returns it with its download key.

    Raises a 4xx error before anything is written for bad input, ExportQuotaExceeded
    (429) or ExportTooLarge (422) when over a velocity limit.
    """
    moment = now or utcnow()
    prepared = _prepare(deployment, requester, spec, moment)
    planned, values = _measure(prepared, spec.format)
    usage_id, macs = _reserve(deployment, requester, prepared, planned, values, moment)
    # The ledger's HMACs of the key values, unless the check needed them already: made
    # on a worker thread while the export is produced (and read only to settle it).
    hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="strongroom-ledger")
    pending = (hashing.submit(velocity.subject_digests, prepared.ledger, values)
               if macs is None and values is not None else None)
    stored: StoredObject | None = None
    try:
        encoded = Encoded()
        chunks, report = _produce(prepared, spec.anonymous, spec.format, encoded)
        with deployment.transaction() as session:
            tenant = session.get_one(Tenant, requester.tenant_id)
            ring = deployment.keys.tenant_ring(session, tenant.id)
            stored = put_object(session, deployment.store, ring, tenant, chunks, kind=OBJECT_KIND)
            created = _record(session, deployment, requester, spec, prepared, planned, encoded,
                              stored, report, moment)
            velocity.settle(session, usage_id, created.export.id, encoded.rows, encoded.size,
                            pending.result() if pending is not None else None)
    except BaseException:
        hashing.shutdown(wait=False, cancel_futures=True)
        if stored is not None:
            deployment.store.delete(BlobRef(stored.tenant_id, stored.digest, stored.size))
        with deployment.transaction() as session:
            velocity.release(session, usage_id)
        raise
    hashing.shutdown()
    return created


def _record(
    session: Session, deployment: Deployment, requester: Requester, spec: ExportSpec,
    prepared: _Prepared, planned: velocity.Planned, encoded: Encoded, stored: StoredObject,
    report: dict[str, Any] | None, now: dt.datetime,
) -> CreatedExport:
    key = secrets.token_urlsafe(32)  # 256 bits, shown once
    transforms = prepared.plan.describe()
    export = Export(
        id=uuid.uuid4().hex, tenant_id=requester.tenant_id, created_by=requester.user_id,
        dataset_id=prepared.dataset_id, version_id=prepared.version_id,
        selection_id=prepared.selection_id, format=spec.format.value, rows=encoded.rows,
        size=encoded.size, subjects=planned.subjects, sha256=encoded.sha256,
        transforms=json.dumps(transforms), anonymity=json.dumps(report) if report else None,
        object_id=stored.id, link_hash=sha256_hex(key.encode()), created_at=now,
        expires_at=now + dt.timedelta(hours=deployment.settings.export_link_hours),
    )
    session.add(export)
    details: dict[str, Any] = {
        "dataset": prepared.dataset_id, "version": prepared.version_id,
        "format": spec.format.value, "rows": encoded.rows, "bytes": encoded.size,
        "estimated_bytes": planned.size, "subjects": planned.subjects,
        "sha256": encoded.sha256, "transforms": transforms, "anonymity": report,
    }
    if prepared.selection_id is not None:
        details["selection_id"] = prepared.selection_id
        details["selection_version"] = prepared.selection_version
    elif spec.selection is not None:
        details["selection"] = Sensitive(json.dumps(spec.selection, sort_keys=True))
    deployment.audit.record_event(
        session, EventTag.EXPORT_CREATE, actor=requester.actor, tenant=requester.tenant_id,
        target=f"export:{export.id}", details=details,
    )
    return CreatedExport(export, key)


# -- reading -------------------------------------------------------------------------------------


def get_export(session: Session, tenant_id: str, user_id: str, export_id: str) -> Export:
    """One of the user's own exports; anyone else's (or none) is the same 404."""
    export = (session.get(Export, export_id)
              if len(export_id) == 32 and set(export_id) <= _ID_CHARS else None)
    if export is None or export.tenant_id != tenant_id or export.created_by != user_id:
        raise ExportNotFound("no such export")
    return export


def list_exports(session: Session, tenant_id: str, user_id: str) -> list[Export]:
    """The user's own exports, newest first."""
    return list(session.scalars(
        sa.select(Export)
        .where(Export.tenant_id == tenant_id, Export.created_by == user_id)
        .order_by(Export.created_at.desc(), Export.id)
    ))


def link_matches(export: Export, key: str) -> bool:
    return constant_time_equal(sha256_hex(key.encode()), export.link_hash)


# -- purge ---------------------------------------------------------------------------------------


def purge_exports(deployment: Deployment, now: dt.datetime | None = None) -> int:
    """Remove the files of exports downloaded or past their link's expiry; prune the ledger.

    The rows stay (they are the record of what left); the object rows go in one
    audited transaction and the files after it commits, as dataset purges do.
    A download already streaming keeps its open file. Returns how many files went.
    """
    moment = now or utcnow()
    blobs: list[BlobRef] = []
    with deployment.transaction() as session:
        due = list(session.scalars(
            sa.select(Export).where(
                Export.object_id.is_not(None),
                sa.or_(Export.downloaded_at.is_not(None), Export.expires_at <= moment),
            )
        ))
        for export in due:
            stored = session.get(StoredObject, export.object_id)
            export.object_id = None
            export.purged_at = moment
            if stored is not None:
                blobs.append(BlobRef(stored.tenant_id, stored.digest, stored.size))
                session.flush()
                session.delete(stored)
            deployment.audit.record_event(
                session, EventTag.EXPORT_PURGE, actor=Actor.system(), tenant=export.tenant_id,
                target=f"export:{export.id}",
                details={"downloaded": export.downloaded_at is not None},
            )
        velocity.prune_ledger(session, moment)
    for ref in blobs:
        deployment.store.delete(ref)
    return len(due)
