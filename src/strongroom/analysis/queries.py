"""Counts, cubes, previews and SQL over a resolved set of datasets.

Each function compiles what the client sent against ``resolved.schema``, refuses
personal columns the asker may not see (:mod:`strongroom.analysis.personal`),
runs the SQL in :func:`~strongroom.analysis.service.query_sandbox` with a time
limit, and returns plain Python values ready for JSON (:func:`jsonable`).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from strongroom.analysis import personal as personal_check
from strongroom.analysis.cubes import cell_limit_check, compile_cube, suppress
from strongroom.analysis.engine import QueryFailed, QueryResult, check_read_only_sql, run_query
from strongroom.analysis.selections import (
    MAX_DEPTH,
    compile_selection,
    count_query,
    quote_identifier,
    table_name,
)
from strongroom.analysis.service import MASK, Resolved, query_sandbox

PREVIEW_MAX_ROWS = 100


def jsonable(value: object) -> Any:
    """A value DuckDB returned, as JSON: dates and times ISO 8601, decimals numbers."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


def referenced_datasets(node: object, depth: int = 0) -> set[str]:
    """The dataset names a selection's linked conditions name (to resolve only those).

    Stops deeper than any selection may nest; the compiler refuses those anyway.
    """
    found: set[str] = set()
    if depth > 4 * MAX_DEPTH:
        return found
    if isinstance(node, dict):
        linked = node.get("linked")
        if isinstance(linked, dict) and isinstance(linked.get("dataset"), str):
            found.add(linked["dataset"])
        children: list[object] = list(node.values())
    elif isinstance(node, list):
        children = list(node)
    else:
        return found
    for child in children:
        found |= referenced_datasets(child, depth + 1)
    return found


@dataclass(frozen=True)
class Asker:
    """What the asking role may see: personal columns, and unsuppressed small cells."""

    personal: bool
    min_cell_count: int | None  # None: no small-cell suppression


@dataclass(frozen=True)
class CountAnswer:
    dataset: str
    version: int
    count: int


@dataclass(frozen=True)
class CubeAnswer:
    dataset: str
    version: int
    dimensions: list[str]
    measures: list[str]
    cells: list[dict[str, Any]]
    suppressed_cells: int
    min_cell_count: int
    estimated_cells: int


@dataclass(frozen=True)
class PreviewAnswer:
    dataset: str
    version: int
    columns: list[str]
    rows: list[list[Any]]
    masked: list[str]


def _personal(resolved: Resolved, asker: Asker) -> Mapping[str, frozenset[str]]:
    return {} if asker.personal else resolved.personal


def count(
    resolved: Resolved, base: str, selection: object, asker: Asker, *, today: dt.date,
    timeout: float,
) -> CountAnswer:
    """How many rows of ``base`` the selection (``None``: every row) selects."""
    version = resolved.versions[base].number
    if selection is None:
        return CountAnswer(base, version, resolved.versions[base].row_count)
    compiled = compile_selection(selection, resolved.schema, base, today=today)
    personal_check.check_selection(selection, base, _personal(resolved, asker), resolved.keys)
    sql, params = count_query(compiled, base)
    with query_sandbox(resolved) as conn:
        [(n,)] = run_query(conn, sql, params, row_cap=1, timeout_seconds=timeout).rows
    return CountAnswer(base, version, int(n))


def cube(
    resolved: Resolved, spec: dict[str, Any], asker: Asker, *, today: dt.date, max_cells: int,
    timeout: float,
) -> CubeAnswer:
    """A cube, refused before it runs when its estimated cells exceed ``max_cells``."""
    compiled = compile_cube(spec, resolved.schema, today=today)
    personal_check.check_cube(spec, _personal(resolved, asker), resolved.keys)
    base = str(spec["dataset"])
    with query_sandbox(resolved) as conn:
        [distinct] = run_query(conn, compiled.distinct_sql, compiled.distinct_params, row_cap=1,
                               timeout_seconds=timeout).rows
        estimate = cell_limit_check([int(n) for n in distinct], max_cells)
        result = run_query(conn, compiled.sql, compiled.params, row_cap=max(estimate, 1),
                           timeout_seconds=timeout)
    if result.truncated:  # the estimate is an upper bound; this would be our bug
        raise QueryFailed("the cube has more cells than estimated")
    cells = compiled.cells(result.rows)
    minimum = asker.min_cell_count or 1
    kept = suppress(cells, minimum) if asker.min_cell_count else None
    measures = list(compiled.measures)
    out = []
    for cell in kept.cells if kept else cells:
        key = [
            dim.labels[value] if dim.labels is not None and isinstance(value, int) else value
            for dim, value in zip(compiled.dimensions, cell.dimensions, strict=True)
        ]
        values: dict[str, Any] = {"count": cell.count}
        values.update(zip(measures, cell.measures, strict=True))
        out.append({"key": jsonable(key), "values": jsonable(values)})
    return CubeAnswer(
        base, resolved.versions[base].number, [d.name for d in compiled.dimensions], measures,
        out, kept.suppressed if kept else 0, minimum, estimate,
    )


def preview(
    resolved: Resolved, base: str, selection: object, limit: int, asker: Asker, *,
    today: dt.date, timeout: float,
) -> PreviewAnswer:
    """The first ``limit`` rows (by key) the selection selects; personal columns masked
    unless the asker may see them (the mask is applied in the query, so the values
    never leave the sandbox)."""
    if not 1 <= limit <= PREVIEW_MAX_ROWS:
        raise QueryFailed(f"limit must be 1 to {PREVIEW_MAX_ROWS}")
    where, params = "true", []
    if selection is not None:
        compiled = compile_selection(selection, resolved.schema, base, today=today)
        personal_check.check_selection(selection, base, _personal(resolved, asker), resolved.keys)
        where, params = compiled.where_sql, list(compiled.params)
    columns = list(resolved.columns[base])
    hidden = set() if asker.personal else resolved.personal[base]
    select = ", ".join(
        f"'{MASK}' AS {quote_identifier(name)}" if name in hidden
        else f"base.{quote_identifier(name)}"
        for name in columns
    )
    # By the key; but not by a hidden column, whose order would say something about it.
    visible = [name for name in columns if name not in hidden]
    order = resolved.keys[base] if resolved.keys[base] not in hidden else next(iter(visible), "")
    order_by = f"ORDER BY base.{quote_identifier(order)} NULLS LAST " if order else ""
    table = quote_identifier(table_name(base))
    # Names come from the recorded schema and are quoted; values travel as parameters.
    sql = (f"SELECT {select} FROM {table} AS base WHERE {where} "  # noqa: S608  # nosec B608
           f"{order_by}LIMIT ?")
    with query_sandbox(resolved) as conn:
        result = run_query(conn, sql, [*params, limit], row_cap=limit, timeout_seconds=timeout)
    return PreviewAnswer(base, resolved.versions[base].number, result.columns,
                         [jsonable(list(row)) for row in result.rows],
                         [name for name in columns if name in hidden])


def check_sql(sql: str) -> None:
    """Refuse anything but one SELECT before any dataset is resolved."""
    check_read_only_sql(sql)


def sql_query(
    resolved: Resolved, sql: str, row_limit: int, asker: Asker, *, timeout: float
) -> QueryResult:
    """Run a tenant's read-only SQL; personal columns read as the mask unless allowed."""
    with query_sandbox(resolved, mask_personal=not asker.personal) as conn:
        result = run_query(conn, sql, None, row_cap=row_limit, timeout_seconds=timeout)
    return QueryResult(result.columns, [tuple(jsonable(list(r))) for r in result.rows],
                       result.truncated)
