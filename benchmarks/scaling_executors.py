"""Executors on the same work: local vs Ray wall time, and 1 vs 2 local workers (tile stage).

Called by ``benchmarks/scaling.py --executors``. The slides are pyramidal TIFFs built from the
real H&E tiles of the shared data folder (``pathgen.slides.builder``), a few distinct ones linked
many times, so every run tiles the same pixels. Each measurement starts from an empty run
directory (no per-slide cache). Ray's own start-up is timed apart from the stage: on a cluster it
is paid once, not per stage. ``uncapped``: 2 workers without the native-thread cap of the pool
workers (``limit_native_threads``), to show its effect.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any


def build_slides(work: Path, distinct: int, side: int) -> list[Path]:
    """Slides with a short pyramid (downsamples 1, 2, 4), as scanners write them (Aperio: 1, 4, 16):
    the tissue thumbnail then decodes a real share of the slide, as it does on TCGA slides."""
    from pathgen.slides.builder import build_pyramid_tiff

    out = []
    for i in range(distinct):
        path = work / "sources" / f"built-{side}-l3-{i}.tif"
        if not path.exists():
            build_pyramid_tiff(path, side, side, seed=i, levels=3)
        out.append(path)
    return out


def slide_folder(work: Path, sources: list[Path], n: int) -> Path:
    folder = work / f"slides-{n}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"s{i:04d}.tif").symlink_to(sources[i % len(sources)].resolve())
    return folder


def time_tile(folder: Path, run: Path, executor: Any, workers: int) -> float:
    from pathgen.config import TileConfig
    from pathgen.rundir import RunDir
    from pathgen.slides.stage import tile_stage

    shutil.rmtree(run, ignore_errors=True)
    start = time.perf_counter()
    summary = tile_stage([str(folder)], RunDir(run), TileConfig(workers=workers), executor=executor)
    seconds = time.perf_counter() - start
    if summary["failed"]:
        raise SystemExit(f"tiling failed for {summary['failed']} slides in {run}")
    return seconds


def no_thread_cap(n: int) -> None:
    """Stands in for ``limit_native_threads`` to time workers without the cap (module-level: a
    spawned worker finds its initializer by name)."""


def time_uncapped(folder: Path, run: Path, workers: int) -> float:
    """:func:`time_tile` with workers whose OpenCV / OpenMP threads are not capped (the old way)."""
    import pathgen.executors.local as local
    from pathgen.executors.local import LocalExecutor

    cap = local.limit_native_threads
    local.limit_native_threads = no_thread_cap
    try:
        return time_tile(folder, run, LocalExecutor(), workers)
    finally:
        local.limit_native_threads = cap


def run(work: Path, counts: list[int], distinct: int, side: int, cpus: int) -> dict[str, Any]:
    from pathgen.config import ExecutorConfig
    from pathgen.executors import make_executor
    from pathgen.executors.local import LocalExecutor

    work.mkdir(parents=True, exist_ok=True)
    sources = build_slides(work, distinct, side)
    ray_exec = make_executor(ExecutorConfig(kind="ray", ray_num_cpus=cpus))
    start = time.perf_counter()
    ray_exec.ensure()
    ray_start = time.perf_counter() - start
    rows = []
    try:
        for n in counts:
            folder = slide_folder(work, sources, n)
            one = time_tile(folder, work / "run-local1", LocalExecutor(), 1)
            two = time_tile(folder, work / "run-local2", LocalExecutor(), cpus)
            uncapped = time_uncapped(folder, work / "run-local2-uncapped", cpus)
            ray = time_tile(folder, work / "run-ray", ray_exec, cpus)
            rows.append({
                "stage": "tile", "slides": n, "slide_px": side, "local_1_s": round(one, 2),
                f"local_{cpus}_s": round(two, 2), f"local_{cpus}_uncapped_s": round(uncapped, 2),
                f"ray_{cpus}_s": round(ray, 2), "workers_speedup": round(one / two, 2),
                "uncapped_speedup": round(one / uncapped, 2), "ray_over_local": round(ray / two, 2),
            })  # fmt: skip
    finally:
        ray_exec.close()
    import os

    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else None  # others' work skews the ratios
    return {"executors": rows, "ray_start_s": round(ray_start, 2), "cpus": cpus, "load_avg_after": load,
            "goals": {"ray_over_local": "<= 1.3 at 20 slides, ~1.0 as work grows",
                      "workers_speedup": ">= 1.7 with 2 workers"}}  # fmt: skip
