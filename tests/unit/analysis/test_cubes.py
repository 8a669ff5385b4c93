"""Cubes against a plain Python group-by; the size guard; small-cell suppression."""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections import defaultdict

import pytest
from tests.unit.analysis.evaluator import Evaluator
from tests.unit.analysis.support import SCHEMA, TODAY, Data, Row

from strongroom.analysis import (
    CompiledCube,
    CubeCell,
    InvalidCube,
    InvalidSelection,
    TooManyCells,
    cell_limit_check,
    compile_cube,
    suppress,
)

AGE_EDGES = [18, 30, 50]


def _dim_value(row: Row, dim: dict[str, object]) -> object:
    x = row[str(dim["field"])]
    if x is None:
        return None
    if "date_part" in dim:
        assert isinstance(x, dt.date)
        return {
            "year": x.year,
            "month": x.month,
            "quarter": (x.month - 1) // 3 + 1,
            "weekday": x.isoweekday(),
        }[str(dim["date_part"])]
    band = dim.get("band")
    if band is None:
        return x
    assert isinstance(band, dict)
    assert isinstance(x, int | float)
    if "width" in band:
        return math.floor(x / band["width"]) * band["width"]
    return bisect.bisect_right(band["edges"], x)


def _python_cube(
    data: Data, spec: dict[str, object]
) -> dict[tuple[object, ...], tuple[object, ...]]:
    rows = data.rows["customers"]
    if spec.get("selection"):
        chosen = set(Evaluator(data.rows, TODAY).select(spec["selection"]))  # type: ignore[arg-type]
        rows = [r for r in rows if r["customer_id"] in chosen]
    groups: dict[tuple[object, ...], list[Row]] = defaultdict(list)
    for row in rows:
        groups[tuple(_dim_value(row, d) for d in spec["dimensions"])].append(row)  # type: ignore[attr-defined]
    result = {}
    for key, members in groups.items():
        values: list[object] = [len(members)]
        for measure in spec["measures"]:  # type: ignore[attr-defined]
            if measure["fn"] == "count":
                values.append(len(members))
                continue
            xs = [m[measure["field"]] for m in members if m[measure["field"]] is not None]
            fn = {"sum": sum, "min": min, "max": max, "mean": lambda v: sum(v) / len(v)}
            values.append(fn[measure["fn"]](xs) if xs else None)
        result[key] = tuple(values)
    return result


def _sql_cube(data: Data, compiled: CompiledCube) -> list[CubeCell]:
    return compiled.cells(data.con.execute(compiled.sql, compiled.params).fetchall())


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)  # type: ignore[arg-type]
    return a == b


SPECS = [
    {"dimensions": [{"field": "region"}], "measures": [{"fn": "count"}]},
    {
        "dimensions": [{"field": "age", "band": {"width": 10}}],
        "measures": [
            {"fn": "sum", "field": "spend"},
            {"fn": "mean", "field": "spend"},
            {"fn": "min", "field": "spend"},
            {"fn": "max", "field": "spend"},
            {"fn": "sum", "field": "age"},
        ],
    },
    {
        "dimensions": [
            {"field": "age", "band": {"edges": AGE_EDGES}},
            {"field": "joined", "date_part": "year"},
            {"field": "region"},
        ],
        "measures": [{"fn": "count"}, {"fn": "mean", "field": "age"}],
    },
    {
        "selection": {"field": "active", "op": "eq", "value": True},
        "dimensions": [
            {"field": "joined", "date_part": "quarter"},
            {"field": "last_seen", "date_part": "weekday"},
        ],
        "measures": [{"fn": "min", "field": "joined"}, {"fn": "max", "field": "last_seen"}],
    },
    {
        "selection": {"linked": {"dataset": "transactions", "min_count": 2}},
        "dimensions": [
            {"field": "spend", "band": {"width": 250.5}},
            {"field": "joined", "date_part": "month"},
        ],
        "measures": [{"fn": "mean", "field": "spend"}],
    },
    {
        "dimensions": [{"field": "spend", "band": {"edges": [0, 99.5, 1000]}}],
        "measures": [{"fn": "count"}],
    },
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: str(s["dimensions"])[:60])
def test_cube_equals_python_group_by(data: Data, spec: dict[str, object]) -> None:
    spec = {"dataset": "customers", "selection": None, **spec}
    compiled = compile_cube(spec, SCHEMA, today=TODAY)
    cells = _sql_cube(data, compiled)
    expected = _python_cube(data, spec)
    assert len(expected) > 1
    assert {cell.dimensions for cell in cells} == set(expected)
    for cell in cells:
        want = expected[cell.dimensions]
        assert cell.count == want[0]
        assert len(cell.measures) == len(want) - 1
        assert all(_same(got, w) for got, w in zip(cell.measures, want[1:], strict=True))


def test_edge_bands_are_numbered_and_labelled(data: Data) -> None:
    spec = {
        "dataset": "customers",
        "dimensions": [{"field": "age", "band": {"edges": AGE_EDGES}}],
        "measures": [{"fn": "count"}],
    }
    compiled = compile_cube(spec, SCHEMA, today=TODAY)
    assert compiled.dimensions[0].labels == ("< 18", "18 to < 30", "30 to < 50", ">= 50")
    assert [c.dimensions[0] for c in _sql_cube(data, compiled)] == [0, 1, 2, 3, None]


def test_distinct_counts_feed_the_cell_limit(data: Data) -> None:
    spec = {
        "dataset": "customers",
        "dimensions": [{"field": "region"}, {"field": "age", "band": {"width": 10}}],
        "measures": [{"fn": "count"}],
    }
    compiled = compile_cube(spec, SCHEMA, today=TODAY)
    counts = data.con.execute(compiled.distinct_sql, compiled.distinct_params).fetchone()
    assert counts is not None
    rows = data.rows["customers"]
    regions = {r["region"] for r in rows}  # None included: it is a cell of its own
    bands = {None if r["age"] is None else r["age"] // 10 * 10 for r in rows}  # type: ignore[operator]
    assert list(counts) == [len(regions), len(bands)]
    assert cell_limit_check(counts, 1000) == len(regions) * len(bands)
    with pytest.raises(TooManyCells) as caught:
        cell_limit_check(counts, len(regions) * len(bands) - 1)
    assert caught.value.status == 422
    assert "above the limit" in caught.value.detail


def test_suppression_hides_small_cells_and_says_how_many(data: Data) -> None:
    spec = {
        "dataset": "customers",
        "dimensions": [{"field": "region"}, {"field": "age", "band": {"width": 5}}],
        "measures": [{"fn": "count"}, {"fn": "sum", "field": "spend"}],
    }
    cells = _sql_cube(data, compile_cube(spec, SCHEMA, today=TODAY))
    small = [c for c in cells if c.count is not None and c.count < 10]
    assert 0 < len(small) < len(cells)
    result = suppress(cells, 10)
    assert result.suppressed == len(small)
    assert result.min_count == 10
    assert len(result.cells) == len(cells)
    for before, after in zip(cells, result.cells, strict=True):
        assert after.dimensions == before.dimensions
        if before in small:
            assert after.count is None
            assert after.measures == (None, None)
        else:
            assert after == before
    assert suppress(cells, 1).suppressed == 0


def test_suppression_is_strictly_below_the_minimum() -> None:
    cells = [CubeCell(("a",), 4, (4,)), CubeCell(("b",), 5, (5,)), CubeCell(("c",), 6, (6,))]
    result = suppress(cells, 5)
    assert [c.count for c in result.cells] == [None, 5, 6]
    assert result.suppressed == 1


def _cube(**changes: object) -> dict[str, object]:
    return {
        "dataset": "customers",
        "dimensions": [{"field": "region"}],
        "measures": [{"fn": "count"}],
        **changes,
    }


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ([], "must be an object"),
        (_cube(dataset="orders"), 'unknown dataset "orders"'),
        (_cube(colour=1), 'unexpected key "colour"'),
        (_cube(dimensions=[]), "1 to 3 items"),
        (_cube(dimensions=[{"field": "region"}] * 4), "1 to 3 items"),
        (_cube(dimensions=[{"field": "shoe_size"}]), 'unknown field "shoe_size"'),
        (
            _cube(dimensions=[{"field": "region"}, {"field": "region"}]),
            'repeats dimension "region"',
        ),
        (_cube(dimensions=[{"field": "name", "band": {"width": 10}}]), "band needs a number field"),
        (_cube(dimensions=[{"field": "age", "band": {"width": 0}}]), "above zero"),
        (_cube(dimensions=[{"field": "age", "band": {"width": "10"}}]), "needs a number"),
        (_cube(dimensions=[{"field": "age", "band": {"edges": [30, 18]}}]), "rise strictly"),
        (_cube(dimensions=[{"field": "age", "band": {"edges": []}}]), "1 to 100 numbers"),
        (_cube(dimensions=[{"field": "age", "band": {"size": 3}}]), '"width": w'),
        (_cube(dimensions=[{"field": "age", "date_part": "year"}]), "date or timestamp field"),
        (
            _cube(dimensions=[{"field": "joined", "date_part": "week"}]),
            "year, month, quarter, weekday",
        ),
        (_cube(measures=[]), "1 to 10 items"),
        (_cube(measures=[{"fn": "median", "field": "age"}]), 'unknown function "median"'),
        (_cube(measures=[{"fn": "sum", "field": "name"}]), '"sum" does not apply to "name"'),
        (_cube(measures=[{"fn": "sum"}]), 'takes "fn" and "field"'),
        (_cube(measures=[{"fn": "count", "field": "age"}]), "takes no field"),
        (_cube(measures=[{"fn": "max", "field": "age"}] * 2), 'repeats measure "max_age"'),
    ],
    ids=lambda x: str(x)[:50],
)
def test_bad_cube_is_rejected_precisely(spec: object, expected: str) -> None:
    with pytest.raises(InvalidCube) as caught:
        compile_cube(spec, SCHEMA, today=TODAY)
    assert caught.value.status == 422
    assert expected in caught.value.detail


def test_cube_selection_errors_are_selection_errors() -> None:
    with pytest.raises(InvalidSelection, match="unknown field"):
        compile_cube(_cube(selection={"field": "nope", "op": "is_null"}), SCHEMA, today=TODAY)
