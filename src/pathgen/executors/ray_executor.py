"""The Ray executor: each item a Ray task, on a cluster (``--ray-address``) or a local instance.

Why Ray rather than a home-made distributor: it already schedules CPU and GPU resources across
nodes, restarts tasks whose worker process or node died (``max_retries``), and scales to the
cluster a lab has. Tasks are submitted with a bounded number in flight, so a million items never
become a million pending object references, and results are taken as they finish.

A task that raised is an error row like any other (it is not retried: the same input would fail
the same way); a task whose worker died is retried by Ray up to ``max_retries`` times and only
then becomes an error row. The run directory must be on a filesystem every node sees (NFS, a
parallel file system): tasks read slides and write their outputs there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from pathgen.executors.base import Executor, ItemResult, Resources, error_text
from pathgen.executors.progress import progress

T = TypeVar("T")
R = TypeVar("R")

INSTALL_HINT = "the Ray executor needs Ray: pip install 'pathgen-vl[ray]'  (ray[data] >= 2.40)"


class RayMissing(ValueError):
    """``--executor ray`` without Ray installed: bad configuration, reported before any work."""


def import_ray() -> Any:
    """``ray``, or a clear error naming the pip command when it is not installed."""
    try:
        import ray
    except ImportError as exc:
        raise RayMissing(INSTALL_HINT) from exc
    return ray


class RayExecutor(Executor):
    """Runs items as Ray tasks; connects to ``address`` or starts a local instance on first use."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, max_retries: int = 3) -> None:
        self.address, self.num_cpus, self.max_retries = address, num_cpus, max_retries
        self._started = False
        import_ray()  # fail at once, before any work, when Ray is missing

    def ensure(self) -> Any:
        """Connect (or start a local instance) once per process; return the ``ray`` module."""
        ray = import_ray()
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
            if self.address:
                kwargs["address"] = self.address
            else:  # a local instance: its workers import the same code as this process
                kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": _driver_path()}}
                if self.num_cpus:
                    kwargs["num_cpus"] = self.num_cpus
            ray.init(**kwargs)
            self._started = True
        return ray

    def parallelism(self) -> int:
        ray = self.ensure()
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

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
        ray = self.ensure()
        remote = ray.remote(_apply).options(
            num_cpus=resources.cpus, num_gpus=resources.gpus, max_retries=self.max_retries
        )
        fn_ref = ray.put(fn)  # shipped once, not with every task
        window = max(1, 2 * (workers or self.parallelism()))
        pending: dict[Any, int] = {}
        queue = iter(enumerate(items))
        with progress(label, len(items)) as bar:
            while True:
                while len(pending) < window:
                    nxt = next(queue, None)
                    if nxt is None:
                        break
                    pending[remote.remote(fn_ref, nxt[0], nxt[1])] = nxt[0]
                if not pending:
                    return
                ready, _ = ray.wait(list(pending), num_returns=1)
                index = pending.pop(ready[0])
                result = _fetch(ray, ready[0], index)
                bar.advance(describe(items[index], result) if describe else "", not result.ok)
                yield result

    def close(self) -> None:
        if self._started:
            import_ray().shutdown()
            self._started = False


def _driver_path() -> str:
    """This process's import path (a checkout run without installing, tests' helper modules)."""
    import os
    import sys

    return os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))


def _apply(fn: Callable[[T], R], index: int, item: T) -> ItemResult[R]:
    """The task body: the item's own failure comes back as a value (Ray would print a traceback).

    Native libraries get the task's CPUs as their thread count (OpenCV would take every core)."""
    from pathgen.executors.base import limit_native_threads
    from pathgen.executors.local import call_item

    try:
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    except Exception:  # not inside a Ray worker (a direct call): the process keeps its threads
        cpus = None
    if cpus:
        limit_native_threads(int(cpus) or 1)
    return call_item(fn, index, item)


def _fetch(ray: Any, ref: Any, index: int) -> ItemResult[Any]:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:  # the function raised: the item's own error
        return ItemResult(index, error=error_text(exc.cause if exc.cause is not None else exc))
    except ray.exceptions.RayError as exc:  # worker/node lost beyond max_retries
        return ItemResult(index, error=f"lost on the cluster after {type(exc).__name__}: {exc}"[:500])
