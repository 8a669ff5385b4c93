"""Column transforms: outputs and declared types per kind, and every bad spec refused by name."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.datasets.build import ColumnType
from strongroom.privacy.errors import TransformInvalid
from strongroom.privacy.keys import PrivacyKeys
from strongroom.privacy.transforms import ColumnPlan, compile_transforms

COLUMNS = {
    "email": ColumnType.TEXT,
    "postcode": ColumnType.TEXT,
    "name": ColumnType.TEXT,
    "age": ColumnType.INTEGER,
    "income": ColumnType.FLOAT,
    "born": ColumnType.DATE,
    "seen": ColumnType.TIMESTAMP,
    "active": ColumnType.BOOLEAN,
}
# Dataset timestamps are naive (UTC by convention), like the column type.
NAIVE = dt.datetime(2020, 1, 2, 3, 4, tzinfo=dt.UTC).replace(tzinfo=None)


def batch(**arrays: pa.Array) -> pa.RecordBatch:
    return pa.record_batch(arrays)


def one(column: str, transform: dict[str, Any] | None) -> ColumnPlan:
    spec: dict[str, Any] = {"name": column}
    if transform is not None:
        spec["transform"] = transform
    return compile_transforms([spec], COLUMNS)


def run(column: str, transform: dict[str, Any], values: list[Any], arrow_type: pa.DataType,
        keys: PrivacyKeys | None = None) -> list[Any]:
    plan = one(column, transform)
    out = plan.apply(batch(**{column: pa.array(values, arrow_type)}), keys)
    assert out.schema == plan.output_schema
    return out.column(0).to_pylist()


# -- outputs --------------------------------------------------------------------------------


def test_plan_selects_orders_and_declares_types(known_keys: PrivacyKeys) -> None:
    plan = compile_transforms(
        [
            {"name": "age", "transform": {"kind": "generalise", "band": 10}},
            {"name": "email", "transform": {"kind": "pseudonym"}},
            {"name": "name", "transform": {"kind": "drop"}},
            {"name": "active"},
            {"name": "born", "transform": {"kind": "generalise", "to": "year"}},
        ],
        COLUMNS,
    )
    assert plan.output_columns == ["age", "email", "active", "born"]
    assert plan.output_schema == pa.schema(
        [("age", pa.string()), ("email", pa.string()), ("active", pa.bool_()),
         ("born", pa.int64())]
    )
    assert plan.needs_keys
    source = batch(
        name=pa.array(["Alice Smith"]), active=pa.array([True]),
        born=pa.array([dt.date(1990, 5, 17)]), email=pa.array(["alice@example.com"]),
        age=pa.array([34], pa.int64()), extra=pa.array([1]),
    )
    out = plan.apply(source, known_keys)
    assert out.to_pylist() == [{
        "age": "30-39", "email": known_keys.pseudonym("alice@example.com"), "active": True,
        "born": 1990,
    }]


def test_describe_names_columns_and_kinds_only() -> None:
    plan = compile_transforms(
        [
            {"name": "email", "transform": {"kind": "mask", "keep_last": 4}},
            {"name": "name", "transform": {"kind": "drop"}},
            {"name": "income", "transform": {"kind": "generalise", "edges": [0, 10_000]}},
        ],
        COLUMNS,
    )
    assert plan.describe() == [
        {"column": "email", "kind": "mask",
         "params": {"keep_first": 0, "keep_last": 4, "char": "*"}},
        {"column": "income", "kind": "generalise", "params": {"edges": [0, 10_000]}},
        {"column": "name", "kind": "drop", "params": {}},
    ]


def test_keep_passes_every_type_through() -> None:
    values = {
        "email": (["a", None], pa.string()), "age": ([1, None], pa.int64()),
        "income": ([1.5, None], pa.float64()), "born": ([dt.date(2020, 1, 2), None], pa.date32()),
        "seen": ([NAIVE, None], pa.timestamp("us")),
        "active": ([False, None], pa.bool_()),
    }
    for column, (data, arrow_type) in values.items():
        assert run(column, {"kind": "keep"}, data, arrow_type) == data


@pytest.mark.parametrize(
    ("params", "values", "expected"),
    [
        ({}, ["secret", "", None], ["******", "", None]),
        ({"keep_first": 2}, ["secret", "ab", "a"], ["se****", "**", "*"]),
        ({"keep_last": 4}, ["4111111111111111"], ["************1111"]),
        ({"keep_first": 1, "keep_last": 1, "char": "#"}, ["abcde", "ab", "abc"],
         ["a###e", "##", "a#c"]),
        ({"keep_first": 1}, ["éèêë", "日本語"], ["é***", "日**"]),
    ],
)
def test_mask(params: dict[str, Any], values: list[Any], expected: list[Any]) -> None:
    assert run("name", {"kind": "mask", **params}, values, pa.string()) == expected


def _python_mask(value: str, first: int, last: int, char: str) -> str:
    if len(value) <= first + last:
        return char * len(value)
    return value[:first] + char * (len(value) - first - last) + value[len(value) - last:]


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.text(max_size=12)), max_size=30),
    first=st.integers(0, 5), last=st.integers(0, 5),
)
def test_mask_matches_a_plain_python_mask(values: list[str | None], first: int, last: int) -> None:
    got = run("name", {"kind": "mask", "keep_first": first, "keep_last": last}, values,
              pa.string())
    assert got == [None if v is None else _python_mask(v, first, last, "*") for v in values]


def test_pseudonym_text_and_integer_join(known_keys: PrivacyKeys) -> None:
    text = run("email", {"kind": "pseudonym"}, ["42", "x", None, "x"], pa.string(), known_keys)
    number = run("age", {"kind": "pseudonym"}, [42, None], pa.int64(), known_keys)
    assert text[0] == number[0] == known_keys.pseudonym("42")
    assert text[1] == text[3] == known_keys.pseudonym("x")
    assert text[2] is None
    assert number[1] is None


def test_token_round_trip_through_a_batch(known_keys: PrivacyKeys) -> None:
    values = ["alice@example.com", None, "bob@example.org", "alice@example.com"]
    tokens = run("email", {"kind": "token"}, values, pa.string(), known_keys)
    assert tokens[0] == tokens[3]
    assert [None if t is None else known_keys.reverse(t) for t in tokens] == values
    numbers = run("age", {"kind": "token"}, [7, -1], pa.int64(), known_keys)
    assert [known_keys.reverse(t) for t in numbers] == ["7", "-1"]


def test_keyed_plan_needs_keys() -> None:
    plan = one("email", {"kind": "token"})
    with pytest.raises(ValueError, match="keys"):
        plan.apply(batch(email=pa.array(["a"])))
    assert not one("email", {"kind": "mask"}).needs_keys


def test_generalise_dates_and_timestamps() -> None:
    dates = [dt.date(2024, 3, 31), None, dt.date(1999, 12, 1)]
    assert run("born", {"kind": "generalise", "to": "month"}, dates, pa.date32()) == [
        "2024-03", None, "1999-12"
    ]
    assert run("born", {"kind": "generalise", "to": "year"}, dates, pa.date32()) == [
        2024, None, 1999
    ]
    stamps = [dt.datetime(2024, 3, 31, 23, 59, 59, tzinfo=dt.UTC).replace(tzinfo=None), None]
    assert run("seen", {"kind": "generalise", "to": "month"}, stamps, pa.timestamp("us")) == [
        "2024-03", None
    ]
    assert run("seen", {"kind": "generalise", "to": "year"}, stamps, pa.timestamp("us")) == [
        2024, None
    ]


def test_integer_bands() -> None:
    got = run("age", {"kind": "generalise", "band": 10}, [0, 9, 10, 39, -1, -10, -11, None],
              pa.int64())
    assert got == ["0-9", "0-9", "10-19", "30-39", "-10--1", "-10--1", "-20--11", None]
    assert run("age", {"kind": "generalise", "band": 1}, [5], pa.int64()) == ["5-5"]


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.integers(-(10**15), 10**15)), max_size=40),
    width=st.integers(1, 10**6),
)
def test_integer_bands_match_python_floor_division(values: list[int | None], width: int) -> None:
    got = run("age", {"kind": "generalise", "band": width}, values, pa.int64())
    expected = [
        None if v is None else f"{(v // width) * width}-{(v // width) * width + width - 1}"
        for v in values
    ]
    assert got == expected


def test_integer_band_overflow_refused_by_name() -> None:
    with pytest.raises(TransformInvalid, match="'age'"):
        run("age", {"kind": "generalise", "band": 10}, [2**63 - 1], pa.int64())


def test_float_bands() -> None:
    got = run("income", {"kind": "generalise", "band": 10_000},
              [0.0, 9999.99, 25_000.0, -0.5, math.nan, math.inf, None], pa.float64())
    assert got == ["[0,10000)", "[0,10000)", "[20000,30000)", "[-10000,0)", None, None, None]
    assert run("income", {"kind": "generalise", "band": 0.5}, [1.2], pa.float64()) == ["[1,1.5)"]


def test_edges() -> None:
    edges = {"kind": "generalise", "edges": [18, 30, 65]}
    got = run("age", edges, [0, 17, 18, 29, 30, 64, 65, 120, None], pa.int64())
    assert got == ["<18", "<18", "[18,30)", "[18,30)", "[30,65)", "[30,65)", ">=65", ">=65",
                   None]
    got = run("income", {"kind": "generalise", "edges": [0, 2.5]},
              [-math.inf, 0.0, 2.4999, 2.5, math.inf, math.nan, None], pa.float64())
    assert got == ["<0", "[0,2.5)", "[0,2.5)", ">=2.5", ">=2.5", None, None]


@pytest.mark.parametrize(
    ("value", "outward"),
    [
        ("SW1A 1AA", "SW1A"), ("sw1a1aa", "SW1A"), ("  ec1a  1bb ", "EC1A"), ("M1 1AE", "M1"),
        ("B33 8TH", "B33"), ("CR2 6XH", "CR2"), ("DN55 1PT", "DN55"), ("W1A 0AX", "W1A"),
        ("GIR 0AA", "GIR"), ("SW1A", None), ("1AA", None), ("QA1 1AA", None),
        ("SW1A 1AAA", None), ("SW1A-1AA", None), ("", None), ("not a postcode", None),
        ("SW1A 1CA", None),  # C is not used in inward codes
        (None, None),
    ],
)
def test_postcode_outward(value: str | None, outward: str | None) -> None:
    assert run("postcode", {"kind": "generalise", "to": "postcode_outward"}, [value],
               pa.string()) == [outward]


@pytest.mark.parametrize(
    ("value", "domain"),
    [
        ("Alice@Example.COM", "example.com"), (" bob@mail.example.org ", "mail.example.org"),
        ('"odd@local"@example.net', "example.net"), ("no-at-sign", None), ("x@localhost", None),
        ("x@", None), ("@example.com", None), ("x@-bad.com", None), ("x@exa mple.com", None),
        (None, None),
    ],
)
def test_email_domain(value: str | None, domain: str | None) -> None:
    assert run("email", {"kind": "generalise", "to": "email_domain"}, [value],
               pa.string()) == [domain]


def test_empty_batch() -> None:
    plan = one("age", {"kind": "generalise", "band": 5})
    out = plan.apply(batch(age=pa.array([], pa.int64())))
    assert out.num_rows == 0
    assert out.schema == plan.output_schema


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("specs", "column", "transform", "words"),
    [
        ([{"name": "nope", "transform": {"kind": "keep"}}], "nope", "keep", "not in the dataset"),
        ([{"name": "email", "transform": {"kind": "encrypt"}}], "email", "encrypt",
         "unknown transform"),
        ([{"name": "email", "transform": {}}], None, None, None),  # {} means keep: accepted
        ([{"name": "email", "transform": {"kind": "keep", "x": 1}}], "email", "keep",
         "unknown parameters"),
        ([{"name": "email", "transform": {"kind": "mask", "keep": 2}}], "email", "mask",
         "unknown parameters"),
        ([{"name": "age", "transform": {"kind": "mask"}}], "age", "mask", "integer column"),
        ([{"name": "born", "transform": {"kind": "pseudonym"}}], "born", "pseudonym",
         "date column"),
        ([{"name": "active", "transform": {"kind": "token"}}], "active", "token",
         "boolean column"),
        ([{"name": "email", "transform": {"kind": "generalise", "to": "month"}}], "email",
         "generalise", "text column"),
        ([{"name": "born", "transform": {"kind": "generalise", "to": "postcode_outward"}}],
         "born", "generalise", "date column"),
        ([{"name": "email", "transform": {"kind": "generalise", "band": 5}}], "email",
         "generalise", "text column"),
        ([{"name": "age", "transform": {"kind": "generalise", "to": "week"}}], "age",
         "generalise", "to must be"),
        ([{"name": "age", "transform": {"kind": "generalise"}}], "age", "generalise",
         "exactly one"),
        ([{"name": "age", "transform": {"kind": "generalise", "band": 5, "edges": [1]}}], "age",
         "generalise", "exactly one"),
        ([{"name": "age", "transform": {"kind": "generalise", "band": 0}}], "age",
         "generalise", "above 0"),
        ([{"name": "age", "transform": {"kind": "generalise", "band": 2.5}}], "age",
         "generalise", "whole number"),
        # Found in review: each of these was a 500 (TypeError, OverflowError) before.
        ([{"name": "born", "transform": {"kind": "generalise", "to": ["month"]}}], "born",
         "generalise", "to must be"),
        ([{"name": "age", "transform": {"kind": "generalise", "band": 10**20}}], "age",
         "generalise", "whole number"),
        ([{"name": "age", "transform": {"kind": "generalise", "edges": [10**400]}}], "age",
         "generalise", "numbers"),
        ([{"name": "age", "transform": {"kind": "generalise", "edges": [1, 10**20]}}], "age",
         "generalise", "numbers"),
        ([{"name": "age", "transform": {"kind": "generalise", "band": True}}], "age",
         "generalise", "whole number"),
        ([{"name": "income", "transform": {"kind": "generalise", "band": math.inf}}], "income",
         "generalise", "above 0"),
        ([{"name": "age", "transform": {"kind": "generalise", "edges": [5, 5]}}], "age",
         "generalise", "increasing"),
        ([{"name": "age", "transform": {"kind": "generalise", "edges": []}}], "age",
         "generalise", "list of"),
        ([{"name": "age", "transform": {"kind": "generalise", "edges": ["1"]}}], "age",
         "generalise", "list of"),
        ([{"name": "name", "transform": {"kind": "mask", "keep_first": -1}}], "name", "mask",
         "keep_first"),
        ([{"name": "name", "transform": {"kind": "mask", "char": "**"}}], "name", "mask",
         "char"),
        ([{"name": "name", "transform": {"kind": "mask", "char": "\n"}}], "name", "mask",
         "char"),
        ([{"name": "name"}, {"name": "name", "transform": {"kind": "mask"}}], "name", "mask",
         "twice"),
        ([{"name": "name", "transform": {"kind": "drop"}}], None, None, "every column"),
        ([], None, None, "at least one"),
        ([{"transform": {"kind": "keep"}}], None, None, "no name"),
        (["email"], None, None, "must be an object"),
        ([{"name": "email", "transform": "keep"}], "email", None, "must be an object"),
        ([{"name": "email", "colour": "red"}], "email", None, "unknown fields"),
    ],
)
def test_bad_specs_refused_naming_column_and_transform(
    specs: list[Any], column: str | None, transform: str | None, words: str | None
) -> None:
    if words is None:
        compile_transforms(specs, COLUMNS)
        return
    with pytest.raises(TransformInvalid) as caught:
        compile_transforms(specs, COLUMNS)
    error = caught.value
    assert error.status == 422
    assert words in error.one_line()
    assert error.column == column
    if transform is not None:
        assert error.transform == transform
        assert transform in error.detail
    if column is not None:
        assert repr(column) in error.detail


def test_equivalent_source_encodings_accepted(known_keys: PrivacyKeys) -> None:
    """Query engines may hand over large strings, dictionaries or zoned timestamps."""
    plan = compile_transforms(
        [
            {"name": "email", "transform": {"kind": "pseudonym"}},
            {"name": "name", "transform": {"kind": "mask", "keep_first": 1}},
            {"name": "postcode"},
            {"name": "seen", "transform": {"kind": "generalise", "to": "month"}},
        ],
        COLUMNS,
    )
    source = batch(
        email=pa.array(["a@b.example"], pa.large_string()),
        name=pa.array(["Zed"]).dictionary_encode(),
        postcode=pa.array(["SW1A 1AA"], pa.large_string()),
        seen=pa.array([dt.datetime(2024, 1, 31, 23, 0, tzinfo=dt.UTC)], pa.timestamp("us", "UTC")),
    )
    out = plan.apply(source, known_keys)
    assert out.schema == plan.output_schema
    assert out.to_pylist() == [{
        "email": known_keys.pseudonym("a@b.example"), "name": "Z**", "postcode": "SW1A 1AA",
        "seen": "2024-01",
    }]
