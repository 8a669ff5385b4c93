"""Progress bars on stderr for a person at a terminal; nothing at all for scripts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

Update = Callable[[float, str | None], None]


def _nothing(_completed: float, _label: str | None = None) -> None:
    return None


@contextmanager
def progress_bar(label: str, total: float | None, *, enabled: bool, in_bytes: bool = False
                 ) -> Iterator[Update]:
    """Yield ``update(completed, label=None)``; a no-op when ``enabled`` is false.

    ``completed`` may go backwards (an upload resuming from what the server kept).
    """
    if not enabled:
        yield _nothing
        return
    amount = (DownloadColumn(), TransferSpeedColumn()) if in_bytes else (TaskProgressColumn(),)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), *amount,
                   TimeRemainingColumn(), console=Console(stderr=True), transient=False)
    with bar:
        task = bar.add_task(label, total=total)

        def update(completed: float, new_label: str | None = None) -> None:
            if new_label is None:
                bar.update(task, completed=completed)
            else:
                bar.update(task, completed=completed, description=new_label)

        yield update
