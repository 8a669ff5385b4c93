"""Random selections: the compiled SQL agrees with the Python evaluator on every one."""

from __future__ import annotations

import datetime as dt
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.analysis.helpers import python_keys, sql_keys
from tests.unit.analysis.support import REGIONS, TRICKY, Data

Strategy = st.SearchStrategy[dict[str, object]]

_dates = st.dates(dt.date(2015, 1, 1), dt.date(2024, 6, 30)).map(str)
_stamps = st.datetimes(
    dt.datetime.fromisoformat("2022-01-01"), dt.datetime.fromisoformat("2024-06-30")
).map(lambda d: d.isoformat(timespec="seconds"))
_texts = st.one_of(
    st.sampled_from([*TRICKY, *REGIONS, "cust", "cust01", "%", "_", ""]),
    st.text(alphabet="cust0123456789%_'\\\"", max_size=8),
)
_period = st.one_of(
    st.builds(lambda n: {"days": n}, st.integers(0, 1000)),
    st.builds(lambda n: {"months": n}, st.integers(0, 40)),
    st.builds(lambda n: {"years": n}, st.integers(0, 5)),
)
_ORDER = ["eq", "ne", "lt", "le", "gt", "ge"]


def _ordered(field: str, values: st.SearchStrategy[object]) -> Strategy:
    return st.one_of(
        st.builds(
            lambda op, v: {"field": field, "op": op, "value": v}, st.sampled_from(_ORDER), values
        ),
        st.builds(
            lambda op, vs: {"field": field, "op": op, "value": vs},
            st.sampled_from(["in", "not_in"]),
            st.lists(values, min_size=1, max_size=5),
        ),
        st.builds(
            lambda a, b: {"field": field, "op": "between", "value": sorted([a, b])}, values, values
        ),
        st.builds(lambda op: {"field": field, "op": op}, st.sampled_from(["is_null", "not_null"])),
    )


def _temporal(field: str) -> Strategy:
    return st.one_of(
        st.builds(
            lambda op, v: {"field": field, "op": op, "value": v},
            st.sampled_from(["before", "after", "on"]),
            _dates,
        ),
        st.builds(lambda p: {"field": field, "op": "within_last", "value": p}, _period),
    )


_CUSTOMER_LEAVES = st.one_of(
    _ordered("age", st.integers(10, 100)),
    _ordered("spend", st.floats(-100, 5100, allow_nan=False).map(lambda x: round(x, 2))),
    _ordered("region", st.sampled_from(REGIONS)),
    _ordered("name", _texts),
    _ordered("joined", _dates),
    _ordered("last_seen", _stamps),
    _temporal("joined"),
    _temporal("last_seen"),
    st.builds(
        lambda op, f, v: {"field": f, "op": op, "value": v},
        st.sampled_from(["contains", "starts_with"]),
        st.sampled_from(["name", "region"]),
        _texts,
    ),
    st.builds(
        lambda op, v: {"field": "active", "op": op, "value": v},
        st.sampled_from(["eq", "ne"]),
        st.booleans(),
    ),
)
_TXN_LEAVES = st.one_of(
    _ordered("amount", st.floats(0, 520, allow_nan=False).map(lambda x: round(x, 1))),
    _ordered("kind", st.sampled_from(["card", "cash", "transfer"])),
    _ordered("at", _stamps),
    _temporal("at"),
)


def _tree(leaves: Strategy) -> Strategy:
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.builds(lambda cs: {"and": cs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda cs: {"or": cs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda c: {"not": c}, inner),
        ),
        max_leaves=6,
    )


_LINKED = st.builds(
    lambda where, n: {"linked": {"dataset": "transactions", "where": where, "min_count": n}},
    st.one_of(st.none(), _tree(_TXN_LEAVES)),
    st.integers(1, 4),
)
SELECTIONS = _tree(st.one_of(_CUSTOMER_LEAVES, _LINKED))

_SETTINGS = settings(
    max_examples=int(os.environ.get("ANALYSIS_EXAMPLES", "300")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@_SETTINGS
@given(selection=SELECTIONS)
def test_random_selection_matches_python(data: Data, selection: dict[str, object]) -> None:
    assert sql_keys(data, selection) == python_keys(data, selection)
