"""Embedding with Ray Data: tile reading as CPU tasks, encoders as an actor pool, the driver writes.

The dataset is the job's chunks (one row a chunk: its slide, tile rows and coordinates). A
``map_batches`` step reads each chunk's tiles on CPU workers (:func:`read_chunk`, through the same
:class:`~pathgen.embedding.tiles.TileDataset` logic as the local runner: an unreadable tile is a
blank image plus an error), then ``map_batches(EncoderActor, compute=ActorPoolStrategy(size=N))``
runs them through encoders that load once per actor: one GPU each on GPU nodes (``num_gpus=1``),
CPU actors otherwise. Each output row carries its chunk number, so the driver can put features
back per slide in any order and write the arrays and meta exactly as the local runner does.

On GPU nodes the two steps stay apart (their resources differ: reads on CPU tasks feed GPU
actors); on a cluster without GPUs Ray fuses them, so each CPU actor reads and encodes its chunks.

Results are bit-identical to the local runner's when the encoder runs with the same number of CPU
threads (a CPU actor uses as many as it reserved: one by default): on CPU, a few batch shapes give
float results whose last bit depends on how many threads split the matrix products.

A killed encoder actor (a node lost, an OOM kill) costs no chunk: Ray Data creates pool actors with
``max_restarts=-1`` and ``max_task_retries=-1`` unless told otherwise, so the actor is restarted and
its in-flight batches run again; a chunk whose result came back twice is counted once by the
driver's :class:`~pathgen.embedding.plan.SlideAssembler` (tests/test_embed_ray.py kills one).

Why ``batch_size=1`` (one chunk) in both steps: a chunk already is one forward pass of
``embed.batch_size`` tiles, cut inside one slide; letting Ray re-batch rows would change which
tiles share a forward pass, and so the last bits of the features (see ``plan``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from pathgen.embedding.plan import ChunkResult, EmbedJob
from pathgen.embedding.tiles import SlideHandles, TileDataset

_HANDLES = SlideHandles()  # per Ray worker process: a worker reading many chunks opens a slide once


def read_chunk(batch: dict[str, np.ndarray], image_size: int, preprocess: Any) -> dict[str, np.ndarray]:
    """Read and preprocess the tiles of the chunks in ``batch`` (a Ray Data numpy batch)."""
    import torch

    chunks, images, errors = [], [], []
    for k in range(len(batch["chunk"])):
        xs, ys, sizes = (np.asarray(batch[c][k], np.int64) for c in ("x", "y", "size"))
        path, reader = str(batch["path"][k]), str(batch["reader"][k])
        tiles = TileDataset(
            [path],
            [reader],
            np.zeros(len(xs), np.int64),
            xs,
            ys,
            sizes,
            image_size,
            preprocess,
            handles=_HANDLES,
        )
        items = [tiles[i] for i in range(len(tiles))]
        chunks.append(int(batch["chunk"][k]))
        images.append(torch.stack([im for _, im, _ in items]).numpy())
        errors.append(json.dumps([[i, e] for i, _, e in items if e]))
    return {"chunk": np.array(chunks, np.int64), "images": _rows(images), "errors": np.array(errors, object)}


class EncoderActor:
    """One encoder replica in Ray's actor pool; ``__call__`` embeds a batch of chunks."""

    def __init__(self, spec: str, precision: str | None, device: str) -> None:
        import ray
        import torch

        from pathgen.models.encoders import load_encoder

        if device == "cpu":  # as many threads as CPUs reserved (Ray's OMP_NUM_THREADS says the same)
            cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
            torch.set_num_threads(max(1, int(cpus)))
        self.encoder = load_encoder(spec, device=device, precision=precision)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        feats = []
        for images in batch["images"]:
            tensor = torch.from_numpy(np.ascontiguousarray(images, np.float32))
            feats.append(self.encoder.encode_images(tensor, batch_size=len(tensor)).astype(np.float16))
        return {"chunk": batch["chunk"], "feats": _rows(feats), "errors": batch["errors"]}


def chunk_table(job: EmbedJob) -> Any:
    """The job's chunks as an Arrow table (chunk, path, reader, and x/y/size as list columns).

    Built from the grids' numpy arrays without Python objects per tile: a list of dicts of
    ``.tolist()`` coordinates costs ~30x the memory of the arrays on the driver.
    """
    import pyarrow as pa

    flat, offsets = job.flat(), job.offsets()
    starts = np.array([offsets[c.slide] + c.start for c in job.chunks], np.int64)
    stops = np.array([offsets[c.slide] + c.stop for c in job.chunks], np.int64)
    # the chunks of a job tile its slides in order, so list offsets are the starts plus the last stop
    if len(starts) and not (np.array_equal(starts[1:], stops[:-1]) and starts[0] == 0):
        raise ValueError("chunks must cover the job's tiles in order")
    list_offsets = pa.array(np.append(starts, stops[-1:]) if len(starts) else np.zeros(1, np.int64))
    slide = np.array([c.slide for c in job.chunks], np.int64)
    paths = pa.array([s.path for s in job.slides], pa.string())
    readers = pa.array([s.reader or "auto" for s in job.slides], pa.string())
    columns = {
        "chunk": pa.array(np.arange(len(job.chunks), dtype=np.int64)),
        "path": paths.take(pa.array(slide)),
        "reader": readers.take(pa.array(slide)),
    }
    for col in ("x", "y", "size"):
        values = pa.array(np.asarray(flat[col], np.int64))
        columns[col] = pa.LargeListArray.from_arrays(list_offsets, values)
    return pa.table(columns)


def _rows(arrays: list[np.ndarray]) -> np.ndarray:
    """A column of per-row arrays: stacked when shapes agree, else a ragged object column."""
    if len({a.shape for a in arrays}) == 1:
        return np.stack(arrays)
    column = np.empty(len(arrays), object)
    column[:] = arrays
    return column


@dataclass(frozen=True)
class EncoderFacts:
    """What the driver needs of the encoder (meta.json, tile reading) without holding the model."""

    backend: str
    dim: int
    image_size: int
    preprocess: Any


def _facts(spec: str) -> EncoderFacts:
    from pathgen.models.encoders import load_encoder

    encoder = load_encoder(spec, device="cpu", precision="fp32")
    return EncoderFacts(encoder.backend, int(encoder.dim), int(encoder.image_size), encoder.preprocess)


def describe_encoder(ray: Any, spec: str) -> EncoderFacts:
    """The encoder's facts, learnt by a Ray task: the model is loaded on a worker, not the driver
    (a ViT-L is over a gigabyte the driver would hold for the whole stage for four numbers)."""
    return ray.get(ray.remote(num_cpus=1)(_facts).remote(spec))


def plan_actors(ray: Any, actors: int | None) -> tuple[int, bool]:
    """(number of encoder actors, whether each takes a GPU) for the cluster Ray is connected to."""
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    if gpus:
        return (actors or gpus), True
    return (actors or max(1, cpus // 2)), False


def run_ray(
    job: EmbedJob,
    executor: Any,
    spec: str,
    precision: str | None,
    pool: tuple[int, bool],
    image_size: int,
    preprocess: Any,
) -> Iterator[ChunkResult]:
    """Embed every chunk of ``job`` on the Ray cluster of ``executor``; results in completion order.

    ``pool``: (number of encoder actors, whether each takes a GPU), from :func:`plan_actors`.
    """
    executor.ensure()
    try:
        import ray.data as rd
    except ImportError as exc:  # Ray core without its data library
        from pathgen.executors.ray_executor import INSTALL_HINT

        raise RuntimeError(INSTALL_HINT) from exc

    n_actors, use_gpu = pool
    table = chunk_table(job)
    ctx = rd.DataContext.get_current()
    saved = {
        k: getattr(ctx, k) for k in ("enable_progress_bars", "print_on_execution_start") if hasattr(ctx, k)
    }
    for key in saved:  # pathgen shows the one progress display of every stage
        setattr(ctx, key, False)
    try:
        blocks = max(1, min(table.num_rows, 4 * executor.parallelism()))
        step = -(-table.num_rows // blocks)
        ds = rd.from_arrow([table.slice(i, step) for i in range(0, table.num_rows, step)])
        ds = ds.map_batches(
            read_chunk,
            batch_size=1,
            batch_format="numpy",
            fn_kwargs={"image_size": image_size, "preprocess": preprocess},
            num_cpus=1,
        )
        ds = ds.map_batches(
            EncoderActor,
            batch_size=1,
            batch_format="numpy",
            fn_constructor_kwargs={
                "spec": spec,
                "precision": precision,
                "device": "cuda" if use_gpu else "cpu",
            },
            compute=rd.ActorPoolStrategy(size=n_actors),
            num_cpus=1,
            num_gpus=1 if use_gpu else 0,
        )
        for row in ds.iter_rows():
            errors = [(int(i), str(e)) for i, e in json.loads(row["errors"])]
            yield ChunkResult(int(row["chunk"]), np.asarray(row["feats"], np.float16), errors)
    finally:
        for key, value in saved.items():
            setattr(ctx, key, value)
