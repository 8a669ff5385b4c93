"""k-anonymity and l-diversity: checked against an independent count with collections.Counter."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.privacy.anonymity import anonymise
from strongroom.privacy.errors import AnonymityInvalid, AnonymityRefused

# Small alphabets so that classes of every size, nulls among them, turn up.
_QUASI = st.one_of(st.none(), st.sampled_from(["a", "b", "c"]))
_AGE = st.one_of(st.none(), st.integers(0, 3))
_SICK = st.one_of(st.none(), st.sampled_from(["flu", "cold", "hiv"]))
ROWS = st.lists(st.tuples(_QUASI, _AGE, _SICK), max_size=120)


def table_of(rows: list[tuple[Any, ...]]) -> pa.Table:
    return pa.table({
        "area": pa.array([r[0] for r in rows], pa.string()),
        "age": pa.array([r[1] for r in rows], pa.int64()),
        "illness": pa.array([r[2] for r in rows], pa.string()),
        "row": pa.array(range(len(rows)), pa.int64()),
    })


def expected_kept(rows: list[tuple[Any, ...]], k: int, l: int | None) -> list[int]:  # noqa: E741
    """Row numbers kept, computed with Counter and sets (None is a value, as in anonymise)."""
    sizes = Counter((area, age) for area, age, _ in rows)
    diversity: dict[tuple[Any, Any], set[Any]] = defaultdict(set)
    for area, age, sick in rows:
        diversity[(area, age)].add(sick)
    return [
        i for i, (area, age, _) in enumerate(rows)
        if sizes[(area, age)] >= k and (l is None or len(diversity[(area, age)]) >= l)
    ]


@settings(max_examples=150, deadline=None)
@given(rows=ROWS, k=st.integers(2, 6), l=st.one_of(st.none(), st.integers(2, 3)))
def test_matches_an_independent_count(
    rows: list[tuple[Any, ...]], k: int, l: int | None  # noqa: E741
) -> None:
    table = table_of(rows)
    kept = expected_kept(rows, k, l)
    sizes = Counter((area, age) for area, age, _ in rows)
    result, report = anonymise(
        table, ["area", "age"], k, sensitive="illness" if l else None, l=l,
        max_suppressed_fraction=1.0,
    )
    assert result.column("row").to_pylist() == kept  # same rows, original order
    assert result.schema == table.schema
    assert report.rows_in == len(rows)
    assert report.rows_out == len(kept)
    assert report.rows_suppressed == len(rows) - len(kept)
    assert report.classes == len(sizes)
    kept_sizes = Counter((rows[i][0], rows[i][1]) for i in kept)
    assert report.classes_suppressed == len(sizes) - len(kept_sizes)
    assert report.smallest_class == (min(kept_sizes.values()) if kept_sizes else None)
    assert all(size >= k for size in kept_sizes.values())


@settings(max_examples=60, deadline=None)
@given(rows=ROWS, k=st.integers(2, 6))
def test_class_sizes_match_duckdb_group_by(rows: list[tuple[Any, ...]], k: int) -> None:
    table = table_of(rows)
    result, report = anonymise(table, ["area", "age"], k, max_suppressed_fraction=1.0)
    with duckdb.connect() as con:
        con.register("t", table)
        # GROUP BY puts NULLs in one group, like anonymise.
        small = con.execute(
            "SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM t GROUP BY area, age) "
            "WHERE n < ?", [k]
        ).fetchone()
        classes = con.execute(
            "SELECT count(*) FROM (SELECT 1 FROM t GROUP BY area, age)"
        ).fetchone()
    assert small is not None
    assert classes is not None
    assert report.rows_suppressed == small[0]
    assert report.classes == classes[0]
    assert result.num_rows == len(rows) - small[0]


def test_nulls_are_one_value() -> None:
    rows = [(None, None, "flu")] * 3 + [("a", None, "flu")] * 2
    result, report = anonymise(table_of(rows), ["area", "age"], 3, max_suppressed_fraction=0.5)
    assert result.column("row").to_pylist() == [0, 1, 2]
    assert report.classes == 2
    assert report.smallest_class == 3


def test_l_diversity_suppresses_homogeneous_classes() -> None:
    rows = [("a", 1, "flu")] * 5 + [("b", 1, "flu"), ("b", 1, "cold"), ("b", 1, None)] * 2
    result, report = anonymise(
        table_of(rows), ["area", "age"], 2, sensitive="illness", l=2, max_suppressed_fraction=0.5
    )
    assert set(result.column("area").to_pylist()) == {"b"}
    assert report.rows_suppressed == 5
    assert report.least_diversity == 3  # null counts as a sensitive value


def test_nothing_suppressed_returns_the_table() -> None:
    table = table_of([("a", 1, "x")] * 4)
    result, report = anonymise(table, ["area"], 4)
    assert result.equals(table)
    assert report.rows_suppressed == 0
    assert report.as_dict()["suppressed_fraction"] == 0


def test_empty_table() -> None:
    result, report = anonymise(table_of([]), ["area", "age"], 5, sensitive="illness", l=2)
    assert result.num_rows == 0
    assert report.as_dict()["rows_in"] == 0
    assert report.smallest_class is None


def test_refused_over_the_bound_with_a_report_of_counts_only() -> None:
    rows = [("SW1A 1AA", 1, "hiv")] + [("b", 1, "flu")] * 9
    with pytest.raises(AnonymityRefused) as caught:
        anonymise(table_of(rows), ["area", "age"], 2)  # 1 of 10 > 5 %
    error = caught.value
    assert error.status == 422
    assert error.report.rows_suppressed == 1
    text = error.one_line() + json.dumps(error.report.as_dict())
    for value in ("SW1A", "hiv", "flu"):
        assert value not in text
    # at the bound exactly is allowed
    _, report = anonymise(table_of(rows), ["area", "age"], 2, max_suppressed_fraction=0.1)
    assert report.rows_out == 9


def test_report_as_dict() -> None:
    rows = [("a", 1, "flu"), ("a", 1, "cold"), ("b", 2, "flu")]
    _, report = anonymise(
        table_of(rows), ["area", "age"], 2, sensitive="illness", l=2,
        max_suppressed_fraction=0.5,
    )
    assert report.as_dict() == {
        "quasi_identifiers": ["area", "age"], "k": 2, "sensitive": "illness", "l": 2,
        "max_suppressed_fraction": 0.5, "rows_in": 3, "rows_out": 2, "rows_suppressed": 1,
        "suppressed_fraction": round(1 / 3, 6), "classes": 2, "classes_kept": 1,
        "classes_suppressed": 1, "smallest_class": 2, "least_diversity": 2,
    }


def test_column_names_cannot_clash_with_internal_names() -> None:
    table = pa.table({"row": ["a", "a", "b"], "count_all": [1, 1, 1],
                      "sensitive": ["x", "y", "x"]})
    result, report = anonymise(
        table, ["row", "count_all"], 2, sensitive="sensitive", l=2, max_suppressed_fraction=0.5
    )
    assert result.column("row").to_pylist() == ["a", "a"]
    assert report.least_diversity == 2


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"k": 1}, "k must"),
        ({"k": 0}, "k must"),
        ({"k": -5}, "k must"),
        ({"k": 2.5}, "k must"),
        ({"k": True}, "k must"),
        ({"k": 5, "quasi": []}, "at least one"),
        ({"k": 5, "quasi": ["area", "area"]}, "twice"),
        ({"k": 5, "quasi": ["nope"]}, "'nope'"),
        ({"k": 5, "sensitive": "nope"}, "'nope'"),
        ({"k": 5, "sensitive": "area"}, "also be a quasi"),
        ({"k": 5, "l": 2}, "needs a sensitive"),
        ({"k": 5, "sensitive": "illness", "l": 1}, "l must"),
        ({"k": 5, "max_suppressed_fraction": 1.5}, "fraction"),
        ({"k": 5, "max_suppressed_fraction": -0.1}, "fraction"),
    ],
)
def test_bad_parameters_refused(kwargs: dict[str, Any], words: str) -> None:
    arguments: dict[str, Any] = {"quasi": ["area"], **kwargs}
    with pytest.raises(AnonymityInvalid) as caught:
        anonymise(table_of([("a", 1, "x")] * 10), **arguments)
    assert caught.value.status == 422
    assert words in caught.value.detail
