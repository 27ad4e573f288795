"""The one progress display every stage shows while its executor runs items.

A rich bar on a terminal; in logs, CI and subprocesses a plain line every 10 s instead of a
redraw, so a week-long run leaves a readable log rather than megabytes of carriage returns.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Progress:
    """Counts finished and failed items of one stage and shows them."""

    def __init__(self, label: str, total: int, console: Any, bar: Any | None, task: Any | None) -> None:
        self.label, self.total, self.console, self.bar, self.task = label, total, console, bar, task
        self.done = self.failed = 0
        self._last = time.monotonic()

    def advance(self, text: str = "", failed: bool = False) -> None:
        self.done += 1
        self.failed += failed
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=text)
        elif time.monotonic() - self._last >= 10 or self.done == self.total:
            self._last = time.monotonic()
            extra = f" · failed {self.failed}" if self.failed else ""
            self.console.print(f"{self.label} {self.done}/{self.total}{extra} {text}", highlight=False)


@contextmanager
def progress(label: str, total: int) -> Iterator[Progress]:
    """A :class:`Progress` for ``total`` items, drawn on stderr."""
    from rich.console import Console

    console = Console(stderr=True)
    if not total or not console.is_terminal:
        yield Progress(label, total, console, None, None)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.description}"))  # fmt: skip
    with Bar(*columns, console=console) as bar:
        yield Progress(label, total, console, bar, bar.add_task("", total=total))
