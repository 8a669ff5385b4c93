"""Turning JSON values into the Python values bound as DuckDB parameters.

Every check names the place, the field and the operator, and describes a wrong
value by its JSON kind ("a number", "a list"), never by its content.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re
from typing import Literal

from strongroom.analysis.errors import InvalidSelection

ColumnType = Literal["integer", "float", "text", "date", "timestamp", "boolean"]
COLUMN_TYPES: frozenset[str] = frozenset(
    {"integer", "float", "text", "date", "timestamp", "boolean"}
)
NUMERIC: frozenset[str] = frozenset({"integer", "float"})
TEMPORAL: frozenset[str] = frozenset({"date", "timestamp"})

MAX_TEXT_CHARS = 4096
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_PERIOD = {"days": 36_600, "months": 1_200, "years": 100}

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?")
_SAFE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def shown(name: object) -> str:
    """A client-sent name quoted for an error message, or a placeholder if it looks unsafe."""
    if isinstance(name, str) and _SAFE_NAME.fullmatch(name):
        return f'"{name}"'
    return "(name not shown)"


def json_kind(value: object) -> str:
    """The JSON kind of a value, for messages that must not echo the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "an unsupported value"


def _need(ctx: str, column_type: str, wanted: str, value: object) -> InvalidSelection:
    return InvalidSelection(
        f"{ctx}: the field is of type {column_type} and needs {wanted}, not {json_kind(value)}"
    )


def scalar(value: object, column_type: str, ctx: str) -> object:
    """Check one JSON value against a column type and return the value to bind."""
    if value is None:
        raise InvalidSelection(f"{ctx}: null is not a value to compare with; use is_null")
    if column_type in NUMERIC:
        return number(value, column_type, ctx)
    if column_type == "text":
        if not isinstance(value, str):
            raise _need(ctx, column_type, "a string", value)
        if len(value) > MAX_TEXT_CHARS:
            raise InvalidSelection(f"{ctx}: text values are limited to {MAX_TEXT_CHARS} characters")
        return value
    if column_type == "boolean":
        if not isinstance(value, bool):
            raise _need(ctx, column_type, "true or false", value)
        return value
    if column_type == "date":
        return date_value(value, ctx, column_type)
    return timestamp_value(value, ctx)


def number(value: object, column_type: str, ctx: str) -> int | float:
    """Check a JSON number: not a boolean, finite, and within 64-bit integers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _need(ctx, column_type, "a number", value)
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise InvalidSelection(f"{ctx}: the number is outside the 64-bit integer range")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidSelection(f"{ctx}: the number must be finite")
    return value


def date_value(value: object, ctx: str, column_type: str = "date") -> dt.date:
    """Parse an ISO calendar date ``YYYY-MM-DD``."""
    if not isinstance(value, str):
        raise _need(ctx, column_type, "an ISO date string (YYYY-MM-DD)", value)
    if not _DATE.fullmatch(value):
        raise InvalidSelection(f"{ctx}: dates are written YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidSelection(f"{ctx}: the date does not exist in the calendar") from None


def timestamp_value(value: object, ctx: str) -> dt.datetime:
    """Parse an ISO date or local date-time (no time zone offset)."""
    if not isinstance(value, str):
        raise _need(ctx, "timestamp", "an ISO timestamp string", value)
    if not _TIMESTAMP.fullmatch(value):
        raise InvalidSelection(
            f"{ctx}: timestamps are written YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS[.ffffff]]"
        )
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidSelection(f"{ctx}: the timestamp does not exist in the calendar") from None


def midnight(day: dt.date) -> dt.datetime:
    """The first instant of a day, as a naive timestamp like DuckDB's TIMESTAMP."""
    return dt.datetime.combine(day, dt.time())


def next_day(day: dt.date, ctx: str) -> dt.date:
    """The following day, with the calendar's end reported as bad input."""
    try:
        return day + dt.timedelta(days=1)
    except OverflowError:
        raise InvalidSelection(f"{ctx}: the date is at the end of the calendar") from None


def period_start(today: dt.date, period: object, ctx: str) -> dt.date:
    """The first day of a relative period ``{"days"|"months"|"years": n}`` ending today.

    Months and years keep the day of the month, clamped to the month's last day
    (31 March minus one month is 28 or 29 February).
    """
    if not isinstance(period, dict) or len(period) != 1:
        raise InvalidSelection(
            f'{ctx}: the value must be an object with one of "days", "months" or "years"'
        )
    ((unit, amount),) = period.items()
    if unit not in MAX_PERIOD:
        raise InvalidSelection(f'{ctx}: the period unit must be "days", "months" or "years"')
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidSelection(f"{ctx}: the number of {unit} must be a whole number")
    if not 0 <= amount <= MAX_PERIOD[unit]:
        raise InvalidSelection(f"{ctx}: the number of {unit} must be 0 to {MAX_PERIOD[unit]}")
    try:
        if unit == "days":
            return today - dt.timedelta(days=amount)
        months = today.year * 12 + (today.month - 1) - amount * (12 if unit == "years" else 1)
        year, month = divmod(months, 12)
        month += 1
        day = min(today.day, calendar.monthrange(year, month)[1])
        return dt.date(year, month, day)
    except (OverflowError, ValueError):
        raise InvalidSelection(f"{ctx}: the period reaches before the calendar starts") from None
