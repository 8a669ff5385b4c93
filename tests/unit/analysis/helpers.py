"""Run a selection through the compiler and DuckDB, and through the Python evaluator."""

from __future__ import annotations

from tests.unit.analysis.evaluator import Evaluator
from tests.unit.analysis.support import SCHEMA, TODAY, Data

from strongroom.analysis import compile_selection, table_name


def sql_keys(data: Data, selection: object, dataset: str = "customers") -> list[object]:
    """The keys DuckDB selects with the compiled condition, in key order."""
    compiled = compile_selection(selection, SCHEMA, dataset, today=TODAY)
    key = SCHEMA.datasets[dataset].key
    sql = (
        f'SELECT base."{key}" FROM "{table_name(dataset)}" AS base '  # noqa: S608
        f"WHERE {compiled.where_sql} ORDER BY 1"
    )
    return [row[0] for row in data.con.execute(sql, compiled.params).fetchall()]


def python_keys(
    data: Data, selection: dict[str, object], dataset: str = "customers"
) -> list[object]:
    """The keys the independent Python evaluator selects, in key order."""
    return Evaluator(data.rows, TODAY).select(selection, dataset)
