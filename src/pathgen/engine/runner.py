"""Run a coroutine over many items with a fixed pool of workers and live progress.

A fixed number of worker tasks pull items from one iterator, so a million items never become a
million pending coroutines; each item is isolated (an exception is counted against it and the
worker moves on). Progress is redrawn a few times a second by its own task, never per call, so the
display costs nothing measurable at thousands of calls a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from pathgen.engine.caller import Stats

T = TypeVar("T")


async def run_pool(
    items: Iterable[T],
    process: Callable[[T], Awaitable[None]],
    workers: int,
    stats: Stats,
    on_error: Callable[[T, BaseException], None] | None = None,
    progress: bool = True,
) -> None:
    iterator = iter(items)

    async def worker() -> None:
        for item in iterator:  # shared iterator: each item goes to exactly one worker
            try:
                await process(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # per-item isolation: count it, keep going
                stats.failed += 1
                stats.reasons[f"crash:{type(exc).__name__}"] += 1
                if on_error is not None:
                    on_error(item, exc)

    display = asyncio.create_task(_progress(stats)) if progress else None
    try:
        await asyncio.gather(*(worker() for _ in range(max(1, workers))))
    finally:
        if display is not None:
            display.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await display


def _line(stats: Stats) -> str:
    el = stats.elapsed
    return (
        f"tiles {stats.done + stats.skipped}/{stats.total} (skipped {stats.skipped}) · in flight "
        f"{stats.in_flight} · failed {stats.failed} · {stats.calls / el:.1f} calls/s · "
        f"{(stats.tokens_in + stats.tokens_out) / el:.0f} tok/s · retries {stats.retries} · {el:.0f}s"
    )


async def _progress(stats: Stats, period: float = 0.25) -> None:
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    console = Console(stderr=True)
    if not console.is_terminal:
        # Logs, CI, subprocesses: a plain line every 10 s instead of a live redraw.
        last = time.perf_counter()
        while True:
            await asyncio.sleep(period)
            if time.perf_counter() - last >= 10:
                console.print(_line(stats), highlight=False)
                last = time.perf_counter()
    with Live(Text(_line(stats)), console=console, refresh_per_second=4, transient=True) as live:
        while True:
            await asyncio.sleep(period)
            live.update(Text(_line(stats)))


def progress_line(stats: Stats) -> str:
    return _line(stats)


__all__: list[Any] = ["progress_line", "run_pool"]
