"""An independent Python reading of the selection language, to check the SQL against.

Written from the language's description, not from the compiler: a condition on a
missing value is false (except is_null), ``not`` is the complement, and day-level
operators on timestamps compare the timestamp's calendar day.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable

from tests.unit.analysis.support import SCHEMA, Row

Evaluate = Callable[[Row], bool]


def months_back(today: dt.date, months: int) -> dt.date:
    """Step back month by month, then pull the day in until the date exists."""
    year, month = today.year, today.month
    for _ in range(months):
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    day = today.day
    while True:
        try:
            return dt.date(year, month, day)
        except ValueError:
            day -= 1


def _value(column_type: str, value: object) -> object:
    if column_type == "date":
        assert isinstance(value, str)
        return dt.date.fromisoformat(value)
    if column_type == "timestamp":
        assert isinstance(value, str)
        return dt.datetime.fromisoformat(value)
    return value


def _period_start(today: dt.date, period: dict[str, int]) -> dt.date:
    ((unit, amount),) = period.items()
    if unit == "days":
        return today - dt.timedelta(days=amount)
    return months_back(today, amount * (12 if unit == "years" else 1))


def _day(x: object) -> dt.date:
    return x.date() if isinstance(x, dt.datetime) else x


def _leaf(x: object, column_type: str, op: str, value: object, today: dt.date) -> bool:
    if op == "is_null":
        return x is None
    if op == "not_null":
        return x is not None
    if x is None:
        return False
    if op in ("before", "after", "on", "within_last"):
        day = _day(x)
        if op == "within_last":
            assert isinstance(value, dict)
            return _period_start(today, value) <= day <= today
        assert isinstance(value, str)
        target = dt.date.fromisoformat(value)
        return {"before": day < target, "after": day > target, "on": day == target}[op]
    if op in ("in", "not_in"):
        assert isinstance(value, list)
        found = any(x == _value(column_type, item) for item in value)
        return found if op == "in" else not found
    if op == "between":
        assert isinstance(value, list)
        low, high = (_value(column_type, item) for item in value)
        return low <= x <= high
    if op == "contains":
        return str(value) in str(x)
    if op == "starts_with":
        return str(x).startswith(str(value))
    y = _value(column_type, value)
    if column_type == "timestamp" and not isinstance(y, dt.datetime):
        y = dt.datetime.combine(y, dt.time())
    return {
        "eq": x == y,
        "ne": x != y,
        "lt": x < y,
        "le": x <= y,
        "gt": x > y,
        "ge": x >= y,
    }[op]


class Evaluator:
    """Evaluate selections over generated rows, with linked rows found by a plain index."""

    def __init__(self, rows: dict[str, list[Row]], today: dt.date) -> None:
        self.rows = rows
        self.today = today
        self._index: dict[tuple[str, str], dict[object, list[Row]]] = {}

    def index(self, dataset: str, column: str) -> dict[object, list[Row]]:
        key = (dataset, column)
        if key not in self._index:
            groups: dict[object, list[Row]] = defaultdict(list)
            for row in self.rows[dataset]:
                if row[column] is not None:
                    groups[row[column]].append(row)
            self._index[key] = groups
        return self._index[key]

    def matches(self, selection: dict[str, object], dataset: str, row: Row) -> bool:
        """Whether one row of ``dataset`` is selected."""
        if "and" in selection:
            return all(self.matches(c, dataset, row) for c in selection["and"])
        if "or" in selection:
            return any(self.matches(c, dataset, row) for c in selection["or"])
        if "not" in selection:
            return not self.matches(selection["not"], dataset, row)
        if "linked" in selection:
            link: dict[str, object] = selection["linked"]
            other = str(link["dataset"])
            key = SCHEMA.datasets[dataset].key
            on: dict[str, str] = link.get("on") or {"base": key, "other": key}
            if row[on["base"]] is None:
                return False
            where = link.get("where")
            hits = sum(
                1
                for linked in self.index(other, on["other"]).get(row[on["base"]], [])
                if where is None or self.matches(where, other, linked)
            )
            return hits >= int(link.get("min_count", 1))
        name = str(selection["field"])
        column_type = SCHEMA.datasets[dataset].columns[name]
        return _leaf(
            row[name], column_type, str(selection["op"]), selection.get("value"), self.today
        )

    def select(self, selection: dict[str, object], dataset: str = "customers") -> list[object]:
        """The keys of the selected rows, in key order."""
        key = SCHEMA.datasets[dataset].key
        return sorted(r[key] for r in self.rows[dataset] if self.matches(selection, dataset, r))
