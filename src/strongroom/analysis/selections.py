"""The JSON selection language, compiled to parameterised DuckDB SQL.

A selection is a tree of conditions over one *base* dataset::

    {"field": "age", "op": "gt", "value": 40}
    {"and": [...]}, {"or": [...]}, {"not": {...}}
    {"linked": {"dataset": "transactions",
                "on": {"base": "customer_id", "other": "customer_id"},
                "where": {...}, "min_count": 1}}

Values only ever travel as ``?`` parameters; identifiers are checked against the
:class:`Schema` and then double-quoted. A condition on a missing (NULL) value is
false, except ``is_null``, and ``not`` is the exact complement of what it wraps,
so ``{"not": X}`` selects every row that ``X`` does not, nulls included.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from strongroom.analysis import _values as v
from strongroom.analysis._values import ColumnType
from strongroom.analysis.errors import InvalidSelection
from strongroom.errors import InvalidInput

__all__ = [
    "ColumnType",
    "CompiledSelection",
    "DatasetSchema",
    "Schema",
    "compile_selection",
    "count_query",
    "quote_identifier",
    "table_name",
]

MAX_DEPTH = 20
MAX_CONDITIONS = 200
MAX_LIST_VALUES = 1000
MAX_PARAMS = 10_000
MAX_MIN_COUNT = 1_000_000

_DATASET_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_KINDS = ("field", "and", "or", "not", "linked")
_COMPARE = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_ORDERED = v.NUMERIC | {"text"} | v.TEMPORAL
_ALL = v.COLUMN_TYPES
_OPERATORS: dict[str, frozenset[str]] = {
    "eq": _ALL, "ne": _ALL,
    "lt": _ORDERED, "le": _ORDERED, "gt": _ORDERED, "ge": _ORDERED,
    "in": _ALL, "not_in": _ALL, "between": _ORDERED,
    "is_null": _ALL, "not_null": _ALL,
    "contains": frozenset({"text"}), "starts_with": frozenset({"text"}),
    "before": v.TEMPORAL, "after": v.TEMPORAL, "on": v.TEMPORAL, "within_last": v.TEMPORAL,
}  # fmt: skip


def table_name(dataset: str) -> str:
    """The DuckDB table (or view) name a dataset is registered under: ``ds_<name>``."""
    if not isinstance(dataset, str) or not _DATASET_NAME.fullmatch(dataset):
        raise InvalidInput("dataset names are 1-63 characters of a-z, 0-9 and _, starting a-z")
    return "ds_" + dataset


def quote_identifier(name: str) -> str:
    """Double-quote an identifier already checked against the schema."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class DatasetSchema:
    """The columns of one dataset (name -> type) and its key column."""

    columns: Mapping[str, ColumnType]
    key: str

    def __post_init__(self) -> None:
        bad = [name for name, kind in self.columns.items() if kind not in v.COLUMN_TYPES]
        if bad:
            raise ValueError(f"unknown column types for columns {bad}")
        if self.key not in self.columns:
            raise ValueError("the key column must be one of the columns")


@dataclass(frozen=True)
class Schema:
    """The datasets a selection may refer to, by dataset name."""

    datasets: Mapping[str, DatasetSchema]

    def __post_init__(self) -> None:
        for name in self.datasets:
            table_name(name)

    def dataset(self, name: object, ctx: str) -> DatasetSchema:
        """The named dataset, or InvalidSelection naming the place of the reference."""
        if not isinstance(name, str) or name not in self.datasets:
            raise InvalidSelection(f"{ctx}: unknown dataset {v.shown(name)}")
        return self.datasets[name]


@dataclass(frozen=True)
class CompiledSelection:
    """A WHERE condition over the base table aliased ``base``, with its ``?`` parameters."""

    where_sql: str
    params: list[object] = field(default_factory=list)


def compile_selection(
    selection: object, schema: Schema, base: str, *, today: dt.date
) -> CompiledSelection:
    """Check a selection against the schema and compile it to a parameterised condition.

    ``today`` anchors relative dates (``within_last``) so results are reproducible.
    Raises :class:`InvalidSelection` naming the place, field and operator at fault.
    """
    schema.dataset(base, "selection")
    compiler = _Compiler(schema, today)
    sql = compiler.condition(selection, base, "base", "selection", 1)
    return CompiledSelection(sql, compiler.params)


def count_query(compiled: CompiledSelection, base: str) -> tuple[str, list[object]]:
    """The SQL and parameters counting the base rows a compiled selection selects."""
    table = quote_identifier(table_name(base))
    sql = f"SELECT count(*) FROM {table} AS base WHERE {compiled.where_sql}"  # noqa: S608  # nosec B608
    return sql, compiled.params


class _Compiler:
    def __init__(self, schema: Schema, today: dt.date) -> None:
        self.schema = schema
        self.today = today
        self.params: list[object] = []
        self.conditions = 0
        self.aliases = 0

    def bind(self, *values: object) -> str:
        if len(self.params) + len(values) > MAX_PARAMS:
            raise InvalidSelection(f"selection: more than {MAX_PARAMS} values in total")
        self.params.extend(values)
        return ", ".join("?" * len(values))

    def count(self, path: str) -> None:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise InvalidSelection(
                f"{path}: a selection may hold at most {MAX_CONDITIONS} conditions"
            )

    def condition(self, node: object, dataset: str, alias: str, path: str, depth: int) -> str:
        if depth > MAX_DEPTH:
            raise InvalidSelection(f"{path}: conditions nest at most {MAX_DEPTH} levels deep")
        if not isinstance(node, dict):
            raise InvalidSelection(
                f"{path}: a condition must be an object, not {v.json_kind(node)}"
            )
        kinds = [kind for kind in _KINDS if kind in node]
        if len(kinds) != 1:
            raise InvalidSelection(
                f"{path}: a condition needs exactly one of field, and, or, not, linked"
            )
        kind = kinds[0]
        if kind == "field":
            return self.leaf(node, dataset, alias, path)
        _only(node, {kind}, path)
        inner = node[kind]
        if kind == "not":
            sql = self.condition(inner, dataset, alias, f"{path}.not", depth + 1)
            # coalesce: "not" is the complement, so rows where the inner test is NULL match.
            return f"(NOT coalesce({sql}, false))"
        if kind == "linked":
            return self.linked(inner, dataset, alias, f"{path}.linked", depth + 1)
        if not isinstance(inner, list) or not inner:
            raise InvalidSelection(f"{path}.{kind}: must be a non-empty list of conditions")
        parts = [
            self.condition(child, dataset, alias, f"{path}.{kind}[{i}]", depth + 1)
            for i, child in enumerate(inner)
        ]
        return "(" + f" {kind.upper()} ".join(parts) + ")"

    def linked(self, node: object, outer: str, outer_alias: str, path: str, depth: int) -> str:
        if not isinstance(node, dict):
            raise InvalidSelection(f"{path}: must be an object, not {v.json_kind(node)}")
        _only(node, {"dataset", "on", "where", "min_count"}, path)
        self.count(path)
        other_name = _name(node.get("dataset"))
        other = self.schema.dataset(other_name, f"{path}.dataset")
        outer_schema = self.schema.datasets[outer]
        on = node.get("on", {"base": outer_schema.key, "other": outer_schema.key})
        if not isinstance(on, dict) or set(on) != {"base", "other"}:
            raise InvalidSelection(f'{path}.on: must be an object with "base" and "other"')
        base_type = _column(outer_schema, on["base"], f"{path}.on.base")
        other_type = _column(other, on["other"], f"{path}.on.other")
        if base_type != other_type and not {base_type, other_type} <= v.NUMERIC:
            raise InvalidSelection(
                f"{path}.on: cannot link a {base_type} column with a {other_type} column"
            )
        min_count = node.get("min_count", 1)
        if isinstance(min_count, bool) or not isinstance(min_count, int):
            raise InvalidSelection(f"{path}.min_count: must be a whole number")
        if not 1 <= min_count <= MAX_MIN_COUNT:
            raise InvalidSelection(f"{path}.min_count: must be 1 to {MAX_MIN_COUNT}")
        self.aliases += 1
        alias = f"l{self.aliases}"
        join = (
            f"{alias}.{quote_identifier(on['other'])} = "
            f"{outer_alias}.{quote_identifier(on['base'])}"
        )
        where = node.get("where")
        if where is not None:
            inner = self.condition(where, other_name, alias, f"{path}.where", depth + 1)
            join = f"{join} AND {inner}"
        source = f"{quote_identifier(table_name(other_name))} AS {alias}"
        # Names are checked against the schema and quoted; values travel as parameters.
        if min_count == 1:
            return f"EXISTS (SELECT 1 FROM {source} WHERE {join})"  # noqa: S608  # nosec B608
        bound = self.bind(min_count)
        return f"((SELECT count(*) FROM {source} WHERE {join}) >= {bound})"  # noqa: S608  # nosec B608

    def leaf(self, node: dict[str, object], dataset: str, alias: str, path: str) -> str:
        _only(node, {"field", "op", "value"}, path)
        self.count(path)
        name = _name(node["field"])
        column_type = _column(self.schema.datasets[dataset], name, f"{path}.field")
        op = node.get("op")
        if not isinstance(op, str) or op not in _OPERATORS:
            raise InvalidSelection(
                f"{path}.op: unknown operator {v.shown(op)}; use one of {', '.join(_OPERATORS)}"
            )
        ctx = f'{path} (field "{name}", operator "{op}")'
        if column_type not in _OPERATORS[op]:
            allowed = ", ".join(sorted(_OPERATORS[op]))
            raise InvalidSelection(
                f"{ctx}: the operator does not apply to a field of type {column_type}; "
                f"it takes {allowed}"
            )
        col = f"{alias}.{quote_identifier(name)}"
        if op in ("is_null", "not_null"):
            if "value" in node:
                raise InvalidSelection(f"{ctx}: the operator takes no value")
            return f"({col} IS {'NOT ' if op == 'not_null' else ''}NULL)"
        if "value" not in node:
            raise InvalidSelection(f"{ctx}: the operator needs a value")
        return self.test(op, col, column_type, node["value"], ctx)

    def test(self, op: str, col: str, column_type: str, value: object, ctx: str) -> str:
        stamp = column_type == "timestamp"
        if op in _COMPARE:
            return f"({col} {_COMPARE[op]} {self.bind(v.scalar(value, column_type, ctx))})"
        if op in ("in", "not_in"):
            items = _items(value, ctx, None)
            bound = self.bind(*(v.scalar(item, column_type, ctx) for item in items))
            return f"({col} {'NOT IN' if op == 'not_in' else 'IN'} ({bound}))"
        if op == "between":
            low, high = (v.scalar(item, column_type, ctx) for item in _items(value, ctx, 2))
            if low > high:  # type: ignore[operator]  # both checked against one column type
                raise InvalidSelection(f"{ctx}: the low end is above the high end")
            return f"({col} BETWEEN {self.bind(low, high)})".replace(", ", " AND ", 1)
        if op in ("contains", "starts_with"):
            return f"{op}({col}, {self.bind(v.scalar(value, column_type, ctx))})"
        if op == "within_last":
            start, end = v.period_start(self.today, value, ctx), self.today
        else:
            start = end = v.date_value(value, ctx, column_type)
        if op == "before":
            return f"({col} < {self.bind(v.midnight(start) if stamp else start)})"
        if stamp:  # a timestamp is on a day when it falls in [day 00:00, next day 00:00)
            after = v.midnight(v.next_day(end, ctx))
            if op == "after":
                return f"({col} >= {self.bind(after)})"
            return f"({col} >= {self.bind(v.midnight(start))} AND {col} < {self.bind(after)})"
        if op == "after":
            return f"({col} > {self.bind(end)})"
        return f"({col} BETWEEN {self.bind(start)} AND {self.bind(end)})"


def _only(node: dict[str, object], allowed: set[str], path: str) -> None:
    extra = sorted(str(key) for key in node if key not in allowed)
    if extra:
        raise InvalidSelection(f"{path}: unexpected key {v.shown(extra[0])}")


def _name(value: object) -> str:
    # A non-string name becomes one no schema holds, so the lookup reports it as unknown.
    return value if isinstance(value, str) else "\x00"


def _column(schema: DatasetSchema, name: object, ctx: str) -> str:
    if not isinstance(name, str) or name not in schema.columns:
        raise InvalidSelection(f"{ctx}: unknown field {v.shown(name)}")
    return schema.columns[name]


def _items(value: object, ctx: str, exactly: int | None) -> list[object]:
    if not isinstance(value, list):
        raise InvalidSelection(f"{ctx}: the value must be a list, not {v.json_kind(value)}")
    if exactly is not None and len(value) != exactly:
        raise InvalidSelection(f"{ctx}: the value must be a list of {exactly} items [low, high]")
    if not 1 <= len(value) <= MAX_LIST_VALUES:
        raise InvalidSelection(f"{ctx}: the list must hold 1 to {MAX_LIST_VALUES} values")
    return value
