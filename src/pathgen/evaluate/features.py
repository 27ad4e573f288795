"""Image features of a benchmark under a model, cached on disk per (model, dataset).

Encoding is the slow part of every evaluation; zero-shot, linear probe and few-shot on the same
model and dataset share one pass. The cache key covers the model spec (and the identity of any
checkpoint file or directory it names, so retraining invalidates it) and the exact example list.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from pathgen.evaluate.data import Example
from pathgen.rundir import atomic_path, file_identity, fingerprint


def model_identity(spec: str) -> list[Any]:
    """The spec plus the size/mtime of every local file it points to (checkpoint or model dir)."""
    parts: list[Any] = [spec]
    for token in re.split(r"[@?]", spec.split(":", 1)[-1]):
        path = Path(token).expanduser()
        if token and path.exists():
            files = sorted(path.glob("*")) if path.is_dir() else [path]
            parts.extend(file_identity(f) for f in files if f.is_file())
    return parts


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[-80:] or "model"


def cache_path(cache_dir: Path, spec: str, dataset: str, examples: Sequence[Example]) -> Path:
    fp = fingerprint(model_identity(spec), dataset, [(e.id, e.path, e.index) for e in examples])
    return Path(cache_dir) / _slug(spec) / f"{_slug(dataset)}-{fp[:16]}.npy"


def image_features(
    examples: Sequence[Example],
    get_encoder: Callable[[], Any],
    spec: str,
    dataset: str,
    cache_dir: Path | None,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, bool]:
    """(features float32 (n, d) in example order, whether they came from the cache)."""
    path = cache_path(cache_dir, spec, dataset, examples) if cache_dir else None
    if path is not None and path.exists():
        feats = np.load(path)
        if feats.shape[0] == len(examples):
            return feats.astype(np.float32), True
    encoder = get_encoder()
    chunks = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        for start in range(0, len(examples), batch_size):
            batch = list(pool.map(lambda e: e.open(), examples[start : start + batch_size]))
            chunks.append(encoder.encode_images(batch, batch_size=batch_size))
            if progress:
                progress(min(start + batch_size, len(examples)), len(examples))
    feats = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, 0), np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, feats)
    return feats, False
