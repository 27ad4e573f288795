"""The shard as the unit of work: the driver plans shards, the run's executor writes each one.

Why a shard: it is the natural output unit (one tar and its stats file), so a task owns its files
alone; nothing is merged after it and a retried task simply writes the same bytes again. The
driver cuts the exportable patches, in their deterministic order, into consecutive chunks of
``per_shard`` (shard ``00000``, ``00001``, ...) and decides which global positions go to the
gallery; each task reads its patches from the slides (threads over its slides, each with its own
handle), encodes JPEG, hashes pixels, builds the samples and writes its tar and stats file into the
staging folder of the export. The task hands back its index rows, the thumbnails it was asked for,
its agents' counts and its read errors; the driver assembles them in shard order, so the dataset
is byte-identical however many workers ran and on which machines (local processes or Ray tasks).

Failures: a patch that cannot be read is left out of its shard, so that shard holds fewer samples
than ``per_shard`` (the shards keep their numbers; ``sizes.json`` tells the true counts). A task
that fails as a whole (an exception, a worker lost beyond Ray's retries) gets an empty placeholder
shard and an error row for each of its patches; the other shards are written as usual and the
caller reports the export as incomplete.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import groupby
from pathlib import Path
from typing import Any, NamedTuple

from PIL import Image

from pathgen.executors import Executor
from pathgen.executors.base import ItemResult, Resources
from pathgen.export.card import AgentStats
from pathgen.export.reading import Patch, SlideJob, read_jobs
from pathgen.export.shards import (
    Sample,
    put_placeholder,
    put_shard,
    remove_partial_files,
    shard_name,
)
from pathgen.export.text import clip_token_count
from pathgen.export.writer import WriteResult, gallery_item, gallery_stride, index_row, thumbnail_uri
from pathgen.rundir import write_json

#: Below this many patches the shards are written in this process, one after the other: starting
#: workers costs more than it saves.
PARALLEL_MIN_PAIRS = 128
#: How local workers share the machine. Threads: tile decoding, resizing, JPEG coding and hashing
#: release the GIL, and on the 2-core dev machine (benchmarks/export_throughput.py, load ~1) two
#: threads ran 1.7-1.9x one, as fast as two spawned processes, which also pay a start-up each.
LOCAL_MODE = "thread"
MAX_READ_THREADS = 8

#: ``meta(source, patch) -> KEY.json`` of the pair; module-level (or a partial of one): it is
#: shipped to worker processes and Ray tasks with the shard.
MetaFn = Callable[[Any, Patch], dict[str, Any]]


class PatchItem(NamedTuple):
    """One patch to export: where to read it, and ``source`` from which ``meta`` builds its KEY.json."""

    path: str
    reader: str
    x: int
    y: int
    size: int
    source: Any


@dataclass(frozen=True)
class ShardJob:
    """What one task writes: shard ``index`` with ``items`` in order; ``thumbs``: positions in items."""

    index: int
    items: Sequence[PatchItem]
    thumbs: frozenset[int] = frozenset()


@dataclass
class ShardOutcome:
    """What a task hands back to the driver (small: no image bytes besides the gallery thumbnails)."""

    index: int
    rows: list[dict[str, Any]]
    gallery: list[dict[str, Any]]
    agents: AgentStats
    errors: list[tuple[int, str]]  # (position in the shard, reason)
    kept: bool


@dataclass
class ShardedResult:
    """The assembled export: what :func:`pathgen.export.dataset.finish_dataset` needs, and failures."""

    written: WriteResult
    errors: list[tuple[int, str]] = field(default_factory=list)  # (global position, reason)
    failed_shards: list[str] = field(default_factory=list)
    failed_in_shards: int = 0  # patches lost with their failed shard task (the rest are read errors)


def run_shard(
    job: ShardJob,
    *,
    shards_dir: str,
    reuse: str | None,
    image_size: int,
    quality: int,
    threads: int,
    meta: MetaFn,
) -> ShardOutcome:
    """The task body: read, encode and hash the shard's patches, then write its tar and stats file."""
    name = shard_name(job.index)
    slides = [
        (key, list(group))
        for key, group in groupby(enumerate(job.items), key=lambda t: (t[1].path, t[1].reader))
    ]
    reads = (
        SlideJob(path, reader, [(it.x, it.y, it.size) for _, it in group]) for (path, reader), group in slides
    )
    samples: list[Sample] = []
    outcome = ShardOutcome(job.index, [], [], AgentStats(), [], kept=False)
    for (_, group), patches in zip(slides, read_jobs(reads, image_size, quality, threads), strict=True):
        for (pos, item), patch in zip(group, patches, strict=True):
            if patch.jpeg is None or patch.hashes is None:
                outcome.errors.append((pos, str(patch.error)))
                continue
            pair_meta = meta(item.source, patch)
            outcome.rows.append(index_row(pair_meta, name, patch.hashes, tokens=False))
            outcome.agents.add(pair_meta)
            if pos in job.thumbs:  # from the decoded JPEG: what a reader of the shard sees
                image = Image.open(io.BytesIO(patch.jpeg))
                outcome.gallery.append(gallery_item(pair_meta, thumbnail_uri(image)))
            samples.append(
                Sample(key=pair_meta["key"], image=patch.jpeg, caption=pair_meta["caption"], meta=pair_meta)
            )
    outcome.kept = put_shard(Path(shards_dir), job.index, samples, reuse=Path(reuse) if reuse else None)
    return outcome


def plan_shards(n: int, per_shard: int, gallery_max: int) -> list[tuple[range, frozenset[int]]]:
    """Per shard, its slice of the ``n`` patches and the positions (in the shard) of its thumbnails.

    The gallery is spread evenly over the whole set: every ``ceil(n / gallery_max)``-th patch.
    """
    stride = gallery_stride(n, gallery_max)
    plans = []
    for start in range(0, n, per_shard):
        span = range(start, min(n, start + per_shard))
        thumbs = frozenset(p - start for p in span if stride and p % stride == 0)
        plans.append((span, thumbs))
    return plans


def write_sharded(
    items: Sequence[PatchItem],
    shards_dir: Path,
    *,
    meta: MetaFn,
    per_shard: int,
    image_size: int,
    quality: int,
    gallery_max: int,
    workers: int,
    executor: Executor,
    reuse: Path | None = None,
    label: str = "export",
) -> ShardedResult:
    """Write ``items`` as shards under ``shards_dir`` through ``executor``; assemble in shard order.

    ``reuse`` is the shards folder of the previous export, whose unchanged shards are hard-linked
    rather than written again. ``workers`` caps the shards written at once (0 = the executor's
    choice); a shard's reading uses the slots left over when there are fewer shards than workers.
    """
    shards_dir.mkdir(parents=True, exist_ok=True)
    plans = plan_shards(len(items), per_shard, gallery_max)
    jobs = [ShardJob(i, items[span.start : span.stop], thumbs) for i, (span, thumbs) in enumerate(plans)]
    if len(items) < PARALLEL_MIN_PAIRS:
        workers = 1
    slots = workers or executor.parallelism()  # 0: as many as the executor runs at once
    threads = max(1, min(MAX_READ_THREADS, slots // max(1, len(jobs))))
    task = partial(
        run_shard,
        shards_dir=str(shards_dir),
        reuse=str(reuse) if reuse is not None else None,
        image_size=image_size,
        quality=quality,
        threads=threads,
        meta=meta,
    )
    outcomes: dict[int, ItemResult[ShardOutcome]] = {}
    for result in executor.map(
        task,
        jobs,
        label=label,
        workers=workers,
        resources=Resources(cpus=1, mode=LOCAL_MODE),
        describe=_describe,
    ):
        outcomes[result.index] = result
    remove_partial_files(shards_dir)  # a worker killed mid-write (its task was retried) leaves one
    return _assemble(jobs, plans, outcomes, shards_dir)


def _describe(job: ShardJob, result: ItemResult[ShardOutcome]) -> str:
    return f"{shard_name(job.index)}: {result.error}" if result.error else shard_name(job.index)


def _assemble(
    jobs: list[ShardJob],
    plans: list[tuple[range, frozenset[int]]],
    outcomes: dict[int, ItemResult[ShardOutcome]],
    shards_dir: Path,
) -> ShardedResult:
    out = ShardedResult(WriteResult())
    sizes: dict[str, int] = {}
    for job, (span, _) in zip(jobs, plans, strict=True):
        name = shard_name(job.index)
        result = outcomes[job.index]
        value = result.value
        if value is None:  # the whole task failed: a placeholder keeps the numbering contiguous
            put_placeholder(shards_dir, job.index)
            out.failed_shards.append(name)
            out.errors.extend((p, f"shard {name} failed: {result.error}") for p in span)
            out.failed_in_shards += len(span)
            sizes[name] = 0
            out.written.written_shards += 1
        else:
            for row in value.rows:  # counted here: shard tasks never load the tokenizer (and torch)
                row["n_clip_tokens"] = clip_token_count(row["caption"])
            out.written.index.extend(value.rows)
            out.written.gallery.extend(value.gallery)
            out.written.agents.merge(value.agents)
            out.errors.extend((span.start + pos, reason) for pos, reason in value.errors)
            sizes[name] = len(value.rows)
            out.written.kept_shards += value.kept
            out.written.written_shards += not value.kept
        out.written.shards.append(name)
    write_json(shards_dir / "sizes.json", sizes)
    return out
