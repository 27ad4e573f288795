"""The main job: tile -> embed -> select -> caption -> export from one :class:`RunConfig`.

Why no state of its own: every stage is fingerprinted in the run directory, so running the whole
chain again redoes only what changed (a new caption model re-captions and re-exports; nothing
else). The pipeline only orders the stages, writes the resolved ``config.yaml`` beside the
outputs, and stops at the first stage that leaves the next one nothing to work on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pathgen.config import RunConfig
from pathgen.executors import Executor, make_executor
from pathgen.rundir import RunDir, atomic_write

STAGES = ("tile", "embed", "select", "caption", "export")


class PipelineError(RuntimeError):
    """A stage failed; ``stage`` names it so the user knows which command to rerun or inspect."""

    def __init__(self, stage: str, message: str):
        super().__init__(f"{stage}: {message}")
        self.stage = stage


def _write_config(run: RunDir, cfg: RunConfig) -> None:
    text = cfg.to_yaml()
    if not run.config.exists() or run.config.read_text(encoding="utf-8") != text:
        atomic_write(run.config, text)


def _stage_fn(
    stage: str, cfg: RunConfig, caption_limit: int | None, executor: Executor
) -> Callable[[RunDir], dict[str, Any]]:
    """Every stage has the same shape: ``stage(run, its config section, executor=...)``."""
    if stage == "tile":
        from pathgen.slides.stage import tile_stage

        return lambda run: tile_stage(list(cfg.slides), run, cfg.tile, executor=executor)
    if stage == "embed":
        from pathgen.embed import embed_stage

        return lambda run: embed_stage(run, cfg.embed, executor=executor)
    if stage == "select":
        from pathgen.selection.stage import select_stage

        return lambda run: select_stage(run, cfg.select, executor=executor)
    if stage == "caption":
        from pathgen.agents.stage import caption_stage

        return lambda run: caption_stage(run, cfg.caption, limit=caption_limit, executor=executor)
    from pathgen.export.stage import export_stage

    return lambda run: export_stage(run, cfg.export, executor=executor)


def _nothing_left(stage: str, run: RunDir, summary: dict[str, Any]) -> str | None:
    """Why the chain cannot go on after ``stage`` (None when it can)."""
    import pyarrow.parquet as pq

    from pathgen.tables import count_tiles, layout

    if stage == "tile" and (layout(run) is None or count_tiles(run) == 0):  # either tile-table layout
        return "no tiles: no slide could be read or none has tissue (see slides.parquet)"
    if stage == "select" and (not run.selected.exists() or pq.read_metadata(run.selected).num_rows == 0):
        return "no tile was selected"
    return None


def run_pipeline(
    cfg: RunConfig,
    out: str | os.PathLike[str] | None = None,
    *,
    until: str = "export",
    caption_limit: int | None = None,
    on_stage: Callable[[str, dict[str, Any], float], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run the stages in order up to ``until``; returns ``{stage: summary}``.

    ``on_stage(stage, summary, seconds)`` is called after each stage (the CLI prints there).
    """
    if until not in STAGES:
        raise ValueError(f"unknown stage {until!r}; stages: {', '.join(STAGES)}")
    root = Path(out) if out is not None else cfg.out
    if root is None:
        raise ValueError("no run directory: set `out:` in the config or pass --out")
    if not cfg.slides:
        raise ValueError("no slides: set `slides:` in the config (files, folders or a manifest)")
    from pathgen.slides.manifest import check_inputs

    check_inputs([str(s) for s in cfg.slides])  # a mistyped slide path fails before any work
    cfg = cfg.model_copy(update={"out": Path(root)})
    run = RunDir(root).ensure()
    _write_config(run, cfg)
    summaries: dict[str, dict[str, Any]] = {}
    with make_executor(cfg.executor) as executor:  # one executor (one Ray connection) for all stages
        for stage in STAGES[: STAGES.index(until) + 1]:
            fn = _stage_fn(stage, cfg, caption_limit, executor)
            start = time.perf_counter()
            try:
                summary = fn(run)
            except (FileNotFoundError, ValueError) as exc:
                raise PipelineError(stage, str(exc)) from exc
            summaries[stage] = summary
            if on_stage:
                on_stage(stage, summary, time.perf_counter() - start)
            reason = _nothing_left(stage, run, summary)
            if reason and (stage != until or stage == "tile"):  # a run that tiled nothing has failed
                raise PipelineError(stage, reason)
    return summaries
