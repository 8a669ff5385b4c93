"""Cubes: one to three dimensions, a few measures, one parameterised GROUP BY query.

A cube specification::

    {"dataset": "customers", "selection": {...} or null,
     "dimensions": [{"field": "region"},
                    {"field": "age", "band": {"width": 10}},
                    {"field": "age", "band": {"edges": [18, 30, 50]}},
                    {"field": "joined", "date_part": "year"}],
     "measures": [{"fn": "count"}, {"fn": "sum", "field": "spend"}]}

The caller estimates the cube's size with :attr:`CompiledCube.distinct_sql` and
:func:`cell_limit_check` before running :attr:`CompiledCube.sql`, then turns the
rows into :class:`CubeCell` values and applies :func:`suppress`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from strongroom.analysis import _values as v
from strongroom.analysis.errors import InvalidCube, InvalidSelection, TooManyCells
from strongroom.analysis.selections import (
    Schema,
    compile_selection,
    quote_identifier,
    table_name,
)

MAX_DIMENSIONS = 3
MAX_MEASURES = 10
MAX_EDGES = 100
_DATE_PARTS = {"year": "year", "month": "month", "quarter": "quarter", "weekday": "isodow"}
_MEASURES = {
    "count": frozenset[str](),
    "sum": v.NUMERIC,
    "mean": v.NUMERIC,
    "min": v.NUMERIC | v.TEMPORAL | {"text"},
    "max": v.NUMERIC | v.TEMPORAL | {"text"},
}
_SQL_FN = {"sum": "sum", "mean": "avg", "min": "min", "max": "max"}


@dataclass(frozen=True)
class Dimension:
    """One compiled dimension: its output name and, for edge bands, the band labels.

    Edge bands come out of the query as band numbers 0..len(edges); ``labels[n]``
    names band ``n`` ("< 18", "18 to < 30", ">= 50"). Width bands come out as the
    band's lower bound, date parts as numbers (weekday: 1 Monday .. 7 Sunday).
    """

    name: str
    field: str
    labels: tuple[str, ...] | None = None


@dataclass(frozen=True)
class CubeCell:
    """One cell: its dimension values, its row count and its measures in spec order."""

    dimensions: tuple[object, ...]
    count: int | None
    measures: tuple[object, ...]


@dataclass(frozen=True)
class SuppressedCube:
    """Cells after small-cell suppression, with how many cells were suppressed."""

    cells: list[CubeCell]
    suppressed: int
    min_count: int


@dataclass(frozen=True)
class CompiledCube:
    """The cube query and its size-estimate query, each with its ``?`` parameters.

    ``sql`` selects the dimensions, then ``count(*)``, then the measures.
    ``distinct_sql`` returns one row: per dimension, its number of distinct values
    counting a missing value as one more.
    """

    sql: str
    params: list[object]
    distinct_sql: str
    distinct_params: list[object]
    dimensions: tuple[Dimension, ...]
    measures: tuple[str, ...]

    def cells(self, rows: Iterable[Sequence[object]]) -> list[CubeCell]:
        """Turn the rows of :attr:`sql` into cells."""
        n = len(self.dimensions)
        cells = []
        for row in rows:
            count = row[n]
            if not isinstance(count, int):
                raise TypeError("the count column must hold integers")
            cells.append(CubeCell(tuple(row[:n]), count, tuple(row[n + 1 :])))
        return cells


def compile_cube(spec: object, schema: Schema, *, today: dt.date) -> CompiledCube:
    """Check a cube specification against the schema and compile it.

    Raises :class:`InvalidCube` (or :class:`InvalidSelection` for its selection)
    naming the place, field and function at fault, never a value.
    """
    if not isinstance(spec, dict):
        raise InvalidCube(f"cube: must be an object, not {v.json_kind(spec)}")
    extra = sorted(
        str(k) for k in spec if k not in {"dataset", "selection", "dimensions", "measures"}
    )
    if extra:
        raise InvalidCube(f"cube: unexpected key {v.shown(extra[0])}")
    name = spec.get("dataset")
    if not isinstance(name, str) or name not in schema.datasets:
        raise InvalidCube(f"cube.dataset: unknown dataset {v.shown(name)}")
    columns = schema.datasets[name].columns
    dims = _list(spec.get("dimensions"), "cube.dimensions", MAX_DIMENSIONS)
    measures = _list(spec.get("measures"), "cube.measures", MAX_MEASURES)
    dim_sql: list[tuple[str, list[object]]] = []
    dimensions: list[Dimension] = []
    for i, dim in enumerate(dims):
        dimension, sql, params = _dimension(dim, columns, f"cube.dimensions[{i}]")
        if any(d.name == dimension.name for d in dimensions):
            raise InvalidCube(f"cube.dimensions[{i}]: repeats dimension {v.shown(dimension.name)}")
        dimensions.append(dimension)
        dim_sql.append((sql, params))
    measure_sql = ["count(*)"]
    names: list[str] = []
    for i, measure in enumerate(measures):
        mname, sql = _measure(measure, columns, f"cube.measures[{i}]")
        if mname in names:
            raise InvalidCube(f"cube.measures[{i}]: repeats measure {v.shown(mname)}")
        names.append(mname)
        measure_sql.append(sql)
    where, where_params = "true", []
    if spec.get("selection") is not None:
        compiled = compile_selection(spec["selection"], schema, name, today=today)
        where, where_params = compiled.where_sql, compiled.params
    source = f"{quote_identifier(table_name(name))} AS base WHERE {where}"
    select = ", ".join([sql for sql, _ in dim_sql] + measure_sql)
    positions = ", ".join(str(i + 1) for i in range(len(dim_sql)))
    order = ", ".join(f"{i + 1} NULLS LAST" for i in range(len(dim_sql)))
    params = [p for _, ps in dim_sql for p in ps] + where_params
    distinct = ", ".join(
        f"count(DISTINCT {sql}) + (count(*) > count({sql}))::BIGINT" for sql, _ in dim_sql
    )
    distinct_params = [p for _, ps in dim_sql for p in ps + ps] + where_params
    # Identifiers are checked against the schema and quoted; values travel as parameters.
    return CompiledCube(
        sql=f"SELECT {select} FROM {source} GROUP BY {positions} "  # noqa: S608  # nosec B608
        f"ORDER BY {order}",
        params=params,
        distinct_sql=f"SELECT {distinct} FROM {source}",  # noqa: S608  # nosec B608
        distinct_params=distinct_params,
        dimensions=tuple(dimensions),
        measures=tuple(names),
    )


def cell_limit_check(distinct_counts: Sequence[int], limit: int) -> int:
    """Estimate a cube's cells as the product of its dimensions' distinct counts.

    Returns the estimate; raises :class:`TooManyCells` when it is above ``limit``.
    """
    if limit < 1:
        raise ValueError("the cell limit must be at least 1")
    cells = math.prod(max(0, int(count)) for count in distinct_counts)
    if cells > limit:
        raise TooManyCells(
            f"cube: about {cells} cells, above the limit of {limit}",
            hint="use fewer dimensions, wider bands or a date part",
        )
    return cells


def suppress(cells: Iterable[CubeCell], min_count: int) -> SuppressedCube:
    """Blank the count and measures of every cell with fewer than ``min_count`` rows.

    Suppressed cells stay in the answer, with ``None`` in place of their numbers,
    so the response can say how many cells were hidden and where.
    """
    if min_count < 1:
        raise ValueError("the minimum cell count must be at least 1")
    kept: list[CubeCell] = []
    suppressed = 0
    for cell in cells:
        if cell.count is not None and cell.count < min_count:
            suppressed += 1
            cell = replace(cell, count=None, measures=(None,) * len(cell.measures))  # noqa: PLW2901
        kept.append(cell)
    return SuppressedCube(kept, suppressed, min_count)


def _list(value: object, ctx: str, most: int) -> list[object]:
    if not isinstance(value, list) or not 1 <= len(value) <= most:
        raise InvalidCube(f"{ctx}: must be a list of 1 to {most} items")
    return value


def _field(node: dict[str, object], columns: Mapping[str, str], ctx: str) -> tuple[str, str]:
    name = node.get("field")
    if not isinstance(name, str) or name not in columns:
        raise InvalidCube(f"{ctx}.field: unknown field {v.shown(name)}")
    return name, columns[name]


def _dimension(
    node: object, columns: Mapping[str, str], ctx: str
) -> tuple[Dimension, str, list[object]]:
    if not isinstance(node, dict):
        raise InvalidCube(f"{ctx}: must be an object, not {v.json_kind(node)}")
    extra = sorted(str(k) for k in node if k not in {"field", "band", "date_part"})
    if extra or ("band" in node and "date_part" in node):
        raise InvalidCube(f'{ctx}: takes "field" and at most one of "band", "date_part"')
    name, kind = _field(node, columns, ctx)
    col = f"base.{quote_identifier(name)}"
    if "date_part" in node:
        part = node["date_part"]
        if not isinstance(part, str) or part not in _DATE_PARTS:
            raise InvalidCube(f"{ctx}.date_part: must be one of {', '.join(_DATE_PARTS)}")
        if kind not in v.TEMPORAL:
            raise InvalidCube(
                f'{ctx}: date_part needs a date or timestamp field, "{name}" is {kind}'
            )
        return Dimension(f"{name}_{part}", name), f"{_DATE_PARTS[part]}({col})", []
    if "band" not in node:
        return Dimension(name, name), col, []
    return _band(node["band"], name, kind, col, ctx)


def _band(
    band: object, name: str, kind: str, col: str, ctx: str
) -> tuple[Dimension, str, list[object]]:
    if kind not in v.NUMERIC:
        raise InvalidCube(f'{ctx}: band needs a number field, "{name}" is {kind}')
    if not isinstance(band, dict) or len(band) != 1 or not {"width", "edges"} & set(band):
        raise InvalidCube(f'{ctx}.band: must be {{"width": w}} or {{"edges": [...]}}')
    if "width" in band:
        width = _number(band["width"], f"{ctx}.band.width")
        if width <= 0:
            raise InvalidCube(f"{ctx}.band.width: must be above zero")
        # Whole-number bands of a whole-number field stay whole numbers (40, not 40.0).
        whole = kind == "integer" and isinstance(width, int)
        sql = f"CAST(floor({col} / ?) AS BIGINT) * ?" if whole else f"floor({col} / ?) * ?"
        return Dimension(f"{name}_band", name), sql, [width, width]
    edges = band["edges"]
    if not isinstance(edges, list) or not 1 <= len(edges) <= MAX_EDGES:
        raise InvalidCube(f"{ctx}.band.edges: must be a list of 1 to {MAX_EDGES} numbers")
    values = [_number(edge, f"{ctx}.band.edges[{i}]") for i, edge in enumerate(edges)]
    if any(a >= b for a, b in itertools.pairwise(values)):
        raise InvalidCube(f"{ctx}.band.edges: must rise strictly")
    whens = " ".join(f"WHEN {col} < ? THEN {i}" for i in range(len(values)))
    sql = f"CASE WHEN {col} IS NULL THEN NULL {whens} ELSE {len(values)} END"
    return Dimension(f"{name}_band", name, _labels(values)), sql, list(values)


def _labels(edges: list[int | float]) -> tuple[str, ...]:
    inner = [f"{low} to < {high}" for low, high in itertools.pairwise(edges)]
    return (f"< {edges[0]}", *inner, f">= {edges[-1]}")


def _number(value: object, ctx: str) -> int | float:
    try:
        return v.number(value, "band", ctx)
    except InvalidSelection as exc:
        raise InvalidCube(exc.detail) from None


def _measure(node: object, columns: Mapping[str, str], ctx: str) -> tuple[str, str]:
    if not isinstance(node, dict):
        raise InvalidCube(f"{ctx}: must be an object, not {v.json_kind(node)}")
    fn = node.get("fn")
    if not isinstance(fn, str) or fn not in _MEASURES:
        raise InvalidCube(f"{ctx}.fn: unknown function {v.shown(fn)}; use {', '.join(_MEASURES)}")
    if fn == "count":
        if set(node) != {"fn"}:
            raise InvalidCube(f'{ctx}: "count" takes no field')
        return "count", "count(*)"
    if set(node) != {"fn", "field"}:
        raise InvalidCube(f'{ctx}: "{fn}" takes "fn" and "field" only')
    name, kind = _field(node, columns, ctx)
    if kind not in _MEASURES[fn]:
        raise InvalidCube(f'{ctx}: "{fn}" does not apply to "{name}" of type {kind}')
    return f"{fn}_{name}", f"{_SQL_FN[fn]}(base.{quote_identifier(name)})"
