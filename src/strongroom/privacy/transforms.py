"""Column transforms for exports: validated once against the schema, applied per batch.

A spec is ``{"name": column, "transform": {"kind": ..., **params}}`` (no transform
means keep). The output has the listed columns, in the listed order, minus dropped
ones; every output column's Arrow type is declared before any row is read.

========== ===================================== ============================ ==========
kind       params                                input types                  output
========== ===================================== ============================ ==========
keep       —                                     any                          same
drop       —                                     any                          (none)
mask       keep_first, keep_last (>= 0), char    text                         text
pseudonym  —                                     text, integer                text
token      —                                     text, integer                text
generalise to: month | year                      date, timestamp              text | int
generalise band: width (> 0)                     integer, float               text
generalise edges: [e1 < e2 < ...]                integer, float               text
generalise to: postcode_outward | email_domain   text                         text
========== ===================================== ============================ ==========

- mask keeps the first and last characters asked for and replaces the rest with
  ``char``, one for one (the length shows). A value no longer than
  keep_first + keep_last is masked whole, so short values are never shown in full.
- pseudonym and token: see :mod:`strongroom.privacy.keys`. Integers are pseudonymised
  as their decimal text, so 42 and "42" get the same pseudonym and still join.
- month gives ``"2024-03"``; year gives the year as an integer.
- band on integers labels ``"30-39"`` (width 10); on floats ``"[30,40)"``. edges label
  ``"<18"``, ``"[18,30)"``, ``">=65"``. NaN becomes null; an infinity becomes null
  with band and falls in the outer label with edges.
- postcode_outward: a valid UK postcode (any case and spacing) → its outward code,
  ``"sw1a 1aa"`` → ``"SW1A"``; anything else → null. email_domain: the part after the
  last ``@``, lower-cased, if it is a plausible domain; anything else → null.

Nulls stay null everywhere. All of it is vectorised with ``pyarrow.compute`` except
the HMAC and AES-SIV of pseudonym and token, computed once per distinct value.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from strongroom.datasets.build import ARROW_TYPES, ColumnType
from strongroom.privacy.errors import TransformInvalid
from strongroom.privacy.keys import PrivacyKeys

KINDS = ("keep", "drop", "mask", "pseudonym", "token", "generalise")
MAX_EDGES = 100
MAX_KEEP = 1000
_NAME_SHOWN = 100

# UK postcodes (BS 7666 letter rules) after upper-casing and removing whitespace.
_POSTCODE = (
    r"^(?P<outward>GIR|[A-PR-UWYZ](?:[0-9]{1,2}|[A-HK-Y][0-9]{1,2}|[0-9][A-HJKPS-UW]"
    r"|[A-HK-Y][0-9][ABEHMNPRV-Y]))(?P<inward>[0-9][ABD-HJLNP-UW-Z]{2})$"
)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = rf"^\S+@(?P<domain>{_LABEL}(?:\.{_LABEL})+)$"

Apply = Callable[[pa.Array, PrivacyKeys | None], pa.Array]


def _shown(name: str) -> str:
    return name if len(name) <= _NAME_SHOWN else name[:_NAME_SHOWN] + "..."


@dataclasses.dataclass(frozen=True)
class ColumnTransform:
    """One output column: where it comes from, how, and its Arrow type."""

    name: str
    kind: str
    params: Mapping[str, Any]
    input_type: ColumnType
    output_type: pa.DataType
    function: Apply

    @property
    def keyed(self) -> bool:
        return self.kind in {"pseudonym", "token"}

    def describe(self) -> dict[str, Any]:
        return {"column": self.name, "kind": self.kind, "params": dict(self.params)}

    def run(self, array: pa.Array, keys: PrivacyKeys | None) -> pa.Array:
        # Sources may hand over an equivalent encoding (large_string, dictionary, a zoned
        # timestamp); the transforms are written for the dataset's own Arrow types.
        expected = ARROW_TYPES[self.input_type]
        if array.type != expected:
            array = array.cast(expected)
        return self.function(array, keys).cast(self.output_type)


@dataclasses.dataclass(frozen=True)
class ColumnPlan:
    """The validated transforms of an export, ready to rewrite Arrow record batches."""

    columns: tuple[ColumnTransform, ...]
    dropped: tuple[str, ...]

    @property
    def output_columns(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def input_columns(self) -> list[str]:
        """The columns the source must provide (dropped ones need not be read)."""
        return [c.name for c in self.columns]

    @property
    def output_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.output_type) for c in self.columns])

    @property
    def needs_keys(self) -> bool:
        """True when some column is pseudonymised or tokenised (``apply`` needs keys)."""
        return any(c.keyed for c in self.columns)

    def apply(self, batch: pa.RecordBatch, keys: PrivacyKeys | None = None) -> pa.RecordBatch:
        """The batch's output columns, transformed, with exactly :attr:`output_schema`."""
        if self.needs_keys and keys is None:
            raise ValueError("this plan pseudonymises or tokenises: privacy keys are needed")
        arrays = [column.run(batch.column(column.name), keys) for column in self.columns]
        return pa.RecordBatch.from_arrays(arrays, schema=self.output_schema)

    def describe(self) -> list[dict[str, Any]]:
        """Column names with transform kinds and parameters, for the audit (no values)."""
        described = [c.describe() for c in self.columns]
        described += [{"column": name, "kind": "drop", "params": {}} for name in self.dropped]
        return described


# -- compiling ------------------------------------------------------------------------------


def compile_transforms(
    specs: Sequence[Mapping[str, Any]], columns: Mapping[str, ColumnType | str]
) -> ColumnPlan:
    """Validate ``specs`` against the dataset's ``columns`` (name → type) into a plan.

    Raises TransformInvalid (422) naming the column and transform for an unknown
    column or kind, an unknown or bad parameter, or a transform on the wrong type.
    """
    if not isinstance(specs, list | tuple) or not specs:
        raise TransformInvalid("choose at least one column to export")
    types = {name: ColumnType(kind) for name, kind in columns.items()}
    compiled: list[ColumnTransform] = []
    dropped: list[str] = []
    seen: set[str] = set()
    for index, spec in enumerate(specs):
        if not isinstance(spec, Mapping):
            raise TransformInvalid(f"column entry {index} must be an object with a name")
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            raise TransformInvalid(f"column entry {index} has no name")
        extra = set(spec) - {"name", "transform"}
        if extra:
            raise TransformInvalid(
                f"column {_shown(name)!r}: unknown fields {sorted(extra)}", column=name
            )
        transform = spec.get("transform") or {"kind": "keep"}
        if not isinstance(transform, Mapping):
            raise TransformInvalid(
                f"column {_shown(name)!r}: the transform must be an object", column=name
            )
        kind = transform.get("kind")
        if kind not in KINDS:
            raise TransformInvalid(
                f"column {_shown(name)!r}: unknown transform {str(kind)[:40]!r}",
                column=name, transform=str(kind)[:40],
                hint="use one of " + ", ".join(KINDS),
            )
        if name not in types:
            raise TransformInvalid(
                f"column {_shown(name)!r} (transform {kind}) is not in the dataset",
                column=name, transform=kind,
            )
        if name in seen:
            raise TransformInvalid(
                f"column {_shown(name)!r} (transform {kind}) is listed twice",
                column=name, transform=kind,
            )
        seen.add(name)
        params = {k: v for k, v in transform.items() if k != "kind"}
        column = _compile_one(name, kind, params, types[name])
        if column is None:
            dropped.append(name)
        else:
            compiled.append(column)
    if not compiled:
        raise TransformInvalid("every column is dropped: nothing would be exported")
    return ColumnPlan(tuple(compiled), tuple(dropped))


class _Context:
    """Raises errors naming the column and transform being compiled."""

    def __init__(self, name: str, kind: str, column_type: ColumnType) -> None:
        self.name = name
        self.kind = kind
        self.type = column_type

    def fail(self, problem: str, hint: str | None = None) -> TransformInvalid:
        return TransformInvalid(
            f"column {_shown(self.name)!r} (transform {self.kind}): {problem}",
            column=self.name, transform=self.kind, hint=hint,
        )

    def allow_params(self, params: Mapping[str, Any], allowed: set[str]) -> None:
        unknown = set(params) - allowed
        if unknown:
            shown = sorted(str(p)[:40] for p in unknown)
            raise self.fail(
                f"unknown parameters {shown}",
                hint=f"allowed: {', '.join(sorted(allowed))}" if allowed else "it takes none",
            )

    def require_type(self, *allowed: ColumnType) -> None:
        if self.type not in allowed:
            raise self.fail(
                f"does not apply to a {self.type.value} column",
                hint="it applies to " + ", ".join(t.value for t in allowed) + " columns",
            )


_INT64 = 2**63


def _is_int(value: Any) -> bool:
    """A whole number that fits a 64-bit column (a JSON integer can be any size)."""
    return isinstance(value, int) and not isinstance(value, bool) and -_INT64 <= value < _INT64


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


# What a mask may show of a personal column to a role that may not see personal data,
# and in clones: a few characters, not the value in instalments.
MAX_PERSONAL_MASK_SHOWN = 4


def mask_shows(params: Mapping[str, Any]) -> int:
    """How many characters of each value a compiled mask's parameters leave visible."""
    return int(params.get("keep_first", 0)) + int(params.get("keep_last", 0))


def _compile_one(
    name: str, kind: str, params: dict[str, Any], column_type: ColumnType
) -> ColumnTransform | None:
    ctx = _Context(name, kind, column_type)
    if kind == "drop":
        ctx.allow_params(params, set())
        return None
    if kind == "keep":
        ctx.allow_params(params, set())
        return ColumnTransform(
            name, kind, {}, column_type, ARROW_TYPES[column_type], lambda a, _k: a
        )
    if kind == "mask":
        return _compile_mask(ctx, params)
    if kind in {"pseudonym", "token"}:
        ctx.allow_params(params, set())
        ctx.require_type(ColumnType.TEXT, ColumnType.INTEGER)
        function = _pseudonymise if kind == "pseudonym" else _tokenise
        return ColumnTransform(name, kind, {}, column_type, pa.string(), function)
    return _compile_generalise(ctx, params)


def _compile_mask(ctx: _Context, params: dict[str, Any]) -> ColumnTransform:
    ctx.allow_params(params, {"keep_first", "keep_last", "char"})
    ctx.require_type(ColumnType.TEXT)
    keep_first = params.get("keep_first", 0)
    keep_last = params.get("keep_last", 0)
    char = params.get("char", "*")
    for label, value in (("keep_first", keep_first), ("keep_last", keep_last)):
        if not _is_int(value) or not 0 <= value <= MAX_KEEP:
            raise ctx.fail(f"{label} must be a whole number from 0 to {MAX_KEEP}")
    if not isinstance(char, str) or len(char) != 1 or not char.isprintable():
        raise ctx.fail("char must be one printable character")

    def mask(array: pa.Array, _keys: PrivacyKeys | None) -> pa.Array:
        return _mask(array, keep_first, keep_last, char)

    return ColumnTransform(
        ctx.name, ctx.kind, {"keep_first": keep_first, "keep_last": keep_last, "char": char},
        ctx.type, pa.string(), mask,
    )


def _compile_generalise(ctx: _Context, params: dict[str, Any]) -> ColumnTransform:
    given = [p for p in ("to", "band", "edges") if p in params]
    ctx.allow_params(params, {"to", "band", "edges"})
    if len(given) != 1:
        raise ctx.fail("give exactly one of to, band or edges")
    if "to" in params:
        target = params["to"]
        if not isinstance(target, str):
            raise ctx.fail("to must be one of month, year, postcode_outward, email_domain")
        if target in {"month", "year"}:
            ctx.require_type(ColumnType.DATE, ColumnType.TIMESTAMP)
            out = pa.string() if target == "month" else pa.int64()
            function: Apply = _to_month if target == "month" else _to_year
        elif target in {"postcode_outward", "email_domain"}:
            ctx.require_type(ColumnType.TEXT)
            out = pa.string()
            function = _to_outward if target == "postcode_outward" else _to_domain
        else:
            raise ctx.fail(
                "to must be one of month, year, postcode_outward, email_domain"
            )
        return ColumnTransform(ctx.name, ctx.kind, {"to": target}, ctx.type, out, function)
    ctx.require_type(ColumnType.INTEGER, ColumnType.FLOAT)
    if "band" in params:
        width = params["band"]
        if ctx.type is ColumnType.INTEGER and not (_is_int(width) and width > 0):
            raise ctx.fail("band must be a whole number above 0 for an integer column")
        if not (_is_number(width) and width > 0):
            raise ctx.fail("band must be a number above 0")
        if ctx.type is ColumnType.INTEGER:
            return ColumnTransform(
                ctx.name, ctx.kind, {"band": width}, ctx.type, pa.string(),
                lambda a, _k: _int_band(a, width, ctx),
            )
        return ColumnTransform(
            ctx.name, ctx.kind, {"band": width}, ctx.type, pa.string(),
            lambda a, _k: _float_band(a, float(width)),
        )
    edges = params["edges"]
    if (
        not isinstance(edges, list) or not 1 <= len(edges) <= MAX_EDGES
        or not all(_is_number(e) for e in edges)
    ):
        raise ctx.fail(f"edges must be a list of 1 to {MAX_EDGES} numbers")
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise ctx.fail("edges must be strictly increasing")
    return ColumnTransform(
        ctx.name, ctx.kind, {"edges": list(edges)}, ctx.type, pa.string(),
        lambda a, _k: _edges(a, edges),
    )


# -- applying -------------------------------------------------------------------------------


def _keyed(array: pa.Array, make: Callable[[list[str | None]], list[str | None]]) -> pa.Array:
    """``make`` applied once per distinct value (exports repeat people), then spread back."""
    if not pa.types.is_string(array.type):
        array = pc.cast(array, pa.string())
    encoded = pc.dictionary_encode(array)
    results = pa.array(make(encoded.dictionary.to_pylist()), pa.string())
    return pc.take(results, encoded.indices)


def _pseudonymise(array: pa.Array, keys: PrivacyKeys | None) -> pa.Array:
    if keys is None:
        raise ValueError("pseudonyms need privacy keys")
    return _keyed(array, keys.pseudonyms)


def _tokenise(array: pa.Array, keys: PrivacyKeys | None) -> pa.Array:
    if keys is None:
        raise ValueError("tokens need privacy keys")
    return _keyed(array, keys.tokens)


def _mask(array: pa.Array, keep_first: int, keep_last: int, char: str) -> pa.Array:
    length = pc.utf8_length(array)
    whole = pc.binary_repeat(pa.scalar(char), length)
    if keep_first == 0 and keep_last == 0:
        return whole
    parts = [
        pc.utf8_slice_codeunits(array, 0, keep_first),
        pc.binary_repeat(
            pa.scalar(char), pc.max_element_wise(pc.subtract(length, keep_first + keep_last), 0)
        ),
    ]
    if keep_last:
        parts.append(pc.utf8_slice_codeunits(array, -keep_last))
    kept = pc.binary_join_element_wise(*parts, "")
    return pc.if_else(pc.less_equal(length, keep_first + keep_last), whole, kept)


def _to_month(array: pa.Array, _keys: PrivacyKeys | None) -> pa.Array:
    return pc.strftime(array, "%Y-%m")


def _to_year(array: pa.Array, _keys: PrivacyKeys | None) -> pa.Array:
    return pc.year(array)


def _to_outward(array: pa.Array, _keys: PrivacyKeys | None) -> pa.Array:
    compact = pc.replace_substring_regex(pc.utf8_upper(array), r"\s+", "")
    return pc.struct_field(pc.extract_regex(compact, _POSTCODE), [0])


def _to_domain(array: pa.Array, _keys: PrivacyKeys | None) -> pa.Array:
    found = pc.extract_regex(pc.utf8_trim_whitespace(array), _EMAIL)
    return pc.utf8_lower(pc.struct_field(found, [0]))


def _finite(array: pa.Array) -> pa.Array:
    """Float values with NaN and infinities turned to null."""
    return pc.if_else(pc.is_finite(array), array, pa.scalar(None, array.type))


def _int_band(array: pa.Array, width: int, ctx: _Context) -> pa.Array:
    quotient = pc.divide(array, width)  # truncates toward zero; floor it below
    remainder = pc.subtract(array, pc.multiply(quotient, width))
    quotient = pc.if_else(pc.less(remainder, 0), pc.subtract(quotient, 1), quotient)
    try:
        low = pc.multiply_checked(quotient, width)
        high = pc.add_checked(low, width - 1)
    except pa.ArrowInvalid:
        raise ctx.fail("a value is too large for this band width") from None
    return pc.binary_join_element_wise(
        pc.cast(low, pa.string()), pc.cast(high, pa.string()), "-"
    )


def _number(value: float) -> str:
    return f"{value:.12g}"


def _labelled(indices: pa.Array, labels: list[str]) -> pa.Array:
    return pc.take(pa.array(labels, pa.string()), indices)


def _float_band(array: pa.Array, width: float) -> pa.Array:
    low = pc.multiply(pc.floor(pc.divide(_finite(array), width)), width)
    distinct = pc.unique(low).drop_null()
    labels = [f"[{_number(v)},{_number(v + width)})" for v in distinct.to_pylist()]
    return _labelled(pc.index_in(low, distinct), labels)


def _edges(array: pa.Array, edges: list[float]) -> pa.Array:
    if pa.types.is_floating(array.type):
        array = _finite_or_infinite(array)
    position = pc.cast(pc.greater_equal(array, edges[0]), pa.int32())
    for edge in edges[1:]:
        position = pc.add(position, pc.cast(pc.greater_equal(array, edge), pa.int32()))
    shown = [_edge(e) for e in edges]
    labels = [f"<{shown[0]}"]
    labels += [f"[{a},{b})" for a, b in itertools.pairwise(shown)]
    labels.append(f">={shown[-1]}")
    return _labelled(position, labels)


def _finite_or_infinite(array: pa.Array) -> pa.Array:
    """NaN becomes null; infinities are ordered and fall in the outer bands."""
    return pc.if_else(pc.is_nan(array), pa.scalar(None, array.type), array)


def _edge(value: float) -> str:
    return str(value) if _is_int(value) else _number(value)
