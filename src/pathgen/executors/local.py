"""The local executor: items inline, on threads, or in processes of this machine.

Processes are started with ``spawn``: fork after native slide libraries and threads have started
is unsafe. A native crash (a segfault in a slide decoder) breaks the whole process pool; the
items that were in it are then retried alone, each in a fresh process, so a second crash is that
item's own fault and becomes its error — the other items are not blamed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from pathgen.executors.base import Executor, ItemResult, Resources, error_text, limit_native_threads
from pathgen.executors.progress import progress

T = TypeVar("T")
R = TypeVar("R")

MAX_DEFAULT_WORKERS = 8  # past this, slide decoding is bound by disk, not by CPUs
CRASHED = "the worker process crashed on this item"


class LocalExecutor(Executor):
    """Runs items on this machine; ``workers=1`` runs them inline in this process."""

    name = "local"

    def __init__(self, workers: int = 0) -> None:
        self.default_workers = workers

    def _workers(self, workers: int, n: int) -> int:
        chosen = workers or self.default_workers or min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS)
        return max(1, min(chosen, n))

    def parallelism(self) -> int:
        """How many items :meth:`map` runs at once when not told: the same cap as its pool's."""
        return self._workers(0, MAX_DEFAULT_WORKERS)

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        label: str,
        workers: int = 0,
        resources: Resources = Resources(),
        describe: Callable[[T, ItemResult[R]], str] | None = None,
    ) -> Iterator[ItemResult[R]]:
        n = self._workers(workers, len(items))
        with progress(label, len(items)) as bar:
            if n <= 1:
                results: Iterator[ItemResult[R]] = (call_item(fn, i, item) for i, item in enumerate(items))
            elif resources.mode == "thread":
                results = _threads(fn, items, n)
            else:
                results = _processes(fn, items, n)
            for result in results:
                bar.advance(describe(items[result.index], result) if describe else "", not result.ok)
                yield result


def call_item(fn: Callable[[T], R], index: int, item: T) -> ItemResult[R]:
    """Run one item; an exception becomes its error row."""
    try:
        return ItemResult(index, fn(item))
    except Exception as exc:  # the failure policy: an error row, the run goes on
        return ItemResult(index, error=error_text(exc))


def _threads(fn: Callable[[T], R], items: Sequence[T], n: int) -> Iterator[ItemResult[R]]:
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="pathgen") as pool:
        futures = {pool.submit(call_item, fn, i, item): i for i, item in enumerate(items)}
        for fut in as_completed(futures):
            yield fut.result()


def _processes(fn: Callable[[T], R], items: Sequence[T], n: int) -> Iterator[ItemResult[R]]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    crashed: list[int] = []
    share = max(1, (os.cpu_count() or 1) // n)  # each worker's share of the cores for native threads
    with ProcessPoolExecutor(
        max_workers=n, mp_context=ctx, initializer=limit_native_threads, initargs=(share,)
    ) as pool:
        futures: dict[Future[Any], int] = {
            pool.submit(call_item, fn, i, item): i for i, item in enumerate(items)
        }
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except BrokenProcessPool:
                crashed.append(futures[fut])
    for i in crashed:  # alone in a fresh process: a second crash is this item's fault
        try:
            with ProcessPoolExecutor(
                max_workers=1, mp_context=ctx, initializer=limit_native_threads, initargs=(share,)
            ) as pool:
                yield pool.submit(call_item, fn, i, items[i]).result()
        except BrokenProcessPool:
            yield ItemResult(i, error=CRASHED)
