"""k-anonymity and l-diversity by suppression, with a report that holds only counts.

Rows are grouped into equivalence classes by their quasi-identifier values (a null
is a value like any other, so all rows with a null there share a class; NaN is one
value too). A class smaller than k is suppressed whole; with a sensitive column and
l, so is a class with fewer than l distinct sensitive values (null counts as one).
Suppressing more than ``max_suppressed_fraction`` of the rows is refused rather
than done: the export would say little, and what is left might mislead.

Quasi-identifiers should already be generalised (bands, months, outward codes):
suppression is the last resort, not the way to reach k.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from strongroom.privacy.errors import AnonymityInvalid, AnonymityRefused

_ROW = "row"
_SENSITIVE = "sensitive"
_COUNT = "count_all"


@dataclasses.dataclass(frozen=True)
class AnonymityReport:
    """What anonymise did. Counts and column names only: safe for the audit and the user."""

    quasi_identifiers: tuple[str, ...]
    k: int
    sensitive: str | None
    l: int | None  # noqa: E741 (the l of l-diversity)
    max_suppressed_fraction: float
    rows_in: int
    rows_out: int
    rows_suppressed: int
    classes: int  # equivalence classes before suppression
    classes_suppressed: int
    smallest_class: int | None  # after suppression; None when no rows are left
    least_diversity: int | None  # distinct sensitive values in the least diverse class kept

    @property
    def suppressed_fraction(self) -> float:
        return self.rows_suppressed / self.rows_in if self.rows_in else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "quasi_identifiers": list(self.quasi_identifiers),
            "k": self.k,
            "sensitive": self.sensitive,
            "l": self.l,
            "max_suppressed_fraction": self.max_suppressed_fraction,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rows_suppressed": self.rows_suppressed,
            "suppressed_fraction": round(self.suppressed_fraction, 6),
            "classes": self.classes,
            "classes_kept": self.classes - self.classes_suppressed,
            "classes_suppressed": self.classes_suppressed,
            "smallest_class": self.smallest_class,
            "least_diversity": self.least_diversity,
        }


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(
    table: pa.Table, quasi: Sequence[str], k: object, sensitive: str | None, l: object,  # noqa: E741
    max_suppressed_fraction: object,
) -> None:
    if not _is_int(k) or k < 2:  # type: ignore[operator]
        raise AnonymityInvalid("k must be a whole number of at least 2")
    if isinstance(quasi, str) or not quasi:
        raise AnonymityInvalid("choose at least one quasi-identifier column")
    if len(set(quasi)) != len(quasi):
        raise AnonymityInvalid("a quasi-identifier is listed twice")
    names = set(table.column_names)
    for column in quasi:
        if column not in names:
            raise AnonymityInvalid(f"quasi-identifier {str(column)[:100]!r} is not exported")
    if sensitive is not None:
        if sensitive not in names:
            raise AnonymityInvalid(f"sensitive column {str(sensitive)[:100]!r} is not exported")
        if sensitive in quasi:
            raise AnonymityInvalid("the sensitive column cannot also be a quasi-identifier")
    if l is not None:
        if sensitive is None:
            raise AnonymityInvalid("l-diversity needs a sensitive column")
        if not _is_int(l) or l < 2:  # type: ignore[operator]
            raise AnonymityInvalid("l must be a whole number of at least 2")
    if (
        isinstance(max_suppressed_fraction, bool)
        or not isinstance(max_suppressed_fraction, int | float)
        or not 0 <= max_suppressed_fraction <= 1
    ):
        raise AnonymityInvalid("the suppression bound must be a fraction from 0 to 1")


def anonymise(
    table: pa.Table,
    quasi: list[str],
    k: int,
    sensitive: str | None = None,
    l: int | None = None,  # noqa: E741 (the l of l-diversity)
    max_suppressed_fraction: float = 0.05,
) -> tuple[pa.Table, AnonymityReport]:
    """Suppress rows until every class has at least k rows (and l sensitive values).

    Returns the kept rows in their original order and a report. Raises
    AnonymityInvalid for k or l below 2 or unknown columns, and AnonymityRefused
    (with the report) when the suppressed share would exceed the bound.
    """
    _validate(table, quasi, k, sensitive, l, max_suppressed_fraction)
    rows_in = table.num_rows
    # Positional names, so no column name can clash with the aggregates' names.
    keys = [f"q{i}" for i in range(len(quasi))]
    columns = {key: table.column(name) for key, name in zip(keys, quasi, strict=True)}
    if sensitive is not None:
        columns[_SENSITIVE] = table.column(sensitive)
    columns[_ROW] = pa.array(range(rows_in), pa.int64())
    indexed = pa.table(columns)
    aggregations: list[tuple[Any, ...]] = [([], "count_all"), (_ROW, "list")]
    if sensitive is not None:
        aggregations.append((_SENSITIVE, "count_distinct", pc.CountOptions(mode="all")))
    groups = indexed.group_by(keys, use_threads=False).aggregate(aggregations)
    counts = groups.column(_COUNT)
    failing = pc.less(counts, k)
    distinct = groups.column(f"{_SENSITIVE}_count_distinct") if sensitive is not None else None
    if distinct is not None and l is not None:
        failing = pc.or_(failing, pc.less(distinct, l))
    kept_counts = pc.filter(counts, pc.invert(failing))
    suppressed_rows = pc.list_flatten(pc.filter(groups.column(f"{_ROW}_list"), failing))
    rows_suppressed = len(suppressed_rows)
    least = None
    if distinct is not None and len(kept_counts):
        least = pc.min(pc.filter(distinct, pc.invert(failing))).as_py()
    report = AnonymityReport(
        quasi_identifiers=tuple(quasi),
        k=k,
        sensitive=sensitive,
        l=l,
        max_suppressed_fraction=float(max_suppressed_fraction),
        rows_in=rows_in,
        rows_out=rows_in - rows_suppressed,
        rows_suppressed=rows_suppressed,
        classes=groups.num_rows,
        classes_suppressed=groups.num_rows - len(kept_counts),
        smallest_class=pc.min(kept_counts).as_py() if len(kept_counts) else None,
        least_diversity=least,
    )
    if report.suppressed_fraction > max_suppressed_fraction:
        raise AnonymityRefused(
            f"reaching k={k}" + (f" and l={l}" if l is not None else "")
            + f" would suppress {rows_suppressed} of {rows_in} rows, more than the bound of "
            f"{max_suppressed_fraction:.2%}",
            report=report,
            hint="generalise the quasi-identifiers further (bands, months, outward codes) "
            "or choose fewer of them",
        )
    if rows_suppressed == 0:
        return table, report
    keep = pc.invert(pc.is_in(indexed.column(_ROW), value_set=suppressed_rows))
    return table.filter(keep), report
