"""Options and helpers shared by every command group."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from strongroom.config import load_settings
from strongroom.deployment import Deployment, open_deployment
from strongroom.errors import ConfigurationError

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        envvar="STRONGROOM_HOME",
        help="Deployment home directory (or set STRONGROOM_HOME).",
        show_default=False,
    ),
]


def resolve_home(home: Path | None) -> Path:
    if home is None:
        raise ConfigurationError(
            "no home directory given", hint="pass --home DIR or set STRONGROOM_HOME"
        )
    return home.expanduser().resolve()


@contextmanager
def deployment(home: Path | None) -> Iterator[Deployment]:
    opened = open_deployment(load_settings(resolve_home(home)))
    try:
        yield opened
    finally:
        opened.close()


def table(rows: list[tuple[str, ...]], headers: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in [headers, *rows]]
    return "\n".join(lines)
