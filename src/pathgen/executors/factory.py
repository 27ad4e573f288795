"""Build the executor a run asked for (``executor:`` in the config, ``--executor`` on the CLI)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pathgen.executors.base import Executor

if TYPE_CHECKING:
    from pathgen.config import ExecutorConfig

EXECUTORS = ("local", "ray")


def make_executor(cfg: ExecutorConfig | None = None) -> Executor:
    """The executor named by ``cfg.kind``; an unknown name fails listing the known ones."""
    from pathgen.config import ExecutorConfig

    cfg = cfg or ExecutorConfig()
    if cfg.kind == "local":
        from pathgen.executors.local import LocalExecutor

        return LocalExecutor()
    if cfg.kind == "ray":
        from pathgen.executors.ray_executor import RayExecutor

        return RayExecutor(address=cfg.ray_address, num_cpus=cfg.ray_num_cpus, max_retries=cfg.max_retries)
    raise ValueError(f"unknown executor {cfg.kind!r}; executors: {', '.join(EXECUTORS)}")
