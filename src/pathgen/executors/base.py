"""The executor interface: map a per-item function over items, results as they finish.

Why results come back unordered, tagged with the item's index: a slow slide must not hold back the
writing of a hundred fast ones, and every stage already keys its outputs by item (slide id, shard
number), so the caller puts them in place. Why failures are values and not exceptions: one bad
slide or a lost worker must never stop a run of thousands (see ARCHITECTURE's failure policy).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Mode = Literal["process", "thread"]


@dataclass(frozen=True)
class ItemResult(Generic[R]):
    """What became of one item: its ``value``, or ``error`` (a readable reason) when it failed."""

    index: int
    value: R | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Resources:
    """What one item needs: CPUs (and GPUs) per task; how items share a machine (``mode``)."""

    cpus: float = 1.0
    gpus: float = 0.0
    mode: Mode = "process"


class Executor(ABC):
    """Runs items; subclasses decide where. ``workers`` caps parallelism (0 = the executor's own)."""

    name: str = "executor"

    @abstractmethod
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
        """Yield one :class:`ItemResult` per item, in completion order, with a progress display.

        ``fn`` must be picklable (a module-level function or a ``functools.partial`` of one) so it
        can run in another process or on another machine. ``describe(item, result)`` gives the
        progress line's text after an item finishes.
        """

    def parallelism(self) -> int:
        """How many items can run at once (CPUs on this machine, or in the cluster)."""
        import os

        return os.cpu_count() or 1

    def close(self) -> None:  # noqa: B027 - optional hook, most executors hold nothing
        """Release what the executor started (a local Ray instance); a no-op by default."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def error_text(exc: BaseException) -> str:
    """A one-line reason for a failed item (type and message, never a traceback)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def limit_native_threads(n: int) -> None:
    """Cap the threads native libraries start in a worker process to its share of the CPUs.

    Why: OpenCV (resize, tissue morphology) and torch start a thread per core in every process,
    so two tile workers on two cores ran four-plus busy threads and got in each other's way (one
    worker used ~1.16 cores; two gave 1.6x one). Called once a process by the executors' pools;
    the main process (inline runs) keeps the libraries' defaults. Variables already set by the
    user win; torch and numpy read theirs at import, so they are set before either loads.
    """
    import sys

    n = max(1, int(n))
    for name in _THREAD_VARIABLES:
        os.environ.setdefault(name, str(n))
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:  # no OpenCV in this environment: nothing to cap
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
