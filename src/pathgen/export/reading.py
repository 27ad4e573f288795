"""Reading the exported patches from their slides, one slide per thread, results in slide order.

A shard task (:mod:`pathgen.export.sharding`) reads its patches here; it is given more than one
thread only when there are fewer shards than workers.

Why threads, not processes: the work is OpenSlide/tiff decoding, OpenCV resizing, JPEG encoding and
hashing, all of which release the GIL, so threads scale without pickling megabytes of pixels
between processes or paying a process start-up. Each thread opens its own handle to its slide
(tiffslide and wsidicom handles are not thread-safe). Only ``workers * 2`` slides are in flight, so
memory stays bounded however large the export; results come back in input order, so shards are
deterministic whatever the thread timing.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from pathgen.export.dedup import dhash, pixel_sha256
from pathgen.export.shards import encode_jpeg


@dataclass
class SlideJob:
    path: str
    reader: str
    tiles: list[tuple[int, int, int]]  # (x, y, size) at level 0


@dataclass
class Patch:
    jpeg: bytes | None
    hashes: tuple[str, int] | None
    error: str | None = None
    mpp: float | None = None


def resolve_workers(workers: int) -> int:
    return workers if workers > 0 else min(8, os.cpu_count() or 1)


def read_job(job: SlideJob, out_size: int, quality: int) -> list[Patch]:
    """Every tile of one slide as JPEG bytes + pixel hashes; failures become error patches."""
    from pathgen.slides import open_slide, read_tile

    try:
        slide = open_slide(job.path, reader=job.reader or "auto")
        mpp = slide.mpp
    except Exception as exc:  # one unreadable slide must not stop the export
        return [Patch(None, None, f"open: {exc}") for _ in job.tiles]
    out: list[Patch] = []
    try:
        for x, y, size in job.tiles:
            try:
                image = read_tile(slide, x, y, size, out_size)
                out.append(Patch(encode_jpeg(image, quality), (pixel_sha256(image), dhash(image)), None, mpp))
            except Exception as exc:
                out.append(Patch(None, None, f"read: {exc}"))
    finally:
        slide.close()
    return out


def read_jobs(
    jobs: Iterable[SlideJob], out_size: int, quality: int, workers: int = 1
) -> Iterator[list[Patch]]:
    """``read_job`` over ``jobs`` with ``workers`` threads; yields per-job results in input order."""
    workers = resolve_workers(workers)
    if workers == 1:
        for job in jobs:
            yield read_job(job, out_size, quality)
        return
    pending: deque[Future[list[Patch]]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="export-read") as pool:
        for job in jobs:
            pending.append(pool.submit(read_job, job, out_size, quality))
            if len(pending) >= workers * 2:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
