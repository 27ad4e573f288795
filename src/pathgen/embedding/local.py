"""Embedding on this machine's devices: one encoder and one reading pipeline per device.

Device ``d`` of ``D`` takes chunks ``d, d + D, d + 2D, …``: chunks interleave, so all devices work
on the same few slides and each slide is finished (and written) early. Each device has its own
DataLoader, whose worker processes read and preprocess tiles on CPU, and its own thread running
its encoder (torch releases the GIL inside kernels, so the devices compute in parallel). Results
reach the caller, which alone writes, through one bounded queue. With one device nothing of that
is needed: the loader and the encoder run in the caller's thread, as they always did.

Why threads rather than a process per device: results stay in this process (no feature arrays
pickled back), an encoder loads once per device, and CUDA needs no fork-safety care. The
DataLoader workers are started (forked) from the caller's thread before any device thread runs,
so a fork never copies a thread that is inside torch.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from pathgen.embedding.plan import ChunkResult, EmbedJob
from pathgen.embedding.tiles import TileDataset

_POLL_S = 0.1


class _Done:
    """A device thread's last message (``error`` set when it failed)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def run_local(job: EmbedJob, encoders: list[Any], workers: int) -> Iterator[ChunkResult]:
    """Embed every chunk of ``job``, one encoder per device; results in completion order."""
    n = len(encoders)
    shares = [list(range(d, len(job.chunks), n)) for d in range(n)]
    # Start every loader's worker processes here, before any device thread exists.
    loaders = [iter(_loader(job, enc, share, workers)) for enc, share in zip(encoders, shares, strict=True)]
    if n == 1:
        yield from _encode(encoders[0], shares[0], loaders[0])
        return
    results: queue.Queue[ChunkResult | _Done] = queue.Queue(maxsize=2 * n)
    stop = threading.Event()

    def put(item: ChunkResult | _Done) -> bool:
        while not stop.is_set():
            try:
                results.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def work(encoder: Any, share: list[int], batches: Iterator[Any]) -> None:
        try:
            if encoder.device.type == "cuda":
                import torch

                torch.cuda.set_device(encoder.device)  # per thread: kernels land on this device
            for result in _encode(encoder, share, batches):
                if not put(result):
                    return
            put(_Done())
        except BaseException as exc:  # handed to the caller, which raises it
            put(_Done(exc))

    threads = [
        threading.Thread(
            target=work, args=(enc, share, it), name=f"pathgen-embed-{d}-{enc.device}", daemon=True
        )
        for d, (enc, share, it) in enumerate(zip(encoders, shares, loaders, strict=True))
    ]
    for thread in threads:
        thread.start()
    try:
        running = n
        while running:
            item = results.get()
            if isinstance(item, _Done):
                running -= 1
                if item.error is not None:
                    raise item.error
                continue
            yield item
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def _loader(job: EmbedJob, encoder: Any, share: list[int], workers: int) -> Any:
    """A DataLoader whose batches are exactly this device's chunks, in order."""
    from torch.utils.data import DataLoader

    flat, offsets = job.flat(), job.offsets()
    dataset = TileDataset(
        [s.path for s in job.slides],
        [s.reader or "auto" for s in job.slides],
        flat["slide_index"],
        flat["x"],
        flat["y"],
        flat["size"],
        image_size=encoder.image_size,
        preprocess=encoder.preprocess,
    )
    batches = []
    for k in share:
        chunk = job.chunks[k]
        first = int(offsets[chunk.slide]) + chunk.start
        batches.append(range(first, first + len(chunk)))
    return DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_sampler=batches,
        num_workers=workers,
        pin_memory=encoder.device.type == "cuda",
        prefetch_factor=4 if workers else None,
    )


def _encode(encoder: Any, share: list[int], batches: Iterator[Any]) -> Iterator[ChunkResult]:
    """Encode one device's batches (the loader keeps their order, so batch i is chunk share[i])."""
    for k, (_, images, errs) in zip(share, batches, strict=True):
        feats = encoder.encode_images(images, batch_size=len(images)).astype(np.float16)
        yield ChunkResult(k, feats, [(j, e) for j, e in enumerate(errs) if e])
