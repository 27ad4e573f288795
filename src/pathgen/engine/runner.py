"""Run a coroutine over many items with a fixed pool of workers and live progress.

A fixed number of worker tasks pull items from one iterator, so a million items never become a
million pending coroutines; each item is isolated (an exception is counted against it and the
worker moves on). Progress is redrawn a few times a second by its own task, never per call, so the
display costs nothing measurable at thousands of calls a second.

Stopping (:class:`GracefulStop`): the first SIGINT or SIGTERM stops handing out items and sending
requests, and waits a bounded time for the requests in flight, which are already paid for, so that
they are journalled; a second signal, or the end of the grace period, cancels at once. The caller
then raises :class:`Interrupted`, which the CLI turns into a message and exit status 128 + signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from types import FrameType
from typing import Any, TypeVar

from pathgen.engine.caller import Stats, Stopped

T = TypeVar("T")


async def run_pool(
    items: Iterable[T],
    process: Callable[[T], Awaitable[None]],
    workers: int,
    stats: Stats,
    on_error: Callable[[T, BaseException], None] | None = None,
    progress: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> None:
    """Process every item, or, once ``should_stop()`` is true, no further item (an item whose
    processing raises :class:`Stopped` ends its worker quietly: it is not a failure)."""
    iterator = iter(items)

    async def worker() -> None:
        for item in iterator:  # shared iterator: each item goes to exactly one worker
            if should_stop is not None and should_stop():
                return
            try:
                await process(item)
            except asyncio.CancelledError:
                raise
            except Stopped:
                return
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


class Interrupted(Exception):
    """The run stopped on a signal; what was saved is in the journal and a re-run resumes."""

    def __init__(self, signum: int, saved: int, done: int, total: int, forced: bool):
        self.signum, self.saved, self.done, self.total, self.forced = signum, saved, done, total, forced
        how = "aborted" if forced else "interrupted"
        super().__init__(
            f"{how} ({signal.Signals(signum).name}): {saved} calls saved to the journal, {done}/{total} "
            "tiles done; run the same command again to resume"
        )

    @property
    def exit_code(self) -> int:
        """128 + signal number, as a shell reports a process ended by that signal (130, 143)."""
        return 128 + self.signum


class GracefulStop:
    """SIGINT/SIGTERM handlers for the duration of one pool run, on the event loop's thread.

    First signal: ``on_stop()`` (stop sending), a notice, and a timer that cancels ``task`` after
    ``grace_s``; second signal: cancel ``task`` now. :meth:`restore` puts the previous handlers back
    (Python's KeyboardInterrupt, asyncio.run's own, or a scheduler's). Outside the main thread
    signals cannot be caught and nothing is installed.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(
        self,
        grace_s: float,
        on_stop: Callable[[], None],
        in_flight: Callable[[], int] = lambda: 0,
        notify: Callable[[str], None] | None = None,
    ):
        self.grace_s = grace_s
        self.on_stop = on_stop
        self.in_flight = in_flight
        self.notify = notify or (lambda text: print(text, file=sys.stderr, flush=True))
        self.signum: int | None = None
        self.forced = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Future[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}

    def install(self, loop: asyncio.AbstractEventLoop, task: asyncio.Future[Any]) -> bool:
        if threading.current_thread() is not threading.main_thread():
            return False
        self._loop, self._task = loop, task
        for sig in self.SIGNALS:
            previous = signal.getsignal(sig)
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):  # no signals on this loop (Windows)
                continue
            self._previous[sig] = previous
        return bool(self._previous)

    def restore(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for sig, previous in self._previous.items():
            assert self._loop is not None
            self._loop.remove_signal_handler(sig)
            if previous is not None:
                signal.signal(sig, previous)
        self._previous.clear()

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _on_signal(self, sig: int) -> None:
        assert self._loop is not None and self._task is not None
        if self.signum is None:
            self.signum = sig
            self.on_stop()
            if self._task.done():
                return
            self.notify(
                f"{signal.Signals(sig).name}: stopping; sending nothing more, waiting up to "
                f"{self.grace_s:g} s for {self.in_flight()} calls in flight to be saved "
                "(again to abort at once)"
            )
            self._timer = self._loop.call_later(self.grace_s, self._cancel, "grace period over")
            return
        self.forced = True
        self._cancel("second signal")

    def _cancel(self, why: str) -> None:
        assert self._task is not None
        if not self._task.done():
            self.forced = True
            self.notify(f"{why}: cancelling the calls still in flight")
            self._task.cancel()


__all__: list[Any] = ["GracefulStop", "Interrupted", "progress_line", "run_pool"]
