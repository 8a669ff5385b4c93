"""What the client prints: aligned tables for people, JSON (``--json``) for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the server's answer as JSON instead of a table.")
]


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return " ".join(str(value).split()) if "\n" in str(value) else str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; numbers right-aligned."""
    text = [[cell(v) for v in row] for row in rows]
    numeric = [
        bool(rows) and all(row[i] is None or (isinstance(row[i], int | float)
                                              and not isinstance(row[i], bool)) for row in rows)
        for i in range(len(headers))
    ]
    widths = [max(len(str(h)), *(len(r[i]) for r in text)) for i, h in enumerate(headers)]

    def line(values: Sequence[str], align: bool) -> str:
        parts = [v.rjust(w) if align and numeric[i] else v.ljust(w)
                 for i, (v, w) in enumerate(zip(values, widths, strict=True))]
        return "  ".join(parts).rstrip()

    return "\n".join([line([str(h) for h in headers], False), *(line(r, True) for r in text)])


def fields(pairs: Sequence[tuple[str, Any]]) -> str:
    """A record as ``name  value`` lines."""
    width = max((len(name) for name, _ in pairs), default=0)
    return "\n".join(f"{name.ljust(width)}  {cell(value)}".rstrip() for name, value in pairs)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def show(data: Any, as_json: bool, render: Callable[[Any], str]) -> None:
    """JSON of ``data``, or what ``render`` makes of it."""
    if as_json:
        print_json(data)
    else:
        text = render(data)
        if text:
            typer.echo(text)


def note(message: str) -> None:
    """A remark for the person at the terminal (stderr, so that stdout stays data)."""
    typer.echo(message, err=True)


def interactive(as_json: bool) -> bool:
    """Progress bars only for a person watching a terminal, never with --json."""
    return not as_json and sys.stderr.isatty()


def columns_of(rows: Sequence[dict[str, Any]], preferred: Sequence[str]) -> list[str]:
    """The preferred keys present in any row, in order."""
    present = {key for row in rows for key in row}
    return [key for key in preferred if key in present]


def dict_table(rows: Sequence[dict[str, Any]], preferred: Sequence[str], empty: str) -> str:
    if not rows:
        return empty
    keys = columns_of(rows, preferred) or sorted({k for row in rows for k in row})
    return table([k.upper() for k in keys], [[row.get(k) for k in keys] for row in rows])
