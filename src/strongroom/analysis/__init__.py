"""Selections, counts and cubes: JSON specifications compiled to parameterised DuckDB SQL.

Pure domain code: no web framework, no database session. The caller runs the SQL
in the tenant's sandboxed DuckDB connection with the returned parameters.
"""

from __future__ import annotations

from strongroom.analysis.cubes import (
    CompiledCube,
    CubeCell,
    SuppressedCube,
    cell_limit_check,
    compile_cube,
    suppress,
)
from strongroom.analysis.errors import InvalidCube, InvalidSelection, TooManyCells
from strongroom.analysis.selections import (
    ColumnType,
    CompiledSelection,
    DatasetSchema,
    Schema,
    compile_selection,
    count_query,
    table_name,
)

__all__ = [
    "ColumnType",
    "CompiledCube",
    "CompiledSelection",
    "CubeCell",
    "DatasetSchema",
    "InvalidCube",
    "InvalidSelection",
    "Schema",
    "SuppressedCube",
    "TooManyCells",
    "cell_limit_check",
    "compile_cube",
    "compile_selection",
    "count_query",
    "suppress",
    "table_name",
]
