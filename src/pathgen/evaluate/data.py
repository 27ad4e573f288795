"""One labelled example of a benchmark, whatever its on-disk form (file, HDF5 row, NumPy row).

Loaders only list examples (cheap); pixels are read when features are computed, so listing a
100K-image dataset to print its class counts never decodes an image.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


@dataclass(frozen=True)
class Example:
    """An image and its label; ``path`` is a file, or (with ``index``) an array file and its row."""

    id: str
    label: str
    path: str
    index: int | None = None
    key: str | None = None
    split: str | None = None

    def open(self) -> Any:
        """The image as an RGB ``PIL.Image``."""
        from PIL import Image

        if self.index is None:
            with Image.open(self.path) as im:
                return im.convert("RGB")
        array = _array_file(self.path, self.key)
        return Image.fromarray(_to_uint8(array[self.index])).convert("RGB")


def _to_uint8(arr: Any) -> Any:
    import numpy as np

    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return arr


@functools.lru_cache(maxsize=16)
def _array_file(path: str, key: str | None) -> Any:
    """Open an HDF5 dataset or a NumPy file once per process; rows are read lazily."""
    if path.endswith((".h5", ".hdf5")):
        import h5py

        return h5py.File(path, "r")[key or "x"]
    import numpy as np

    return np.load(path, mmap_mode="r")


def image_files(root: Path) -> list[Path]:
    """Every image under ``root`` (recursively), sorted, so listings are stable across machines."""
    return sorted(
        p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file() and "_mask" not in p.stem
    )


def split_of(examples: list[Example], split: str | None) -> list[Example]:
    """Examples of one split; a dataset without splits returns everything for any split."""
    if split in (None, "all"):
        return list(examples)
    if not any(e.split for e in examples):
        return list(examples)
    return [e for e in examples if e.split == split]


def class_counts(examples: list[Example]) -> dict[str, int]:
    return dict(sorted(Counter(e.label for e in examples).items()))
